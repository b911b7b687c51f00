"""Random search with live early termination: each sampled architecture is trained, and a stopper decides after
every epoch whether to go on (the setting of LCRankNet's search experiments, Wistuba & Pedapati 2020).

The stopper sees the full curves of the runs that completed so far (the "best so far" it must beat); stopped runs
cost only the epochs they trained and are never chosen.  With no stopper this is plain random search over
``TrainingEvaluator`` runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from nasmeta.reporting import NullReporter, Reporter, ShouldStop
from nasmeta.search_result import SearchResult
from nasmeta.spaces.base import Architecture, SearchSpace

#: (arch, completed curves, completed archs, completed finals) -> the trainer's should_stop for that run
StopperFactory = Callable[[Architecture, list[list[float]], list[Architecture], list[float]], ShouldStop | None]


def random_search_with_stopping(
    space: SearchSpace,
    evaluator: Any,
    n_evaluations: int,
    make_should_stop: StopperFactory | None = None,
    seed: int = 0,
    reporter: Reporter | None = None,
    metric: str = "val_acc",
) -> SearchResult:
    """Train ``n_evaluations`` distinct random architectures with ``evaluator`` (a ``TrainingEvaluator``, whose
    ``should_stop`` is set per run from ``make_should_stop``); return the best completed one by ``val_acc``."""
    if n_evaluations < 1:
        raise ValueError(f"n_evaluations must be >= 1, got {n_evaluations}")
    if not hasattr(evaluator, "should_stop"):
        raise ValueError(f"{type(evaluator).__name__} takes no should_stop; use a TrainingEvaluator")
    reporter = reporter or NullReporter()
    rng = np.random.default_rng(seed)
    seen: set[str] = set()
    history, curves, archs, finals = [], [], [], []
    cost = 0.0
    epochs_spent = 0
    for step in range(100 * n_evaluations):
        if len(history) == n_evaluations:
            break
        arch = space.sample(rng)
        if arch.arch_id in seen:
            continue
        seen.add(arch.arch_id)
        evaluator.should_stop = make_should_stop(arch, curves, archs, finals) if make_should_stop and curves else None
        evaluation = evaluator.evaluate(arch, seed=seed)
        history.append(evaluation)
        cost += evaluation.cost_seconds
        epochs_spent += evaluation.epochs
        if evaluation.status == "completed":
            curves.append([float(row[metric]) for row in evaluation.curve])
            archs.append(arch)
            finals.append(evaluation.val_acc)
        reporter.report(
            len(history),
            val_acc=evaluation.val_acc,
            status=evaluation.status,
            epochs=evaluation.epochs,
            best_val_acc=max(finals) if finals else float("nan"),
        )
        del step
    evaluator.should_stop = None
    done = [e for e in history if e.status == "completed"]
    if not done:
        raise ValueError("no run completed: every run failed or was stopped")
    best = max(done, key=lambda e: e.val_acc)
    return SearchResult(
        method="random-stopping",
        best_arch=best.arch,
        best_val_acc=best.val_acc,
        best_test_acc=best.test_acc,
        history=history,
        cost_seconds=cost,
        n_evaluations=len(history),
        extra={
            "epochs_spent": epochs_spent,
            "n_stopped": sum(e.status == "stopped" for e in history),
            "n_failed": sum(e.status == "failed" for e in history),
        },
    )
