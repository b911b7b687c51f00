"""Import learning curves from other collections (LCBench, NAS-Bench-301 curves, your own runs) into the store.

File format: a CSV (``.csv``, optionally ``.gz`` / ``.bz2``) or Parquet (``.parquet`` / ``.pq``) file in long
form, **one row per (run, epoch)**.  Columns (any others are an error, so typos do not vanish silently):

=================  ========  ==========================================================================
column             required  meaning
=================  ========  ==========================================================================
``task_id``        yes       the task (dataset) id; rows of one task share it
``arch_id``        yes       the architecture id (``nasmeta store import`` computes it from ``space`` +
                             ``arch_str`` when the column is absent)
``epoch``          yes       1-based epoch number: the metrics after that many epochs
``seed``           no        training seed (default 0)
``config_hash``    no        identifies the training recipe (default ``"external"``)
``train_loss``     no        per-epoch metrics; accuracies in percent, ``seconds`` cumulative wall time
``train_acc``
``val_loss``
``val_acc``
``test_acc``
``seconds``
``status``         no        run status, ``completed`` (default) / ``failed`` / ``stopped``; the last epoch's
                             value is the run's
``error``          no        failure reason of a failed run
``space``          no        search-space name; with it, unknown ``arch_id`` get an ``architectures`` row
``arch_str``       no        the architecture's human form (stored with the architecture)
``task_name``      no        a readable task name (default: the task id)
``source``         no        where the data came from (default: the file name), stored on new tasks
=================  ========  ==========================================================================

Checked at import, each problem naming the file's row (1-based, header excluded): ``epoch`` >= 1, and
``seconds`` never decreasing along a run's epochs (it is cumulative).

Each distinct (task_id, arch_id, seed, config_hash) becomes one run whose ``run_id`` is the store's
deterministic hash, so importing the same file twice adds nothing: runs already in the store are skipped
(``overwrite=True`` writes them again; the newer rows then win on read).  The run's final accuracies,
``epochs_done`` and ``seconds`` come from its last epoch.  Tasks and architectures already in the store are left
as they are.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from metadata_store.keys import run_id as make_run_id

if TYPE_CHECKING:
    from metadata_store.store import MetadataStore

IMPORT_COLUMNS: dict[str, pa.DataType] = {
    "task_id": pa.string(),
    "arch_id": pa.string(),
    "epoch": pa.int32(),
    "seed": pa.int64(),
    "config_hash": pa.string(),
    "train_loss": pa.float64(),
    "train_acc": pa.float64(),
    "val_loss": pa.float64(),
    "val_acc": pa.float64(),
    "test_acc": pa.float64(),
    "seconds": pa.float64(),
    "status": pa.string(),
    "error": pa.string(),
    "space": pa.string(),
    "arch_str": pa.string(),
    "task_name": pa.string(),
    "source": pa.string(),
}
REQUIRED_COLUMNS = ("task_id", "arch_id", "epoch")
METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "test_acc", "seconds")
DEFAULT_CONFIG_HASH = "external"


def read_curve_file(path: str | os.PathLike) -> pa.Table:
    """Read a curve file (CSV or Parquet) with the column types above; ids are always read as text."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"curve file {str(path)!r} does not exist")
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".parquet", ".pq"):
        return pq.read_table(path)
    if ".csv" in suffixes:
        # without explicit types, hex ids such as "0123" would be read as integers
        options = pacsv.ConvertOptions(column_types=IMPORT_COLUMNS)
        return pacsv.read_csv(path, convert_options=options)
    raise ValueError(f"curve file {str(path)!r} must end in .csv (optionally compressed) or .parquet")


def normalise_curves(table: pa.Table) -> pa.Table:
    """Check the columns of an import table, cast them, and fill the optional run-identity columns."""
    unknown = [c for c in table.column_names if c not in IMPORT_COLUMNS]
    if unknown:
        raise ValueError(f"unknown column(s) {unknown} in curve file; allowed: {', '.join(IMPORT_COLUMNS)}")
    for name in REQUIRED_COLUMNS:
        if name not in table.column_names:
            raise ValueError(f"curve file lacks required column {name!r}")
    n = table.num_rows
    columns = {}
    for name, dtype in IMPORT_COLUMNS.items():
        if name in table.column_names:
            try:
                columns[name] = table[name].cast(dtype)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
                raise ValueError(f"column {name!r} of the curve file cannot be read as {dtype}: {error}") from error
            if name in REQUIRED_COLUMNS and columns[name].null_count:
                raise ValueError(f"column {name!r} of the curve file has {columns[name].null_count} empty value(s)")
    columns.setdefault("seed", pa.array(np.zeros(n, dtype=np.int64)))
    columns["seed"] = pc.fill_null(columns["seed"], 0)
    columns.setdefault("config_hash", pa.array([DEFAULT_CONFIG_HASH] * n, pa.string()))
    columns["config_hash"] = pc.fill_null(columns["config_hash"], DEFAULT_CONFIG_HASH)
    return pa.table(columns)


def _last_rows(table: pa.Table, keys: list[str]) -> pa.Table:
    """The last row of each run of equal ``keys`` (the table is sorted by them; the sort is stable)."""
    n = table.num_rows
    if n == 0:
        return table
    last = None
    for key in keys:
        column = table[key].combine_chunks()
        differs = pc.not_equal(column.slice(0, n - 1), column.slice(1))
        last = differs if last is None else pc.or_(last, differs)
    return table.filter(pa.concat_arrays([last, pa.array([True])]))


def import_curves(
    store: MetadataStore,
    source: str | os.PathLike | pa.Table,
    *,
    source_name: str | None = None,
    overwrite: bool = False,
    architectures: list[dict[str, Any]] | None = None,
) -> dict[str, int]:
    """Import a curve file (or a table in the same format) into ``store``.

    Writes ``curves`` and ``runs`` for runs not yet stored, and ``tasks`` / ``architectures`` rows for ids the
    store does not know.  ``architectures``: complete ``architectures`` rows (with ``encoding``, which only a
    search space can compute) that replace the bare rows derived from ``space`` / ``arch_str``; they are written
    only after the file passed every check.  Returns the number of rows written per table.
    """
    if isinstance(source, pa.Table):
        raw, default_source = source, source_name or "external"
    else:
        raw, default_source = read_curve_file(source), source_name or Path(source).name
    table = normalise_curves(raw)
    written = {"tasks": 0, "architectures": 0, "runs": 0, "curves": 0}
    if table.num_rows == 0:
        return written

    identity = ["task_id", "arch_id", "seed", "config_hash"]
    combos = table.group_by(identity).aggregate([]).to_pylist()
    for combo in combos:
        combo["run_id"] = make_run_id(combo["task_id"], combo["arch_id"], combo["seed"], combo["config_hash"])
    ids = pa.Table.from_pylist(combos, schema=table.select(identity).schema.append(pa.field("run_id", pa.string())))
    # joins do not keep row order, so the file order is carried along explicitly
    table = table.append_column("__row", pa.array(np.arange(table.num_rows)))
    table = table.join(ids, keys=identity).sort_by(
        [("run_id", "ascending"), ("epoch", "ascending"), ("__row", "ascending")]
    )
    # an epoch listed twice for one run (e.g. two encodings of one architecture): the later row wins, as on read
    table = _last_rows(table, ["run_id", "epoch"])
    _check_curves(table, identity)
    table = table.drop_columns(["__row"])

    if not overwrite:
        stored = store.read("runs", columns=["run_id"], run_id=ids["run_id"].combine_chunks())["run_id"]
        table = table.filter(pc.invert(pc.is_in(table["run_id"], stored.combine_chunks())))
    if table.num_rows == 0:
        return written

    curve_columns = ["run_id", "task_id", "epoch"] + [m for m in METRICS if m in table.column_names]
    last = _last_rows(table, ["run_id"])
    runs = {
        "run_id": last["run_id"],
        "task_id": last["task_id"],
        "arch_id": last["arch_id"],
        "seed": last["seed"],
        "config_hash": last["config_hash"],
        "status": pc.fill_null(last["status"], "completed") if "status" in last.column_names else None,
        "epochs_done": last["epoch"],
    }
    if runs["status"] is None:
        runs["status"] = pa.array(["completed"] * last.num_rows)
    for target, column in (("final_val_acc", "val_acc"), ("final_test_acc", "test_acc"), ("seconds", "seconds")):
        if column in last.column_names:
            runs[target] = last[column]
    if "error" in last.column_names:
        runs["error"] = last["error"]

    new_tasks = _new_rows(store, "tasks", "task_id", _task_rows(table, default_source))
    arch_rows = {row["arch_id"]: row for row in _arch_rows(table)}
    arch_rows.update({row["arch_id"]: row for row in architectures or []})
    new_archs = _new_rows(store, "architectures", "arch_id", list(arch_rows.values()))
    written["tasks"] = store.append("tasks", new_tasks)
    written["architectures"] = store.append("architectures", new_archs)
    written["curves"] = store.append("curves", table.select(curve_columns))
    written["runs"] = store.append("runs", pa.table(runs))
    return written


def _check_curves(table: pa.Table, identity: list[str]) -> None:
    """Epochs >= 1 and cumulative seconds that never decrease within a run (``table`` sorted by run and epoch,
    ``__row`` = the file's 0-based row); a violation raises ``ValueError`` naming the row."""
    rows = table["__row"].to_numpy()
    epochs = table["epoch"].to_numpy(zero_copy_only=False)
    low = np.flatnonzero(epochs < 1)
    if len(low):
        raise ValueError(f"row {rows[low[0]] + 1} of the curve file: epoch {epochs[low[0]]} (epochs count from 1)")
    if "seconds" not in table.column_names:
        return
    seconds = table["seconds"].to_numpy(zero_copy_only=False).astype(float)  # nulls -> NaN
    valid = np.flatnonzero(~np.isnan(seconds))
    run = table["run_id"].to_numpy(zero_copy_only=False)[valid]
    values = seconds[valid]
    bad = np.flatnonzero((run[1:] == run[:-1]) & (values[1:] < values[:-1]))
    if len(bad):
        now, before = valid[bad[0] + 1], valid[bad[0]]
        who = ", ".join(f"{k}={table[k][int(now)].as_py()!r}" for k in identity)
        raise ValueError(
            f"row {rows[now] + 1} of the curve file: seconds {seconds[now]:g} at epoch {epochs[now]} is less than "
            f"{seconds[before]:g} at epoch {epochs[before]} (row {rows[before] + 1}) of the same run ({who}); "
            "seconds must be cumulative wall time"
        )


def _task_rows(table: pa.Table, default_source: str) -> list[dict[str, Any]]:
    names = [c for c in ("task_id", "task_name", "source") if c in table.column_names]
    rows = {}
    for row in table.select(names).group_by(names).aggregate([]).to_pylist():
        rows.setdefault(
            row["task_id"],
            {
                "task_id": row["task_id"],
                "name": row.get("task_name") or row["task_id"],
                "source": row.get("source") or default_source,
            },
        )
    return list(rows.values())


def _arch_rows(table: pa.Table) -> list[dict[str, Any]]:
    if "space" not in table.column_names:
        return []
    names = ["arch_id", "space"] + (["arch_str"] if "arch_str" in table.column_names else [])
    rows = {}
    for row in table.select(names).filter(pc.is_valid(table["space"])).group_by(names).aggregate([]).to_pylist():
        rows.setdefault(row["arch_id"], row)
    return list(rows.values())


def _new_rows(store: MetadataStore, table: str, key: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not rows:
        return []
    known = set(store.read(table, columns=[key], **{key: [row[key] for row in rows]})[key].to_pylist())
    return [row for row in rows if row[key] not in known]
