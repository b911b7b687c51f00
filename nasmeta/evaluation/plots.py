"""Plots of evaluation results (matplotlib, Agg backend: files only, no display)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_regret_vs_cost(
    results: Any, path: str | Path, regret: str = "regret_val", cost: str = "hours", log_cost: bool = True
) -> Path:
    """One panel per dataset plus the mean over datasets: each method's mean regret against mean cost, with
    standard deviations over seeds as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nasmeta.evaluation.tables import ALL, summarize

    summary = summarize(results, (regret, cost))
    tasks = sorted(dict.fromkeys(results["task_id"])) + [ALL]
    methods = list(dict.fromkeys(results["method"]))
    index = {(r.metric, r.method, r.task_id): (r.mean, r.std) for r in summary.itertuples()}
    cols = min(3, len(tasks))
    rows = -(-len(tasks) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    colors = plt.get_cmap("tab10")
    for ax, task in zip(axes.ravel(), tasks, strict=False):
        for k, method in enumerate(methods):
            if (regret, method, task) not in index:  # the method failed on this task: nothing to draw
                continue
            (rm, rs), (cm, cs) = index[(regret, method, task)], index[(cost, method, task)]
            ax.errorbar(
                cm,
                rm,
                xerr=cs if cs == cs else None,
                yerr=rs if rs == rs else None,
                fmt="o",
                color=colors(k % 10),
                label=method,
                capsize=3,
            )
        ax.set_title("mean over datasets" if task == ALL else task, fontsize=9)
        ax.set_xlabel(f"cost ({cost})")
        ax.set_ylabel(regret)
        if log_cost:
            ax.set_xscale("log")
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(tasks) :]:
        ax.axis("off")
    axes.ravel()[0].legend(fontsize=7)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
