"""Replay of a random search over one dataset's stored runs: no training, every decision on stored curve prefixes.

The candidate order is a seeded random permutation of the task's runs (sorted by run id first, so the order
depends only on the seed and the set of runs), the same for every method at a given seed.  Two replay loops:

- **sequential** (stopping rules and stoppers: ``none``, ``median``, ``percentile``, ``domhan``, ``baker``,
  LCRankNet, anything with ``decide(curve, context) -> Decision``): runs are trained one after the other; after
  each epoch ``t < T`` the method sees ``curve[:t]`` and the context of ``nasmeta.blackbox.stopping`` (best
  final accuracy so far, the completed runs' curves, the run's architecture); ``STOP`` ends the run, which then
  never counts as a candidate; a run that reaches ``T`` epochs is completed and may become the best.
- **rung-based** (``SuccessiveHalving`` / ``Hyperband``): brackets take their runs from the front of the same
  order and cycle until the order is exhausted; a rung ranks its members by the stored accuracy at the rung's
  epoch and promotes the top ``n_{i+1}``; promoted runs resume (only the extra epochs are charged).

Outputs (per method, task, seed): the picked run (the completed run with the best final validation accuracy),
``regret_val`` = best final validation accuracy among *all* runs of the task minus the pick's, ``regret_test``
the same for test accuracy (best test among all runs minus the pick's test accuracy), and the cost: epochs
and seconds actually trained (from the stored per-epoch seconds).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from nasmeta.blackbox.hyperband import RungScheduler, resource_to_epochs, successive_halving
from nasmeta.blackbox.stopping import stop_context
from nasmeta.evaluation.metrics import regret
from nasmeta.evaluation.runs import ReplayRun, check_task_runs
from nasmeta.scheduling import Decision


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


def replay_sequential(order: Sequence[ReplayRun], stopper: Any) -> dict[str, int]:
    """Train the runs one after the other; ``stopper.decide`` after every epoch before the last.  Returns the
    epochs each run was trained, in order."""
    T = check_task_runs(order)
    completed: list[ReplayRun] = []
    curves = np.zeros((0, T))
    trained: dict[str, int] = {}
    for run in order:
        stopped_at = T
        for t in range(1, T):
            context = stop_context(
                epoch=t,
                max_epochs=T,
                completed_curves=curves,
                completed_archs=[r.arch for r in completed],
                completed_finals=[r.final_val_acc for r in completed],
                task_id=run.task_id,
                run_id=run.run_id,
                arch=run.arch,
                n_params=run.n_params,
                flops=run.flops,
            )
            decision = stopper.decide(run.curve[:t], context)
            if decision is Decision.STOP:
                stopped_at = t
                break
            if decision is not Decision.CONTINUE:
                raise ValueError(
                    f"sequential replay accepts CONTINUE or STOP, got {decision!r} from {type(stopper).__name__}"
                )
        trained[run.run_id] = stopped_at
        if stopped_at == T:
            completed.append(run)
            curves = np.vstack([curves, run.curve[None, :]])
            curves.setflags(write=False)  # stoppers see it through the context; they must not edit history
    return trained


def replay_rungs(order: Sequence[ReplayRun], scheduler: RungScheduler) -> dict[str, int]:
    """Successive halving / Hyperband over the order: each bracket takes the next ``n`` runs.  Returns the
    epochs each run was trained, in order of first training."""
    T = check_task_runs(order)
    brackets = scheduler.schedule(T)
    R = scheduler.resolve_max_resource(T)
    by_id = {r.run_id: r for r in order}
    trained: dict[str, int] = {}
    position, k = 0, 0
    while position < len(order):
        bracket = brackets[k % len(brackets)]
        k += 1
        members = [r.run_id for r in order[position : position + bracket.n]]
        position += len(members)

        def evaluate(run_id: str, r: float) -> float:
            epochs = resource_to_epochs(r, R, T)
            trained[run_id] = max(trained.get(run_id, 0), epochs)
            return float(by_id[run_id].curve[epochs - 1])

        successive_halving(members, bracket, evaluate)
    return trained


def replay(
    runs: Sequence[ReplayRun],
    method: Any,
    *,
    seed: int,
    name: str | None = None,
    n_runs: int | None = None,
) -> ReplayOutcome:
    """Replay ``method`` (a ``RungScheduler`` or anything with ``decide``) on one task's runs for one order."""
    T = check_task_runs(runs)
    task_id = runs[0].task_id
    order = replay_order(runs, seed, n_runs)
    if isinstance(method, RungScheduler):
        trained = replay_rungs(order, method)
    elif callable(getattr(method, "decide", None)):
        trained = replay_sequential(order, method)
    else:
        raise ValueError(f"cannot replay {type(method).__name__}: it is neither a RungScheduler nor has decide()")
    by_id = {r.run_id: r for r in runs}
    # the pick: the fully trained run with the best final validation accuracy (earliest in the order on ties)
    picked = max((by_id[rid] for rid, e in trained.items() if e == T), key=lambda r: r.final_val_acc, default=None)
    oracle_val = max(r.final_val_acc for r in runs)
    tests = [r.final_test_acc for r in runs if r.final_test_acc is not None]
    oracle_test = max(tests) if tests else float("nan")
    picked_val = float("nan") if picked is None else picked.final_val_acc
    picked_test = float("nan") if picked is None else _nan_if_none(picked.final_test_acc)
    epochs = sum(trained.values())
    seconds = sum(by_id[rid].seconds_until(e) for rid, e in trained.items())
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
        epochs=int(epochs),
        seconds=float(seconds),
        n_runs=len(trained),
        n_completed=sum(1 for e in trained.values() if e == T),
        n_stopped=sum(1 for e in trained.values() if e < T),
    )
