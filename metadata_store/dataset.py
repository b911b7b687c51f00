"""``MetaDataset``: the read-only view of the store that transfer components ``fit`` on.

A view is a set of tables plus a task filter.  ``without(task_id)`` and ``only(task_id)`` return new views
over the same loaded tables (nothing is copied or re-read), which is what leave-one-dataset-out needs: fit on
``meta.without(target)``, evaluate on ``meta.only(target)``.

Task-scoped tables (tasks, landmarkers, runs, curves, proxy_scores) are filtered by the view; architectures are
shared knowledge about a search space and are never filtered.  Tables are de-duplicated as the store reads them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from metadata_store.dedup import deduplicate
from metadata_store.schemas import TABLES, table_spec

if TYPE_CHECKING:
    import pandas as pd

    from metadata_store.store import MetadataStore

VIEW_TABLES = ("tasks", "landmarkers", "architectures", "runs", "curves", "proxy_scores")
TASK_TABLES = ("tasks", "landmarkers", "runs", "curves", "proxy_scores")


class _TableCache:
    """Full tables, loaded once on first use and shared by every view derived from one dataset."""

    def __init__(self, loader: Callable[[str], pa.Table]) -> None:
        self._loader = loader
        self._tables: dict[str, pa.Table] = {}

    def get(self, name: str) -> pa.Table:
        if name not in self._tables:
            self._tables[name] = self._loader(name)
        return self._tables[name]


class MetaDataset:
    """Read-only tables of a metadata store, optionally restricted to some tasks.  Build it with
    :meth:`from_store` (or ``store.meta()``) or :meth:`from_tables`."""

    def __init__(
        self, cache: _TableCache, include: frozenset[str] | None = None, exclude: frozenset[str] = frozenset()
    ) -> None:
        self._cache = cache
        self._include = include
        self._exclude = exclude

    @classmethod
    def from_store(cls, store: MetadataStore) -> MetaDataset:
        return cls(_TableCache(store.read))

    @classmethod
    def from_tables(cls, **tables: pa.Table | list[dict[str, Any]]) -> MetaDataset:
        """A dataset from in-memory tables (rows or pyarrow tables, validated like ``append``); absent tables
        are empty."""
        from metadata_store.store import _validated_table

        unknown = [name for name in tables if name not in VIEW_TABLES]
        if unknown:
            raise ValueError(f"unknown table(s) {unknown}; a MetaDataset holds {', '.join(VIEW_TABLES)}")
        loaded = {
            name: deduplicate(_validated_table(table_spec(name), tables.get(name, [])), TABLES[name])
            for name in VIEW_TABLES
        }
        return cls(_TableCache(loaded.__getitem__))

    # -- views ------------------------------------------------------------------------------------------------
    def _known_task_ids(self) -> set[str]:
        return set(self._cache.get("tasks")["task_id"].to_pylist()) | set(
            pc.unique(self._cache.get("runs")["task_id"]).to_pylist()
        )

    def _checked(self, task_ids: Iterable[str]) -> frozenset[str]:
        ids = frozenset([task_ids] if isinstance(task_ids, str) else task_ids)
        unknown = sorted(ids - self._known_task_ids())
        if unknown:
            raise ValueError(f"unknown task id(s) {', '.join(map(repr, unknown))}")
        return ids

    def without(self, *task_ids: str) -> MetaDataset:
        """This view minus every row of the given tasks (leave-one-dataset-out training data)."""
        return MetaDataset(self._cache, self._include, self._exclude | self._checked(task_ids))

    def only(self, *task_ids: str) -> MetaDataset:
        """This view restricted to the given tasks (the held-out task's data)."""
        ids = self._checked(task_ids)
        include = ids if self._include is None else self._include & ids
        return MetaDataset(self._cache, include, self._exclude)

    # -- tables -----------------------------------------------------------------------------------------------
    def table(self, name: str) -> pa.Table:
        """One table of the view as a pyarrow Table."""
        if name not in VIEW_TABLES:
            raise ValueError(f"unknown table {name!r}; a MetaDataset holds {', '.join(VIEW_TABLES)}")
        data = self._cache.get(name)
        if name not in TASK_TABLES:
            return data
        if self._include is not None:
            data = data.filter(pc.is_in(data["task_id"], pa.array(sorted(self._include), pa.string())))
        if self._exclude:
            data = data.filter(pc.invert(pc.is_in(data["task_id"], pa.array(sorted(self._exclude), pa.string()))))
        return data

    def frame(self, name: str) -> pd.DataFrame:
        """One table of the view as a pandas DataFrame."""
        return self.table(name).to_pandas()

    @property
    def tasks(self) -> pa.Table:
        return self.table("tasks")

    @property
    def landmarkers(self) -> pa.Table:
        return self.table("landmarkers")

    @property
    def architectures(self) -> pa.Table:
        return self.table("architectures")

    @property
    def runs(self) -> pa.Table:
        return self.table("runs")

    @property
    def curves(self) -> pa.Table:
        return self.table("curves")

    @property
    def proxy_scores(self) -> pa.Table:
        return self.table("proxy_scores")

    @property
    def task_ids(self) -> list[str]:
        """Tasks in this view (from the tasks table and the runs table)."""
        ids = set(self.tasks["task_id"].to_pylist()) | set(pc.unique(self.runs["task_id"]).to_pylist())
        return sorted(ids)

    # -- conveniences -------------------------------------------------------------------------------------------
    def runs_with_archs(self, status: str | None = "completed") -> pa.Table:
        """Runs (of ``status``; ``None``: all) joined with their architecture's ``space``, ``arch_str``,
        ``encoding``, ``arch_n_params`` and ``arch_flops`` (null where the architecture is not stored)."""
        runs = self.runs if status is None else self.runs.filter(pc.equal(self.runs["status"], status))
        archs = self.architectures.select(["arch_id", "space", "arch_str", "encoding", "n_params", "flops"])
        archs = archs.rename_columns(["arch_id", "space", "arch_str", "encoding", "arch_n_params", "arch_flops"])
        joined = runs.join(archs, keys="arch_id", join_type="left outer")
        return joined.sort_by([("run_id", "ascending")])

    def curves_by_run(self, metric: str = "val_acc", status: str | None = "completed") -> dict[str, np.ndarray]:
        """``{run_id: metric per epoch}`` (epoch order) for the runs of ``status`` (``None``: all runs)."""
        if metric not in TABLES["curves"].schema.names or metric in ("run_id", "task_id"):
            raise ValueError(f"unknown curve metric {metric!r}")
        curves = self.curves
        if status is not None:
            keep = self.runs.filter(pc.equal(self.runs["status"], status))["run_id"]
            curves = curves.filter(pc.is_in(curves["run_id"], keep.combine_chunks()))
        curves = curves.sort_by([("run_id", "ascending"), ("epoch", "ascending")])
        if curves.num_rows == 0:
            return {}
        run_ids = curves["run_id"].to_numpy(zero_copy_only=False)
        values = curves[metric].to_numpy(zero_copy_only=False).astype(float)
        starts = np.concatenate([[0], np.flatnonzero(run_ids[1:] != run_ids[:-1]) + 1, [len(run_ids)]])
        return {str(run_ids[a]): values[a:b] for a, b in zip(starts[:-1], starts[1:], strict=True)}

    def landmarker_matrix(self, names: list[str] | None = None) -> tuple[list[str], list[str], np.ndarray]:
        """(task ids, landmarker names, values ``[task, name]``) with NaN where a task lacks a landmarker."""
        rows = self.landmarkers.select(["task_id", "name", "value"]).to_pylist()
        all_names = sorted({row["name"] for row in rows})
        if names is None:
            names = all_names
        missing = [name for name in names if name not in all_names]
        if missing:
            raise ValueError(f"unknown landmarker(s) {missing}; stored: {all_names}")
        task_ids = sorted({row["task_id"] for row in rows})
        matrix = np.full((len(task_ids), len(names)), np.nan)
        t_index = {t: i for i, t in enumerate(task_ids)}
        n_index = {n: j for j, n in enumerate(names)}
        for row in rows:
            if row["name"] in n_index and row["value"] is not None:
                matrix[t_index[row["task_id"]], n_index[row["name"]]] = row["value"]
        return task_ids, list(names), matrix

    def __repr__(self) -> str:
        scope = "all tasks" if self._include is None else f"only {sorted(self._include)}"
        if self._exclude:
            scope += f" without {sorted(self._exclude)}"
        return f"<MetaDataset {scope}>"


def lowest_seed_view(meta: MetaDataset) -> MetaDataset:
    """``meta`` with one run per (task, architecture, training recipe): the lowest seed's (its curves only), so a
    replay or a pool over a collection with repeated seeds sees each cell once.  Runs without an architecture id
    are kept as they are."""
    runs = meta.runs
    keep: dict[tuple[Any, ...], tuple[int, str]] = {}
    for r in runs.select(["run_id", "task_id", "arch_id", "seed", "config_hash"]).to_pylist():
        if r["arch_id"] is None:
            continue
        key = (r["task_id"], r["arch_id"], r["config_hash"])
        candidate = (r["seed"], r["run_id"])
        if key not in keep or candidate < keep[key]:
            keep[key] = candidate
    chosen = {run_id for _, run_id in keep.values()} | {
        r["run_id"] for r in runs.select(["run_id", "arch_id"]).to_pylist() if r["arch_id"] is None
    }
    ids = pa.array(sorted(chosen), pa.string())
    tables = {name: meta.table(name) for name in VIEW_TABLES}
    tables["runs"] = runs.filter(pc.is_in(runs["run_id"], ids))
    tables["curves"] = meta.curves.filter(pc.is_in(meta.curves["run_id"], ids))
    return MetaDataset.from_tables(**tables)
