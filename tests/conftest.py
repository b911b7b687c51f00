"""Shared fixtures: an isolated NASMETA_HOME, the data folder (skip when unset), one Prefect harness."""

from __future__ import annotations

import os
import signal
import sys
import uuid
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")

# Every process this session starts inherits the mark, so the session can find what it leaves behind
_MARK = "NASMETA_TEST_SESSION"
os.environ[_MARK] = f"{os.getpid()}-{uuid.uuid4().hex}"

import torch  # noqa: E402

# Tests use tiny networks, for which intra-op threads only add synchronisation: measured 30x slower per forward
# pass with 2 threads on a busy 2-core machine.  Subprocesses the tests start keep their own setting.
torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def nasmeta_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every test session writes its store, MLflow database and artefacts under a fresh folder."""
    home = tmp_path_factory.mktemp("nasmeta_home")
    old = {k: os.environ.get(k) for k in ("NASMETA_HOME", "MLFLOW_TRACKING_URI")}
    os.environ["NASMETA_HOME"] = str(home)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    yield home
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real data folder (``NASMETA_DATA_DIR``); tests that need it skip cleanly when it is unset."""
    value = os.environ.get("NASMETA_DATA_DIR")
    if not value or not Path(value).is_dir():
        pytest.skip("NASMETA_DATA_DIR is not set (real data tests skipped)")
    return Path(value)


@pytest.fixture(scope="session")
def prefect_harness():
    """One ephemeral Prefect API for the whole session (it takes 10-20 s to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def _marked_processes() -> list[tuple[int, int, str]]:
    """(pid, parent pid, command line) of live processes carrying this session's mark, except this one."""
    mark = f"{_MARK}={os.environ[_MARK]}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if mark not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] == "Z":  # a zombie has already exited
            continue
        found.append((int(entry.name), int(fields[1]), cmdline))
    return found


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Guard: the suite must leave no process behind (issue 19).  A temporary Prefect server this process
    started is stopped first (prefect would stop it at exit); anything else still alive with this session's mark
    (an orphaned uvicorn, a worker, a CLI a test started) is killed and fails the session."""
    if not Path("/proc/self/environ").exists():
        return
    server_module = sys.modules.get("prefect.server.api.server")
    if server_module is not None:
        for server in list(getattr(server_module.SubprocessASGIServer, "_instances", {}).values()):
            server.stop()
    benign = ("multiprocessing.resource_tracker", "multiprocessing.forkserver", "from multiprocessing")
    left = [
        (pid, ppid, cmd)
        for pid, ppid, cmd in _marked_processes()
        if not (ppid == os.getpid() and any(b in cmd for b in benign))  # they end with this process
    ]
    if not left:
        return
    for pid, _, _ in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    lines = "\n".join(f"  pid {pid} (parent {ppid}): {cmd[:200]}" for pid, ppid, cmd in left)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    message = f"the test session left {len(left)} process(es) running (now killed):\n{lines}"
    if reporter is not None:
        reporter.write_line(message, red=True)
    else:
        print(message, file=sys.stderr)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
