"""Plots of a one-shot search, written as PNG files with matplotlib's Agg canvas (no display, no pyplot state).

- :func:`plot_op_weights`: per edge, each op's weight over the epochs (softmax(alpha) for DARTS, the
  controller's op frequencies for ENAS), from a ``SearchResult.trace``.
- :func:`plot_search_curves`: the scalar trace columns (losses, accuracies, skip share, entropies, rewards).
- :func:`draw_cell`: the cell(s) of a discrete NB201 or DARTS-family architecture as a labelled DAG.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from nasmeta.spaces.base import Architecture

#: one colour per op name, stable across plots
_OP_COLORS = {
    "none": "#9e9e9e",
    "skip_connect": "#d62728",
    "nor_conv_1x1": "#1f77b4",
    "nor_conv_3x3": "#2ca02c",
    "avg_pool_3x3": "#ff7f0e",
    "max_pool_3x3": "#8c564b",
    "sep_conv_3x3": "#2ca02c",
    "sep_conv_5x5": "#17becf",
    "dil_conv_3x3": "#9467bd",
    "dil_conv_5x5": "#e377c2",
    "noise": "#bcbd22",
}


def _save(fig: Figure, out: str | Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(out, format="png", dpi=110, bbox_inches="tight")
    return out


def plot_op_weights(trace: Sequence[dict[str, Any]], out: str | Path, title: str | None = None) -> Path:
    """One panel per (cell type, edge): each candidate op's weight per epoch.  Raises ``ValueError`` when the
    trace has no ``op_weights`` (random one-shot keeps a fixed uniform distribution)."""
    rows = [r for r in trace if "op_weights" in r]
    if not rows:
        raise ValueError("the trace has no 'op_weights' rows to plot (random one-shot has no learned weights)")
    epochs = [r["epoch"] for r in rows]
    cells = list(rows[0]["op_weights"])
    panels = [(cell, edge) for cell in cells for edge in rows[0]["op_weights"][cell]]
    ncols = min(7, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig = Figure(figsize=(2.6 * ncols, 2.2 * nrows + 0.8))
    handles: dict[str, Any] = {}
    for i, (cell, edge) in enumerate(panels):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        for op in rows[0]["op_weights"][cell][edge]:
            (line,) = ax.plot(epochs, [r["op_weights"][cell][edge][op] for r in rows], color=_OP_COLORS.get(op))
            handles.setdefault(op, line)
        ax.set_title(f"{cell} {edge}" if len(cells) > 1 else f"edge {edge}", fontsize=8)
        ax.tick_params(labelsize=7)
        if i % ncols == 0:
            ax.set_ylabel("weight", fontsize=8)
        if i >= len(panels) - ncols:
            ax.set_xlabel("epoch", fontsize=8)
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=min(len(handles), 6), fontsize=8)
    fig.suptitle(title or "op weights per epoch", fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    return _save(fig, out)


#: trace columns drawn by :func:`plot_search_curves`, in panel order
CURVE_COLUMNS = (
    ("train_loss", "val_loss"),
    ("train_acc", "val_acc"),
    ("skip_share",),
    ("alpha_entropy", "entropy"),
    ("reward_mean",),
)


def plot_search_curves(trace: Sequence[dict[str, Any]], out: str | Path, title: str | None = None) -> Path:
    """The scalar columns of a trace that exist (:data:`CURVE_COLUMNS`), one panel per group."""
    groups = [[c for c in group if any(isinstance(r.get(c), int | float) for r in trace)] for group in CURVE_COLUMNS]
    groups = [g for g in groups if g]
    if not groups:
        raise ValueError("the trace has none of the columns " + ", ".join(c for g in CURVE_COLUMNS for c in g))
    fig = Figure(figsize=(3.2 * len(groups), 2.8))
    for i, group in enumerate(groups):
        ax = fig.add_subplot(1, len(groups), i + 1)
        for col in group:
            pts = [(r["epoch"], r[col]) for r in trace if isinstance(r.get(col), int | float)]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", markersize=3, label=col)
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    fig.suptitle(title or "search curves", fontsize=10)
    fig.tight_layout()
    return _save(fig, out)


# -- cell drawings --------------------------------------------------------------------------------------------------
def cell_edges(arch: Architecture) -> dict[str, list[tuple[int, int, str]]]:
    """``{cell type: [(from node, to node, op), ...]}`` of an NB201 or DARTS-family architecture.

    NB201: nodes 0..3, ``none`` edges left out.  DARTS: 0 and 1 are the cell inputs ``c_{k-2}``, ``c_{k-1}``,
    2..5 the intermediate nodes.
    """
    from nasmeta.spaces import get_space

    space = get_space(arch.space)
    if arch.space == "nb201":
        from nasmeta.spaces.nb201 import EDGES

        ops = space.from_encoding(arch.encoding).encoding
        return {"cell": [(src, dst, op) for (dst, src), op in zip(EDGES, ops, strict=True) if op != "none"]}
    if arch.space.startswith("darts"):
        from nasmeta.spaces.darts import CELL_TYPES, NODES

        cells = space.from_encoding(arch.encoding).encoding
        return {
            t: [(j, NODES[k // 2], op) for k, (op, j) in enumerate(pairs)]
            for t, pairs in zip(CELL_TYPES, cells, strict=True)
        }
    raise ValueError(f"cannot draw cells of space {arch.space!r} (NB201 and DARTS-family spaces only)")


def _draw_graph(
    ax: Axes,
    positions: dict[int, tuple[float, float]],
    labels: dict[int, str],
    edges: list[tuple[int, int, str, float]],
    label_at: float = 0.5,
) -> None:
    """Nodes at ``positions``; each edge ``(src, dst, op, rad)`` an arrow curved by ``rad`` (matplotlib arc3),
    labelled at the fraction ``label_at`` of the way along it."""
    extent = [0.0, 0.0]
    for src, dst, op, rad in edges:
        (x1, y1), (x2, y2) = positions[src], positions[dst]
        color = _OP_COLORS.get(op, "#555555")
        ax.annotate(
            "",
            xy=(x2, y2),
            xytext=(x1, y1),
            arrowprops={
                "arrowstyle": "-|>",
                "color": color,
                "lw": 1.5 if op else 0.8,
                "shrinkA": 13,
                "shrinkB": 13,
                "connectionstyle": f"arc3,rad={rad}",
            },
        )
        # matplotlib's arc3 is a quadratic Bezier curve with control point chord midpoint + rad * (dy, -dx)
        cx, cy = (x1 + x2) / 2 + rad * (y2 - y1), (y1 + y2) / 2 - rad * (x2 - x1)
        t = label_at
        mx = (1 - t) ** 2 * x1 + 2 * (1 - t) * t * cx + t**2 * x2
        my = (1 - t) ** 2 * y1 + 2 * (1 - t) * t * cy + t**2 * y2
        apex = (y1 + 2 * cy + y2) / 4
        extent = [min(extent[0], apex - min(y1, y2)), max(extent[1], apex - max(y1, y2))]
        if op:
            ax.text(
                mx,
                my,
                op,
                fontsize=7,
                ha="center",
                va="center",
                color=color,
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85},
            )
    for node, (x, y) in positions.items():
        ax.scatter([x], [y], s=800, color="#fdf6e3", edgecolors="black", zorder=3)
        ax.text(x, y, labels[node], ha="center", va="center", fontsize=6, zorder=4)
    xs = [p[0] for p in positions.values()]
    ys = [p[1] for p in positions.values()]
    ax.set_xlim(min(xs) - 0.7, max(xs) + 0.7)
    ax.set_ylim(min(ys) + extent[0] - 0.6, max(ys) + extent[1] + 0.6)
    ax.set_axis_off()


def _layout(arch: Architecture, edges: list[tuple[int, int, str]]) -> tuple[dict, dict, list, float]:
    if arch.space == "nb201":
        positions = {n: (2.0 * n, 0.0) for n in range(4)}
        labels = {0: "in", 1: "1", 2: "2", 3: "out"}
        # adjacent nodes: straight; skipping one node: arc above; skipping two: arc below
        bend = {1: 0.0, 2: -0.35, 3: 0.3}
        return positions, labels, [(s, d, op, bend[d - s]) for s, d, op in edges], 0.5
    positions = {0: (0.0, 1.5), 1: (0.0, -1.5), **{n: (2.6 + 0.5 * (n - 2), 2.25 - 1.5 * (n - 2)) for n in range(2, 6)}}
    positions[6] = (6.0, 0.0)
    labels = {0: "c_{k-2}", 1: "c_{k-1}", 2: "0", 3: "1", 4: "2", 5: "3", 6: "c_{k}"}
    drawn = [(s, d, op, 0.0 if s < 2 else 0.45) for s, d, op in edges]
    drawn += [(n, 6, "", 0.0) for n in range(2, 6)]
    # labels near the target node: each node has only two incoming edges, so labels rarely collide there
    return positions, labels, drawn, 0.68


def draw_cell(arch: Architecture, out: str | Path, title: str | None = None) -> Path:
    """Draw the architecture's cell(s) as DAGs with the op on each edge; returns the PNG path."""
    cells = cell_edges(arch)
    fig = Figure(figsize=(9, 3.4 * len(cells)))
    for i, (cell, edges) in enumerate(cells.items()):
        ax = fig.add_subplot(len(cells), 1, i + 1)
        positions, labels, drawn, label_at = _layout(arch, edges)
        _draw_graph(ax, positions, labels, drawn, label_at)
        ax.set_title(cell if len(cells) > 1 else "cell", fontsize=9)
    text = str(arch)
    fig.suptitle(title or (text if len(text) <= 100 else f"{arch.space} architecture {arch.arch_id}"), fontsize=8)
    fig.tight_layout()
    return _save(fig, out)
