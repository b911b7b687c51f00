"""Portfolio (warm start): evaluate first the cells that did best on the source tasks.

The seed's baseline for every transfer method ("a good architecture on one task is very likely a good candidate
for another"; RapidNAS/MetaD2A's table reports such a zero-search baseline at 94.02 % on CIFAR-10).  The portfolio
is built greedily, as the portfolios of Auto-sklearn 2.0 (Feurer et al., JMLR 2022) and of Wistuba, Schilling &
Schmidt-Thieme ("Sequential model-free hyperparameter tuning", ICDM 2015) are:

1. Each source task's cells are scored by their **percentile rank** on that task (1 = its best cell, 0 = its
   worst; the mean over a cell's seeds first), so a task whose accuracies span 2 points counts as much as one
   spanning 40.
2. Candidates are the cells trained on at least ``min_coverage`` of the source tasks (a cell seen on one task only
   cannot show that it transfers).
3. The first pick maximises the mean percentile over the source tasks (the cell that did best across them); each
   next pick maximises the mean over tasks of the *best percentile so far* — it adds the cell that covers the
   tasks the portfolio serves worst.  Ties go to the higher mean percentile, then the arch id.

``propose(task, n)`` returns the first ``n`` cells (the order is the same for every target: the portfolio does
not look at the target).  Deviation: Auto-sklearn minimises the normalised error of configurations; percentile
ranks were chosen here because the collection's tasks mix 2- and 10-class problems whose accuracy scales differ.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.stats import rankdata

from nasmeta.spaces.base import Architecture
from nasmeta.transfer.base import Generator, MissingMetadataError

__all__ = ["Portfolio", "PortfolioConfig", "greedy_portfolio"]

_FILE = "portfolio.json"


class PortfolioConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    #: cells kept in the portfolio (the longest prefix a search may ask for)
    size: int = Field(100, ge=1)
    #: a candidate must have runs on at least this share of the source tasks
    min_coverage: float = Field(0.5, gt=0.0, le=1.0)
    #: the runs column that ranks cells
    label: str = Field("final_val_acc", pattern="^final_(val|test)_acc$")
    #: only runs of this space (None: the space of the most runs)
    space: str | None = None


def greedy_portfolio(scores: np.ndarray, size: int, min_coverage: float) -> list[int]:
    """Row indices of ``scores`` (cells x tasks, percentiles in [0, 1], NaN = not trained) in portfolio order."""
    n_cells, n_tasks = scores.shape
    coverage = np.isfinite(scores).sum(axis=1) / max(n_tasks, 1)
    candidates = [i for i in range(n_cells) if coverage[i] >= min_coverage - 1e-12]
    filled = np.where(np.isfinite(scores), scores, 0.0)
    mean = np.nanmean(np.where(np.isfinite(scores), scores, np.nan), axis=1)
    best = np.zeros(n_tasks)
    order: list[int] = []
    while candidates and len(order) < size:
        gains = [np.maximum(best, filled[i]).mean() for i in candidates]
        top = max(range(len(candidates)), key=lambda j: (gains[j], mean[candidates[j]], -candidates[j]))
        chosen = candidates.pop(top)
        order.append(chosen)
        best = np.maximum(best, filled[chosen])
    return order


class Portfolio(Generator):
    """Greedy portfolio of the source tasks' cells (see the module docstring)."""

    name: ClassVar[str] = "portfolio"
    data_requirements: ClassVar[frozenset[str]] = frozenset({"runs", "architectures"})

    def __init__(self, config: PortfolioConfig | None = None, **params: Any) -> None:
        self.config = config or PortfolioConfig(**params)
        self.cells: list[Architecture] = []
        #: per portfolio cell: its mean percentile over the source tasks and how many tasks trained it
        self.details: list[dict[str, Any]] = []
        self.source_tasks: list[str] = []

    def fit(self, meta: Any) -> Self:
        cfg = self.config
        rows = [r for r in meta.runs_with_archs(status="completed").to_pylist() if r["encoding"] is not None]
        rows = [r for r in rows if r[cfg.label] is not None and math.isfinite(r[cfg.label])]
        if not rows:
            raise MissingMetadataError("portfolio needs completed runs with stored architectures; found none")
        spaces = sorted({r["space"] for r in rows}, key=lambda s: (-sum(r["space"] == s for r in rows), s))
        space = cfg.space or spaces[0]
        rows = [r for r in rows if r["space"] == space]
        if not rows:
            raise MissingMetadataError(f"portfolio: no completed runs of space {space!r} (stored: {spaces})")
        tasks = sorted({r["task_id"] for r in rows})
        arch_ids = sorted({r["arch_id"] for r in rows})
        archs = {}
        values: dict[tuple[str, str], list[float]] = {}
        for r in rows:
            archs.setdefault(r["arch_id"], (r["space"], r["encoding"]))
            values.setdefault((r["arch_id"], r["task_id"]), []).append(float(r[cfg.label]))
        acc = np.full((len(arch_ids), len(tasks)), np.nan)
        a_index, t_index = {a: i for i, a in enumerate(arch_ids)}, {t: j for j, t in enumerate(tasks)}
        for (arch_id, task), vals in values.items():
            acc[a_index[arch_id], t_index[task]] = float(np.mean(vals))
        scores = np.full_like(acc, np.nan)
        for j in range(len(tasks)):
            trained = np.isfinite(acc[:, j])
            n = int(trained.sum())
            # percentile of each cell among the task's cells: average ranks for ties, 1 = best, 0 = worst
            scores[trained, j] = (rankdata(acc[trained, j]) - 1) / (n - 1) if n > 1 else 1.0
        order = greedy_portfolio(scores, cfg.size, cfg.min_coverage)
        self.source_tasks = tasks
        self.cells = [
            Architecture.from_json({"space": archs[arch_ids[i]][0], "encoding": json.loads(archs[arch_ids[i]][1])})
            for i in order
        ]
        self.details = [
            {
                "arch_id": arch_ids[i],
                "mean_percentile": float(np.nanmean(scores[i])),
                "n_tasks": int(np.isfinite(scores[i]).sum()),
            }
            for i in order
        ]
        return self

    def propose(self, task: Any, n: int) -> list[Architecture]:
        """The first ``n`` cells of the portfolio (the same for every ``task``)."""
        if not self.cells:
            raise RuntimeError("the portfolio is empty: call fit(meta) first")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        return list(self.cells[:n])

    def order(self, pool: Sequence[Architecture]) -> list[Architecture]:
        """``pool`` with the portfolio's cells first (in portfolio order), the rest after in pool order."""
        position = {a.arch_id: i for i, a in enumerate(self.cells)}
        return sorted(pool, key=lambda a: position.get(a.arch_id, len(position)))

    def save(self, directory: str | Path) -> Path:
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        payload = {
            "config": self.config.model_dump(),
            "cells": [a.to_json() for a in self.cells],
            "details": self.details,
            "source_tasks": self.source_tasks,
        }
        (path / _FILE).write_text(json.dumps(payload, indent=1))
        return path

    @classmethod
    def load(cls, directory: str | Path) -> Self:
        payload = json.loads((Path(directory) / _FILE).read_text())
        portfolio = cls(PortfolioConfig(**payload["config"]))
        portfolio.cells = [Architecture.from_json(a) for a in payload["cells"]]
        portfolio.details = payload["details"]
        portfolio.source_tasks = payload["source_tasks"]
        return portfolio
