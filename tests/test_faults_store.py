"""Issue 19, faults 2 and 3: a corrupt Parquet file does not block its table (reads skip and report it,
``store check`` lists it, ``--repair`` quarantines it), and store write errors are one clear error naming the path,
checked before any work."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

from metadata_store import MetadataStore

ROOT = Path(__file__).resolve().parents[1]


def _run(i: int) -> dict:
    return {"run_id": f"r{i}", "task_id": "t", "arch_id": f"a{i}", "seed": 0, "config_hash": "c", "status": "completed"}


@pytest.fixture
def damaged(tmp_path: Path) -> tuple[MetadataStore, list[Path]]:
    """A store with three good ``runs`` files, one truncated copy of a good file and one junk ``.parquet``."""
    store = MetadataStore(tmp_path / "store")
    for i in range(3):
        store.append("runs", [_run(i)])
    folder = tmp_path / "store" / "runs"
    good = sorted(folder.glob("*.parquet"))[0].read_bytes()
    truncated = folder / "99999999999999999998-truncated.parquet"
    truncated.write_bytes(good[: len(good) // 2])
    junk = folder / "99999999999999999999-junk.parquet"
    junk.write_bytes(b"this is not parquet\n" * 10)
    return store, [truncated, junk]


def test_reads_skip_and_report_unreadable_files(damaged) -> None:
    store, bad = damaged
    with pytest.warns(UserWarning) as caught:
        runs = store.read("runs")
    assert sorted(runs["run_id"].to_pylist()) == ["r0", "r1", "r2"]
    messages = " ".join(str(w.message) for w in caught)
    assert all(str(path) in messages for path in bad) and "store check --repair" in messages
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # reported once per file, not on every read
        assert store.has_completed("r1")
    summary = store.summary()
    assert summary["runs"]["completed"] == 3 and sorted(summary["unreadable_files"]) == sorted(map(str, bad))


def test_compact_merges_the_readable_files_and_keeps_the_bad_ones(damaged) -> None:
    store, bad = damaged
    with pytest.warns(UserWarning):
        report = store.compact("runs")
    assert report["runs"]["rows"] == 3
    assert all(path.is_file() for path in bad)  # never deleted: its rows were not read
    with pytest.warns(UserWarning):  # a new store object reports them again
        after = MetadataStore(store.root).read("runs", columns=["run_id"])
    assert sorted(after["run_id"].to_pylist()) == ["r0", "r1", "r2"]


def test_check_lists_and_repair_quarantines_without_deleting(damaged) -> None:
    store, bad = damaged
    contents = {path.name: path.read_bytes() for path in bad}
    found = store.check()
    assert sorted(e["path"] for e in found["runs"]) == sorted(map(str, bad)) and list(found) == ["runs"]
    repaired = MetadataStore(store.root).check(repair=True)
    for entry in repaired["runs"]:
        moved = Path(entry["moved_to"])
        assert moved.parent == Path(store.root) / "_quarantine" / "runs" and moved.read_bytes() == contents[moved.name]
    assert not any(path.exists() for path in bad)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fresh = MetadataStore(store.root)
        assert fresh.read("runs").num_rows == 3 and fresh.check() == {}


def test_cli_summary_survives_and_check_repairs(damaged) -> None:
    from flows.cli import app

    store, bad = damaged
    runner = CliRunner()
    with pytest.warns(UserWarning, match="unreadable"):
        summary = runner.invoke(app, ["store", "summary", "--store", str(store.root)])
    assert summary.exit_code == 0, summary.output
    listed = runner.invoke(app, ["store", "check", "--store", str(store.root)])
    assert listed.exit_code == 1 and all(path.name in listed.output for path in bad)
    repaired = runner.invoke(app, ["store", "check", "--repair", "--store", str(store.root)])
    assert repaired.exit_code == 0 and "_quarantine" in repaired.output
    clean = runner.invoke(app, ["store", "check", "--store", str(store.root)])
    assert clean.exit_code == 0 and "every data file is readable" in clean.output


# -- fault 3: write errors -------------------------------------------------------------------------------------------
def test_an_unwritable_store_fails_the_check_naming_the_path() -> None:
    from metadata_store import StoreWriteError

    store = MetadataStore("/proc/nasmeta-test-store")  # nobody, root included, can create anything in /proc
    with pytest.raises(StoreWriteError) as error:
        store.check_writable()
    assert "/proc/nasmeta-test-store" in str(error.value) and "\n" not in str(error.value)


def test_a_writable_store_passes_the_check(tmp_path: Path) -> None:
    store = MetadataStore(tmp_path / "new" / "store")
    store.check_writable()
    assert list((tmp_path / "new" / "store").iterdir()) == []  # the probe file is gone


def test_a_failing_write_is_one_error_naming_the_file(tmp_path: Path) -> None:
    """A real short write: the file-size limit (RLIMIT_FSIZE) makes the kernel refuse the bytes, as a full disk
    does; the error is a ``StoreWriteError`` (not retried by flows) naming the file, and no temporary is left."""
    root = tmp_path / "store"
    code = f"""
import resource, signal
import numpy as np
from metadata_store import MetadataStore, StoreWriteError
store = MetadataStore({str(root)!r})
store.check_writable()
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))
rng = np.random.default_rng(0)
rows = [{{"run_id": "r", "task_id": "t", "epoch": i, "val_acc": float(v)}} for i, v in enumerate(rng.random(20000))]
try:
    store.append("curves", rows)
except StoreWriteError as error:
    print("StoreWriteError:", error)
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    line = done.stdout.strip()
    assert line.startswith("StoreWriteError:") and str(root / "curves") in line and "\n" not in line
    assert "too large" in line.lower()
    assert not [p for p in (root / "curves").iterdir()]  # neither a partial file nor a temporary
    shutil.rmtree(root)
