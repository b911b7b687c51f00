"""Per-epoch stopping rules and the context every stopper decides on.

A stopper answers ``decide(curve, context) -> Decision`` after each epoch of a run (``curve`` = validation
accuracy per epoch so far, in the store's unit, percent; ``context`` a typed
:class:`~nasmeta.search.context.StopContext`).  The search loop asks it through a ``StoppingScheduler``, the same
way on live training, on tables and in the replay of stored curves; the transfer role
``nasmeta.transfer.base.Stopper`` has the same signature, so LCRankNet plugs in unchanged.

Rules here:
- :class:`NoTermination` — every run trains to the end (the reference of the LCRankNet table).
- :class:`MedianStoppingRule` — Golovin et al., "Google Vizier: A Service for Black-Box Optimization", KDD
  2017: stop a run at epoch ``s`` when its best value by ``s`` is strictly worse than the median of the
  running averages (epochs 1..s) of all completed runs; after a grace period and a minimum number of completed
  runs (as in Syne Tune's ``MedianStoppingRule``).
- :class:`PercentileRule` — the last-value rule: stop when the run's value at epoch ``s`` is strictly below the
  ``percentile``-th percentile of the completed runs' values at the same epoch (Optuna's ``PercentilePruner``;
  ``percentile=50`` is its median pruner, ``100`` stops anything behind the best completed run at equal epochs).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

import numpy as np

from nasmeta.scheduling import Decision
from nasmeta.search.context import StopContext


def _curve(curve: Sequence[float]) -> np.ndarray:
    values = np.asarray(curve, dtype=float)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"a partial curve must be a non-empty 1-D sequence, got shape {values.shape}")
    if not np.all(np.isfinite(values)):
        raise ValueError("a partial curve must be finite (no NaN or inf)")
    return values


class StoppingRule(abc.ABC):
    """A stopper that needs no training data; ``fit`` exists so every method is built the same way."""

    name: str

    def fit(self, meta: Any = None) -> StoppingRule:
        """Nothing to learn from metadata; returns ``self``."""
        return self

    @abc.abstractmethod
    def decide(self, curve: Sequence[float], context: StopContext) -> Decision:
        """``CONTINUE`` or ``STOP`` after ``len(curve)`` epochs."""


class NoTermination(StoppingRule):
    """Never stops: every run trains to ``max_epochs``."""

    name = "none"

    def decide(self, curve: Sequence[float], context: StopContext) -> Decision:
        _curve(curve)
        return Decision.CONTINUE


def _check_common(grace_period: int, min_samples: int) -> None:
    if isinstance(grace_period, bool) or not isinstance(grace_period, int) or grace_period < 1:
        raise ValueError(f"grace_period must be an integer >= 1, got {grace_period!r}")
    if isinstance(min_samples, bool) or not isinstance(min_samples, int) or min_samples < 1:
        raise ValueError(f"min_samples must be an integer >= 1, got {min_samples!r}")


class MedianStoppingRule(StoppingRule):
    """Golovin et al. 2017: stop at epoch ``s`` if ``max(curve[:s])`` < median over completed runs of
    ``mean(curve_c[:s])``; only from epoch ``grace_period`` on and once ``min_samples`` runs completed."""

    name = "median"

    def __init__(self, grace_period: int = 1, min_samples: int = 3) -> None:
        _check_common(grace_period, min_samples)
        self.grace_period = grace_period
        self.min_samples = min_samples

    def decide(self, curve: Sequence[float], context: StopContext) -> Decision:
        values = _curve(curve)
        s = len(values)
        completed = context.completed_curves
        if s < self.grace_period or len(completed) < self.min_samples:
            return Decision.CONTINUE
        running_means = np.asarray(completed, dtype=float)[:, :s].mean(axis=1)
        return Decision.STOP if values.max() < np.median(running_means) else Decision.CONTINUE

    def __repr__(self) -> str:
        return f"MedianStoppingRule(grace_period={self.grace_period}, min_samples={self.min_samples})"


class PercentileRule(StoppingRule):
    """Last-value rule: stop at epoch ``s`` if ``curve[s-1]`` is strictly below the ``percentile``-th
    percentile (linear interpolation) of the completed runs' values at epoch ``s``."""

    name = "percentile"

    def __init__(self, percentile: float = 50.0, grace_period: int = 1, min_samples: int = 3) -> None:
        _check_common(grace_period, min_samples)
        if not 0.0 <= float(percentile) <= 100.0:
            raise ValueError(f"percentile must lie in [0, 100], got {percentile!r}")
        self.percentile = float(percentile)
        self.grace_period = grace_period
        self.min_samples = min_samples

    def decide(self, curve: Sequence[float], context: StopContext) -> Decision:
        values = _curve(curve)
        s = len(values)
        completed = context.completed_curves
        if s < self.grace_period or len(completed) < self.min_samples:
            return Decision.CONTINUE
        threshold = np.percentile(np.asarray(completed, dtype=float)[:, s - 1], self.percentile)
        return Decision.STOP if values[-1] < threshold else Decision.CONTINUE

    def __repr__(self) -> str:
        return (
            f"PercentileRule(percentile={self.percentile}, grace_period={self.grace_period}, "
            f"min_samples={self.min_samples})"
        )
