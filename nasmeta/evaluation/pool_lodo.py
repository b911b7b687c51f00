"""Leave-one-dataset-out at equal evaluations over a collection's stored cells: which method finds a good cell
of a task it did not see with k evaluations?

For each held-out task the *pool* is its stored cells (one run per cell: the lowest seed); a method proposes cells
of the pool, each proposal is "evaluated" by reading its stored curve (``StoredArchEvaluator``) through the one
search loop, and after k = 5, 10, 20 evaluations (by default) the best cell so far by validation accuracy gives

- ``regret_val@k`` = best validation accuracy in the pool - the pick's, in points; ``regret_test@k`` the same for
  test accuracy (oracle = the pool's best test accuracy); ``seconds@k`` / ``epochs@k`` the stored training cost;
- ``kendall_tau``: for methods with a fixed order (random, portfolio, TAPAS), Kendall's tau between the order and
  the pool's final validation accuracies (how well the method ranks the unseen task's cells; NaN for evolution).

Methods (``POOL_METHODS``; each built once per fold from the other tasks only, ``fold.train``):

- ``random`` — the pool in a seeded random order (random search without replacement);
- ``re`` — regularised evolution (Real et al. 2019) on ``PoolSpace``, population 10, tournament 3 (NB201's REA
  settings), seeded;
- ``portfolio`` — ``nasmeta.transfer.portfolio`` fitted on the sources, the pool reordered with its cells first
  (then random order for cells it does not hold);
- ``tapas`` — TAPAS fitted on the sources, the pool ranked by the TAP's prediction for the held-out task's DCN;
  ``tapas-noselect`` the same with DCN source selection off (every source kept), so the selection's effect is
  measured.  Rows of both carry ``n_sources``, how many source tasks the DCN selection kept;
- ``nao`` — NAO (``nasmeta.blackbox.nao``) from scratch on the pool: 5 random cells, then rounds of 5
  gradient-ascent decodes; a decoded cell that is not in the pool is replaced by the nearest pool cell not yet
  evaluated (token Hamming distance), since stored cells are all that can be evaluated without training;
- ``xfernas`` — XferNAS (``nasmeta.transfer.xfernas``): the universal surrogate fitted on the sources, the 5 pool
  cells it ranks highest first, then NAO rounds with surrogate ``g_u + r_t`` (same mapping to pool cells);
  ``xfernas-universal`` the ablation without the target: the pool in the order of ``g_u`` alone (no residual, no
  gradient ascent), whose ``kendall_tau`` is the universal part's rank correlation on the unseen task;
- ``rapidnas`` — RapidNAS / MetaD2A (``nasmeta.transfer.rapidnas``) meta-trained on the sources; the held-out
  task is encoded from its images (its spec in the tasks table), the generator samples ``n_candidates`` (500)
  graphs with the row's seed, and the pool cells among the generated ones (matched up to isomorphism, by
  ``arch_id``) come first, ranked by the meta-predictor; the pool cells it did not generate follow, also ranked by
  the meta-predictor (generated cells outside the pool cannot be evaluated on stored curves, so they are
  dropped).  Rows carry ``n_generated`` (distinct valid cells generated), ``n_generated_in_pool`` and
  ``candidate_seconds`` (sampling, decoding and ranking the candidates);
  ``rapidnas-predictor`` ranks the whole pool by the meta-predictor alone, so the generator's part is measured
  (both share one fit per fold and parameters; the first to run reports its ``fit_seconds``).

Deterministic methods (portfolio, TAPAS: fitted once per fold with seed 0) give the same row for every seed; the
seeds vary the random and evolutionary baselines (and the random tail of the portfolio order).
"""

from __future__ import annotations

import json
import math
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np

from nasmeta.evaluation.lodo import Fold, LodoHooks, lodo_folds, lodo_loop
from nasmeta.evaluation.runs import ReplayRun, runs_from_meta

DEFAULT_KS = (5, 10, 20)
#: an order is a function (pool, seed) -> pool cells in evaluation order, or a searcher factory
PoolMethod = Callable[[Sequence[Any], Sequence[ReplayRun], int], Any]


def pool_runs(meta: Any) -> list[ReplayRun]:
    """One completed run per (task, architecture): the one with the lowest seed (``lowest_seed_view``)."""
    from metadata_store.dataset import lowest_seed_view

    return runs_from_meta(lowest_seed_view(meta))


def _shuffled(pool: Sequence[Any], seed: int) -> list[Any]:
    ordered = sorted(pool, key=lambda a: a.arch_id)
    return [ordered[i] for i in np.random.default_rng(seed).permutation(len(ordered))]


def _random(train: Any, fold: Fold, params: Mapping[str, Any]) -> Any:
    from nasmeta.search.searchers import FixedOrderSearcher

    return lambda space, pool, seed: FixedOrderSearcher(_shuffled(pool, seed))


def _evolution(train: Any, fold: Fold, params: Mapping[str, Any]) -> Any:
    from nasmeta.search.pool import PoolSpace
    from nasmeta.search.searchers import EvolutionSearcher

    population, sample = int(params.get("population_size", 10)), int(params.get("sample_size", 3))
    return lambda space, pool, seed: EvolutionSearcher(PoolSpace(space, pool), seed, population, sample)


def _portfolio(train: Any, fold: Fold, params: Mapping[str, Any]) -> Any:
    from nasmeta.search.searchers import FixedOrderSearcher
    from nasmeta.transfer.portfolio import Portfolio

    # every candidate cell ranked (not only a prefix), so the order's rank correlation covers the whole pool
    portfolio = Portfolio(**{"size": 100_000, **params}).fit(train)
    return lambda space, pool, seed: FixedOrderSearcher(portfolio.order(_shuffled(pool, seed)))


def _tapas(select: bool) -> Callable[[Any, Fold, Mapping[str, Any]], Any]:
    def build(train: Any, fold: Fold, params: Mapping[str, Any]) -> Any:
        from nasmeta.search.searchers import FixedOrderSearcher
        from nasmeta.transfer.tapas import TAPAS

        options = dict(params)
        if not select:
            options["dcn_threshold"] = 1.0  # every source is within 1.0 of any DCN fraction
        tapas = TAPAS(**options).fit(train)
        dcn = _dcn_of(fold)
        selection = tapas.select_sources(dcn)

        def searcher(space: Any, pool: Sequence[Any], seed: int) -> Any:
            ordered = sorted(pool, key=lambda a: a.arch_id)
            scores = tapas.predict(ordered, {"task_id": fold.task_id, "dcn": dcn})
            ranked = [ordered[i] for i in np.argsort(-scores, kind="stable")]
            return FixedOrderSearcher(ranked)

        searcher.info = {"n_sources": len(selection), "sources": [t for t, _ in selection]}  # type: ignore[attr-defined]
        return searcher

    return build


#: fold training view -> {parameters: fitted RapidNAS}, so ``rapidnas`` and ``rapidnas-predictor`` share one fit
_RAPIDNAS_FITS: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


def _rapidnas(generated_first: bool) -> Callable[[Any, Fold, Mapping[str, Any]], Any]:
    def build(train: Any, fold: Fold, params: Mapping[str, Any]) -> Any:
        from nasmeta.search.searchers import FixedOrderSearcher
        from nasmeta.transfer.rapidnas import RapidNAS

        specs = [r["spec"] for r in fold.test.tasks.to_pylist() if r["spec"]]
        if not specs:
            raise ValueError(f"task {fold.task_id!r} has no spec in the tasks table; RapidNAS cannot encode it")
        fits = _RAPIDNAS_FITS.setdefault(train, {})
        key = json.dumps(dict(params), sort_keys=True, default=str)
        if key not in fits:
            fits[key] = RapidNAS(**params).fit(train)
        model = fits[key]
        target = {"task_id": fold.task_id, "spec": specs[0]}

        def searcher(space: Any, pool: Sequence[Any], seed: int) -> Any:
            ordered = sorted(pool, key=lambda a: a.arch_id)
            scores = model.predict(ordered, target)
            ranked = [ordered[i] for i in np.argsort(-scores, kind="stable")]
            if generated_first:
                cells, _, info = model.candidates(target, seed=seed)
                generated = {a.arch_id for a in cells}
                first = [a for a in ranked if a.arch_id in generated]
                ranked = first + [a for a in ranked if a.arch_id not in generated]
                searcher.info["row"] = {  # type: ignore[attr-defined]
                    "n_generated": len(cells),
                    "n_generated_in_pool": len(first),
                    "candidate_seconds": info["candidate_seconds"],
                }
            return FixedOrderSearcher(ranked)

        searcher.info = {}  # type: ignore[attr-defined]
        return searcher

    return build


def _dcn_of(fold: Fold) -> float:
    values = [r["value"] for r in fold.test.landmarkers.to_pylist() if r["name"] == "dcn"]
    if not values:
        raise ValueError(f"task {fold.task_id!r} has no 'dcn' landmarker; TAPAS cannot rank its cells")
    return float(values[0]) / 100.0


def _nao(train: Any, fold: Fold, params: Mapping[str, Any]) -> Any:
    from nasmeta.blackbox.nao import NAOConfig, NAOSearcher

    config = NAOConfig(**{"n_initial": 5, "top_k": 5, **params})
    return lambda space, pool, seed: NAOSearcher(space, seed, config, pool=pool)


def _xfernas(train: Any, fold: Fold, params: Mapping[str, Any]) -> Any:
    from nasmeta.transfer.xfernas import XferNAS

    options = dict(params)
    search = {"top_k": int(options.pop("top_k", 5))}
    xfernas = XferNAS(**options).fit(train)

    def searcher(space: Any, pool: Sequence[Any], seed: int) -> Any:
        return xfernas.searcher(seed, pool=pool, **search)

    searcher.info = {"n_sources": len(xfernas.source_tasks), "sources": xfernas.source_tasks}  # type: ignore[attr-defined]
    return searcher


def _xfernas_universal(train: Any, fold: Fold, params: Mapping[str, Any]) -> Any:
    from nasmeta.search.searchers import FixedOrderSearcher
    from nasmeta.transfer.xfernas import XferNAS

    xfernas = XferNAS(**params).fit(train)

    def searcher(space: Any, pool: Sequence[Any], seed: int) -> Any:
        return FixedOrderSearcher(xfernas.rank(pool))

    searcher.info = {"n_sources": len(xfernas.source_tasks), "sources": xfernas.source_tasks}  # type: ignore[attr-defined]
    return searcher


POOL_METHODS: dict[str, Callable[[Any, Fold, Mapping[str, Any]], Any]] = {
    "random": _random,
    "re": _evolution,
    "portfolio": _portfolio,
    "tapas": _tapas(select=True),
    "tapas-noselect": _tapas(select=False),
    "nao": _nao,
    "xfernas": _xfernas,
    "xfernas-universal": _xfernas_universal,
    "rapidnas": _rapidnas(generated_first=True),
    "rapidnas-predictor": _rapidnas(generated_first=False),
}


def check_pool_methods(names: Iterable[str]) -> list[str]:
    names = list(names)
    unknown = [n for n in names if n not in POOL_METHODS]
    if unknown:
        raise ValueError(f"unknown pool method(s) {unknown}; known: {', '.join(POOL_METHODS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"methods must be distinct, got {names}")
    return names


def check_ks(ks: Iterable[int]) -> tuple[int, ...]:
    ks = tuple(ks)
    if not ks or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in ks):
        raise ValueError(f"ks must be positive integers, got {list(ks)}")
    return tuple(sorted(set(ks)))


def evaluate_order(
    searcher: Any, runs: Sequence[ReplayRun], ks: Sequence[int], seed: int, scheduler: Any = None
) -> dict[str, float]:
    """Run ``searcher`` over the pool for ``max(ks)`` evaluations; regret / cost after each k."""
    from nasmeta.search.loop import run_search
    from nasmeta.search.stored import StoredArchEvaluator

    evaluator = StoredArchEvaluator(runs)
    n = min(max(ks), len(runs))
    tau = _order_tau(searcher, runs)
    result = run_search(searcher, evaluator, n, scheduler, seed=seed, method="pool", require_result=False)
    oracle_val = max(r.final_val_acc for r in runs)
    tests = [r.final_test_acc for r in runs if r.final_test_acc is not None]
    oracle_test = max(tests) if tests else math.nan
    row: dict[str, float] = {
        "pool_size": len(runs),
        "oracle_val_acc": oracle_val,
        "oracle_test_acc": oracle_test,
        "kendall_tau": tau,
    }
    history = result.history
    for k in ks:
        first = [e for e in history[:k] if e.status == "completed"]
        if not first:
            row.update({f"regret_val@{k}": math.nan, f"regret_test@{k}": math.nan})
        else:
            best = max(first, key=lambda e: e.val_acc)  # earliest on ties
            row[f"regret_val@{k}"] = oracle_val - best.val_acc
            row[f"regret_test@{k}"] = oracle_test - best.test_acc
        row[f"seconds@{k}"] = float(sum(e.cost_seconds for e in history[:k]))
        row[f"epochs@{k}"] = float(sum(e.epochs for e in history[:k]))
    return row


def _order_tau(searcher: Any, runs: Sequence[ReplayRun]) -> float:
    """Kendall tau between a fixed order (earlier = predicted better) and the pool's final validation accuracy;
    NaN for adaptive searchers, whose order depends on what they observe."""
    from scipy.stats import kendalltau

    from nasmeta.search.searchers import FixedOrderSearcher

    if not isinstance(searcher, FixedOrderSearcher):
        return math.nan
    position = {a.arch_id: i for i, a in enumerate(searcher.items)}
    acc = {r.arch_id: r.final_val_acc for r in runs}
    common = [a for a in acc if a in position]
    if len(common) < 3:
        return math.nan
    return float(kendalltau([-position[a] for a in common], [acc[a] for a in common]).statistic)


def pool_lodo(
    meta: Any,
    methods: Sequence[str] = tuple(POOL_METHODS),
    seeds: Iterable[int] = range(5),
    ks: Sequence[int] = DEFAULT_KS,
    tasks: Sequence[str] | None = None,
    method_params: Mapping[str, Mapping[str, Any]] | None = None,
    hooks: LodoHooks | None = None,
    done: Iterable[Mapping[str, Any]] | None = None,
    errors: Literal["raise", "record"] = "record",
) -> list[dict[str, Any]]:
    """Rows for every (held-out task, method, seed) — see the module docstring."""
    from nasmeta.spaces import get_space

    methods = check_pool_methods(methods)
    ks = check_ks(ks)
    params = dict(method_params or {})
    runs_of: dict[str, list[ReplayRun]] = {}
    for run in pool_runs(meta):
        runs_of.setdefault(run.task_id, []).append(run)

    def factory(name: str) -> Callable[[Any], Any]:
        def build(train: Any) -> Any:
            return name  # built per fold in ``evaluate`` (the builder needs the fold's target landmarkers)

        return build

    built: dict[tuple[str, str], tuple[Any, float]] = {}

    def evaluate(name: str, method: Any, fold: Fold, seed: int) -> dict[str, Any]:
        key = (fold.task_id, name)
        if key not in built:
            start = time.perf_counter()
            built[key] = (POOL_METHODS[name](fold.train, fold, params.get(name, {})), time.perf_counter() - start)
        make_searcher, fit_seconds = built[key]
        runs = runs_of.get(fold.task_id)
        if not runs:
            raise ValueError(f"task {fold.task_id!r} has no stored completed runs with curves")
        archs = [r.arch for r in runs]
        if any(a is None for a in archs):
            raise ValueError(f"task {fold.task_id!r}: runs without stored architectures cannot form a pool")
        space = get_space(archs[0].space)
        row = evaluate_order(make_searcher(space, archs, seed), runs, ks, seed)
        info = getattr(make_searcher, "info", {})
        return {
            "task_id": fold.task_id,
            "method": name,
            "seed": seed,
            "fit_seconds": fit_seconds,
            **({"n_sources": info["n_sources"]} if "n_sources" in info else {}),
            **info.get("row", {}),
            **row,
        }

    folds = [f for f in lodo_folds(meta, tasks) if f.task_id in runs_of]
    factories = {name: factory(name) for name in methods}
    return lodo_loop(folds, factories, evaluate, seeds, hooks=hooks, done=done, errors=errors)
