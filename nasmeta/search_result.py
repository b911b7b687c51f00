"""What every search strategy returns (DESIGN.md: ``search(...) -> SearchResult``)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from nasmeta.evaluators import Evaluation
from nasmeta.spaces.base import Architecture


@dataclass
class SearchResult:
    """Best architecture, the full history, and what the search cost.

    ``history`` holds one entry per evaluated architecture, in order; ``trace`` holds method-specific
    per-epoch records (alphas, controller entropy, ...).  ``cost_seconds`` is wall time (plus simulated
    time for tabular evaluations); ``n_evaluations`` counts architectures evaluated.
    """

    method: str
    best_arch: Architecture
    best_val_acc: float | None = None
    best_test_acc: float | None = None
    history: list[Evaluation] = field(default_factory=list)
    trace: list[dict[str, Any]] = field(default_factory=list)
    cost_seconds: float = 0.0
    n_evaluations: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def with_pick_evaluated(self, evaluation: Evaluation, **extra: Any) -> SearchResult:
        """A copy whose accuracies are ``evaluation``'s (the pick trained again), with the evaluation appended to
        ``history``, counted and costed, and ``extra`` merged into ``extra``."""
        return replace(
            self,
            best_val_acc=evaluation.val_acc,
            best_test_acc=evaluation.test_acc,
            history=[*self.history, evaluation],
            n_evaluations=self.n_evaluations + 1,
            cost_seconds=self.cost_seconds + evaluation.cost_seconds,
            extra={**self.extra, **extra},
        )
