"""MLflow tracking for nasmeta: the only module that imports mlflow.

Layout (DESIGN.md): one experiment per flow kind, a parent run per flow run, a child run per training run or
search method, metrics with ``step = epoch``, artefacts for architectures, learning curves, tables and figures,
transfer components as MLflow logged models.

Runs are handled through explicit :class:`TrackedRun` handles and ``MlflowClient`` calls, never through
mlflow's fluent "active run" stack: that stack is per thread, so a child run started by a Prefect worker thread
or a Dask worker process would not find its parent.  A ``TrackedRun`` is a small picklable value (run id,
experiment id, tracking URI), so a flow can pass the parent to any worker, which opens its child with
``child_run(parent)``.  Inside ``parent_run`` / ``child_run`` blocks the innermost run is also the *current*
run (a context variable), so ``log_architecture(arch)`` needs no run argument there.

Default tracking URI: ``nasmeta.config.default_tracking_uri()`` (``MLFLOW_TRACKING_URI`` when set, else sqlite
under ``NASMETA_HOME``).  Experiments created on a local backend keep their artefacts under
``nasmeta.config.default_artifact_root()``, not in a ``./mlruns`` folder of whatever directory a worker runs in.

Faults it survives:

- **first use of a fresh sqlite database by several processes at once**: MLflow creates and migrates the schema
  without a lock between processes, so two of them could both migrate (one crashing, or a half-migrated schema
  with ``_alembic_tmp_*`` tables left behind).  The first client of each process takes an exclusive file lock
  (``<db>.lock``, ``fcntl.flock``) while it creates the schema, and under the same lock repairs a half-migrated
  database: leftover ``_alembic_tmp_*`` tables whose original table exists are dropped and the migrations are
  run to the head revision (what ``mlflow db upgrade`` does).
- **interrupted runs**: every run is tagged with ``nasmeta.host`` / ``nasmeta.pid`` / ``nasmeta.pid_start``;
  Ctrl-C and SIGTERM (turned into :class:`TerminatedError` while a run is open in the main thread) end the open
  runs KILLED; runs left RUNNING by a process that died without any signal (SIGKILL, power loss) are marked
  FAILED by the next process that opens the same local database (:func:`reap_stale_runs`).
- **a dead tracking server**: :func:`check_tracking_uri` answers within a few seconds, before any work starts.
- **untrusted model artefacts**: :func:`load_model` only rebuilds classes registered with
  :func:`register_component`; an artefact naming anything else raises instead of importing it.
"""

from __future__ import annotations

import contextlib
import contextvars
import fcntl
import importlib
import json
import math
import numbers
import os
import re
import shutil
import signal
import socket
import sqlite3
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException

from nasmeta import config

# MLflow's limits for parameter and tag values (mlflow.utils.validation)
_MAX_PARAM = 6000
_MAX_TAG = 8000
# MLflow accepts at most this many params / metrics per log_batch call
_BATCH = 100

_CURRENT: contextvars.ContextVar[TrackedRun | None] = contextvars.ContextVar("nasmeta_mlflow_run", default=None)
_CLIENTS: dict[str, MlflowClient] = {}
_ARTIFACT_ROOT: dict[str, str] = {}
_CONFIGURED: list[str] = []  # the URI set by the last configure() in this process
_FAILED: set[str] = set()  # runs marked failed with TrackedRun.fail, ended FAILED when their block closes
_CLIENT_LOCK = threading.Lock()

HOST_TAG, PID_TAG, PID_START_TAG = "nasmeta.host", "nasmeta.pid", "nasmeta.pid_start"


class TrackingUnavailableError(RuntimeError):
    """The tracking URI cannot be used (server unreachable, database folder not writable)."""


class TerminatedError(KeyboardInterrupt):
    """SIGTERM arrived while a run was open: raised in the main thread so the open runs end KILLED."""


def configure(tracking_uri: str | None = None, artifact_root: str | None = None) -> str:
    """Point MLflow at ``tracking_uri`` (default: ``config.default_tracking_uri()``) and return it.

    ``artifact_root`` (default ``config.default_artifact_root()``) is where experiments created on a local
    backend (sqlite, a path) store artefacts.
    """
    uri = tracking_uri or config.default_tracking_uri()
    if uri.startswith("file:") or ("://" not in uri and not uri.startswith("databricks")):
        raise ValueError(f"tracking URI {uri!r} uses MLflow's deprecated file store; use sqlite:///path/mlflow.db")
    mlflow.set_tracking_uri(uri)
    _ARTIFACT_ROOT[uri] = artifact_root or config.default_artifact_root()
    _CONFIGURED[:] = [uri]
    return uri


def tracking_uri() -> str:
    """The URI in use (configuring the default first if nothing was configured in this process)."""
    return _CONFIGURED[0] if _CONFIGURED else configure()


def client(uri: str | None = None) -> MlflowClient:
    """An ``MlflowClient`` for ``uri`` (default: the configured URI); one per URI per process."""
    uri = uri or tracking_uri()
    if uri not in _CLIENTS:
        with _CLIENT_LOCK:
            if uri not in _CLIENTS:
                if _sqlite_path(uri) is not None:
                    new = _prepare_database(uri)
                    reap_stale_runs(uri, new)
                else:
                    new = MlflowClient(tracking_uri=uri)
                _CLIENTS[uri] = new
    return _CLIENTS[uri]


# -- database creation, health, stale runs -----------------------------------------------------------------------
def _sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///path`` URI (``None`` for other backends and in-memory databases)."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri.removeprefix("sqlite:///").split("?", 1)[0]  # sqlite:////abs -> /abs, sqlite:///rel -> rel
    return None if not path or path == ":memory:" else Path(path)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock between processes (and threads: each call opens its own descriptor)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _repair_half_migrated(db: Path) -> list[str]:
    """Drop ``_alembic_tmp_<table>`` tables left by an interrupted batch migration whose ``<table>`` still exists
    (the copy was not committed, so the original is intact); returns what was dropped."""
    if not db.is_file() or db.stat().st_size == 0:
        return []
    with contextlib.closing(sqlite3.connect(db, timeout=60)) as connection:
        names = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        dropped = []
        for name in sorted(n for n in names if n.startswith("_alembic_tmp_")):
            original = name.removeprefix("_alembic_tmp_")
            if original not in names:
                raise TrackingUnavailableError(
                    f"MLflow database {db} was left half-migrated ({name} without {original}); move it aside "
                    "and rerun (a new database is created), or restore a backup"
                )
            connection.execute(f'DROP TABLE "{name}"')
            dropped.append(name)
        connection.commit()
    return dropped


def _prepare_database(uri: str) -> MlflowClient:
    """A client of the sqlite database at ``uri``, created or repaired under an exclusive file lock (module
    docstring).  MLflow creates the store (schema and migrations) as soon as a client is constructed."""
    from mlflow.store.db import utils as db_utils

    db = _sqlite_path(uri)
    assert db is not None
    with _file_lock(db.with_name(db.name + ".lock")):
        repaired = _repair_half_migrated(db)
        try:
            mlflow_client = MlflowClient(tracking_uri=uri)
            mlflow_client.search_experiments(max_results=1)
        except MlflowException as error:
            if "out-of-date database schema" not in str(error) and not repaired:
                raise
            engine = db_utils.create_sqlalchemy_engine_with_retry(uri)
            try:
                db_utils._upgrade_db(engine)
            finally:
                engine.dispose()
            mlflow_client = MlflowClient(tracking_uri=uri)
            mlflow_client.search_experiments(max_results=1)
    return mlflow_client


def _process_start(pid: int) -> str | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux ``/proc``), which with the pid
    identifies a process even after its pid is reused; ``None`` where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _process_alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        pass
    return start is None or _process_start(pid) in (None, start)


def _owner_tags() -> dict[str, str]:
    pid = os.getpid()
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(pid), PID_START_TAG: _process_start(pid) or ""}


def reap_stale_runs(uri: str | None = None, mlflow_client: MlflowClient | None = None) -> list[str]:
    """Mark FAILED the RUNNING runs that a process of this host opened and that process is gone (killed with
    SIGKILL, machine reset); returns their ids.  Runs of other hosts and of live processes are left alone."""
    uri = uri or tracking_uri()
    mlflow_client = mlflow_client or client(uri)
    host = socket.gethostname()
    ids = [e.experiment_id for e in mlflow_client.search_experiments()]
    reaped: list[str] = []
    if not ids:
        return reaped
    stale_filter = f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` = '{host}'"
    for run in mlflow_client.search_runs(ids, stale_filter, max_results=5000):
        tags = run.data.tags
        try:
            pid = int(tags.get(PID_TAG, ""))
        except ValueError:
            continue
        if _process_alive(pid, tags.get(PID_START_TAG) or None):
            continue
        mlflow_client.set_tag(run.info.run_id, "error", f"process {pid} on {host} ended without closing the run")
        mlflow_client.set_terminated(run.info.run_id, "FAILED")
        reaped.append(run.info.run_id)
    return reaped


def check_tracking_uri(uri: str | None = None, timeout: float = 5.0) -> str:
    """Check within ``timeout`` seconds that ``uri`` (default: the configured one) can be tracked to, and return
    it; otherwise raise :class:`TrackingUnavailableError` with a one-line message that suggests ``--no-track``.

    An ``http(s)`` server must answer its ``/health`` endpoint; a sqlite database's folder must be creatable and
    writable.  Call it before a flow does any work: MLflow's own client retries a dead server for minutes.
    """
    uri = uri or tracking_uri()
    hint = "start it, point MLFLOW_TRACKING_URI at a live one, or pass --no-track"
    if uri.startswith(("http://", "https://")):
        url = uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                if response.status != 200:
                    raise TrackingUnavailableError(f"MLflow server {uri} answered {response.status} on /health; {hint}")
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", error)
            raise TrackingUnavailableError(f"MLflow server {uri} is unreachable ({reason}); {hint}") from None
        return uri
    db = _sqlite_path(uri)
    if db is not None:
        folder = db.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise TrackingUnavailableError(
                f"cannot create the MLflow database folder {folder}: {error}; {hint}"
            ) from None
        target = db if db.exists() else folder
        if not os.access(target, os.W_OK):
            raise TrackingUnavailableError(f"MLflow database {db} is not writable; {hint}")
    return uri


def _is_local_backend(uri: str) -> bool:
    # a tracking server (http) decides its own artefact store; an embedded database does not
    return uri.startswith("sqlite:")


def experiment_id(name: str, uri: str | None = None) -> str:
    """The id of experiment ``name``, created on first use (safe when several processes race to create it)."""
    if not name:
        raise ValueError("experiment name must not be empty")
    uri = uri or tracking_uri()
    mlflow_client = client(uri)
    found = mlflow_client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None
    if _is_local_backend(uri):
        folder = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
        location = (Path(_ARTIFACT_ROOT.get(uri) or config.default_artifact_root()) / folder).resolve().as_uri()
    try:
        # the MLflow 3 UI opens experiments of this kind in the classic training view (runs, metrics, charts)
        # instead of the GenAI view (traces, prompts)
        kind = {"mlflow.experimentKind": "custom_model_development"}
        return mlflow_client.create_experiment(name, artifact_location=location, tags=kind)
    except MlflowException:
        found = mlflow_client.get_experiment_by_name(name)  # another process created it first
        if found is None:
            raise
        return found.experiment_id


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return str(value)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class TrackedRun:
    """A handle on one MLflow run: picklable, so workers in other threads or processes can log to it."""

    run_id: str
    experiment_id: str
    tracking_uri: str

    @property
    def client(self) -> MlflowClient:
        return client(self.tracking_uri)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Parameters (non-strings as JSON, clipped to MLflow's 6000-character limit)."""
        items = [Param(str(k), _clip(_text(v), _MAX_PARAM)) for k, v in params.items()]
        for start in range(0, len(items), _BATCH):
            self.client.log_batch(self.run_id, params=items[start : start + _BATCH])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        items = [RunTag(str(k), _clip(_text(v), _MAX_TAG)) for k, v in tags.items()]
        for start in range(0, len(items), _BATCH):
            self.client.log_batch(self.run_id, tags=items[start : start + _BATCH])

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Numeric metrics at ``step`` (non-numeric values are skipped: a curve row may carry a status text)."""
        stamp = int(time.time() * 1000)
        items = [
            Metric(str(k), float(v), stamp, int(step or 0))
            for k, v in metrics.items()
            if isinstance(v, numbers.Real) and not isinstance(v, bool)
        ]
        for start in range(0, len(items), _BATCH):
            self.client.log_batch(self.run_id, metrics=items[start : start + _BATCH])

    def log_dict(self, data: Any, artifact_file: str) -> None:
        self.client.log_dict(self.run_id, data, artifact_file)

    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, text, artifact_file)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def reporter(self, prefix: str = "") -> MlflowReporter:
        return MlflowReporter(self, prefix)

    def fail(self, reason: str) -> None:
        """Record a failure that was handled without an exception (the trainer returns failed runs): the
        ``error`` tag is set now and the enclosing ``parent_run`` / ``child_run`` block ends the run FAILED."""
        self.set_tags({"error": reason})
        _FAILED.add(self.run_id)


def current_run() -> TrackedRun | None:
    """The innermost run opened by ``parent_run`` / ``child_run`` in this context (``None`` outside)."""
    return _CURRENT.get()


def _resolve(run: TrackedRun | None) -> TrackedRun:
    run = run or _CURRENT.get()
    if run is None:
        raise ValueError("no MLflow run: pass run=... or call inside a parent_run / child_run block")
    return run


@contextlib.contextmanager
def _open_run(
    experiment_id_: str,
    uri: str,
    run_name: str | None,
    tags: Mapping[str, Any] | None,
    params: Mapping[str, Any] | None,
) -> Iterator[TrackedRun]:
    mlflow_client = client(uri)
    all_tags = {**_owner_tags(), **{k: _clip(_text(v), _MAX_TAG) for k, v in (tags or {}).items()}}
    created = mlflow_client.create_run(experiment_id_, tags=all_tags, run_name=run_name)
    run = TrackedRun(created.info.run_id, experiment_id_, uri)
    token = _CURRENT.set(run)
    restore = _catch_sigterm()
    try:
        if params:
            run.log_params(params)
        yield run
    except BaseException as error:
        status = "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"
        try:
            run.set_tags({"error": f"{type(error).__name__}: {error}"})
        finally:
            mlflow_client.set_terminated(run.run_id, status)
        raise
    else:
        mlflow_client.set_terminated(run.run_id, "FAILED" if run.run_id in _FAILED else "FINISHED")
    finally:
        _FAILED.discard(run.run_id)
        _CURRENT.reset(token)
        if restore is not None:
            signal.signal(signal.SIGTERM, restore)


def _raise_terminated(signum: int, frame: Any) -> None:
    raise TerminatedError(f"terminated by signal {signum}")


def _catch_sigterm() -> Any:
    """In the main thread, while SIGTERM still has its default action (which would end the process without
    closing the runs), turn it into :class:`TerminatedError`; returns the handler to restore, or ``None``."""
    if threading.current_thread() is not threading.main_thread():
        return None
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return None  # someone (an outer run, Prefect, the user) handles it already
    signal.signal(signal.SIGTERM, _raise_terminated)
    return signal.SIG_DFL


@contextlib.contextmanager
def parent_run(
    experiment: str,
    run_name: str | None = None,
    tags: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    uri: str | None = None,
) -> Iterator[TrackedRun]:
    """A top-level run (one per flow run) in ``experiment`` (on ``uri``, default the configured one); an
    exception marks it FAILED with an ``error`` tag and propagates."""
    uri = uri or tracking_uri()
    with _open_run(experiment_id(experiment, uri), uri, run_name, tags, params) as run:
        yield run


@contextlib.contextmanager
def child_run(
    parent: TrackedRun | str | None = None,
    run_name: str | None = None,
    tags: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
) -> Iterator[TrackedRun]:
    """A run nested under ``parent`` (a handle, a run id, or by default the current run), in its experiment.
    Failures are recorded as for :func:`parent_run`."""
    if parent is None:
        parent = _resolve(None)
    if isinstance(parent, str):
        uri = tracking_uri()
        parent = TrackedRun(parent, client(uri).get_run(parent).info.experiment_id, uri)
    nested = {**(tags or {}), "mlflow.parentRunId": parent.run_id}
    with _open_run(parent.experiment_id, parent.tracking_uri, run_name, nested, params) as run:
        yield run


class MlflowReporter:
    """A ``nasmeta.reporting.Reporter`` that logs each report as metrics with ``step`` = the reported step
    (the epoch, for the trainer).  ``prefix`` namespaces the metric names (``"search/"``)."""

    def __init__(self, run: TrackedRun | None = None, prefix: str = "") -> None:
        self.run = _resolve(run)
        self.prefix = prefix

    def report(self, step: int, **metrics: Any) -> None:
        self.run.log_metrics({f"{self.prefix}{k}": v for k, v in metrics.items()}, step=step)


# -- artefacts --------------------------------------------------------------------------------------------------
def log_architecture(arch: Any, run: TrackedRun | None = None, artifact_file: str = "architecture.json") -> None:
    """The architecture's JSON (``Architecture.to_json()``: space, encoding, human-readable string)."""
    data = arch.to_json() if hasattr(arch, "to_json") else arch
    if not isinstance(data, Mapping):
        raise ValueError(f"cannot log {type(arch).__name__} as an architecture: it has no to_json()")
    _resolve(run).log_dict(dict(data), artifact_file)


def learning_curve_figure(curve: Sequence[Mapping[str, Any]], title: str | None = None) -> Any:
    """A matplotlib figure of a learning curve (losses left, accuracies right) against the epoch."""
    from matplotlib.figure import Figure  # object API: no pyplot global state, safe in worker threads

    if not curve:
        raise ValueError("cannot plot an empty learning curve")
    epochs = [row.get("epoch", row.get("step", i + 1)) for i, row in enumerate(curve)]
    figure = Figure(figsize=(9, 3.5), layout="constrained")
    losses, accuracies = figure.subplots(1, 2)
    for axis, suffix, label in ((losses, "_loss", "loss"), (accuracies, "_acc", "accuracy (%)")):
        names = sorted({k for row in curve for k in row if k.endswith(suffix)})
        for name in names:
            values = [row.get(name) for row in curve]
            points = [
                (e, v) for e, v in zip(epochs, values, strict=True) if isinstance(v, numbers.Real) and math.isfinite(v)
            ]
            if points:
                axis.plot(*zip(*points, strict=True), marker="o", markersize=3, label=name)
        axis.set_xlabel("epoch")
        axis.set_ylabel(label)
        if names:
            axis.legend(fontsize="small")
    if title:
        figure.suptitle(title)
    return figure


def log_figure(figure: Any, artifact_file: str, run: TrackedRun | None = None) -> None:
    """A matplotlib (or plotly) figure as an image artefact."""
    run = _resolve(run)
    run.client.log_figure(run.run_id, figure, artifact_file)


def log_learning_curve_png(
    curve: Sequence[Mapping[str, Any]],
    run: TrackedRun | None = None,
    artifact_file: str = "learning_curve.png",
    title: str | None = None,
) -> None:
    """A PNG of the per-epoch curve (rows as the trainer reports them: epoch, *_loss, *_acc)."""
    log_figure(learning_curve_figure(curve, title), artifact_file, run)


def log_table(name: str, rows: Sequence[Mapping[str, Any]] | Any, run: TrackedRun | None = None) -> None:
    """Rows (dicts or a DataFrame) as an MLflow table artefact ``<name>.json`` (viewable in the UI)."""
    import pandas as pd

    run = _resolve(run)
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    artifact = name if name.endswith(".json") else f"{name}.json"
    run.client.log_table(run.run_id, frame, artifact)


# -- models -------------------------------------------------------------------------------------------------------
_COMPONENT_FILE = "nasmeta_component.json"

#: the component classes ``load_model`` may rebuild ("module:qualname"); a logged artefact only names its class,
#: and importing whatever it names would let a crafted artefact run any code
_COMPONENTS: set[str] = {
    "nasmeta.transfer.tapas:TAPAS",
    "nasmeta.transfer.lcranknet:LCRankNet",
    "nasmeta.blackbox.baker:BakerStopper",
}


def register_component(cls: type) -> type:
    """Allow :func:`log_model` / :func:`load_model` for ``cls`` (usable as a class decorator)."""
    if not callable(getattr(cls, "save", None)) or not callable(getattr(cls, "load", None)):
        raise ValueError(f"{cls.__name__} cannot be a model component: it needs save(dir) and load(dir)")
    _COMPONENTS.add(f"{cls.__module__}:{cls.__qualname__}")
    return cls


def registered_components() -> list[str]:
    """The class paths :func:`load_model` accepts: the registered ones and every transfer component of
    ``nasmeta.transfer.registry`` (module ``nasmeta.transfer.<name>``, class named ``<name>``)."""
    from nasmeta.transfer.registry import component_class, component_names

    found = {f"{c.__module__}:{c.__qualname__}" for c in map(component_class, component_names())}
    return sorted(_COMPONENTS | found)


def _allowed(class_path: str) -> bool:
    """Whether ``class_path`` may be rebuilt, decided without importing anything it names outside nasmeta's own
    transfer registry (which only imports ``nasmeta.transfer.<identifier>`` modules)."""
    if class_path in _COMPONENTS:
        return True
    module_name, _, qualname = class_path.partition(":")
    prefix = "nasmeta.transfer."
    if not module_name.startswith(prefix) or "." in module_name[len(prefix) :]:
        return False
    from nasmeta.transfer.registry import component_class

    try:
        cls = component_class(module_name[len(prefix) :])
    except ValueError:
        return False
    return f"{cls.__module__}:{cls.__qualname__}" == class_path


def log_model(component: Any, name: str, run: TrackedRun | None = None, params: Mapping[str, Any] | None = None) -> str:
    """Log a transfer component as an MLflow logged model and return its model id.

    The component needs ``save(dir)`` and a class-level ``load(dir)``; its files plus a small
    ``nasmeta_component.json`` naming the class become the model's artefacts, so :func:`load_model` rebuilds it.
    This avoids ``mlflow.pytorch.log_model``, which wants an input example and pickles whole modules.
    """
    run = _resolve(run)
    cls = type(component)
    if not callable(getattr(component, "save", None)) or not callable(getattr(cls, "load", None)):
        raise ValueError(f"{cls.__name__} cannot be logged as a model: it needs save(dir) and load(dir)")
    class_path = f"{cls.__module__}:{cls.__qualname__}"
    if not _allowed(class_path):
        raise ValueError(
            f"{class_path} is not a registered component (load_model could not rebuild it); "
            "call nasmeta.tracking.register_component on the class"
        )

    def fill(folder: str) -> None:
        component.save(folder)
        Path(folder, _COMPONENT_FILE).write_text(json.dumps({"class": class_path, "name": name}))

    tags = {"nasmeta.component": class_path}
    return _logged_model(run, name, "nasmeta-component", tags, params or {}, fill)


def _logged_model(
    run: TrackedRun,
    name: str,
    model_type: str,
    tags: Mapping[str, Any],
    params: Mapping[str, Any],
    fill: Any,
) -> str:
    """An MLflow logged model of ``run`` whose artefacts ``fill(folder)`` writes; FAILED if that raises."""
    model = run.client.create_logged_model(
        run.experiment_id,
        name=name,
        source_run_id=run.run_id,
        tags={k: _clip(_text(v), _MAX_TAG) for k, v in tags.items()},
        params={k: _clip(_text(v), _MAX_PARAM) for k, v in params.items()},
        model_type=model_type,
    )
    try:
        with tempfile.TemporaryDirectory() as folder:
            fill(folder)
            run.client.log_model_artifacts(model.model_id, folder)
    except BaseException:
        run.client.finalize_logged_model(model.model_id, "FAILED")
        raise
    run.client.finalize_logged_model(model.model_id, "READY")
    return model.model_id


def log_exported_model(
    paths: Sequence[str | Path], name: str, run: TrackedRun | None = None, tags: Mapping[str, Any] | None = None
) -> str:
    """Log an exported network (state dict, architecture JSON, ``torch.export`` program, ...) as an MLflow logged
    model of ``run`` and return its id; the files are its artefacts, loadable with torch alone."""

    def fill(folder: str) -> None:
        for path in paths:
            shutil.copy2(path, Path(folder) / Path(path).name)

    return _logged_model(_resolve(run), name, "nasmeta-export", tags or {}, {}, fill)


def load_model(model_id: str) -> Any:
    """Rebuild a component logged with :func:`log_model` (only classes in :func:`registered_components`)."""
    uri = tracking_uri()
    client(uri)  # the database is created / repaired under its lock before the artefact lookup opens it
    with tempfile.TemporaryDirectory() as folder:
        local = mlflow.artifacts.download_artifacts(f"models:/{model_id}", dst_path=folder, tracking_uri=uri)
        info_file = Path(local, _COMPONENT_FILE)
        if not info_file.is_file():
            raise ValueError(f"model {model_id!r} was not logged by nasmeta.tracking.log_model")
        class_path = str(json.loads(info_file.read_text()).get("class"))
        if not _allowed(class_path):
            raise ValueError(
                f"model {model_id!r} names class {class_path[:200]!r}, which is not a registered component "
                f"({', '.join(registered_components())}); refusing to import it"
            )
        module_name, _, qualname = class_path.partition(":")
        cls: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            cls = getattr(cls, part)
        return cls.load(local)


# -- queries ------------------------------------------------------------------------------------------------------
def finished_runs(
    experiment: str, parent_run_id: str | None = None, filter_string: str = "", status: str = "FINISHED"
) -> list[Any]:
    """Runs of ``experiment`` with ``status`` (optionally the children of ``parent_run_id``), newest first.

    ``filter_string`` adds an MLflow search clause (``"tags.task = 'digits'"``).  A missing experiment has no
    runs.
    """
    mlflow_client = client()
    found = mlflow_client.get_experiment_by_name(experiment)
    if found is None:
        return []
    clauses = [f"attributes.status = '{status}'"]
    if parent_run_id:
        clauses.append(f"tags.mlflow.parentRunId = '{parent_run_id}'")
    if filter_string:
        clauses.append(filter_string)
    runs, token = [], None
    while True:
        page = mlflow_client.search_runs(
            [found.experiment_id], " and ".join(clauses), order_by=["attributes.start_time DESC"], page_token=token
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs
