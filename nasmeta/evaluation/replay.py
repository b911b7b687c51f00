"""Replay of a search over one dataset's stored runs: no training, every decision on stored curve prefixes.

The candidate order is a seeded random permutation of the task's runs (sorted by run id first, so the order
depends only on the seed and the set of runs), the same for every method at a given seed.  The replay is the search
loop itself (:func:`nasmeta.search.loop.run_search`) with a ``FixedOrderSearcher`` over that order, the method as
its scheduler and a ``StoredCurveEvaluator``: a stopping rule (``none``, ``median``, ``percentile``, ``domhan``,
``baker``, LCRankNet, anything with ``decide(curve, context)``) is asked after each epoch before the last; successive
halving / Hyperband / ASHA pause runs at their rungs and resume the promoted ones (only the extra epochs are
charged) exactly as they do on live training.

Outputs (per method, task, seed): the picked run (the completed run with the best final validation accuracy,
earliest in the order on ties), ``regret_val`` = best final validation accuracy among *all* runs of the task minus
the pick's, ``regret_test`` the same for test accuracy, and the cost: epochs and seconds actually trained (from the
stored per-epoch seconds).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from nasmeta.evaluation.metrics import regret
from nasmeta.evaluation.runs import ReplayRun, check_task_runs


@dataclass(frozen=True)
class ReplayOutcome:
    """What one method did on one task for one random order."""

    method: str
    task_id: str
    seed: int
    picked_run_id: str | None
    picked_val_acc: float
    picked_test_acc: float
    oracle_val_acc: float
    oracle_test_acc: float
    regret_val: float
    regret_test: float
    epochs: int
    seconds: float
    n_runs: int
    n_completed: int
    n_stopped: int

    @property
    def hours(self) -> float:
        return self.seconds / 3600.0

    def as_row(self) -> dict[str, Any]:
        row = asdict(self)
        row["hours"] = self.hours
        return row


def replay_order(runs: Sequence[ReplayRun], seed: int, n_runs: int | None = None) -> list[ReplayRun]:
    """The search's candidate order: a permutation (seeded) of the runs sorted by id; the first ``n_runs``."""
    if n_runs is not None and (isinstance(n_runs, bool) or not isinstance(n_runs, int) or n_runs < 1):
        raise ValueError(f"n_runs must be a positive integer or None, got {n_runs!r}")
    ordered = sorted(runs, key=lambda r: r.run_id)
    perm = np.random.default_rng(seed).permutation(len(ordered))
    chosen = [ordered[i] for i in perm]
    return chosen if n_runs is None else chosen[:n_runs]


def _nan_if_none(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def replay(
    runs: Sequence[ReplayRun],
    method: Any,
    *,
    seed: int,
    name: str | None = None,
    n_runs: int | None = None,
) -> ReplayOutcome:
    """Replay ``method`` (a scheduler, or a stopping rule with ``decide``) on one task's runs for one order."""
    from nasmeta.search.loop import run_search
    from nasmeta.search.schedulers import as_scheduler
    from nasmeta.search.searchers import FixedOrderSearcher
    from nasmeta.search.stored import StoredCurveEvaluator

    check_task_runs(runs)
    task_id = runs[0].task_id
    order = replay_order(runs, seed, n_runs)
    scheduler = as_scheduler(method)
    evaluator = StoredCurveEvaluator(order)
    T = evaluator.max_epochs
    result = run_search(
        FixedOrderSearcher(order),
        evaluator,
        len(order),
        scheduler,
        seed=seed,
        method="replay",
        task_id=task_id,
        require_result=False,
    )
    best = result.extra["best_index"]
    picked_id = None if best is None else result.history[best].extra["run_id"]
    trained = {t["run_id"]: t["epochs"] for t in result.extra["trials"]}
    by_id = {r.run_id: r for r in runs}
    picked = None if picked_id is None else by_id[picked_id]
    oracle_val = max(r.final_val_acc for r in runs)
    tests = [r.final_test_acc for r in runs if r.final_test_acc is not None]
    oracle_test = max(tests) if tests else float("nan")
    picked_val = float("nan") if picked is None else picked.final_val_acc
    picked_test = float("nan") if picked is None else _nan_if_none(picked.final_test_acc)
    return ReplayOutcome(
        method=name or getattr(method, "name", type(method).__name__),
        task_id=task_id,
        seed=int(seed),
        picked_run_id=None if picked is None else picked.run_id,
        picked_val_acc=picked_val,
        picked_test_acc=picked_test,
        oracle_val_acc=float(oracle_val),
        oracle_test_acc=float(oracle_test),
        regret_val=regret(oracle_val, picked_val),
        regret_test=regret(oracle_test, picked_test),
        epochs=int(sum(trained.values())),
        seconds=float(sum(by_id[rid].seconds_until(e) for rid, e in trained.items())),
        n_runs=len(trained),
        n_completed=sum(1 for e in trained.values() if e == T),
        n_stopped=sum(1 for e in trained.values() if e < T),
    )
