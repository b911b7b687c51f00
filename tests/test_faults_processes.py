"""Issue 19, fault 5 (test harness): the suite leaves no process behind.  A session-end guard in conftest kills
whatever this session started that is still alive and fails the run; the collection crash test kills the whole
process group it started, so the temporary Prefect server (uvicorn) of the killed CLI does not survive it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_a_session_that_leaks_a_process_fails_and_the_process_is_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "orphan.pid"
    (tmp_path / "test_leak.py").write_text(
        "import subprocess\n"
        "def test_leaks():\n"
        f"    subprocess.run(['sh', '-c', 'sleep 300 >/dev/null 2>&1 & echo $! > {pid_file}'], check=True)\n"
    )
    (tmp_path / "conftest.py").write_text((ROOT / "tests" / "conftest.py").read_text())
    env = {k: v for k, v in os.environ.items() if k != "NASMETA_TEST_SESSION"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path / "test_leak.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    orphan = int(pid_file.read_text())
    try:
        time.sleep(0.2)
        assert not _alive(orphan), "the leaked process outlived the session"
        assert done.returncode == 1 and "left 1 process" in done.stdout, done.stdout[-2000:]
        assert "sleep 300" in done.stdout
    finally:
        if _alive(orphan):
            os.kill(orphan, 9)


def test_a_clean_session_passes(tmp_path: Path) -> None:
    (tmp_path / "test_clean.py").write_text(
        "import subprocess\ndef test_clean():\n    subprocess.run(['sleep', '0.1'], check=True)\n"
    )
    (tmp_path / "conftest.py").write_text((ROOT / "tests" / "conftest.py").read_text())
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path / "test_clean.py")],
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != "NASMETA_TEST_SESSION"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:]
