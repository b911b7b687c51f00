"""Random search (Bergstra & Bengio 2012; the NAS baseline of Li & Talwalkar 2019 and of NAS-Bench-201).

Architectures are drawn uniformly and independently from the space (with replacement: a repeated draw is
evaluated and charged again, as in NB201's baseline) and the one with the best validation accuracy is returned.

:class:`SearchRecorder` is the bookkeeping every black-box search here shares: it calls the evaluator, keeps the
history, picks the incumbent by ``val_acc`` among *completed* evaluations (failed and stopped ones are recorded
but never selected), sends one report per evaluation, and totals the cost.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from nasmeta.evaluators import Evaluation, Evaluator
from nasmeta.reporting import NullReporter, Reporter
from nasmeta.search_result import SearchResult
from nasmeta.spaces.base import Architecture, SearchSpace


def check_budget(n_evaluations: int) -> int:
    if isinstance(n_evaluations, bool) or not isinstance(n_evaluations, int | np.integer) or n_evaluations < 1:
        raise ValueError(f"n_evaluations must be a positive integer, got {n_evaluations!r}")
    return int(n_evaluations)


class SearchRecorder:
    """History, incumbent, trace and reports of one black-box search.

    Each evaluation is reported as ``reporter.report(k, ...)`` with ``k`` = evaluations so far (1-based) and the
    metrics ``arch`` (string), ``arch_id``, ``status``, ``val_acc``, ``test_acc``, ``cost_seconds`` (of this
    evaluation), ``total_cost_seconds``, ``best_val_acc`` and ``best_test_acc`` (NaN until one completes).
    ``cost_seconds`` of the result is the evaluations' own cost (real training time, or simulated time for
    tables) plus the search's wall time outside the evaluator (its overhead).
    """

    def __init__(self, method: str, evaluator: Evaluator, reporter: Reporter | None = None) -> None:
        self.method = method
        self.evaluator = evaluator
        self.reporter = reporter if reporter is not None else NullReporter()
        self.history: list[Evaluation] = []
        self.trace: list[dict[str, Any]] = []
        self.best: Evaluation | None = None
        self._eval_cost = 0.0
        self._eval_wall = 0.0
        self._start = time.perf_counter()

    @property
    def n_evaluations(self) -> int:
        return len(self.history)

    def evaluate(self, arch: Architecture, epochs: int | None, seed: int) -> Evaluation:
        start = time.perf_counter()
        evaluation = self.evaluator.evaluate(arch, epochs, seed)
        self._eval_wall += time.perf_counter() - start
        self._eval_cost += evaluation.cost_seconds
        self.history.append(evaluation)
        if evaluation.status == "completed" and (self.best is None or evaluation.val_acc > self.best.val_acc):
            self.best = evaluation
        best_val = self.best.val_acc if self.best else math.nan
        best_test = self.best.test_acc if self.best else math.nan
        step = len(self.history)
        self.trace.append(
            {"step": step, "total_cost_seconds": self._eval_cost, "best_val_acc": best_val, "best_test_acc": best_test}
        )
        self.reporter.report(
            step,
            arch=str(arch),
            arch_id=arch.arch_id,
            status=evaluation.status,
            val_acc=evaluation.val_acc,
            test_acc=evaluation.test_acc,
            cost_seconds=evaluation.cost_seconds,
            total_cost_seconds=self._eval_cost,
            best_val_acc=best_val,
            best_test_acc=best_test,
        )
        return evaluation

    def result(self, **extra: Any) -> SearchResult:
        """The search's outcome; raises ``RuntimeError`` when no evaluation completed."""
        if self.best is None:
            errors = [e.error for e in self.history if e.error]
            raise RuntimeError(
                f"{self.method}: none of {len(self.history)} evaluations completed"
                + (f"; last error: {errors[-1]}" if errors else "")
            )
        wall = time.perf_counter() - self._start
        overhead = max(wall - self._eval_wall, 0.0)
        return SearchResult(
            method=self.method,
            best_arch=self.best.arch,
            best_val_acc=self.best.val_acc,
            best_test_acc=self.best.test_acc,
            history=list(self.history),
            trace=list(self.trace),
            cost_seconds=self._eval_cost + overhead,
            n_evaluations=len(self.history),
            extra={
                "wall_seconds": wall,
                "evaluation_cost_seconds": self._eval_cost,
                "overhead_seconds": overhead,
                "n_failed": sum(e.status != "completed" for e in self.history),
                **extra,
            },
        )


def random_search(
    space: SearchSpace,
    evaluator: Evaluator,
    n_evaluations: int,
    seed: int = 0,
    reporter: Reporter | None = None,
    epochs: int | None = None,
) -> SearchResult:
    """Evaluate ``n_evaluations`` uniform samples of ``space``; return the best by validation accuracy.

    ``epochs`` is the fidelity passed to the evaluator (its ``max_epochs`` when ``None``); ``seed`` seeds the
    sampler and is passed to every evaluation.
    """
    n_evaluations = check_budget(n_evaluations)
    rng = np.random.default_rng(seed)
    recorder = SearchRecorder("random_search", evaluator, reporter)
    for _ in range(n_evaluations):
        recorder.evaluate(space.sample(rng), epochs, seed)
    return recorder.result(seed=seed)
