"""History, incumbent, trace and reports of one search: :class:`SearchRecorder`.

Every search of the loop records its finished trials here: the history (one ``Evaluation`` per trial, in the
order trials ended), the incumbent (best ``val_acc`` among *completed* evaluations: failed and stopped ones are
recorded but never selected; ties go to the trial started first), one report per trial, and the cost.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from nasmeta.evaluators import Evaluation, Evaluator
from nasmeta.reporting import NullReporter, Reporter
from nasmeta.search_result import SearchResult
from nasmeta.spaces.base import Architecture


def check_budget(n_evaluations: int, what: str = "n_evaluations") -> int:
    if isinstance(n_evaluations, bool) or not isinstance(n_evaluations, int | np.integer) or n_evaluations < 1:
        raise ValueError(f"{what} must be a positive integer, got {n_evaluations!r}")
    return int(n_evaluations)


class SearchRecorder:
    """Bookkeeping of one search.

    Each recorded evaluation is reported as ``reporter.report(k, ...)`` with ``k`` = evaluations so far (1-based)
    and the metrics ``arch`` (string), ``arch_id``, ``status``, ``epochs``, ``val_acc``, ``test_acc``,
    ``cost_seconds`` (of this evaluation), ``total_cost_seconds``, ``best_val_acc`` and ``best_test_acc`` (NaN
    until one completes).  ``cost_seconds`` of the result is the evaluations' own cost (real training time, or
    simulated time for tables) plus the search's wall time outside the evaluator (its overhead).
    """

    def __init__(self, method: str, evaluator: Evaluator | None = None, reporter: Reporter | None = None) -> None:
        self.method = method
        self.evaluator = evaluator
        self.reporter = reporter if reporter is not None else NullReporter()
        self.history: list[Evaluation] = []
        self.trace: list[dict[str, Any]] = []
        self.best: Evaluation | None = None
        self._best_key: tuple[float, int] | None = None
        self._eval_cost = 0.0
        self._eval_wall = 0.0
        self._start = time.perf_counter()

    @property
    def n_evaluations(self) -> int:
        return len(self.history)

    def evaluate(self, arch: Architecture, epochs: int | None, seed: int) -> Evaluation:
        """Evaluate ``arch`` with the recorder's evaluator (a whole evaluation) and record it."""
        if self.evaluator is None:
            raise ValueError("this recorder has no evaluator; record evaluations with record()")
        start = time.perf_counter()
        evaluation = self.evaluator.evaluate(arch, epochs, seed)
        return self.record(evaluation, time.perf_counter() - start)

    def add_evaluation_time(self, wall_seconds: float) -> None:
        """Wall time spent inside the evaluator for work not yet recorded (a trial paused at a rung)."""
        self._eval_wall += wall_seconds

    def record(self, evaluation: Evaluation, wall_seconds: float = 0.0, order: int | None = None) -> Evaluation:
        """Record one finished evaluation; ``order`` (e.g. the trial's start index) breaks ties between equally
        good completed evaluations (lower first; default: the order of recording)."""
        self._eval_wall += wall_seconds
        self._eval_cost += evaluation.cost_seconds
        self.history.append(evaluation)
        key = (evaluation.val_acc, -(len(self.history) if order is None else order))
        if evaluation.status == "completed" and (self._best_key is None or key > self._best_key):
            self.best, self._best_key = evaluation, key
        best_val = self.best.val_acc if self.best else math.nan
        best_test = self.best.test_acc if self.best else math.nan
        step = len(self.history)
        self.trace.append(
            {"step": step, "total_cost_seconds": self._eval_cost, "best_val_acc": best_val, "best_test_acc": best_test}
        )
        arch = evaluation.arch
        self.reporter.report(
            step,
            arch=str(arch),
            arch_id=getattr(arch, "arch_id", None),
            status=evaluation.status,
            epochs=evaluation.epochs,
            val_acc=evaluation.val_acc,
            test_acc=evaluation.test_acc,
            cost_seconds=evaluation.cost_seconds,
            total_cost_seconds=self._eval_cost,
            best_val_acc=best_val,
            best_test_acc=best_test,
        )
        return evaluation

    def result(self, require: bool = True, **extra: Any) -> SearchResult:
        """The search's outcome; with ``require`` raises ``RuntimeError`` when no evaluation completed (without,
        ``best_arch`` is None then).  ``extra["best_index"]`` is the incumbent's position in ``history``."""
        if self.best is None and require:
            errors = [e.error for e in self.history if e.error]
            stopped = sum(e.status == "stopped" for e in self.history)
            raise RuntimeError(
                f"{self.method}: none of {len(self.history)} evaluations completed"
                + (f" ({stopped} stopped early)" if stopped else "")
                + (f"; last error: {errors[-1]}" if errors else "")
            )
        wall = time.perf_counter() - self._start
        overhead = max(wall - self._eval_wall, 0.0)
        best = self.best
        return SearchResult(
            method=self.method,
            best_arch=None if best is None else best.arch,  # type: ignore[arg-type]
            best_val_acc=None if best is None else best.val_acc,
            best_test_acc=None if best is None else best.test_acc,
            history=list(self.history),
            trace=list(self.trace),
            cost_seconds=self._eval_cost + overhead,
            n_evaluations=len(self.history),
            extra={
                "wall_seconds": wall,
                "evaluation_cost_seconds": self._eval_cost,
                "overhead_seconds": overhead,
                "n_failed": sum(e.status == "failed" for e in self.history),
                "n_stopped": sum(e.status == "stopped" for e in self.history),
                "epochs_spent": sum(e.epochs for e in self.history),
                "best_index": None if best is None else next(i for i, e in enumerate(self.history) if e is best),
                **extra,
            },
        )
