"""The metadata store: Parquet tables of tasks, landmarkers, architectures, runs, curves, proxy scores and
searches (pyarrow only; no torch, prefect or mlflow).

>>> store = MetadataStore("/tmp/store")                      # or "s3://bucket/store", "memory://x", ...
>>> rid = run_id(task_id, arch_id, seed=0, config_hash=config_hash(cfg))
>>> if not store.has_completed(rid):
...     store.append("curves", [{"run_id": rid, "task_id": task_id, "epoch": 1, "val_acc": 71.5}])
...     store.append("runs", [{"run_id": rid, "task_id": task_id, "arch_id": arch_id, "seed": 0,
...                            "config_hash": config_hash(cfg), "status": "completed", "final_val_acc": 71.5}])
>>> store.read("curves", task_id=task_id, run_id=[rid])      # filters pushed down, one row per key
>>> meta = store.meta().without(task_id)                      # leave-one-dataset-out training view

Modules: ``schemas`` (tables, keys, units), ``keys`` (deterministic ids), ``store`` (atomic appends, reads,
compaction), ``dedup`` (which duplicate wins), ``dataset`` (``MetaDataset`` views), ``external`` (the CSV /
Parquet import format for other learning-curve collections), ``leases`` (claims on runs, so overlapping
collectors do not train the same run twice).
"""

from metadata_store.dataset import MetaDataset
from metadata_store.external import import_curves, read_curve_file
from metadata_store.keys import config_hash, run_id
from metadata_store.schemas import RUN_STATUSES, SCHEMA_VERSION, TABLES, TableSpec, table_spec
from metadata_store.store import MetadataStore, StoreWriteError, UnreadableFileWarning

__all__ = [
    "RUN_STATUSES",
    "SCHEMA_VERSION",
    "StoreWriteError",
    "TABLES",
    "MetaDataset",
    "MetadataStore",
    "TableSpec",
    "UnreadableFileWarning",
    "config_hash",
    "import_curves",
    "read_curve_file",
    "run_id",
    "table_spec",
]
