"""Stored learning curves as an evaluator: the replay of a search over one task's runs of the metadata store.

``StoredCurveEvaluator(runs)`` starts a session per stored run (a :class:`~nasmeta.evaluation.runs.ReplayRun`,
proposed by a ``FixedOrderSearcher``); advancing it reads the curve's prefix and charges the stored seconds of the
epochs read, so a scheduler run through :func:`nasmeta.search.loop.run_search` on it makes exactly the decisions it
would make live on the same curves, at the cost the runs really had.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from nasmeta.evaluation.runs import ReplayRun, check_task_runs
from nasmeta.evaluators import Evaluation, Evaluator, Session


class StoredCurveEvaluator(Evaluator):
    """Sessions over stored runs of one task (all with the same number of epochs)."""

    def __init__(self, runs: Sequence[ReplayRun]) -> None:
        self.max_epochs = check_task_runs(runs)
        self.task_id = runs[0].task_id

    def evaluate(self, arch: Any, epochs: int | None = None, seed: int = 0) -> Evaluation:
        session = self.start(arch, seed, epochs)
        session.advance(session.max_epochs)
        return session.finish("completed")

    def start(self, arch: Any, seed: int = 0, max_epochs: int | None = None) -> Session:
        if not isinstance(arch, ReplayRun):
            raise TypeError(f"a stored-curve evaluator replays stored runs (ReplayRun), got {type(arch).__name__}")
        if arch.task_id != self.task_id:
            raise ValueError(f"run {arch.run_id!r} belongs to task {arch.task_id!r}, not {self.task_id!r}")
        return StoredCurveSession(arch, max_epochs or self.max_epochs)


class StoredCurveSession(Session):
    def __init__(self, run: ReplayRun, max_epochs: int) -> None:
        if not 1 <= max_epochs <= run.max_epochs:
            raise ValueError(f"run {run.run_id!r} has {run.max_epochs} epochs, {max_epochs} asked")
        self.run, self.arch, self.max_epochs = run, run.arch, max_epochs
        self.n_params, self.flops = run.n_params, run.flops
        self._rows: list[dict[str, Any]] = []

    @property
    def curve(self) -> list[dict[str, Any]]:
        return self._rows

    @property
    def failed(self) -> str | None:
        return None

    @property
    def cost_seconds(self) -> float:
        return self.run.seconds_until(len(self._rows))

    def advance(self, to_epoch: int) -> list[dict[str, Any]]:
        new = []
        for t in range(len(self._rows) + 1, min(to_epoch, self.max_epochs) + 1):
            row = {"epoch": t, "val_acc": float(self.run.curve[t - 1]), "seconds": self.run.seconds_until(t)}
            self._rows.append(row)
            new.append(row)
        return new

    def finish(self, status: str) -> Evaluation:
        t = len(self._rows)
        done = t == self.run.max_epochs and status == "completed"
        val = self.run.final_val_acc if done else (float(self.run.curve[t - 1]) if t else 0.0)
        test = self.run.final_test_acc if done and self.run.final_test_acc is not None else math.nan
        return Evaluation(
            self.run.arch,  # type: ignore[arg-type]  # None for collections without architectures
            val,
            test,
            self.cost_seconds,
            t,
            status if t else "failed",
            None if t else "no epoch replayed",
            list(self._rows),
            {"run_id": self.run.run_id, "n_params": self.run.n_params, "flops": self.run.flops},
        )


class StoredArchEvaluator(Evaluator):
    """Sessions over one stored run per architecture of one task: a search whose proposals are the task's stored
    cells (``nasmeta.search.pool.PoolSpace``) evaluates them by reading their curves, at their stored cost."""

    def __init__(self, runs: Sequence[ReplayRun]) -> None:
        self.max_epochs = check_task_runs(runs)
        self.task_id = runs[0].task_id
        self.by_arch: dict[str, ReplayRun] = {}
        for run in runs:
            if run.arch_id in self.by_arch:
                raise ValueError(f"architecture {run.arch_id!r} has several runs; give one per architecture")
            self.by_arch[run.arch_id] = run

    def evaluate(self, arch: Any, epochs: int | None = None, seed: int = 0) -> Evaluation:
        session = self.start(arch, seed, epochs)
        session.advance(session.max_epochs)
        return session.finish("completed")

    def start(self, arch: Any, seed: int = 0, max_epochs: int | None = None) -> Session:
        run = self.by_arch.get(getattr(arch, "arch_id", None))  # type: ignore[arg-type]
        if run is None:
            raise ValueError(f"{arch} has no stored run on task {self.task_id!r}")
        return StoredCurveSession(run, max_epochs or self.max_epochs)
