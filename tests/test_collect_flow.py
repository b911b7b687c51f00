"""The metadata-collection flow: planning, failure handling, MLflow layout, crash safety and Dask parity."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from flows.collect import CollectParams, plan_architectures

TINY = {"epochs": 2, "size": {"C": 4, "N": 1}, "samples_per_class": 20, "landmarkers": False}
TRAIN = {"batch_size": 32, "lr": 0.05, "num_threads": 1}


def test_params_reject_bad_input_before_training(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown search space 'nope'"):
        CollectParams(space="nope")
    with pytest.raises(ValueError, match="unknown task 'no-such-task'"):
        CollectParams(tasks=["digits", "no-such-task"])
    with pytest.raises(ValueError, match="n_archs"):
        CollectParams(n_archs=0)
    with pytest.raises(ValueError, match="epochs"):
        CollectParams(train={"epochs": 0}).train_config()


def test_cli_rejects_a_store_root_that_is_a_file(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    root = tmp_path / "a-file"
    root.write_text("not a folder")
    result = CliRunner().invoke(app, ["collect", "--store", str(root), "--no-track"])
    assert result.exit_code == 2
    assert str(root) in result.output
    result = CliRunner().invoke(app, ["collect", "--archs", "0", "--store", str(tmp_path / "s")])
    assert result.exit_code == 2 and "n_archs" in result.output


def test_plan_is_seeded_and_distinct() -> None:
    first = plan_architectures("nb201", 20, seed=3)
    again = plan_architectures("nb201", 20, seed=3)
    assert [a.arch_id for a in first] == [a.arch_id for a in again]
    assert len({a.arch_id for a in first}) == 20
    assert [a.arch_id for a in plan_architectures("nb201", 20, seed=4)] != [a.arch_id for a in first]


def test_flow_records_failures_and_tracks_runs(prefect_harness, tmp_path: Path) -> None:
    """A task that cannot load yields failed runs with their reason; the good task's runs complete; MLflow gets
    one parent run and one child run per training run with the per-epoch history."""
    from mlflow import MlflowClient

    from flows.collect import collect_metadata
    from metadata_store import MetadataStore
    from nasmeta import tracking
    from nasmeta.data.tasks import TaskSpec, register_task

    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"this is not an npz file")
    register_task("corrupt-test-task", TaskSpec(name="corrupt-test-task", source=f"npz:{corrupt}"), overwrite=True)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    try:
        summary = collect_metadata(
            tasks=["digits-0to4", "corrupt-test-task"],
            n_archs=2,
            store=str(tmp_path / "store"),
            train=TRAIN,
            **{**TINY, "landmarkers": True, "landmarker_seeds": [0]},
        )
    finally:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    assert summary["planned"] == 4 and summary["trained"] == 4
    assert summary["completed"] == 2 and summary["failed"] == 2
    assert len(summary["landmarker_failures"]) == 1
    store = MetadataStore(tmp_path / "store")
    runs = store.read("runs").to_pylist()
    failed = [r for r in runs if r["status"] == "failed"]
    assert len(failed) == 2 and all("corrupt.npz" in r["error"] for r in failed)  # the reason names the file
    assert {r["task_id"] for r in failed} == {summary["task_ids"]["corrupt-test-task"]}
    good = [r for r in runs if r["status"] == "completed"]
    curves = store.read("curves", run_id=[r["run_id"] for r in good])
    assert curves.num_rows == 2 * TINY["epochs"]
    assert store.read("landmarkers", task_id=summary["task_ids"]["digits-0to4"]).num_rows > 5

    client = MlflowClient(uri)
    parent = client.get_run(summary["mlflow_run_id"])
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert len(children) == 4
    assert sorted(c.info.status for c in children) == ["FAILED", "FAILED", "FINISHED", "FINISHED"]
    child_ids = {r["mlflow_run_id"] for r in runs}
    assert child_ids == {c.info.run_id for c in children}
    finished = next(c for c in children if c.info.status == "FINISHED")
    history = client.get_metric_history(finished.info.run_id, "val_acc")
    assert [m.step for m in sorted(history, key=lambda m: m.step)] == [1, 2]
    assert tracking is not None


def _collect_cmd(store: Path, runner: str = "threads") -> list[str]:
    return [
        sys.executable,
        "-m",
        "flows",
        "collect",
        "--tasks",
        "digits-0to4,digits-5to9",
        "--archs",
        "3",
        "--epochs",
        "2",
        "--size",
        "C=4",
        "--size",
        "N=1",
        "--train",
        '{"batch_size": 32, "lr": 0.05, "num_threads": 1}',
        "--samples-per-class",
        "20",
        "--no-landmarkers",
        "--no-track",
        "--store",
        str(store),
        "--task-runner",
        runner,
        "--workers",
        "2" if runner == "dask" else "1",
    ]


def _env() -> dict[str, str]:
    return {**os.environ, "PREFECT_LOGGING_LEVEL": "ERROR", "PYTHONUNBUFFERED": "1"}


def test_crash_and_rerun_completes_every_run_exactly_once(tmp_path: Path) -> None:
    """SIGKILL a real collection process mid-run, rerun the same command: every planned run completed once."""
    import json

    from metadata_store import MetadataStore

    store_root = tmp_path / "store"
    # its own process group: the collection starts a temporary Prefect server (uvicorn) as a child, which a
    # SIGKILL of the collection alone would leave running with parent 1
    proc = subprocess.Popen(
        _collect_cmd(store_root),
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 240
    runs_dir = store_root / "runs"
    while time.monotonic() < deadline and proc.poll() is None:
        if runs_dir.is_dir() and any(p.suffix == ".parquet" for p in runs_dir.iterdir()):
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the collection finished before it could be killed: " + proc.stdout.read().decode()
    os.killpg(proc.pid, signal.SIGKILL)  # the collection and everything it started, as a crash or OOM kill would
    proc.wait()
    done_before = len(MetadataStore(store_root).completed_run_ids())
    assert 1 <= done_before < 6

    rerun = subprocess.run(_collect_cmd(store_root), env=_env(), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    summary = json.loads(rerun.stdout[rerun.stdout.index("{") :])
    assert summary["planned"] == 6
    assert summary["skipped"] == done_before and summary["trained"] == 6 - done_before

    store = MetadataStore(store_root)
    for table in ("runs", "curves", "architectures"):
        for path in store.files(table):
            pq.read_table(path)  # every file readable
    raw = store.read("runs", dedup=False).to_pylist()
    completed = [r["run_id"] for r in raw if r["status"] == "completed"]
    assert len(completed) == len(set(completed)) == 6
    curves = store.read("curves").to_pylist()
    keys = [(c["run_id"], c["epoch"]) for c in curves]
    assert len(keys) == len(set(keys)) == 12


def test_dask_runner_gives_the_same_results_as_threads(tmp_path: Path) -> None:
    """A 2-worker local Dask cluster runs the same small collection with identical stored results."""
    from metadata_store import MetadataStore

    outcomes = {}
    for runner in ("threads", "dask"):
        root = tmp_path / runner
        result = subprocess.run(_collect_cmd(root, runner), env=_env(), capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-2000:]
        rows = MetadataStore(root).read("runs").to_pylist()
        outcomes[runner] = sorted((r["run_id"], r["status"], r["final_val_acc"], r["final_test_acc"]) for r in rows)
    assert len(outcomes["threads"]) == 6
    assert outcomes["threads"] == outcomes["dask"]
