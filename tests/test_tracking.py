"""MLflow tracking: nested runs with per-epoch metric histories, artefacts, failures, reporters, models.

One sqlite tracking database for the whole module (creating it takes a few seconds).
"""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from nasmeta import tracking
from nasmeta.reporting import Reporter


@pytest.fixture(scope="module")
def uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("mlflow")
    return tracking.configure(f"sqlite:///{folder / 'mlflow.db'}", artifact_root=str(folder / "artifacts"))


class Scaler:
    """A stand-in transfer component: one fitted number, saved as text."""

    def __init__(self, factor: float) -> None:
        self.factor = factor

    def save(self, folder: str) -> None:
        Path(folder, "factor.txt").write_text(repr(self.factor))

    @classmethod
    def load(cls, folder: str) -> Scaler:
        return cls(float(Path(folder, "factor.txt").read_text()))


def test_parent_with_child_runs_holds_epoch_histories_and_artifacts(uri: str, tmp_path: Path) -> None:
    from nasmeta.spaces import Architecture, get_space

    arch = get_space("nb201").parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|")
    with tracking.parent_run("collect-test", "flow-1", tags={"space": "nb201"}, params={"epochs": 3}) as parent:
        children = []
        for seed in (0, 1):
            params = {"task": "digits", "arch_id": arch.arch_id, "arch": str(arch), "seed": seed, "config": {"lr": 0.1}}
            with tracking.child_run(run_name=f"run-{seed}", tags={"task": "digits"}, params=params) as child:
                assert tracking.current_run() == child
                reporter = tracking.MlflowReporter()
                curve = []
                for epoch in (1, 2, 3):
                    row = {"epoch": epoch, "train_loss": 1.0 / epoch, "val_acc": 50.0 + epoch + seed}
                    reporter.report(epoch, **row)
                    curve.append(row)
                tracking.log_architecture(arch)
                tracking.log_learning_curve_png(curve)
                tracking.log_table("curve", curve)
                children.append(child.run_id)
        assert tracking.current_run() == parent
    assert tracking.current_run() is None

    client = tracking.client()
    assert client.get_run(parent.run_id).info.status == "FINISHED"
    assert client.get_run(parent.run_id).data.params == {"epochs": "3"}
    for seed, child_id in enumerate(children):
        run = client.get_run(child_id)
        assert run.data.tags["mlflow.parentRunId"] == parent.run_id and run.data.tags["task"] == "digits"
        assert json.loads(run.data.params["config"]) == {"lr": 0.1}
        history = client.get_metric_history(child_id, "val_acc")
        assert sorted((m.step, m.value) for m in history) == [(e, 50.0 + e + seed) for e in (1, 2, 3)]
        assert {a.path for a in client.list_artifacts(child_id)} == {
            "architecture.json",
            "learning_curve.png",
            "curve.json",
        }
        folder = client.download_artifacts(child_id, "", str(tmp_path / child_id))
        assert Path(folder, "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert Architecture.from_json(Path(folder, "architecture.json").read_text()) == arch
    finished = tracking.finished_runs("collect-test", parent_run_id=parent.run_id)
    assert sorted(r.info.run_id for r in finished) == sorted(children)
    assert len(tracking.finished_runs("collect-test", filter_string="tags.task = 'digits'")) == 2
    assert tracking.finished_runs("no-such-experiment") == []
    # artefacts live under the configured root, not in ./mlruns
    assert Path(uri.removeprefix("sqlite:///")).parent.joinpath("artifacts", "collect-test").is_dir()


def test_failure_marks_the_run_failed_and_reraises(uri: str) -> None:
    with tracking.parent_run("collect-test", "flow-2") as parent:
        with pytest.raises(FloatingPointError, match="loss is nan"):
            with tracking.child_run(run_name="diverged"):
                raise FloatingPointError("loss is nan")
        with tracking.child_run(run_name="handled") as handled:
            handled.fail("loss is inf at epoch 2")  # the trainer returns failed runs instead of raising
    client = tracking.client()
    failed = tracking.finished_runs("collect-test", parent_run_id=parent.run_id, status="FAILED")
    assert sorted(r.data.tags["error"] for r in failed) == ["FloatingPointError: loss is nan", "loss is inf at epoch 2"]
    assert client.get_run(handled.run_id).info.status == "FAILED"
    assert client.get_run(parent.run_id).info.status == "FINISHED"


def test_reporter_logs_steps_and_skips_text(uri: str) -> None:
    with tracking.parent_run("collect-test", "flow-3") as parent:
        reporter = parent.reporter(prefix="search/")
        assert isinstance(reporter, Reporter)
        reporter.report(5, loss=0.25, n=3, status="running")
        reporter.report(7, loss=0.125)
    run = tracking.client().get_run(parent.run_id)
    assert set(run.data.metrics) == {"search/loss", "search/n"}
    history = tracking.client().get_metric_history(parent.run_id, "search/loss")
    assert sorted((m.step, m.value) for m in history) == [(5, 0.25), (7, 0.125)]


def test_child_runs_from_worker_threads_find_their_parent(uri: str) -> None:
    def work(parent: tracking.TrackedRun, i: int) -> str:
        with tracking.child_run(parent, run_name=f"worker-{i}") as child:
            child.log_metrics({"val_acc": float(i)}, step=1)
            return child.run_id

    with tracking.parent_run("collect-test", "flow-4") as parent:
        with ThreadPoolExecutor(2) as pool:
            ids = list(pool.map(work, [parent] * 3, range(3)))
    assert sorted(r.info.run_id for r in tracking.finished_runs("collect-test", parent_run_id=parent.run_id)) == sorted(
        ids
    )


def test_component_logged_as_model_loads_back(uri: str) -> None:
    with tracking.parent_run("train-transfer-test", "fit") as run:
        tracking.register_component(Scaler)
        model_id = tracking.log_model(Scaler(2.5), "scaler", params={"holdout": "digits"})
    model = tracking.client().get_logged_model(model_id)
    assert model.source_run_id == run.run_id and model.tags["nasmeta.component"].endswith(":Scaler")
    assert tracking.load_model(model_id).factor == 2.5
    with tracking.parent_run("train-transfer-test", "bad"):
        with pytest.raises(ValueError, match="save"):
            tracking.log_model(object(), "nothing")


def test_bad_use_raises(uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="no MLflow run"):
        tracking.MlflowReporter()
    with pytest.raises(ValueError, match="no MLflow run"):
        tracking.log_architecture({"space": "nb201"})
    with pytest.raises(ValueError, match="file store"):
        tracking.configure("/tmp/mlruns")
    with pytest.raises(ValueError, match="empty"):
        tracking.learning_curve_figure([])
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////tmp/elsewhere.db")
    try:
        assert tracking.configure() == "sqlite:////tmp/elsewhere.db"
    finally:
        tracking.configure(uri)
    assert tracking.tracking_uri() == uri


def test_only_the_tracking_module_imports_mlflow() -> None:
    package = Path(tracking.__file__).parent
    importers = [
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if re.search(r"^\s*(import|from)\s+mlflow\b", path.read_text(), re.MULTILINE)
    ]
    assert importers == ["tracking.py"]
