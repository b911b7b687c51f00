"""Leave-one-dataset-out (LODO) evaluation: for each held-out task, fit every method on the other tasks and
evaluate it on the held-out one, for several seeds.

- :func:`lodo_folds` — one :class:`Fold` per task of a ``MetaDataset`` (``train = meta.without(task)``,
  ``test = meta.only(task)``).
- :func:`lodo` — the generic loop: ``method_factories[name](fold.train)`` once per fold (the fitted method is
  reused for every seed), then ``evaluate_fold(name, method, fold, seed)`` returns a row (or rows) of metrics;
  the result is one pandas DataFrame with ``task_id``, ``method`` and ``seed`` on every row.
- :func:`predictor_evaluator` — an ``evaluate_fold`` for ``Predictor`` components: Kendall / Spearman between
  the predictor's scores and the held-out task's final accuracies; :func:`partial_curve_evaluator` does the same
  for curve predictors from the first epochs of each run.
- :func:`replay_lodo` — the early-termination comparison: random-search replay of each held-out task's runs
  (``nasmeta.evaluation.replay``) for each method and seed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nasmeta.blackbox.stopping import stop_context
from nasmeta.evaluation.methods import make_method, method_factory
from nasmeta.evaluation.metrics import rank_correlations
from nasmeta.evaluation.replay import replay
from nasmeta.evaluation.runs import check_task_runs, parse_architecture, runs_from_meta


@dataclass(frozen=True)
class Fold:
    """One LODO fold: fit on ``train`` (every task but ``task_id``), evaluate on ``test`` (only ``task_id``)."""

    task_id: str
    train: Any
    test: Any


def lodo_folds(meta: Any, tasks: Sequence[str] | None = None) -> list[Fold]:
    """Folds for ``tasks`` (default: every task of ``meta``), in task order; needs at least two tasks."""
    available = list(meta.task_ids)
    if len(available) < 2:
        raise ValueError(f"leave-one-dataset-out needs at least 2 tasks, the metadata has {len(available)}")
    chosen = available if tasks is None else list(tasks)
    if not chosen:
        raise ValueError("no tasks to hold out: tasks is empty")
    unknown = [t for t in chosen if t not in available]
    if unknown:
        raise ValueError(f"unknown task id(s) {unknown}; the metadata has {available}")
    return [Fold(task, meta.without(task), meta.only(task)) for task in chosen]


EvaluateFold = Callable[[str, Any, Fold, int], Mapping[str, Any] | Iterable[Mapping[str, Any]]]


def _check_seeds(seeds: Iterable[int]) -> list[int]:
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds is empty: give at least one seed")
    if any(isinstance(s, bool) or not isinstance(s, int | np.integer) for s in seeds):
        raise ValueError(f"seeds must be integers, got {seeds!r}")
    return [int(s) for s in seeds]


def lodo(
    meta: Any,
    method_factories: Mapping[str, Callable[[Any], Any]],
    evaluate_fold: EvaluateFold,
    seeds: Iterable[int] = (0,),
    tasks: Sequence[str] | None = None,
) -> Any:
    """Run the LODO loop and return a DataFrame with one row per (task, method, seed) and metric row."""
    import pandas as pd

    if not method_factories:
        raise ValueError("no methods given: method_factories is empty")
    seeds = _check_seeds(seeds)
    rows: list[dict[str, Any]] = []
    for fold in lodo_folds(meta, tasks):
        for name, factory in method_factories.items():
            method = factory(fold.train)
            for seed in seeds:
                result = evaluate_fold(name, method, fold, seed)
                for row in [result] if isinstance(result, Mapping) else list(result):
                    rows.append({"task_id": fold.task_id, "method": name, "seed": seed, **dict(row)})
    return pd.DataFrame(rows)


def _final_by_arch(meta: Any, metric: str) -> tuple[list[Any], np.ndarray]:
    """Architectures of the completed runs and their mean ``metric`` (over seeds), sorted by arch id."""
    rows = [r for r in meta.runs_with_archs(status="completed").to_pylist() if r[metric] is not None]
    if not rows:
        raise ValueError(f"empty dataset: no completed runs with {metric} to evaluate on")
    values: dict[str, list[float]] = {}
    archs: dict[str, Any] = {}
    for row in rows:
        arch = parse_architecture(row["space"], row["encoding"])
        if arch is None:
            raise ValueError(f"run {row['run_id']!r}: architecture {row['arch_id']!r} is not in the store")
        values.setdefault(row["arch_id"], []).append(row[metric])
        archs[row["arch_id"]] = arch
    ids = sorted(values)
    return [archs[i] for i in ids], np.array([np.mean(values[i]) for i in ids])


def held_out_task(fold: Fold) -> dict[str, Any]:
    """What a predictor may know of the held-out task: its id and its landmarkers (no runs)."""
    landmarkers = {row["name"]: row["value"] for row in fold.test.landmarkers.to_pylist()}
    return {"task_id": fold.task_id, **landmarkers}


def predictor_evaluator(metric: str = "final_val_acc", task_of: Callable[[Fold], Any] = held_out_task) -> EvaluateFold:
    """``evaluate_fold`` for predictors: rank correlation of ``predict(archs, task)`` with the held-out task's
    ``metric`` (averaged over seeds per architecture)."""
    if metric not in ("final_val_acc", "final_test_acc"):
        raise ValueError(f"metric must be 'final_val_acc' or 'final_test_acc', got {metric!r}")

    def evaluate(name: str, predictor: Any, fold: Fold, seed: int) -> dict[str, Any]:
        archs, actual = _final_by_arch(fold.test, metric)
        scores = np.asarray(predictor.predict(archs, task_of(fold)), dtype=float)
        if scores.shape != (len(archs),):
            raise ValueError(f"{name}: predict returned shape {scores.shape} for {len(archs)} architectures")
        return {"n_archs": len(archs), **rank_correlations(scores, actual)}

    return evaluate


def partial_curve_evaluator(epochs: int | float) -> EvaluateFold:
    """``evaluate_fold`` for curve predictors (Domhan, Baker, LCRankNet, ...: anything with
    ``predict_final(curve, context)``, or any score monotone in it): Kendall / Spearman between the scores of the
    held-out task's runs after ``epochs`` epochs (an int, or a fraction in (0, 1) of the run length) and their
    final validation accuracies; also the correlation of the last observed value, the no-model baseline."""
    if isinstance(epochs, bool) or not (
        (isinstance(epochs, int) and epochs >= 1) or (isinstance(epochs, float) and 0.0 < epochs < 1.0)
    ):
        raise ValueError(f"epochs must be an integer >= 1 or a fraction in (0, 1), got {epochs!r}")

    def evaluate(name: str, predictor: Any, fold: Fold, seed: int) -> dict[str, Any]:
        runs = runs_from_meta(fold.test)
        T = check_task_runs(runs, fold.task_id)
        t = epochs if isinstance(epochs, int) else max(1, int(round(epochs * T)))
        if t >= T:
            raise ValueError(f"epochs={epochs} observes the whole {T}-epoch curve of task {fold.task_id!r}")
        scores = [
            predictor.predict_final(
                r.curve[:t],
                stop_context(
                    epoch=t,
                    max_epochs=T,
                    task_id=r.task_id,
                    run_id=r.run_id,
                    arch=r.arch,
                    n_params=r.n_params,
                    flops=r.flops,
                ),
            )
            for r in runs
        ]
        finals = [r.final_val_acc for r in runs]
        last = rank_correlations([r.curve[t - 1] for r in runs], finals)
        return {
            "epochs_observed": t,
            "n_runs": len(runs),
            **rank_correlations(scores, finals),
            "last_value_kendall_tau": last["kendall_tau"],
            "last_value_spearman_rho": last["spearman_rho"],
        }

    return evaluate


def replay_lodo(
    meta: Any,
    methods: Sequence[str] | Mapping[str, Mapping[str, Any]],
    seeds: Iterable[int] = range(5),
    n_runs: int | None = None,
    tasks: Sequence[str] | None = None,
) -> Any:
    """The early-termination comparison: ``methods`` are registered names (``nasmeta.evaluation.methods``),
    optionally with parameters (``{"hyperband": {"eta": 3}, "domhan": {"every": 2}}``).  Each held-out task's
    completed runs are replayed as a random search in ``len(seeds)`` random orders.  One row per (task, method,
    seed) with ``ReplayOutcome`` fields.  A flow that wants one unit of work (or one MLflow child run) per fold
    calls it with ``tasks=[task]``."""
    spec = {name: {} for name in methods} if not isinstance(methods, Mapping) else dict(methods)
    if not spec:
        raise ValueError("no methods given")
    for name in spec:
        method_factory(name)  # unknown names fail before any fold is fitted
    factories = {name: (lambda train, _n=name: make_method(_n, train, **spec[_n])) for name in spec}
    cache: dict[str, list[Any]] = {}

    def evaluate(name: str, method: Any, fold: Fold, seed: int) -> dict[str, Any]:
        if fold.task_id not in cache:
            runs = runs_from_meta(fold.test)
            check_task_runs(runs, fold.task_id)
            cache[fold.task_id] = runs
        row = replay(cache[fold.task_id], method, seed=seed, name=name, n_runs=n_runs).as_row()
        del row["method"], row["task_id"], row["seed"]
        return row

    return lodo(meta, factories, evaluate, seeds, tasks)
