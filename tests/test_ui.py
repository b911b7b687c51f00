"""``nasmeta ui``: an MLflow server on the embedded tracking store that answers on 127.0.0.1 and nowhere else."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest
from typer.testing import CliRunner

NASMETA = str(Path(sys.executable).parent / "nasmeta")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _non_loopback_ipv4() -> str | None:
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family == socket.AF_INET and not address.address.startswith("127."):
                return address.address
    return None


def _listening(pid: int, port: int) -> list[str]:
    """Local addresses on which ``pid`` or any of its descendants listens on ``port``."""
    root = psutil.Process(pid)
    found = []
    for proc in [root, *root.children(recursive=True)]:
        try:
            connections = proc.net_connections(kind="inet")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        found += [c.laddr.ip for c in connections if c.status == psutil.CONN_LISTEN and c.laddr.port == port]
    return found


def _search_experiments(port: int) -> list[dict]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search",
        data=json.dumps({"max_results": 10}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["experiments"]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty NASMETA_HOME (and no MLFLOW_TRACKING_URI)."""
    home = tmp_path / "home"
    monkeypatch.setenv("NASMETA_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return home


@pytest.fixture
def tracked_home(home: Path) -> Path:
    """``home`` holding one experiment created through nasmeta.tracking."""
    from nasmeta import config, tracking

    # an explicit URI: the process-wide MLflow configuration of other tests stays as it is
    tracking.experiment_id("nasmeta-ui-check", uri=config.default_tracking_uri())
    return home


def test_ui_serves_the_embedded_store_on_loopback_only(tracked_home: Path) -> None:
    home = tracked_home
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["NASMETA_HOME"] = str(home)
    log = home / "ui.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [NASMETA, "ui", "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 240
        experiments = None
        while experiments is None:
            if proc.poll() is not None:
                pytest.fail(f"nasmeta ui exited ({proc.returncode}):\n{log.read_text()[-4000:]}")
            try:
                experiments = _search_experiments(port)
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    pytest.fail(f"nasmeta ui did not answer within 240 s:\n{log.read_text()[-4000:]}")
                time.sleep(0.5)
        assert "nasmeta-ui-check" in {e["name"] for e in experiments}
        assert f"http://127.0.0.1:{port}" in log.read_text()
        # the embedded store, not a new one in the server's working directory
        assert (home / "mlflow.db").is_file()

        addresses = _listening(proc.pid, port)
        assert addresses and set(addresses) == {"127.0.0.1"}, addresses
        other = _non_loopback_ipv4()
        if other is not None:
            with socket.socket() as probe, pytest.raises(OSError):
                probe.settimeout(5)
                probe.connect((other, port))
    finally:
        for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(timeout=wait)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # uvicorn workers left behind, if any
        except ProcessLookupError:
            pass


def test_ui_refuses_a_non_loopback_host_without_allow_remote(home: Path) -> None:
    from flows.cli import app

    result = CliRunner().invoke(app, ["ui", "--host", "0.0.0.0", "--port", str(_free_port())])
    assert result.exit_code == 2
    assert "not a loopback address" in result.output


def test_ui_allow_remote_warns_and_binds_where_asked(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.cli import app

    launched: list[list[str]] = []

    def fake_exec(path: str, argv: list[str], env: dict[str, str]) -> None:
        launched.append(argv)

    monkeypatch.setattr(os, "execve", fake_exec)
    port = _free_port()
    result = CliRunner().invoke(app, ["ui", "--host", "0.0.0.0", "--port", str(port), "--allow-remote"])
    assert result.exit_code == 0, result.output
    assert "WARNING" in result.output and "without authentication" in result.output
    (argv,) = launched
    assert argv[argv.index("--host") + 1] == "0.0.0.0"
    assert argv[argv.index("--port") + 1] == str(port)
    assert argv[argv.index("--backend-store-uri") + 1] == f"sqlite:///{home.resolve() / 'mlflow.db'}"
    assert argv[argv.index("--artifacts-destination") + 1] == str(home.resolve() / "mlartifacts")


def test_ui_rejects_a_port_in_use(home: Path) -> None:
    from flows.cli import app

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(app, ["ui", "--port", str(port)])
    assert result.exit_code == 2
    assert f"port {port}" in result.output


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.3.2.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.1.2.3", False),
        ("::", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    from flows.cli.ui import is_loopback

    assert is_loopback(host) is loopback
