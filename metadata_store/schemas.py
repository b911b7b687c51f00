"""The store's tables: explicit pyarrow schemas, keys, and which row wins when a key appears twice.

Every row carries ``schema_version`` (the version of the schema it was written with) and ``created_at``
(UTC, microseconds; filled on append).  ``created_at`` is what "newest" means when duplicates are resolved,
so it survives compaction, unlike file names or write order.

Units: accuracies are in percent (as NAS-Bench-201 and ``nasmeta.evaluators.Evaluation``), ``seconds`` are
wall-clock seconds (in ``curves`` cumulative up to the end of that epoch), ``epoch`` counts from 1 (the curve
after ``epoch`` epochs of training).

Each :class:`TableSpec` names

- ``key``: the columns that identify a row; reads keep one row per key;
- ``stable``: further columns that a key determines (``runs.task_id`` is part of the ``run_id`` hash), so
  filters on them may be pushed down below de-duplication without changing the answer;
- ``required``: columns that must be present and non-null besides the key;
- ``defaults``: values filled when a column is absent from an append;
- ``prefer``: for runs only, a completed run beats a failed or stopped one whatever their ages;
- ``cluster``: the sort order of compacted files (task first where rows belong to a task).

``latencies`` holds latency measured on a device (milliseconds, median of ``repeats`` timed forward passes of
batch ``batch_size``), of whole networks and of the blocks of a lookup-table predictor (``nasmeta.latency``).

Sizes: ``n_params`` counts parameters; ``flops`` are forward FLOPs of one input image, 2 per multiply-accumulate
(the convention of ``torch.utils.flop_counter``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

#: bumped when a column is added or changes meaning; readers fill absent columns of old files with nulls
SCHEMA_VERSION = 1

RUN_STATUSES = ("completed", "failed", "stopped")

_TS = pa.timestamp("us", tz="UTC")
_BOOKKEEPING = [pa.field("schema_version", pa.int32()), pa.field("created_at", _TS)]


def _schema(*fields: pa.Field) -> pa.Schema:
    return pa.schema(list(fields) + _BOOKKEEPING)


@dataclass(frozen=True)
class TableSpec:
    name: str
    schema: pa.Schema
    key: tuple[str, ...]
    stable: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    defaults: dict[str, Any] = field(default_factory=dict)
    #: (column, value): rows whose ``column`` equals ``value`` win over other rows of the same key
    prefer: tuple[str, str] | None = None
    #: sort order of compacted files (default: the key); leading with the most common filter column lets
    #: Parquet row-group statistics skip everything else
    cluster: tuple[str, ...] = ()

    @property
    def sort_columns(self) -> tuple[str, ...]:
        return self.cluster or self.key

    @property
    def columns(self) -> list[str]:
        return list(self.schema.names)

    @property
    def pushdown_columns(self) -> set[str]:
        return set(self.key) | set(self.stable)


TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in [
        TableSpec(
            "tasks",
            _schema(
                pa.field("task_id", pa.string()),
                pa.field("name", pa.string()),
                pa.field("source", pa.string()),
                pa.field("n_classes", pa.int32()),
                pa.field("n_train", pa.int64()),
                pa.field("n_val", pa.int64()),
                pa.field("n_test", pa.int64()),
                pa.field("channels", pa.int32()),
                pa.field("height", pa.int32()),
                pa.field("width", pa.int32()),
                pa.field("spec", pa.string()),  # JSON of the task description
            ),
            key=("task_id",),
            stable=("name", "source"),
        ),
        TableSpec(
            "landmarkers",
            _schema(
                pa.field("task_id", pa.string()),
                pa.field("name", pa.string()),  # dcn, n_classes, pixel_entropy, linear_probe, ...
                pa.field("value", pa.float64()),
                pa.field("spec", pa.string()),  # JSON: how it was measured (probe, recipe, seeds)
            ),
            key=("task_id", "name"),
            required=("value",),
        ),
        TableSpec(
            "architectures",
            _schema(
                pa.field("arch_id", pa.string()),
                pa.field("space", pa.string()),
                pa.field("encoding", pa.string()),  # JSON of Architecture.encoding
                pa.field("arch_str", pa.string()),
                pa.field("n_params", pa.int64()),
                pa.field("flops", pa.int64()),
            ),
            key=("arch_id",),
            stable=("space",),
            required=("space",),
        ),
        TableSpec(
            "runs",
            _schema(
                pa.field("run_id", pa.string()),
                pa.field("task_id", pa.string()),
                pa.field("arch_id", pa.string()),
                pa.field("seed", pa.int64()),
                pa.field("config_hash", pa.string()),
                pa.field("status", pa.string()),
                pa.field("final_val_acc", pa.float64()),
                pa.field("final_test_acc", pa.float64()),
                pa.field("epochs_done", pa.int32()),
                pa.field("seconds", pa.float64()),
                pa.field("n_params", pa.int64()),  # of the network built for this task (classes, input shape)
                pa.field("flops", pa.int64()),
                pa.field("device", pa.string()),
                pa.field("error", pa.string()),
                pa.field("config", pa.string()),  # JSON of the training configuration behind config_hash
                pa.field("mlflow_run_id", pa.string()),
            ),
            key=("run_id",),
            stable=("task_id", "arch_id", "seed", "config_hash"),
            required=("task_id", "arch_id", "seed", "config_hash", "status"),
            prefer=("status", "completed"),
            cluster=("task_id", "run_id"),
        ),
        TableSpec(
            "curves",
            _schema(
                pa.field("run_id", pa.string()),
                pa.field("task_id", pa.string()),
                pa.field("epoch", pa.int32()),
                pa.field("train_loss", pa.float64()),
                pa.field("train_acc", pa.float64()),
                pa.field("val_loss", pa.float64()),
                pa.field("val_acc", pa.float64()),
                pa.field("test_acc", pa.float64()),
                pa.field("seconds", pa.float64()),
            ),
            key=("run_id", "epoch"),
            stable=("task_id",),
            required=("task_id",),
            cluster=("task_id", "run_id", "epoch"),
        ),
        TableSpec(
            "proxy_scores",
            _schema(
                pa.field("task_id", pa.string()),
                pa.field("arch_id", pa.string()),
                pa.field("proxy", pa.string()),
                pa.field("seed", pa.int64()),
                pa.field("value", pa.float64()),
                pa.field("seconds", pa.float64()),
            ),
            key=("task_id", "arch_id", "proxy", "seed"),
            defaults={"seed": 0},
        ),
        TableSpec(
            "searches",
            _schema(
                pa.field("search_id", pa.string()),
                pa.field("task_id", pa.string()),
                pa.field("method", pa.string()),
                pa.field("budget", pa.string()),  # JSON or text, e.g. {"seconds": 600} / "50 evaluations"
                pa.field("best_arch_id", pa.string()),
                pa.field("best_val_acc", pa.float64()),
                pa.field("best_test_acc", pa.float64()),
                pa.field("cost_seconds", pa.float64()),
                pa.field("n_evaluations", pa.int64()),
                pa.field("lodo_fold", pa.string()),
                pa.field("mlflow_run_id", pa.string()),
            ),
            key=("search_id",),
            stable=("task_id", "method"),
            required=("task_id", "method"),
            cluster=("task_id", "search_id"),
        ),
        TableSpec(
            "latencies",
            _schema(
                pa.field("device", pa.string()),  # cpu:<processor>:t<threads> or cuda:<GPU name>
                pa.field("space", pa.string()),
                pa.field("key", pa.string()),  # net:<arch_id>:<CxHxW>:n<classes>, or a lookup-table block key
                pa.field("batch_size", pa.int64()),
                pa.field("kind", pa.string()),  # network | block
                pa.field("arch_id", pa.string()),  # for kind == network
                pa.field("latency_ms", pa.float64()),  # median forward time, milliseconds
                pa.field("repeats", pa.int32()),
                pa.field("spec", pa.string()),  # JSON: how it was measured (torch version, ...)
            ),
            key=("device", "space", "key", "batch_size"),
            stable=("kind", "arch_id"),
            required=("kind", "latency_ms"),
            defaults={"batch_size": 1},
        ),
    ]
}


def table_spec(table: str) -> TableSpec:
    """The spec of ``table``; unknown names raise ``ValueError`` listing the known ones."""
    try:
        return TABLES[table]
    except (KeyError, TypeError):
        raise ValueError(f"unknown table {table!r}; known tables: {', '.join(TABLES)}") from None
