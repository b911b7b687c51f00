"""``MetadataStore``: append-only Parquet tables with atomic writes, de-duplicating reads and compaction.

Layout: ``<root>/<table>/<time_ns>-<uuid>.parquet``, one file per ``append`` call.  A file is written under a
hidden temporary name (``.<name>.tmp``) in the same folder and renamed when complete, so a reader lists either
nothing or a whole file, and a writer that dies mid-write leaves only a hidden temporary file that readers skip
and ``compact`` later removes.  Names carry a random UUID, so any number of processes (or machines sharing an
object store) append to the same table without coordination.  On object stores (``s3://``) the rename is a
copy; an object only becomes visible once complete, which gives the same guarantee.

Reads list the table's files, push the filters that a key determines down to the Parquet scan, then keep one
row per key (``metadata_store.dedup``).  Filters on other columns (``status="completed"``) are applied after
de-duplication, because pushing them below it would resurrect superseded rows (a failed attempt of a run that
later completed).

``compact`` merges a table's files into one sorted file: it writes the merged file first and deletes the old
ones after.  A reader that lists in between sees the rows twice, which de-duplication makes harmless; a reader
whose listed file disappears before it is opened lists again.  Any file is only deleted after its rows are in
another committed file, so concurrent appends and even concurrent compactions lose nothing.

Faults: a file that cannot be read as Parquet (truncated by a full disk, junk named ``*.parquet``) does not
block its table.  A read that fails on one finds the unreadable files (footer first, then a full read of the
suspects), leaves them out, warns once per file (:class:`UnreadableFileWarning`) and answers from the rest;
``compact`` leaves them in place (it never deletes a file whose rows it did not read).  :meth:`MetadataStore.check`
lists them and ``check(repair=True)`` moves them to ``<root>/_quarantine/<table>/`` (nothing is deleted).
Write failures (disk full, read-only folder) raise :class:`StoreWriteError` naming the file; flows call
:meth:`MetadataStore.check_writable` before any work so that a store they cannot write stops them at once.
"""

from __future__ import annotations

import datetime as _dt
import os
import time
import uuid
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from metadata_store.dedup import deduplicate
from metadata_store.keys import run_id as _run_id
from metadata_store.schemas import RUN_STATUSES, SCHEMA_VERSION, TABLES, TableSpec, table_spec

if TYPE_CHECKING:
    from metadata_store.dataset import MetaDataset

QUARANTINE = "_quarantine"

_SUFFIX = ".parquet"
_COMPACTED_SUFFIX = ".compacted.parquet"
_TMP_SUFFIX = ".tmp"
# a reader retries when a file it listed was removed by a concurrent compaction before it opened it
_READ_ATTEMPTS = 30
# merged files keep row groups small enough that min/max statistics skip most of a sorted file on a filter
_ROW_GROUP = 64 * 1024


def _resolve_root(root: str | os.PathLike, filesystem: Any) -> tuple[pafs.FileSystem, str, bool]:
    """(pyarrow filesystem, path inside it, whether it is the local disk)."""
    if filesystem is not None:
        if not isinstance(filesystem, pafs.FileSystem):  # an fsspec filesystem
            filesystem = pafs.PyFileSystem(pafs.FSSpecHandler(filesystem))
        return filesystem, str(root).rstrip("/"), isinstance(filesystem, pafs.LocalFileSystem)
    text = os.fspath(root)
    if not text:
        raise ValueError("store root must not be empty")
    if "://" not in text:
        return pafs.LocalFileSystem(), str(Path(text).expanduser().resolve()), True
    try:
        fs, path = pafs.FileSystem.from_uri(text)
    except (pa.ArrowInvalid, ValueError) as arrow_error:
        # schemes pyarrow does not know natively (memory://, gcs via gcsfs, ...) go through fsspec
        try:
            import fsspec

            fsspec_fs, path = fsspec.core.url_to_fs(text)
        except (ImportError, ValueError) as error:
            raise ValueError(f"cannot open store root {text!r}: {arrow_error}; fsspec: {error}") from error
        return pafs.PyFileSystem(pafs.FSSpecHandler(fsspec_fs)), path.rstrip("/"), False
    return fs, path.rstrip("/"), isinstance(fs, pafs.LocalFileSystem)


class StoreWriteError(OSError):
    """The store could not be written (disk full, read-only, missing permissions); the message names the path.

    Retrying the work that led to it does not help, so flows should not retry on it."""


class UnreadableFileWarning(UserWarning):
    """A data file of the store is not readable Parquet and was left out of a read."""


#: what pyarrow raises for a file that is not (complete) Parquet
_CORRUPT = (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError)


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


class MetadataStore:
    """The Parquet metadata store at ``root`` (a local folder, ``file://``, ``s3://``, or any fsspec URL).

    ``filesystem`` (a pyarrow or fsspec filesystem) overrides how ``root`` is opened.  ``fsync`` flushes each
    local file to disk before it is renamed, so a power cut cannot leave a renamed but empty file.
    """

    def __init__(self, root: str | os.PathLike, filesystem: Any = None, *, fsync: bool = True) -> None:
        self.uri = os.fspath(root)
        self.fs, self.root, self._local = _resolve_root(root, filesystem)
        self.fsync = fsync
        self._unreadable: dict[str, str] = {}  # path -> why, found by reads of this store object
        info = self.fs.get_file_info(self.root)
        if info.type == pafs.FileType.File:
            raise ValueError(f"store root {self.uri!r} is a file, not a folder")

    def __repr__(self) -> str:
        return f"MetadataStore({self.uri!r})"

    # -- files ------------------------------------------------------------------------------------------------
    def table_dir(self, table: str) -> str:
        return f"{self.root}/{table_spec(table).name}"

    def _listing(self, table: str) -> list[pafs.FileInfo]:
        selector = pafs.FileSelector(self.table_dir(table), allow_not_found=True)
        return [info for info in self.fs.get_file_info(selector) if info.type == pafs.FileType.File]

    def files(self, table: str) -> list[str]:
        """The committed data files of ``table`` (hidden temporary files excluded), oldest name first."""
        return sorted(
            info.path
            for info in self._listing(table)
            if info.base_name.endswith(_SUFFIX) and not info.base_name.startswith((".", "_"))
        )

    def _readable_files(self, table: str) -> list[str]:
        """:meth:`files` less those a read of this store object found unreadable."""
        return [path for path in self.files(table) if path not in self._unreadable]

    def _probe(self, path: str, full: bool) -> str | None:
        """Why ``path`` is not readable Parquet (footer only, or every column when ``full``), or ``None``."""
        try:
            with self.fs.open_input_file(path) as handle:
                parquet = pq.ParquetFile(handle)
                if full:
                    parquet.read()
        except FileNotFoundError:
            return None  # removed by a compaction: not corrupt
        except _CORRUPT as error:
            return f"{type(error).__name__}: {error}".splitlines()[0][:300]
        return None

    def _find_unreadable(self, paths: list[str]) -> dict[str, str]:
        """Probe ``paths`` (footers, then full reads if no footer is bad) and remember and warn about the bad ones."""
        bad = {}
        for full in (False, True):
            bad = {p: why for p in paths if (why := self._probe(p, full)) is not None}
            if bad:
                break
        for path, why in bad.items():
            if path not in self._unreadable:
                warnings.warn(
                    f"store {self.uri}: skipping unreadable file {path} ({why}); "
                    "`nasmeta store check --repair` moves it to the quarantine folder",
                    UnreadableFileWarning,
                    stacklevel=3,
                )
        self._unreadable.update(bad)
        return bad

    def _read_files(
        self, spec: TableSpec, paths: list[str], columns: list[str] | None, expression: pc.Expression | None
    ) -> tuple[pa.Table, list[str]]:
        """Read ``paths``, leaving out unreadable files; returns the rows and the paths actually read.

        ``FileNotFoundError`` (a concurrent compaction) propagates to the caller's retry loop."""
        schema = spec.schema if columns is None else pa.schema([spec.schema.field(c) for c in columns])
        while True:
            if not paths:
                return schema.empty_table(), paths
            try:
                data = ds.dataset(paths, schema=spec.schema, format="parquet", filesystem=self.fs).to_table(
                    columns=columns, filter=expression
                )
                return data, paths
            except FileNotFoundError:
                raise
            except _CORRUPT:
                bad = self._find_unreadable(paths)
                if not bad:
                    raise  # not a file's fault (a schema conflict, memory): a real error
                paths = [p for p in paths if p not in bad]

    def check(self, repair: bool = False) -> dict[str, list[dict[str, str]]]:
        """Every table's unreadable data files (``{table: [{"path", "error"}]}``, full reads of every file).

        ``repair=True`` moves each to ``<root>/_quarantine/<table>/`` (never deletes it) and records where
        (``"moved_to"``); reads no longer see it.
        """
        report: dict[str, list[dict[str, str]]] = {}
        for name in TABLES:
            found = []
            for path in self.files(name):
                why = self._probe(path, full=True)
                if why is None:
                    continue
                entry = {"path": path, "error": why}
                if repair:
                    folder = f"{self.root}/{QUARANTINE}/{name}"
                    self.fs.create_dir(folder, recursive=True)
                    target = f"{folder}/{path.rsplit('/', 1)[-1]}"
                    try:
                        self.fs.move(path, target)
                    except OSError as error:
                        raise StoreWriteError(error.errno, f"cannot move {path} to {target}: {error}") from error
                    self._unreadable.pop(path, None)
                    entry["moved_to"] = target
                else:
                    self._unreadable[path] = why
                found.append(entry)
            if found:
                report[name] = found
        return report

    def _commit(self, tmp: str, final: str) -> None:
        self.fs.move(tmp, final)

    def _write_file(self, table: str, data: pa.Table, compacted: bool = False, **write_options: Any) -> str:
        folder = self.table_dir(table)
        self.fs.create_dir(folder, recursive=True)
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex}{_COMPACTED_SUFFIX if compacted else _SUFFIX}"
        final, tmp = f"{folder}/{name}", f"{folder}/.{name}{_TMP_SUFFIX}"
        try:
            if self._local and self.fsync:
                with open(tmp, "wb") as handle:
                    pq.write_table(data, handle, **write_options)
                    handle.flush()
                    os.fsync(handle.fileno())
            else:
                pq.write_table(data, tmp, filesystem=self.fs, **write_options)
            self._commit(tmp, final)
        except BaseException as error:
            try:
                self.fs.delete_file(tmp)
            except OSError:
                pass
            if isinstance(error, OSError) and not isinstance(error, StoreWriteError):
                reason = error.strerror or str(error) or type(error).__name__
                raise StoreWriteError(error.errno, f"cannot write store file {final}: {reason}") from error
            raise
        return final

    def check_writable(self) -> None:
        """Raise :class:`StoreWriteError` naming the root unless a file can be created, written, synced and
        removed there (call it before any work that ends in a write)."""
        probe = f"{self.root}/.write-probe-{uuid.uuid4().hex}{_TMP_SUFFIX}"
        try:
            self.fs.create_dir(self.root, recursive=True)
            if self._local:
                with open(probe, "wb") as handle:
                    handle.write(b"\0" * 4096)
                    handle.flush()
                    os.fsync(handle.fileno())
            else:
                with self.fs.open_output_stream(probe) as handle:
                    handle.write(b"\0" * 4096)
            self.fs.delete_file(probe)
        except OSError as error:
            try:
                self.fs.delete_file(probe)
            except OSError:
                pass
            reason = error.strerror or str(error) or type(error).__name__
            raise StoreWriteError(error.errno, f"store {self.uri} is not writable: {reason}") from error

    # -- writing ------------------------------------------------------------------------------------------------
    def append(self, table: str, rows: Any) -> int:
        """Validate ``rows`` (dicts, a pyarrow Table / RecordBatch, or a pandas DataFrame) and write them as one
        new file.  Returns the number of rows written (0 writes nothing).

        Absent columns are filled with nulls (or the table's defaults); ``schema_version`` and ``created_at`` are
        filled in.  Unknown tables or columns, missing or null key columns, and values of the wrong type raise
        ``ValueError`` naming them.
        """
        spec = table_spec(table)
        data = _validated_table(spec, rows)
        if data.num_rows == 0:
            return 0
        self._write_file(spec.name, data)
        return data.num_rows

    # -- reading --------------------------------------------------------------------------------------------------
    def read(
        self,
        table: str,
        *,
        columns: list[str] | None = None,
        filter: pc.Expression | None = None,
        dedup: bool = True,
        **filters: Any,
    ) -> pa.Table:
        """Rows of ``table`` matching ``filters``, one per key (unless ``dedup=False``), sorted by key.

        ``filters``: ``column=value`` (equality), ``column=[v1, v2]`` (membership) or ``column=None`` (is null).
        ``filter``: an extra pyarrow expression, applied after de-duplication.  ``columns`` selects columns (the
        scan reads only those, plus what de-duplication needs).
        """
        spec = table_spec(table)
        for name in list(filters) + list(columns or []):
            if name not in spec.schema.names:
                raise ValueError(f"unknown column {name!r} for table {table!r}; columns: {', '.join(spec.columns)}")
        pushed = {k: v for k, v in filters.items() if k in spec.pushdown_columns or not dedup}
        later = {k: v for k, v in filters.items() if k not in pushed}
        fetch = None
        if columns is not None and filter is None:  # an expression may name any column
            needed = set(columns) | set(later)
            if dedup:
                needed |= set(spec.key) | {"created_at"} | ({spec.prefer[0]} if spec.prefer else set())
            fetch = [c for c in spec.schema.names if c in needed]
        data = self._scan(spec, fetch, _expression(spec, pushed))
        if dedup:
            data = deduplicate(data, spec)
        post = _expression(spec, later)
        if filter is not None:
            post = filter if post is None else post & filter
        if post is not None:
            data = data.filter(post)
        return data.select(columns) if columns is not None else data

    def _scan(self, spec: TableSpec, columns: list[str] | None, expression: pc.Expression | None) -> pa.Table:
        for attempt in range(_READ_ATTEMPTS):
            if attempt:
                time.sleep(min(0.02 * attempt, 0.25))
            paths = self._readable_files(spec.name)
            try:
                data, _ = self._read_files(spec, paths, columns, expression)
            except FileNotFoundError:  # a compaction removed a listed file before it was opened
                continue
            # A directory listing is not a snapshot: a compaction that commits its merged file and deletes the
            # sources while the listing runs can hide both.  Any rows missed that way are in a compacted file
            # that appeared after the listing began, so a second listing without new compacted files proves
            # the first one complete.
            fresh = {p for p in self.files(spec.name) if p.endswith(_COMPACTED_SUFFIX)} - set(paths)
            if not fresh:
                return data
        raise RuntimeError(
            f"no consistent read of table {spec.name!r} in {_READ_ATTEMPTS} attempts: compactions kept replacing files"
        )

    # -- maintenance ------------------------------------------------------------------------------------------------
    def compact(self, table: str | None = None, *, stale_tmp_seconds: float = 3600.0) -> dict[str, dict[str, int]]:
        """Merge each table's files into one de-duplicated, key-sorted file (``table=None``: every table).

        Temporary files older than ``stale_tmp_seconds`` (left by writers that died) are removed.  Returns
        ``{table: {"files_before", "files_after", "rows"}}``.
        """
        names = list(TABLES) if table is None else [table_spec(table).name]
        report = {}
        for name in names:
            self._remove_stale_tmp(name, stale_tmp_seconds)
            report[name] = self._compact_table(TABLES[name])
        return report

    def _compact_table(self, spec: TableSpec) -> dict[str, int]:
        for attempt in range(_READ_ATTEMPTS):
            paths = self._readable_files(spec.name)
            if len(paths) < 2:
                rows = self.read(spec.name, columns=list(spec.key)).num_rows if paths else 0
                return {"files_before": len(paths), "files_after": len(paths), "rows": rows}
            try:
                # exactly the files read: only rows that are read may have their files deleted (an unreadable
                # file stays where it is, for `check --repair`)
                data, paths = self._read_files(spec, paths, None, None)
                merged = deduplicate(data, spec).sort_by([(c, "ascending") for c in spec.sort_columns])
            except FileNotFoundError:  # another compaction removed one; its rows are in its merged file
                if attempt == _READ_ATTEMPTS - 1:
                    raise
                continue
            self._write_file(spec.name, merged, compacted=True, row_group_size=_ROW_GROUP)
            for path in paths:
                self._remove(path)
            return {"files_before": len(paths), "files_after": len(self.files(spec.name)), "rows": merged.num_rows}
        raise AssertionError("unreachable")

    def _remove_stale_tmp(self, table: str, older_than: float) -> None:
        cutoff = time.time() - older_than
        for info in self._listing(table):
            if not info.base_name.endswith(_TMP_SUFFIX):
                continue
            mtime = info.mtime.timestamp() if info.mtime is not None else 0.0
            if mtime <= cutoff:
                self._remove(info.path)

    def _remove(self, path: str) -> None:
        try:
            self.fs.delete_file(path)
        except FileNotFoundError:  # a concurrent compaction removed it first
            pass

    # -- runs ----------------------------------------------------------------------------------------------------
    run_id = staticmethod(_run_id)

    def has_completed(self, run_id: str) -> bool:
        """Whether a completed row exists for ``run_id`` (a rerun skips it)."""
        return self.read("runs", columns=["run_id"], run_id=run_id, status="completed").num_rows > 0

    def completed_run_ids(self, task_id: str | list[str] | None = None) -> set[str]:
        """The run ids with a completed row (optionally of one task or a list of tasks)."""
        filters = {} if task_id is None else {"task_id": task_id}
        return set(self.read("runs", columns=["run_id"], status="completed", **filters)["run_id"].to_pylist())

    def summary(self) -> dict[str, Any]:
        """Rows (after de-duplication) and files per table, runs per status, and per task."""
        tables = {}
        for name, spec in TABLES.items():
            files = self.files(name)
            rows = self.read(name, columns=list(spec.key)).num_rows if files else 0
            tables[name] = {"rows": rows, "files": len(files)}
        unreadable = sorted(self._unreadable)
        runs = self.read("runs", columns=["run_id", "task_id", "status"])
        statuses = dict.fromkeys(RUN_STATUSES, 0)
        per_task: dict[str, dict[str, int]] = {}
        for row in runs.group_by(["task_id", "status"]).aggregate([("run_id", "count")]).to_pylist():
            statuses[row["status"]] = statuses.get(row["status"], 0) + row["run_id_count"]
            per_task.setdefault(row["task_id"], dict.fromkeys(RUN_STATUSES, 0))[row["status"]] = row["run_id_count"]
        tasks = {row["task_id"]: row for row in self.read("tasks", columns=["task_id", "name", "source"]).to_pylist()}
        task_rows = []
        for task_id in sorted(set(tasks) | set(per_task)):
            info = tasks.get(task_id, {})
            counts = per_task.get(task_id, dict.fromkeys(RUN_STATUSES, 0))
            task_rows.append({"task_id": task_id, "name": info.get("name"), "source": info.get("source"), **counts})
        return {
            "root": self.uri,
            "schema_version": SCHEMA_VERSION,
            "tables": tables,
            "runs": statuses,
            "tasks": task_rows,
            "unreadable_files": unreadable,
        }

    # -- views and imports ---------------------------------------------------------------------------------------
    def meta(self) -> MetaDataset:
        """A read-only :class:`~metadata_store.dataset.MetaDataset` over this store (tables load on first use)."""
        from metadata_store.dataset import MetaDataset

        return MetaDataset.from_store(self)

    def claim(self, key: str, ttl: float = 600.0, owner: str | None = None) -> Any:
        """Claim ``key`` (a run id) before working on it; a :class:`~metadata_store.leases.Lease` to release
        when done, or ``None`` while another live process holds it (see :mod:`metadata_store.leases`)."""
        from metadata_store.leases import claim

        return claim(self, key, ttl, owner)

    def import_curves(self, source: Any, **options: Any) -> dict[str, int]:
        """Import an external learning-curve file; see :func:`metadata_store.external.import_curves`."""
        from metadata_store.external import import_curves

        return import_curves(self, source, **options)


# -- validation -----------------------------------------------------------------------------------------------------
def _columns_of(rows: Any) -> tuple[dict[str, Any], int]:
    """(column name -> values, number of rows) for any accepted row container."""
    if isinstance(rows, pa.RecordBatch):
        rows = pa.Table.from_batches([rows])
    if isinstance(rows, pa.Table):
        return {name: rows[name] for name in rows.column_names}, rows.num_rows
    if hasattr(rows, "to_dict") and hasattr(rows, "columns") and hasattr(rows, "iloc"):  # a pandas DataFrame
        table = pa.Table.from_pandas(rows, preserve_index=False)
        return {name: table[name] for name in table.column_names}, table.num_rows
    if isinstance(rows, Mapping):
        rows = [rows]
    if isinstance(rows, str | bytes) or not isinstance(rows, Iterable):
        raise ValueError(f"rows must be dicts, a pyarrow Table or a DataFrame, got {type(rows).__name__}")
    rows = list(rows)
    names: dict[str, None] = {}
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise ValueError(f"row {i} is a {type(row).__name__}, not a dict")
        names.update(dict.fromkeys(row))
    return {name: [row.get(name) for row in rows] for name in names}, len(rows)


def _validated_table(spec: TableSpec, rows: Any) -> pa.Table:
    columns, n = _columns_of(rows)
    unknown = [name for name in columns if name not in spec.schema.names]
    if unknown:
        raise ValueError(
            f"unknown column(s) {', '.join(map(repr, unknown))} for table {spec.name!r}; "
            f"columns: {', '.join(spec.columns)}"
        )
    must = list(spec.key) + list(spec.required)
    for name in must:
        if name not in columns and name not in spec.defaults and n:
            raise ValueError(f"rows of table {spec.name!r} need column {name!r} (key: {', '.join(spec.key)})")
    arrays = []
    for field in spec.schema:
        if field.name in columns:
            array = _as_array(spec, field, columns[field.name])
        elif field.name in spec.defaults:
            array = pa.array([spec.defaults[field.name]] * n, type=field.type)
        else:
            array = pa.nulls(n, type=field.type)
        if field.name == "schema_version":
            array = pc.fill_null(array, SCHEMA_VERSION)
            if n and pc.max(array).as_py() > SCHEMA_VERSION:
                raise ValueError(f"schema_version {pc.max(array).as_py()} is newer than this code's {SCHEMA_VERSION}")
        elif field.name == "created_at":
            array = pc.fill_null(array, pa.scalar(_now(), type=field.type))
        elif field.name in must and array.null_count:
            raise ValueError(f"column {field.name!r} of table {spec.name!r} has {array.null_count} null value(s)")
        arrays.append(array)
    table = pa.Table.from_arrays(arrays, schema=spec.schema)
    if spec.name == "runs" and n:
        bad = pc.unique(table.filter(pc.invert(pc.is_in(table["status"], pa.array(RUN_STATUSES))))["status"])
        if len(bad):
            raise ValueError(f"unknown run status {bad[0].as_py()!r}; expected one of {', '.join(RUN_STATUSES)}")
    return table


def _as_array(spec: TableSpec, field: pa.Field, values: Any) -> pa.Array:
    try:
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        if isinstance(values, pa.Array):
            return values.cast(field.type)
        return pa.array(values, type=field.type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError, OverflowError) as error:
        raise ValueError(
            f"column {field.name!r} of table {spec.name!r} cannot hold its values as {field.type}: {error}"
        ) from error


def _expression(spec: TableSpec, filters: Mapping[str, Any]) -> pc.Expression | None:
    expression = None
    for name, value in filters.items():
        field = spec.schema.field(name)
        if value is None:
            term = pc.field(name).is_null()
        elif isinstance(value, list | tuple | set | frozenset | pa.Array | pa.ChunkedArray):
            values = value if isinstance(value, pa.Array | pa.ChunkedArray) else list(value)
            term = pc.field(name).isin(_as_array(spec, field, values))
        else:
            term = pc.field(name) == _as_array(spec, field, [value])[0]
        expression = term if expression is None else expression & term
    return expression
