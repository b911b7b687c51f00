"""A trial: one configuration (an architecture, or a stored run in replay) being evaluated by the search loop."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from nasmeta.evaluators import Evaluation, Session

TrialStatus = Literal["running", "paused", "completed", "stopped", "failed"]


@dataclass(eq=False)
class Trial:
    """``config`` is what the searcher proposed and the evaluator's ``start`` took; ``arch`` its architecture
    (None for stored runs without one).  ``rung`` and ``promotions`` are kept by rung-based schedulers."""

    trial_id: int
    config: Any
    arch: Any
    session: Session
    status: TrialStatus = "running"
    rung: int = 0
    promotions: int = 0
    evaluation: Evaluation | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def epochs(self) -> int:
        return self.session.epochs_done

    def values(self, metric: str = "val_acc") -> list[float]:
        """The trial's curve of ``metric`` so far."""
        return [float(row[metric]) for row in self.session.curve]

    def value_at(self, epoch: int, metric: str = "val_acc") -> float:
        """``metric`` after ``epoch`` epochs (the last row at or before it); -inf for a failed trial."""
        if self.status == "failed" or self.session.failed:
            return float("-inf")
        rows = [row for row in self.session.curve if int(row["epoch"]) <= epoch]
        return float(rows[-1][metric]) if rows else float("-inf")

    @property
    def ended(self) -> bool:
        return self.status in ("completed", "stopped", "failed")
