"""Issue 19, faults 1, 4, 5 and 8 (tracking side): the MLflow database survives concurrent creation and a
half-migrated schema, a dead server is reported at once, interrupted runs do not stay RUNNING, and loading a
logged component only rebuilds registered classes (Baker's SRMs are stored without pickle)."""

from __future__ import annotations

import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from nasmeta import tracking
from nasmeta.search.context import stop_context

ROOT = Path(__file__).resolve().parents[1]


def _python(code: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


# -- fault 1: concurrent creation and a half-migrated database ----------------------------------------------------
def test_processes_creating_a_fresh_database_at_once_all_succeed(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    n = 3
    # every process imports mlflow first and says so; they open the fresh database together once all are ready
    code = f"""
import time
from pathlib import Path
from nasmeta import tracking
from nasmeta.search.context import stop_context
tracking.configure({uri!r}, artifact_root={str(tmp_path / "art")!r})
import mlflow.store.tracking.sqlalchemy_store  # the slow imports, before the barrier
Path({str(tmp_path)!r}, f"ready-{{__import__('os').getpid()}}").touch()
deadline = time.time() + 120
while len(list(Path({str(tmp_path)!r}).glob("ready-*"))) < {n} and time.time() < deadline:
    time.sleep(0.01)
with tracking.parent_run("race") as run:
    run.log_metrics({{"x": 1.0}})
print(run.run_id)
"""
    procs = [_python(code) for _ in range(n)]
    outs = [p.communicate(timeout=180) for p in procs]
    for proc, (_, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err[-3000:]
    finished = tracking.client(uri).search_runs([tracking.experiment_id("race", uri)])
    assert sorted(r.info.run_id for r in finished) == sorted(out.strip() for out, _ in outs)
    assert {r.info.status for r in finished} == {"FINISHED"}


def test_a_half_migrated_database_is_repaired(tmp_path: Path) -> None:
    """The state an interrupted first migration leaves: an older schema revision plus ``_alembic_tmp_tags``."""
    import sqlite3

    from alembic import command
    from mlflow.store.db import utils as db_utils
    from mlflow.store.db.base_sql_model import Base  # noqa: F401  (the ORM tables, as MLflow imports them)
    from mlflow.store.db.db_types import SQLITE  # noqa: F401
    from mlflow.store.tracking.dbmodels.initial_models import Base as InitialBase

    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    engine = db_utils.create_sqlalchemy_engine(uri)
    InitialBase.metadata.create_all(engine)
    config = db_utils._get_alembic_config(uri)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "df50e92ffc5e")  # the revision before the batch migration of `tags`
    engine.dispose()
    with sqlite3.connect(db) as connection:
        connection.execute("CREATE TABLE _alembic_tmp_tags (key VARCHAR(250), value VARCHAR(8000))")

    proc = _python(
        f"""
from nasmeta import tracking
from nasmeta.search.context import stop_context
tracking.configure({uri!r}, artifact_root={str(tmp_path / "art")!r})
with tracking.parent_run("after-repair") as run:
    run.set_tags({{"k": "v"}})
print(run.run_id)
"""
    )
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err[-3000:]
    run = tracking.client(uri).get_run(out.strip())
    assert run.info.status == "FINISHED" and run.data.tags["k"] == "v"
    with sqlite3.connect(db) as connection:
        names = {r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert not any(n.startswith("_alembic_tmp_") for n in names)


# -- fault 4: a dead tracking server -------------------------------------------------------------------------------
def test_a_dead_server_is_one_clear_error_within_seconds() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    start = time.monotonic()
    with pytest.raises(tracking.TrackingUnavailableError) as error:
        tracking.check_tracking_uri(f"http://127.0.0.1:{port}", timeout=2.0)
    assert time.monotonic() - start < 3.0
    message = str(error.value)
    assert f"127.0.0.1:{port}" in message and "--no-track" in message and "\n" not in message


def test_a_live_server_and_a_writable_database_pass(tmp_path: Path) -> None:
    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        uri = f"http://127.0.0.1:{server.server_address[1]}"
        assert tracking.check_tracking_uri(uri, timeout=2.0) == uri
    finally:
        server.shutdown()
        server.server_close()
    assert tracking.check_tracking_uri(f"sqlite:///{tmp_path / 'new' / 'mlflow.db'}").endswith("mlflow.db")
    # a folder nobody can create (root included): /proc refuses new entries
    with pytest.raises(tracking.TrackingUnavailableError, match=r"/proc/nasmeta-test.*--no-track"):
        tracking.check_tracking_uri("sqlite:////proc/nasmeta-test/mlflow.db")


# -- fault 5: interrupted runs ---------------------------------------------------------------------------------------
_HOLD = """
import sys, time
from nasmeta import tracking
from nasmeta.search.context import stop_context
tracking.configure({uri!r}, artifact_root={art!r})
with tracking.parent_run("interrupted") as parent:
    with tracking.child_run(parent) as child:
        print(parent.run_id, child.run_id, flush=True)
        time.sleep(120)
"""


def _started(uri: str, tmp_path: Path) -> tuple[subprocess.Popen, list[str]]:
    proc = _python(_HOLD.format(uri=uri, art=str(tmp_path / "art")))
    line = proc.stdout.readline()
    assert line, proc.stderr.read()[-3000:]
    return proc, line.split()


def test_sigterm_ends_open_runs_killed(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc, ids = _started(uri, tmp_path)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    statuses = [tracking.client(uri).get_run(i).info.status for i in ids]
    assert statuses == ["KILLED", "KILLED"]


def test_runs_of_a_killed_process_are_marked_failed_by_the_next_start(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc, ids = _started(uri, tmp_path)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    raw = MlflowClient(tracking_uri=uri)  # not tracking.client(): its first use in a process reaps stale runs
    assert [raw.get_run(i).info.status for i in ids] == ["RUNNING", "RUNNING"]
    # a live process's run on the same database is left alone
    live, (live_parent, live_child) = _started(uri, tmp_path)
    try:
        nxt = _python(f"from nasmeta import tracking\ntracking.configure({uri!r})\ntracking.client()")
        _, err = nxt.communicate(timeout=120)
        assert nxt.returncode == 0, err[-3000:]
        runs = [raw.get_run(i) for i in ids]
        assert [r.info.status for r in runs] == ["FAILED", "FAILED"]
        assert all(f"process {proc.pid}" in r.data.tags["error"] for r in runs)
        assert raw.get_run(live_parent).info.status == "RUNNING"
    finally:
        live.kill()
        live.communicate(timeout=60)


# -- fault 8: unsafe loading ---------------------------------------------------------------------------------------
def test_load_model_refuses_an_unregistered_class(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    uri = tracking.configure(f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_root=str(tmp_path / "art"))
    marker = tmp_path / "imported"
    (tmp_path / "evil_component.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('side effect')\n"
        "class Thing:\n    @classmethod\n    def load(cls, folder):\n        return cls()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with tracking.parent_run("models") as run:
            model = run.client.create_logged_model(run.experiment_id, name="crafted", source_run_id=run.run_id)
            folder = tmp_path / "artefact"
            folder.mkdir()
            (folder / "nasmeta_component.json").write_text(json.dumps({"class": "evil_component:Thing"}))
            run.client.log_model_artifacts(model.model_id, str(folder))
            run.client.finalize_logged_model(model.model_id, "READY")
        with pytest.raises(ValueError, match="not a registered component"):
            tracking.load_model(model.model_id)
        assert not marker.exists() and "evil_component" not in sys.modules
        with tracking.parent_run("models"):
            with pytest.raises(ValueError, match="register_component"):
                tracking.log_model(_Unregistered(), "plain")
        assert "nasmeta.blackbox.baker:BakerStopper" in tracking.registered_components()
    finally:
        sys.modules.pop("evil_component", None)
        tracking.configure(uri)


class _Unregistered:
    def save(self, folder: str) -> None:
        Path(folder, "x").write_text("1")

    @classmethod
    def load(cls, folder: str) -> _Unregistered:
        return cls()


def test_baker_saves_without_pickle_and_predicts_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pickle

    import numpy as np

    from nasmeta.blackbox.baker import BakerStopper
    from nasmeta.evaluation.runs import runs_from_meta
    from nasmeta.evaluation.synthetic import synthetic_meta

    runs = runs_from_meta(synthetic_meta(n_tasks=2, n_runs=12, epochs=6, seed=1))
    baker = BakerStopper(min_epochs=3).fit(runs)
    folder = baker.save(tmp_path / "baker")
    assert not [p.name for p in folder.iterdir() if p.suffix in (".pkl", ".pickle", ".joblib")]

    def no_pickle(*args, **kwargs):
        raise AssertionError("pickle used to load a component")

    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(pickle, "loads", no_pickle)
    loaded = BakerStopper.load(folder)
    for r in runs[:6]:
        context = stop_context(epoch=1, max_epochs=6, arch=r.arch)
        for tau in (3, 4, 5):
            assert loaded.predictive(r.curve[:tau], context) == baker.predictive(r.curve[:tau], context)
    # the stored arrays reproduce scikit-learn's NuSVR pipeline
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import NuSVR

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 5)), rng.normal(size=40)
    pipeline = make_pipeline(StandardScaler(), NuSVR(kernel="rbf", gamma="scale", C=10.0, nu=0.5)).fit(X, y)
    from nasmeta.blackbox.baker import KernelSRM

    np.testing.assert_allclose(KernelSRM.from_pipeline(pipeline).predict(X), pipeline.predict(X), rtol=0, atol=1e-9)
