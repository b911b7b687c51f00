"""Evaluation metrics: regret and rank correlations (``scipy.stats``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats


def regret(reachable: float, reached: float) -> float:
    """Best accuracy reachable without the method minus the accuracy the method reached (>= 0 when the pick is
    among the candidates)."""
    return float(reachable) - float(reached)


def rank_correlations(predicted: Sequence[float], actual: Sequence[float]) -> dict[str, float]:
    """Kendall's tau (tau-b) and Spearman's rho between predictions and actual values."""
    pred = np.asarray(predicted, dtype=float)
    true = np.asarray(actual, dtype=float)
    if pred.shape != true.shape or pred.ndim != 1:
        raise ValueError(f"predicted and actual must be 1-D of equal length, got {pred.shape} and {true.shape}")
    if pred.size < 2:
        raise ValueError(f"rank correlations need at least 2 values, got {pred.size}")
    if not (np.all(np.isfinite(pred)) and np.all(np.isfinite(true))):
        raise ValueError("rank correlations need finite values (no NaN or inf)")
    return {
        "kendall_tau": float(stats.kendalltau(pred, true).statistic),
        "spearman_rho": float(stats.spearmanr(pred, true).statistic),
    }
