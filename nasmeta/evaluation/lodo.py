"""Leave-one-dataset-out (LODO) evaluation: for each held-out task, build every method on the other tasks and
evaluate it on the held-out one, for several seeds.  One loop serves every LODO experiment of the project (the
replay comparison, its Prefect flow, TAPAS's NB201 folds); what differs is the methods, the per-seed evaluation
and the hooks.

- :func:`lodo_folds` — one :class:`Fold` per task of a ``MetaDataset`` (``train = meta.without(task)``,
  ``test = meta.only(task)``).
- :func:`lodo_loop` — the loop over folds x methods x seeds: ``method_factories[name](fold.train)`` once per
  fold (the built method is reused for every seed), then ``evaluate_fold(name, method, fold, seed)`` returns a
  row (or rows) of metrics.  Rows stream out through :class:`LodoHooks` as they finish; rows of an earlier,
  interrupted run (``done``) are reused instead of recomputed; with ``errors="record"`` a method that fails on a
  fold becomes ``status="failed"`` rows with the reason and the loop goes on.  :func:`lodo` runs it on a
  ``MetaDataset`` and returns a pandas DataFrame.
- :class:`CsvRows` — a hook that keeps the results CSV on disk up to date after every row (what ``--resume``
  reads back with :func:`read_rows`).
- :func:`predictor_evaluator` — an ``evaluate_fold`` for ``Predictor`` components: Kendall / Spearman between
  the predictor's scores and the held-out task's final accuracies; :func:`partial_curve_evaluator` does the same
  for curve predictors from the first epochs of each run.
- :func:`replay_lodo` — the early-termination comparison: random-search replay of each held-out task's runs
  (``nasmeta.evaluation.replay``) for each method and seed.

Every row carries ``task_id``, ``method``, ``seed`` and ``status`` (``"completed"`` or ``"failed"``; a failed
row also has ``error``, ``"<exception type>: <message>"``).
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from nasmeta.evaluation.methods import make_method, method_factory
from nasmeta.evaluation.metrics import rank_correlations
from nasmeta.evaluation.replay import replay
from nasmeta.evaluation.runs import check_task_runs, parse_architecture, runs_from_meta
from nasmeta.search.context import stop_context

COMPLETED, FAILED = "completed", "failed"
#: the columns that name a row of a LODO table: which fold, which method, which seed
KEY_COLUMNS = ("task_id", "method", "seed")
Key = tuple[str, str, int]


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


@dataclass(frozen=True)
class LodoHooks:
    """Optional callbacks of :func:`lodo_loop`, called in this order for each fold that has work left:

    ``on_fold_start(fold)``; for each method with seeds left: ``on_method_start(fold, method)`` (before it is
    built), ``on_method_fitted(fold, method, built, fit_seconds)`` (only when building succeeded),
    ``on_result(fold, method, seed, row)`` for each new row as soon as it is computed (failed rows included),
    ``on_method_end(fold, method, rows)``; then ``on_fold_end(fold, rows)``.  The ``rows`` of the two end hooks
    are every row of that method / fold in loop order, reused ones included; ``on_result`` sees only new rows.
    A fold or method whose rows are all reused gets no calls.  An exception raised by a hook stops the loop (it
    is never recorded as the method's failure)."""

    on_fold_start: Callable[[Fold], None] | None = None
    on_method_start: Callable[[Fold, str], None] | None = None
    on_method_fitted: Callable[[Fold, str, Any, float], None] | None = None
    on_result: Callable[[Fold, str, int, dict[str, Any]], None] | None = None
    on_method_end: Callable[[Fold, str, list[dict[str, Any]]], None] | None = None
    on_fold_end: Callable[[Fold, list[dict[str, Any]]], None] | None = None


_HOOK_NAMES = (
    "on_fold_start",
    "on_method_start",
    "on_method_fitted",
    "on_result",
    "on_method_end",
    "on_fold_end",
)


def combine_hooks(*hooks: LodoHooks | None) -> LodoHooks:
    """One :class:`LodoHooks` calling each given one's callbacks in the order given."""
    chosen = [h for h in hooks if h is not None]

    def chain(name: str) -> Callable[..., None] | None:
        callbacks = [getattr(h, name) for h in chosen if getattr(h, name) is not None]
        if not callbacks:
            return None

        def call(*args: Any) -> None:
            for callback in callbacks:
                callback(*args)

        return call

    return LodoHooks(**{name: chain(name) for name in _HOOK_NAMES})


def check_seeds(seeds: Iterable[int]) -> list[int]:
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds is empty: give at least one seed")
    if any(isinstance(s, bool) or not isinstance(s, int | np.integer) for s in seeds):
        raise ValueError(f"seeds must be integers, got {seeds!r}")
    return [int(s) for s in seeds]


def row_key(row: Mapping[str, Any]) -> Key:
    """``(task_id, method, seed)`` of a result row (a ``ValueError`` names a row that lacks one)."""
    missing = [c for c in KEY_COLUMNS if c not in row or _missing(row[c])]
    if missing:
        raise ValueError(f"result row lacks {missing}: {dict(row)!r}"[:300])
    seed = row["seed"]
    if isinstance(seed, bool) or float(seed) != int(seed):
        raise ValueError(f"result row has a non-integer seed {seed!r}")
    return str(row["task_id"]), str(row["method"]), int(seed)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def finished_rows(rows: Iterable[Mapping[str, Any]] | None) -> dict[Key, list[dict[str, Any]]]:
    """The rows of an earlier run that a resumed run reuses, by key: every row not marked failed (rows written
    before ``status`` existed count as completed).  Failed keys are computed again."""
    out: dict[Key, list[dict[str, Any]]] = {}
    for row in rows or ():
        if row.get("status", COMPLETED) == FAILED:
            continue
        row = dict(row)
        row["status"] = COMPLETED
        out.setdefault(row_key(row), []).append(row)
    return out


def _reason(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def lodo_loop(
    folds: Sequence[Fold],
    method_factories: Mapping[str, Callable[[Any], Any]],
    evaluate_fold: EvaluateFold,
    seeds: Iterable[int] = (0,),
    hooks: LodoHooks | None = None,
    done: Iterable[Mapping[str, Any]] | None = None,
    errors: Literal["raise", "record"] = "raise",
) -> list[dict[str, Any]]:
    """The LODO loop: rows for every (fold, method, seed) in that order, as :func:`lodo`; ``folds`` can be any
    :class:`Fold` objects (``train`` / ``test`` are whatever the factories and ``evaluate_fold`` read).

    ``done``: rows of an earlier run (e.g. :func:`read_rows` of its results CSV); a key ``(task_id, method,
    seed)`` with a completed row there is not computed again, its rows are returned in their place, and a method
    whose every seed on a fold is done is not even built.  ``errors="record"``: an exception (not a
    ``KeyboardInterrupt``) while building a method or evaluating a seed gives ``status="failed"`` rows with the
    reason -- one per seed left when building failed -- and the loop goes on; ``"raise"`` lets it propagate."""
    if not method_factories:
        raise ValueError("no methods given: method_factories is empty")
    if errors not in ("raise", "record"):
        raise ValueError(f"errors must be 'raise' or 'record', got {errors!r}")
    seeds = check_seeds(seeds)
    hooks = hooks or LodoHooks()
    previous = finished_rows(done)
    rows: list[dict[str, Any]] = []

    def emit(fold: Fold, name: str, seed: int, new: dict[str, Any], into: list[dict[str, Any]]) -> None:
        into.append(new)
        if hooks.on_result is not None:
            hooks.on_result(fold, name, seed, new)

    for fold in folds:
        task = str(fold.task_id)
        pending = {name: [s for s in seeds if (task, name, s) not in previous] for name in method_factories}
        if not any(pending.values()):
            rows.extend(r for name in method_factories for s in seeds for r in previous[(task, name, s)])
            continue
        if hooks.on_fold_start is not None:
            hooks.on_fold_start(fold)
        fold_rows: list[dict[str, Any]] = []
        for name, factory in method_factories.items():
            if not pending[name]:
                fold_rows.extend(r for s in seeds for r in previous[(task, name, s)])
                continue
            if hooks.on_method_start is not None:
                hooks.on_method_start(fold, name)
            method_rows: list[dict[str, Any]] = []
            method, build_error = None, None
            start = time.perf_counter()
            try:
                method = factory(fold.train)
            except Exception as error:
                if errors == "raise":
                    raise
                build_error = _reason(error)
            if build_error is None and hooks.on_method_fitted is not None:
                hooks.on_method_fitted(fold, name, method, time.perf_counter() - start)
            for seed in seeds:
                if seed not in pending[name]:
                    method_rows.extend(previous[(task, name, seed)])
                    continue
                key = {"task_id": fold.task_id, "method": name, "seed": seed}
                if build_error is not None:
                    emit(fold, name, seed, {**key, "status": FAILED, "error": build_error}, method_rows)
                    continue
                try:
                    result = evaluate_fold(name, method, fold, seed)
                    results = [dict(result)] if isinstance(result, Mapping) else [dict(r) for r in result]
                except Exception as error:
                    if errors == "raise":
                        raise
                    emit(fold, name, seed, {**key, "status": FAILED, "error": _reason(error)}, method_rows)
                    continue
                for result_row in results:
                    emit(fold, name, seed, {**key, **result_row, "status": COMPLETED}, method_rows)
            if hooks.on_method_end is not None:
                hooks.on_method_end(fold, name, list(method_rows))
            fold_rows.extend(method_rows)
        if hooks.on_fold_end is not None:
            hooks.on_fold_end(fold, list(fold_rows))
        rows.extend(fold_rows)
    return rows


def lodo(
    meta: Any,
    method_factories: Mapping[str, Callable[[Any], Any]],
    evaluate_fold: EvaluateFold,
    seeds: Iterable[int] = (0,),
    tasks: Sequence[str] | None = None,
    hooks: LodoHooks | None = None,
    done: Iterable[Mapping[str, Any]] | None = None,
    errors: Literal["raise", "record"] = "raise",
) -> Any:
    """Run :func:`lodo_loop` over :func:`lodo_folds` of ``meta`` and return a DataFrame with one row per (task,
    method, seed) and metric row."""
    import pandas as pd

    if not method_factories:
        raise ValueError("no methods given: method_factories is empty")
    seeds = check_seeds(seeds)
    folds = lodo_folds(meta, tasks)
    return pd.DataFrame(lodo_loop(folds, method_factories, evaluate_fold, seeds, hooks, done, errors))


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a results CSV written by :class:`CsvRows` (or ``write_results``), for ``done=``: numbers read back
    exactly (pandas reads floats round-trip), empty cells as None, ``task_id`` / ``method`` as strings."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no results file to resume from at {path}")
    try:
        # pandas 3 reads floats round-trip by default (and deprecates the option); pandas 2 needs it asked for
        exact = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}
        frame = pd.read_csv(path, dtype={"task_id": str, "method": str}, **exact)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not a results CSV: {error}") from None
    missing = [c for c in KEY_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path} is not a LODO results CSV: it lacks column(s) {missing}")
    rows = []
    for record in frame.to_dict("records"):
        rows.append(
            {k: None if _missing(v) else v.item() if isinstance(v, np.generic) else v for k, v in record.items()}
        )
    for row in rows:
        row_key(row)  # every row must name its fold, method and seed
    return rows


class CsvRows:
    """A hook that keeps ``path`` a CSV of every row so far (the ``initial`` rows first, then each new row as it
    is reported): rewritten whole and atomically after each row, so an interrupted run leaves a complete file
    that ``--resume`` reads back.  Rows of different columns (failed rows, other evaluators) share the file.
    Thread-safe: folds that run concurrently may report into one file."""

    def __init__(self, path: str | Path, initial: Iterable[Mapping[str, Any]] = ()) -> None:
        self.path = Path(path)
        self.rows: list[dict[str, Any]] = [dict(r) for r in initial]
        self._lock = threading.Lock()

    def add(self, row: Mapping[str, Any]) -> None:
        import pandas as pd

        with self._lock:
            self.rows.append(dict(row))
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            pd.DataFrame(self.rows).to_csv(tmp, index=False)
            os.replace(tmp, self.path)

    def hooks(self) -> LodoHooks:
        return LodoHooks(on_result=lambda fold, method, seed, row: self.add(row))


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
    hooks: LodoHooks | None = None,
    done: Iterable[Mapping[str, Any]] | None = None,
    errors: Literal["raise", "record"] = "raise",
) -> Any:
    """The early-termination comparison: ``methods`` are registered names (``nasmeta.evaluation.methods``),
    optionally with parameters (``{"hyperband": {"eta": 3}, "domhan": {"every": 2}}``).  Each held-out task's
    completed runs are replayed as a random search in ``len(seeds)`` random orders.  One row per (task, method,
    seed) with ``ReplayOutcome`` fields.  ``hooks`` / ``done`` / ``errors`` as in :func:`lodo_loop`; a flow that
    wants one unit of work per fold calls it with ``tasks=[task]``."""
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

    return lodo(meta, factories, evaluate, seeds, tasks, hooks=hooks, done=done, errors=errors)
