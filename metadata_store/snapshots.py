"""Collections shipped with the project: compacted copies of a metadata store under
``metadata_store/collections/<name>/`` (made by ``nasmeta collect --collection <name>`` then ``nasmeta store
compact``), so the main job and the tests start from real metadata without retraining it.

``import_snapshot(store, name)`` copies a snapshot's tables into ``store``; the store's keys make it idempotent
(rows already there are not duplicated on read) and a store that already holds every run of the snapshot is left
untouched, so a rerun writes nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from metadata_store.store import MetadataStore

__all__ = ["SNAPSHOT_TABLES", "import_snapshot", "list_snapshots", "snapshot_path"]

SNAPSHOT_DIR = Path(__file__).parent / "collections"
#: the tables a snapshot carries (searches and proxy scores belong to a project's own history)
SNAPSHOT_TABLES = ("tasks", "landmarkers", "architectures", "runs", "curves")


def list_snapshots() -> list[str]:
    return sorted(p.name for p in SNAPSHOT_DIR.iterdir() if (p / "runs").is_dir()) if SNAPSHOT_DIR.is_dir() else []


def snapshot_path(name: str) -> Path:
    """The folder of snapshot ``name``; ``ValueError`` naming the shipped ones when there is none."""
    path = SNAPSHOT_DIR / name
    if not isinstance(name, str) or "/" in name or not (path / "runs").is_dir():
        raise ValueError(f"no shipped metadata collection {name!r}; shipped: {', '.join(list_snapshots()) or 'none'}")
    return path


def import_snapshot(store: MetadataStore, name: str) -> dict[str, Any]:
    """Copy snapshot ``name`` into ``store``: ``{"imported": rows per table}`` or ``{"imported": {}}`` when the
    store already holds every run; ``task_ids`` lists the snapshot's tasks either way."""
    snapshot = MetadataStore(str(snapshot_path(name)))
    runs = snapshot.read("runs")
    task_ids = sorted(set(snapshot.read("tasks")["task_id"].to_pylist()))
    if set(runs["run_id"].to_pylist()) <= set(store.read("runs", columns=["run_id"])["run_id"].to_pylist()):
        return {"imported": {}, "task_ids": task_ids}
    written = {}
    for table in SNAPSHOT_TABLES:
        rows = runs if table == "runs" else snapshot.read(table)
        written[table] = store.append(table, rows) if rows.num_rows else 0
    return {"imported": written, "task_ids": task_ids}
