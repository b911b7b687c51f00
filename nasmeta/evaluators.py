"""One interface for "how good is this architecture on this task?" (DESIGN.md: Evaluator).

``TrainingEvaluator`` (nasmeta.training) really trains; ``TabularEvaluator`` (nasmeta.data.benchmarks) looks
accuracies up in NAS-Bench-201 / NAS-Bench-Macro and charges a simulated cost.  Every search strategy takes an
``Evaluator``, so it runs unchanged on real training and on benchmark tables.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

from nasmeta.spaces.base import Architecture


@dataclass(frozen=True)
class Evaluation:
    """The outcome of evaluating one architecture at one fidelity (epochs).

    ``val_acc`` is what a search may use to choose; ``test_acc`` is only for reporting.  Accuracies are in
    percent.  ``cost_seconds`` is real wall time for training and simulated time for tables.
    ``status`` is ``completed`` / ``failed`` / ``stopped``; a failed evaluation carries ``error``.
    """

    arch: Architecture
    val_acc: float
    test_acc: float
    cost_seconds: float
    epochs: int
    status: str = "completed"
    error: str | None = None
    curve: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in {"completed", "failed", "stopped"}:
            raise ValueError(f"unknown evaluation status {self.status!r}")
        if self.status == "failed" and not self.error:
            raise ValueError("a failed evaluation needs an error message")


class Evaluator(abc.ABC):
    """Evaluate architectures of one space on one task."""

    #: the fidelity used when ``evaluate`` is called without ``epochs``
    max_epochs: int

    @abc.abstractmethod
    def evaluate(self, arch: Architecture, epochs: int | None = None, seed: int = 0) -> Evaluation:
        """Evaluate ``arch`` for ``epochs`` (default ``max_epochs``); never raises for a bad run, returns failed."""
