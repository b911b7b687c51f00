"""Means with 95 % intervals over held-out tasks, and per-fold wins between methods.

The unit of a LODO comparison is the held-out task: each (method, task) is first averaged over its seeds, then
the method's mean over tasks gets a Student-t 95 % confidence interval (``scipy.stats.t``, n - 1 degrees of
freedom, n = tasks).  Seeds only average out the search's own randomness; they are not independent evidence about
unseen tasks, so they do not enter the interval's n.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

__all__ = ["interval_table", "interval_markdown", "wins_table", "wins_markdown"]


def _per_task(results: Any, metric: str) -> Any:
    from nasmeta.evaluation.tables import completed

    ok = completed(results)
    return ok.groupby(["method", "task_id"], sort=False)[metric].mean().reset_index()


def _interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return math.nan, math.nan, math.nan
    mean = float(values.mean())
    if len(values) < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + level / 2, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values)))
    return mean, mean - half, mean + half


def interval_table(results: Any, metrics: Sequence[str]) -> Any:
    """One row per method (first-appearance order): for each metric its mean over tasks and the 95 % interval
    (``<metric>``, ``<metric>_lo``, ``<metric>_hi``), plus ``tasks`` (folds with a result)."""
    import pandas as pd

    methods = list(dict.fromkeys(results["method"]))
    rows = []
    for method in methods:
        row: dict[str, Any] = {"method": method}
        for metric in metrics:
            per_task = _per_task(results, metric)
            values = per_task.loc[per_task["method"] == method, metric].to_numpy(dtype=float)
            row[metric], row[f"{metric}_lo"], row[f"{metric}_hi"] = _interval(values)
            row["tasks"] = int(np.isfinite(values).sum())
        rows.append(row)
    return pd.DataFrame(rows)


def interval_markdown(table: Any, metrics: Sequence[str], digits: int = 2) -> str:
    """``| method | metric (95 % CI) | ... | tasks |``."""
    lines = ["| method | " + " | ".join(f"{m} [95 % CI]" for m in metrics) + " | tasks |"]
    lines.append("|---|" + "---|" * (len(metrics) + 1))
    for row in table.to_dict("records"):
        cells = []
        for m in metrics:
            mean, lo, hi = row[m], row[f"{m}_lo"], row[f"{m}_hi"]
            if math.isnan(mean):
                cells.append("n/a")
            elif math.isnan(lo):
                cells.append(f"{mean:.{digits}f}")
            else:
                cells.append(f"{mean:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]")
        lines.append(f"| {row['method']} | " + " | ".join(cells) + f" | {row['tasks']} |")
    return "\n".join(lines) + "\n"


def wins_table(results: Any, metric: str, pairs: Sequence[tuple[str, str]]) -> Any:
    """Per pair (a, b): folds where a's seed-mean ``metric`` (lower is better) is below b's, ties, and losses."""
    import pandas as pd

    per_task = _per_task(results, metric).pivot(index="task_id", columns="method", values=metric)
    rows = []
    for a, b in pairs:
        if a not in per_task or b not in per_task:
            continue
        both = per_task[[a, b]].dropna()
        diff = (both[a] - both[b]).to_numpy()
        rows.append(
            {
                "method": a,
                "versus": b,
                "metric": metric,
                "wins": int((diff < -1e-9).sum()),
                "ties": int((np.abs(diff) <= 1e-9).sum()),
                "losses": int((diff > 1e-9).sum()),
                "mean_difference": float(diff.mean()) if len(diff) else math.nan,
            }
        )
    return pd.DataFrame(rows)


def wins_markdown(table: Any) -> str:
    lines = ["| method | versus | metric | wins / ties / losses (folds) | mean difference |", "|---|---|---|---|---|"]
    for row in table.to_dict("records"):
        lines.append(
            f"| {row['method']} | {row['versus']} | {row['metric']} | {row['wins']} / {row['ties']} / "
            f"{row['losses']} | {row['mean_difference']:+.2f} |"
        )
    return "\n".join(lines) + "\n"
