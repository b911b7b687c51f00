"""Figures for zero-shot results: proxy score against ground-truth accuracy (for MLflow, via
``nasmeta.tracking.log_figure``).  A bare ``matplotlib.figure.Figure`` (no pyplot), so no display or global
backend is involved."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from nasmeta.zeroshot.correlate import rank_correlation


def scatter_figure(
    scores: Sequence[float], truth: Sequence[float], proxy: str, truth_label: str = "accuracy (%)"
) -> Any:
    """A scatter of ``scores`` (x) against ``truth`` (y) titled with Spearman and Kendall; non-finite scores
    (not applicable) are left out of the plot but counted in the correlation, as everywhere in nasmeta."""
    from matplotlib.figure import Figure

    s, t = np.asarray(scores, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    if len(s) != len(t):
        raise ValueError(f"{len(s)} scores but {len(t)} truth values")
    corr = rank_correlation(s, t)
    finite = np.isfinite(s)
    figure = Figure(figsize=(5, 4))
    axes = figure.add_subplot()
    axes.scatter(s[finite], t[finite], s=6, alpha=0.5)
    axes.set_xlabel(f"{proxy} score (higher is better)")
    axes.set_ylabel(truth_label)
    dropped = int((~finite).sum())
    note = f", {dropped} not finite" if dropped else ""
    axes.set_title(f"{proxy}: Spearman {corr.spearman:.3f}, Kendall {corr.kendall:.3f} (n={corr.n}{note})")
    figure.tight_layout()
    return figure
