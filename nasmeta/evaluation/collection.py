"""How much a metadata collection has to transfer: per task its runs, DCN, accuracy spread and seed noise, and the
Kendall tau of cell rankings between every pair of tasks.

- Accuracy per (task, cell) is the final validation accuracy of its lowest-seed completed run (``label``), so a
  task's spread is over cells, not seeds.
- Seed noise: for cells trained with several seeds on a task, the mean absolute difference between two seeds'
  final accuracies (``seed_noise``) and the Kendall tau between the seeds' rankings of those cells (``seed_tau``,
  how reproducible a ranking is at all; a cross-task tau near it means the tasks agree as much as seeds do).
- Pairwise tau: ``scipy.stats.kendalltau`` (tau-b) over the cells both tasks trained (at least 5).
"""

from __future__ import annotations

import math
from itertools import combinations
from typing import Any

import numpy as np
from scipy.stats import kendalltau

__all__ = ["describe_collection", "describe_markdown"]


def _per_seed(meta: Any, label: str) -> dict[str, dict[int, dict[str, float]]]:
    out: dict[str, dict[int, dict[str, float]]] = {}
    for r in meta.runs.to_pylist():
        if r["status"] == "completed" and r[label] is not None and math.isfinite(r[label]):
            out.setdefault(r["task_id"], {}).setdefault(int(r["seed"]), {})[r["arch_id"]] = float(r[label])
    return out


def _tau(a: dict[str, float], b: dict[str, float], minimum: int = 5) -> tuple[float, int]:
    common = sorted(set(a) & set(b))
    if len(common) < minimum:
        return math.nan, len(common)
    tau = kendalltau([a[c] for c in common], [b[c] for c in common]).statistic
    return float(tau), len(common)


def describe_collection(meta: Any, label: str = "final_val_acc") -> dict[str, Any]:
    """``{"tasks": [row per task], "tau": {(task_a, task_b): tau}, "names": {task_id: name}}`` (see the module
    docstring); tasks sorted by DCN (hardest first) where every task has one, else by name."""
    per_seed = _per_seed(meta, label)
    tasks = {r["task_id"]: r for r in meta.tasks.to_pylist()}
    names = {t: r["name"] for t, r in tasks.items()}
    landmarkers = {(r["task_id"], r["name"]): r["value"] for r in meta.landmarkers.to_pylist()}
    rows, primary = [], {}
    for task_id, seeds in per_seed.items():
        first = min(seeds)
        acc = {}
        for seed in sorted(seeds, reverse=True):  # the lowest seed wins where a cell has several
            acc.update(seeds[seed])
        primary[task_id] = acc
        values = np.array(list(acc.values()))
        noise, seed_tau = [], []
        for s in sorted(seeds):
            if s == first:
                continue
            common = sorted(set(seeds[s]) & set(seeds[first]))
            noise += [abs(seeds[s][c] - seeds[first][c]) for c in common]
            tau, n = _tau(seeds[first], seeds[s])
            if not math.isnan(tau):
                seed_tau.append(tau)
        rows.append(
            {
                "task_id": task_id,
                "name": names.get(task_id, task_id),
                "classes": tasks.get(task_id, {}).get("n_classes"),
                "px": tasks.get(task_id, {}).get("height"),
                "train/val/test": "/".join(
                    str(tasks.get(task_id, {}).get(f"n_{s}") or "?") for s in ("train", "val", "test")
                ),
                "cells": len(acc),
                "runs": sum(len(v) for v in seeds.values()),
                "dcn": landmarkers.get((task_id, "dcn")),
                "acc_min": float(values.min()),
                "acc_median": float(np.median(values)),
                "acc_max": float(values.max()),
                "acc_iqr": float(np.percentile(values, 75) - np.percentile(values, 25)),
                "seed_noise": float(np.mean(noise)) if noise else None,
                "seed_tau": float(np.mean(seed_tau)) if seed_tau else None,
                "repeated_cells": len(noise),
            }
        )
    if rows and all(r["dcn"] is not None for r in rows):
        rows.sort(key=lambda r: (r["dcn"], r["name"]))
    else:
        rows.sort(key=lambda r: r["name"])
    order = [r["task_id"] for r in rows]
    tau = {}
    for a, b in combinations(order, 2):
        tau[(a, b)] = tau[(b, a)] = _tau(primary[a], primary[b])[0]
    for row in rows:
        others = [tau[(row["task_id"], o)] for o in order if o != row["task_id"]]
        finite = [t for t in others if not math.isnan(t)]
        row["mean_tau_to_others"] = float(np.mean(finite)) if finite else None
    return {"tasks": rows, "tau": tau, "names": names, "order": order}


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def describe_markdown(info: dict[str, Any]) -> str:
    """The description as two markdown tables: per task, then the pairwise Kendall tau matrix."""
    columns = [
        ("name", 0), ("classes", 0), ("px", 0), ("train/val/test", 0), ("runs", 0), ("cells", 0), ("dcn", 1),
        ("acc_min", 1), ("acc_median", 1), ("acc_max", 1),
        ("acc_iqr", 1), ("seed_noise", 2), ("seed_tau", 2), ("mean_tau_to_others", 2),
    ]  # fmt: skip
    lines = ["| " + " | ".join(c for c, _ in columns) + " |", "|" + "---|" * len(columns)]
    for row in info["tasks"]:
        lines.append("| " + " | ".join(_fmt(row[c], d) for c, d in columns) + " |")
    rows = info["tasks"]
    if len(rows) > 1:
        short = [f"T{i + 1}" for i in range(len(rows))]
        lines += ["", "Kendall tau of cell rankings (final validation accuracy, common cells):", ""]
        lines.append("| | " + " | ".join(short) + " |")
        lines.append("|---|" + "---|" * len(rows))
        for i, row in enumerate(rows):
            cells = [
                "1" if i == j else _fmt(info["tau"][(row["task_id"], other["task_id"])], 2)
                for j, other in enumerate(rows)
            ]
            lines.append(f"| {short[i]} {row['name']} | " + " | ".join(cells) + " |")
        finite = [v for (a, b), v in info["tau"].items() if a < b and not math.isnan(v)]
        if finite:
            lines += [
                "",
                f"pairwise tau: mean {np.mean(finite):.2f}, min {min(finite):.2f}, max {max(finite):.2f} "
                f"over {len(finite)} pairs",
            ]
    return "\n".join(lines) + "\n"
