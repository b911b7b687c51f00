"""Results tables: mean ± standard deviation over seeds per method and dataset, as CSV and markdown.

The markdown table has the shape of the LCRankNet paper's table (METHODS.md): one row per method, one column
per held-out dataset plus the mean over datasets, each cell ``regret / cost``.  Standard deviations are over
seeds (random orders); the "mean" column first averages each seed over datasets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: cost columns a table may show, with the unit printed in the header
COSTS = {"hours": "h", "seconds": "s", "epochs": "epochs"}
ALL = "mean"


def _check(frame: Any, columns: Sequence[str]) -> None:
    if len(frame) == 0:
        raise ValueError("empty results: nothing to tabulate")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"results lack column(s) {missing}; they have {list(frame.columns)}")


def completed(results: Any) -> Any:
    """The rows of a LODO table that hold results: all but ``status == "failed"`` (tables without a ``status``
    column are all results).  Failed rows stay in the runs CSV, with their reason, and out of every mean."""
    if "status" not in getattr(results, "columns", ()):
        return results
    return results[results["status"] != "failed"]


def summarize(results: Any, metrics: Sequence[str] = ("regret_val", "regret_test", "epochs", "hours")) -> Any:
    """Long table: ``method, task_id, metric, mean, std, n`` (std over seeds, ddof=1; NaN for one seed), with
    ``task_id == "mean"`` rows averaging each seed over datasets first."""
    import pandas as pd

    results = completed(results)
    _check(results, ["method", "task_id", "seed", *metrics])
    per_seed_mean = results.groupby(["method", "seed"], sort=False)[list(metrics)].mean().reset_index()
    per_seed_mean["task_id"] = ALL
    frames = []
    for frame in (results, per_seed_mean):
        grouped = frame.groupby(["method", "task_id"], sort=False)[list(metrics)]
        stats = grouped.agg(["mean", "std", "count"])
        for metric in metrics:
            part = stats[metric].reset_index().rename(columns={"count": "n"})
            part.insert(2, "metric", metric)
            frames.append(part)
    out = pd.concat(frames, ignore_index=True)
    return out.sort_values(["metric", "method", "task_id"], kind="stable").reset_index(drop=True)


def _cell(mean: float, std: float, digits: int) -> str:
    if math.isnan(mean):
        return "n/a"
    text = f"{mean:.{digits}f}"
    return text if math.isnan(std) else f"{text} ± {std:.{digits}f}"


def markdown_table(
    results: Any, regret: str = "regret_val", cost: str = "hours", digits: int = 2, cost_digits: int | None = None
) -> str:
    """Markdown: rows = methods (in order of first appearance), columns = datasets + mean; cells
    ``regret ± sd / cost ± sd``."""
    if cost not in COSTS:
        raise ValueError(f"unknown cost {cost!r}; choose one of {', '.join(COSTS)}")
    results = completed(results)
    summary = summarize(results, (regret, cost))
    methods = list(dict.fromkeys(results["method"]))
    tasks = sorted(dict.fromkeys(results["task_id"])) + [ALL]
    index = {(r.metric, r.method, r.task_id): (r.mean, r.std) for r in summary.itertuples()}
    cd = digits if cost_digits is None else cost_digits
    header = f"| method | {' | '.join(tasks)} |"
    lines = [
        f"Cells: {regret} / {cost} ({COSTS[cost]}), mean ± std over seeds.",
        "",
        header,
        "|" + "---|" * (len(tasks) + 1),
    ]
    for method in methods:
        cells = []
        for task in tasks:
            r = index.get((regret, method, task))
            c = index.get((cost, method, task))
            cells.append("" if r is None else f"{_cell(*r, digits)} / {_cell(*c, cd)}")
        lines.append(f"| {method} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


def write_results(
    results: Any, directory: str | Path, name: str = "replay", cost: str = "hours", plot: bool = True
) -> dict[str, Path]:
    """Write ``<name>_runs.csv`` (one row per task, method, seed, failed ones included), ``<name>_summary.csv``,
    ``<name>.md`` and (``plot``) ``<name>_regret_vs_cost.png`` (completed rows); return the paths by kind."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "runs_csv": out / f"{name}_runs.csv",
        "summary_csv": out / f"{name}_summary.csv",
        "markdown": out / f"{name}.md",
    }
    _check(results, ["method", "task_id", "seed"])
    results.to_csv(paths["runs_csv"], index=False)
    summarize(results).to_csv(paths["summary_csv"], index=False)
    paths["markdown"].write_text(markdown_table(results, cost=cost))
    if plot:
        from nasmeta.evaluation.plots import plot_regret_vs_cost

        paths["plot"] = plot_regret_vs_cost(completed(results), out / f"{name}_regret_vs_cost.png", cost=cost)
    return paths
