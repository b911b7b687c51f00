"""The search flow on the one registry and the one loop: live schedulers composed with searchers on real training
(MLflow shows the stopped and promoted trials), the main job at the micro budget on every space family, and a
method registered from a module of the user's."""

from __future__ import annotations

import shutil
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from nasmeta import tracking

FIXTURE = Path(__file__).parent / "fixtures" / "digits_collection"
LIVE = ["blackbox-re+hyperband", "blackbox-rs+asha", "transfer-lcranknet"]


@pytest.fixture(scope="module")
def fixture_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("search_store") / "store"
    shutil.copytree(FIXTURE, root)
    return str(root)


@pytest.fixture(scope="module")
def live_search(prefect_harness, fixture_store, tmp_path_factory):
    folder = tmp_path_factory.mktemp("search_mlflow")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    tracking.configure(uri)
    args = ["search", "target", "--task", "digits-5to9", "--budget", "micro", "--methods", ",".join(LIVE)]
    args += ["--set", "evaluations=5", "--set", "eval_epochs=4", "--store", fixture_store, "--json"]
    result = CliRunner().invoke(app, args, env={"MLFLOW_TRACKING_URI": uri})
    yield result, uri
    tracking.configure()


def test_live_schedulers_run_on_real_training_and_mlflow_shows_stopped_and_promoted_trials(live_search):
    import json

    result, uri = live_search
    assert result.exit_code == 0, result.output
    outcome = json.loads(result.stdout)  # --json: the outcome alone on stdout
    rows = {r["method"]: r for r in outcome["table"]}
    assert set(rows) == set(LIVE) and all(r["status"] == "completed" for r in rows.values()), rows
    # Hyperband with R = 4 epochs, eta = 3, 5 trials: bracket s=1 starts 3 for 1 epoch, promotes 1 to 4 epochs
    assert rows["blackbox-re+hyperband"]["n_promotions"] == 1 and rows["blackbox-re+hyperband"]["n_stopped"] == 2
    assert rows["blackbox-rs+asha"]["n_promotions"] >= 1 and rows["blackbox-rs+asha"]["n_stopped"] >= 1

    client = tracking.client(uri)
    experiment = client.get_experiment_by_name("nasmeta-search")
    runs = client.search_runs([experiment.experiment_id], max_results=500)
    method_runs = {r.data.tags.get("method"): r for r in runs if r.data.tags.get("method") in LIVE}
    hyperband = method_runs["blackbox-re+hyperband"]
    assert hyperband.data.metrics["n_promotions"] == 1 and hyperband.data.metrics["trials_paused"] == 3
    trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == hyperband.info.run_id]
    statuses = sorted(r.data.tags["status"] for r in trials)
    assert statuses == ["completed"] * 3 + ["stopped"] * 2
    promoted = [r for r in trials if r.data.tags["promotions"] == "1"]
    assert len(promoted) == 1 and promoted[0].data.tags["epochs"] == "4"
    history = client.get_metric_history(promoted[0].info.run_id, "val_acc")
    assert [m.step for m in history] == [1, 2, 3, 4]  # paused after epoch 1, resumed to 4: one curve


@pytest.mark.parametrize("space", ["darts", "macro"])
def test_the_main_job_completes_at_the_micro_budget_on_every_space(prefect_harness, tmp_path, space, monkeypatch):
    from flows.pipeline import pipeline
    from nasmeta.search.registry import default_methods

    track = space == "darts"  # one of them tracked: its Prefect artifact and MLflow tags are checked below
    if track:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
        tracking.configure()
    summary = pipeline(budget="micro", space=space, store=str(tmp_path / "store"), track=track)
    if track:
        _check_prefect_artifact_and_mlflow_tags(summary, space)
        monkeypatch.delenv("MLFLOW_TRACKING_URI")
        tracking.configure()
    table = {r["method"]: r for r in summary["table"]}
    assert list(table) == default_methods(space)
    done = [m for m, r in table.items() if r["status"] == "completed"]
    assert done, table
    for row in table.values():  # a failed method says why
        assert row["status"] == "completed" or row["error"]
    assert summary["retrained"]["status"] == "completed" and Path(summary["retrained"]["export"]).is_file()
    assert summary["collect"]["completed"] == summary["collect"]["planned"] == 4 * 2
    if space == "darts":
        assert "transfer-tapas" not in table and "tapas" not in summary["transfer"]  # TAPAS costs need nb201/macro


def _check_prefect_artifact_and_mlflow_tags(summary: dict, space: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    key = summary["artifact"]
    assert key and key.startswith("comparison-")
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    markdown = artifacts[0].data
    for row in summary["table"]:
        assert f"| {row['method']} |" in markdown
    assert summary["mlflow_run_id"] in markdown

    client = tracking.client()
    parent = client.get_run(summary["mlflow_run_id"])
    tags = parent.data.tags
    assert tags["space"] == space and tags["budget"] == "micro"
    assert tags["methods"] == ",".join(r["method"] for r in summary["table"])
    assert len(tags["mlflow.source.git.commit"]) == 40 and tags["prefect.flow_run_id"]
    assert parent.info.run_name.startswith("search/meta-digits-noisy-s30/")  # micro: 30 images per class
    experiment = client.get_experiment(parent.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"  # the classic training view
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    retrain = next(r for r in children if r.data.tags.get("stage") == "retrain")
    assert len(client.get_metric_history(retrain.info.run_id, "retrain_val_acc")) == 2  # micro: 2 epochs
    models = client.search_logged_models([parent.info.experiment_id])
    assert any(m.source_run_id == retrain.info.run_id and m.model_type == "nasmeta-export" for m in models)


def test_a_method_from_a_user_module_runs_through_search_target(prefect_harness, tmp_path, monkeypatch):
    from nasmeta.search import registry

    module = tmp_path / "my_nas_method.py"
    module.write_text(
        textwrap.dedent(
            '''
            from nasmeta.search.registry import search_method


            @search_method("custom-first-sample", family="black-box", default=False)
            def first_sample(ctx):
                """Trains the first random sample only."""
                from nasmeta.blackbox import random_search

                return random_search(ctx.space_obj, ctx.evaluator(), 1, seed=ctx.seed)
            '''
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(registry.PLUGINS_VAR, "my_nas_method")
    monkeypatch.setattr(registry, "_loaded", False)
    try:
        args = ["search", "target", "--budget", "micro", "--methods", "custom-first-sample", "--no-track"]
        result = CliRunner().invoke(app, [*args, "--store", str(tmp_path / "store"), "--json"])
        assert result.exit_code == 0, result.output
        import json

        (row,) = json.loads(result.stdout)["table"]
        assert row["method"] == "custom-first-sample" and row["status"] == "completed" and row["n_evaluations"] == 1
        # a module that cannot be imported is one clear error
        monkeypatch.setenv(registry.PLUGINS_VAR, "no_such_module_here")
        monkeypatch.setattr(registry, "_loaded", False)
        bad = CliRunner().invoke(app, ["search", "target", "--methods", "zeroshot", "--no-track"])
        assert bad.exit_code == 2 and "NASMETA_PLUGINS names module 'no_such_module_here'" in bad.output
    finally:
        registry._METHODS.pop("custom-first-sample", None)
        sys.modules.pop("my_nas_method", None)
        monkeypatch.setattr(registry, "_loaded", False)


def test_search_methods_run_leave_one_dataset_out_through_the_registry(fixture_store):
    from metadata_store import MetadataStore
    from nasmeta.evaluation.search_lodo import search_lodo

    meta = MetadataStore(fixture_store).meta()
    names = {r["task_id"]: r["name"] for r in meta.tasks.to_pylist()}
    target = next(t for t in meta.task_ids if names.get(t) == "digits-5to9")
    rows = search_lodo(
        meta, ["blackbox-rs", "transfer-tapas"], budget={"preset": "micro", "evaluations": 2}, tasks=[target], seeds=[0]
    )
    assert [(r["method"], r["status"]) for r in rows] == [("blackbox-rs", "completed"), ("transfer-tapas", "completed")]
    for row in rows:
        assert row["task_id"] == target and row["n_evaluations"] == 2
        assert row["regret_test"] == pytest.approx(row["oracle_test_acc"] - row["best_test_acc"])
    with pytest.raises(ValueError, match="unknown search method"):
        search_lodo(meta, ["blackbox-rz"], tasks=[target])


def test_tnas_runs_as_a_search_method_from_a_saved_meta_architecture(prefect_harness, tmp_path):
    import json

    from nasmeta.transfer.tnas import TNAS, TNASConfig

    # the plumbing, not the meta-learning: an un-meta-trained model (iterations=0) of the target's shape
    model = TNAS(TNASConfig(ways=5, shots=1, queries=2, input_shape=(1, 8, 8), C=4, iterations=0, test_steps=1))
    folder = model.save(tmp_path / "tnas")
    args = ["search", "target", "--budget", "micro", "--methods", "transfer-tnas", "--no-track", "--json"]
    result = CliRunner().invoke(app, [*args, "--component", f"tnas={folder}", "--store", str(tmp_path / "store")])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)["table"]
    assert row["status"] == "completed" and row["n_evaluations"] == 1 and row["arch"].startswith("|")
    missing = CliRunner().invoke(app, ["search", "target", "--methods", "transfer-tnas", "--no-track", "--json"])
    assert missing.exit_code == 1 and "needs a meta-trained T-NAS model" in missing.output  # the run failed, why


def test_one_shot_strategies_read_from_source_equal_the_imported_registry():
    from nasmeta.oneshot.api import strategy_names
    from nasmeta.search.registry import methods

    names = sorted(
        ["darts", "enas", "gdas", "pcdarts", "proxyless", "random", "fairdarts", "pdarts", "darts-plus",
         "robust-darts", "darts-ada", "asap", "darts-pt", "darts-pt-fixed"]
    )  # fmt: skip
    assert strategy_names(imported=False) == strategy_names() == names
    assert {n for n in methods() if n.startswith("oneshot-")} == {f"oneshot-{s}" for s in strategy_names()}


def test_the_main_job_learns_from_the_shipped_collection_without_collecting(prefect_harness, tmp_path):
    """NB201: the shipped collection is imported (nothing trained), its tasks but the target are the sources, the
    target (``meta-digits-noisy``, from scikit-learn's digits) is held out, every default method runs."""
    from flows.pipeline import pipeline
    from metadata_store import MetadataStore
    from metadata_store.snapshots import snapshot_path
    from nasmeta.data.tasks import get_task
    from nasmeta.search.registry import default_methods

    shipped = MetadataStore(snapshot_path("nasmeta-meta-v1")).read("runs", columns=["run_id"]).num_rows
    store = str(tmp_path / "store")
    summary = pipeline(budget="micro", store=store, track=False)
    assert (
        summary["target"] == "meta-digits-noisy" and summary["target_task_id"] == get_task("meta-digits-noisy").task_id
    )
    assert summary["collect"]["collection"] == "nasmeta-meta-v1" and summary["collect"]["trained"] == 0
    assert summary["collect"]["planned"] == shipped and len(summary["sources"]) == 11
    assert "meta-digits-noisy" not in summary["sources"]
    table = {r["method"]: r for r in summary["table"]}
    assert list(table) == default_methods("nb201") and "portfolio" in table
    assert table["portfolio"]["status"] == "completed", table["portfolio"]
    assert all(status == "completed" for status in summary["transfer"].values()), summary["transfer_failures"]
    files = len(MetadataStore(store).files("runs"))
    from flows.pipeline import _import_metadata

    assert _import_metadata("nasmeta-meta-v1", store)["planned"] == shipped  # a second import writes nothing
    assert len(MetadataStore(store).files("runs")) == files
