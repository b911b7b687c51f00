"""One interface for "how good is this architecture on this task?" (DESIGN.md: Evaluator).

``TrainingEvaluator`` (nasmeta.training) really trains; ``TabularEvaluator`` (nasmeta.data.benchmarks) looks
accuracies up in NAS-Bench-201 / NAS-Bench-Macro and charges a simulated cost; ``StoredCurveEvaluator``
(nasmeta.search.stored) replays learning curves of the metadata store.  Every search takes an ``Evaluator``, so it
runs unchanged on real training, on benchmark tables and on stored curves.

Two ways to use one: ``evaluate(arch, epochs, seed)`` runs a whole evaluation; ``start(arch, seed)`` returns a
:class:`Session` that advances epoch by epoch and can be paused between calls and resumed later (the search loop
uses it so that schedulers can stop, pause and promote runs).  A session charges each epoch once: resuming from
epoch 3 to 9 costs epochs 4..9 only.
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


class Session(abc.ABC):
    """One run of one architecture that advances in epochs and keeps its state between calls (pause = simply not
    calling ``advance``; resume = calling it again with a later epoch)."""

    arch: Any
    #: the run's full length; ``advance`` never goes past it
    max_epochs: int

    @property
    @abc.abstractmethod
    def curve(self) -> list[dict[str, Any]]:
        """Per-epoch rows so far (``epoch``, ``val_acc``, ``test_acc``, ``seconds`` = cumulative cost, ...)."""

    @property
    def epochs_done(self) -> int:
        return len(self.curve)

    @property
    @abc.abstractmethod
    def failed(self) -> str | None:
        """The reason the run failed, or None while it is healthy."""

    @property
    @abc.abstractmethod
    def cost_seconds(self) -> float:
        """Seconds charged so far (real or simulated), each epoch once."""

    @abc.abstractmethod
    def advance(self, to_epoch: int) -> list[dict[str, Any]]:
        """Train (or look up) up to ``to_epoch`` epochs; returns the new rows.  A failure ends the run (``failed``)."""

    @abc.abstractmethod
    def finish(self, status: str) -> Evaluation:
        """The run's evaluation as it stands (``completed`` / ``stopped``; ``failed`` when it failed) and its
        resources released."""

    def epoch_choices(self) -> tuple[int, ...] | None:
        """Epochs ``advance`` can stop at (None: every epoch)."""
        return None


class Evaluator(abc.ABC):
    """Evaluate architectures of one space on one task."""

    #: the fidelity used when ``evaluate`` is called without ``epochs``
    max_epochs: int

    @abc.abstractmethod
    def evaluate(self, arch: Architecture, epochs: int | None = None, seed: int = 0) -> Evaluation:
        """Evaluate ``arch`` for ``epochs`` (default ``max_epochs``); never raises for a bad run, returns failed."""

    def start(self, arch: Any, seed: int = 0, max_epochs: int | None = None) -> Session:
        """A resumable run of ``arch`` up to ``max_epochs`` (default ``self.max_epochs``).  The default looks each
        requested fidelity up with ``evaluate``: a table's cost is linear in epochs, so the latest lookup's cost is
        what the run has cost; trainers override it."""
        return LookupSession(self, arch, seed, max_epochs)

    def epoch_choices(self) -> tuple[int, ...] | None:
        """Epochs an evaluation can stop at (None: every epoch up to ``max_epochs``); tables name theirs in a
        ``fidelities`` tuple."""
        choices = getattr(self, "fidelities", None)
        return tuple(int(e) for e in choices if e <= self.max_epochs) if isinstance(choices, tuple) else None


class LookupSession(Session):
    """A session over ``evaluator.evaluate`` at the fidelities the evaluator offers."""

    def __init__(self, evaluator: Evaluator, arch: Any, seed: int, max_epochs: int | None = None) -> None:
        self.evaluator, self.arch, self.seed = evaluator, arch, seed
        self.max_epochs = max_epochs or evaluator.max_epochs
        self._rows: list[dict[str, Any]] = []
        self._last: Evaluation | None = None
        self._error: str | None = None
        self._reached = 0  # the fidelity last looked up

    @property
    def curve(self) -> list[dict[str, Any]]:
        return self._rows

    @property
    def epochs_done(self) -> int:
        return self._reached

    @property
    def failed(self) -> str | None:
        return self._error

    @property
    def cost_seconds(self) -> float:
        return self._last.cost_seconds if self._last is not None else 0.0

    def epoch_choices(self) -> tuple[int, ...] | None:
        return self.evaluator.epoch_choices()

    def advance(self, to_epoch: int) -> list[dict[str, Any]]:
        if self._error is not None or to_epoch <= self.epochs_done:
            return []
        self._reached = min(to_epoch, self.max_epochs)
        evaluation = self.evaluator.evaluate(self.arch, self._reached, self.seed)
        self._last = evaluation
        if evaluation.status == "failed":
            self._error = evaluation.error or "failed"
            return []
        row = {
            "epoch": evaluation.epochs,
            "val_acc": evaluation.val_acc,
            "test_acc": evaluation.test_acc,
            "seconds": evaluation.cost_seconds,
        }
        self._rows.append(row)
        return [row]

    def finish(self, status: str) -> Evaluation:
        last = self._last
        if self._error is not None or last is None:
            return Evaluation(
                self.arch, 0.0, 0.0, self.cost_seconds, self.epochs_done, "failed", self._error or "never evaluated"
            )
        return Evaluation(
            self.arch,
            last.val_acc,
            last.test_acc,
            last.cost_seconds,
            last.epochs,
            status,
            None,
            list(self._rows),
            dict(last.extra),
        )
