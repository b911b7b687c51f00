"""The LODO flow (Prefect + MLflow + the store's ``searches`` table) and the ``nasmeta lodo`` command, on a tiny
synthetic metadata store."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.lodo import LodoParameters, lodo_evaluation
from metadata_store import MetadataStore
from nasmeta import tracking
from nasmeta.evaluation.lodo import replay_lodo

N_TASKS, N_RUNS, EPOCHS = 3, 12, 8
FAST_LCR = {"steps": 30, "batch_size": 16, "adapt_steps": 5}


@pytest.fixture(scope="module")
def store_root(tmp_path_factory):
    from nasmeta.evaluation.synthetic import synthetic_tables

    root = tmp_path_factory.mktemp("lodo_store")
    store = MetadataStore(root)
    for name, rows in synthetic_tables(n_tasks=N_TASKS, n_runs=N_RUNS, epochs=EPOCHS, seed=1).items():
        store.append(name, rows)
    store.append("tasks", [{"task_id": "empty", "name": "empty", "source": "synthetic"}])  # no runs: skipped
    return str(root)


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lodo_mlflow")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    yield uri
    tracking.configure()  # later tests get the session default back


@pytest.fixture(scope="module")
def flow_results(prefect_harness, store_root, tracking_uri, tmp_path_factory):
    out = tmp_path_factory.mktemp("lodo_out")
    results = lodo_evaluation(
        store=store_root,
        methods=["none", "sh", "lcranknet"],
        seeds=2,
        method_params={"lcranknet": FAST_LCR},
        out=str(out),
        experiment="lodo-test",
        tracking_uri=tracking_uri,
    )
    return results, out


def test_flow_runs_every_fold_and_writes_the_tables(flow_results, store_root):
    results, out = flow_results
    assert len(results) == N_TASKS * 3 * 2
    assert sorted(results["task_id"].unique()) == [f"syn-{k}" for k in range(N_TASKS)]
    assert (results[results["method"] == "none"]["regret_val"] == 0.0).all()
    for name in ("lodo.md", "lodo_runs.csv", "lodo_summary.csv", "lodo_regret_vs_cost.png"):
        assert (out / name).is_file()
    assert "| lcranknet |" in (out / "lodo.md").read_text()
    # a fold of the flow computes exactly what the library's replay_lodo does
    tasks = [f"syn-{k}" for k in range(N_TASKS)]
    direct = replay_lodo(MetadataStore(store_root).meta(), ["none", "sh"], seeds=[0, 1], tasks=tasks)
    columns = ["task_id", "method", "seed", "regret_val", "seconds", "epochs", "picked_run_id"]
    flow_part = results[results["method"].isin(["none", "sh"])][columns]
    pd.testing.assert_frame_equal(
        flow_part.sort_values(columns[:3]).reset_index(drop=True),
        direct[columns].sort_values(columns[:3]).reset_index(drop=True),
    )


def test_flow_logs_a_parent_run_with_one_child_run_per_fold(flow_results, tracking_uri):
    results, _ = flow_results
    client = tracking.client(tracking_uri)
    experiment = client.get_experiment_by_name("lodo-test")
    all_runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in all_runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert {"regret/none", "hours/sh", "regret/lcranknet"} <= set(parent.data.metrics)
    folds = [r for r in all_runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(folds) == N_TASKS
    assert sorted(r.data.tags["lodo_fold"] for r in folds) == [f"syn-{k}" for k in range(N_TASKS)]
    for fold in folds:
        assert fold.data.tags["task"] == fold.data.tags["lodo_fold"]
        methods = [r for r in all_runs if r.data.tags.get("mlflow.parentRunId") == fold.info.run_id]
        assert sorted(r.data.tags["method"] for r in methods) == ["lcranknet", "none", "sh"]
        for run in methods:
            assert {"regret", "hours", "regret_mean", "hours_mean"} <= set(run.data.metrics)
            assert run.data.tags["lodo_fold"] == fold.data.tags["lodo_fold"]
            mine = results[
                (results["task_id"] == run.data.tags["task"]) & (results["method"] == run.data.tags["method"])
            ]
            assert run.data.metrics["regret_mean"] == pytest.approx(mine["regret_val"].mean())
    # the fitted LCRankNet of each fold is an MLflow logged model that loads back
    models = client.search_logged_models([experiment.experiment_id])
    assert len(models) == N_TASKS
    tracking.configure(tracking_uri)
    loaded = tracking.load_model(models[0].model_id)
    assert type(loaded).__name__ == "LCRankNet" and loaded.model is not None


def test_flow_writes_searches_rows(flow_results, store_root):
    results, _ = flow_results
    searches = MetadataStore(store_root).read("searches").to_pandas()
    assert len(searches) == len(results)
    assert set(searches["lodo_fold"]) == set(results["task_id"])
    assert set(searches["mlflow_run_id"]) == set(results["mlflow_run_id"])
    row = searches[(searches["method"] == "none")].iloc[0]
    budget = json.loads(row["budget"])
    assert budget["protocol"] == "replay" and sorted(budget["sources"]) != []
    assert row["task_id"] not in budget["sources"]
    mine = results[(results["method"] == "none") & (results["task_id"] == row["task_id"])]
    assert row["cost_seconds"] == pytest.approx(mine["seconds"].iloc[0])
    assert row["n_evaluations"] == N_RUNS


def test_flow_rejects_bad_parameters(prefect_harness, store_root):
    with pytest.raises(ValueError, match="unknown method 'nope'"):
        lodo_evaluation(store=store_root, methods=["nope"])
    with pytest.raises(ValueError, match="unknown task"):
        lodo_evaluation(store=store_root, methods=["none"], tasks=["no-such-task"])
    with pytest.raises(ValueError, match="seeds"):
        LodoParameters(store=store_root, methods=["none"], seeds=0)
    with pytest.raises(ValueError, match="not in methods"):
        LodoParameters(store=store_root, methods=["none"], method_params={"sh": {"eta": 3}})
    with pytest.raises(ValueError, match="distinct"):
        LodoParameters(store=store_root, methods=["none", "none"])


def test_cli_replay_prints_the_table_and_writes_files(store_root, tmp_path):
    out = tmp_path / "cli"
    result = CliRunner().invoke(
        app,
        [
            "lodo",
            "--methods",
            "lcranknet,sh,none",
            "--store",
            store_root,
            "--seeds",
            "2",
            "--out",
            str(out),
            "--param",
            "lcranknet.steps=20",
            "--param",
            "lcranknet.batch_size=16",
            "--param",
            "lcranknet.adapt_steps=5",
        ],
    )
    assert result.exit_code == 0, result.output
    for word in ("lcranknet", "sh", "none", "syn-0", "mean", "speed-up"):
        assert word in result.output
    assert "skipping task(s) without completed runs: empty" in result.output
    frame = pd.read_csv(out / "lodo_runs.csv")
    assert len(frame) == N_TASKS * 3 * 2
    assert (out / "lodo.md").is_file() and (out / "lodo_regret_vs_cost.png").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--methods", "tapas,random"], "add --space nb201"),
        (["--methods", "none,bogus"], "unknown method 'bogus'"),
        (["--methods", "none,none"], "twice"),
        (["--space", "darts"], "only 'nb201'"),
        (["--space", "nb201", "--methods", "tapas,lcranknet"], "exactly the methods tapas,random"),
        (["--methods", "lcranknet", "--param", "delta=0.3"], "must name its method"),
        (["--methods", "lcranknet", "--param", "sh.eta=3"], "not in --methods"),
        (["--methods", "none", "--tasks", "nope"], "unknown task"),
    ],
)
def test_cli_bad_input_exits_with_a_message(store_root, tmp_path, args, message):
    store = [] if "--space" in args else ["--store", store_root]  # --store does not apply to the NB201 LODO
    result = CliRunner().invoke(app, ["lodo", "--out", str(tmp_path), *store, *args])
    assert result.exit_code == 2
    assert message in result.output


def test_cli_tapas_nb201_branch_runs_on_the_table(data_dir, tmp_path):
    args = ["lodo", "--methods", "tapas,random", "--space", "nb201", "--seeds", "1", "--tasks", "cifar10"]
    tiny = ["k=2", "n_train=20", "n_predictions=20", "population_size=5", "sample_size=2", "tau_archs=50"]
    tiny.append("tapas.epochs=1")
    params = [item for p in tiny for item in ("--param", p)]
    result = CliRunner().invoke(app, [*args, *params, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "Kendall" in result.output and "cifar10" in result.output
    summary = pd.read_csv(tmp_path / "tapas_nb201_summary.csv")
    assert summary["held_out"].tolist() == ["cifar10"] and summary["k"].tolist() == [2]
    assert -1.0 <= summary["kendall_tau"].iloc[0] <= 1.0


def test_flow_records_a_failing_method_and_resumes(prefect_harness, tmp_path, tracking_uri):
    from nasmeta.evaluation.lodo import read_rows
    from nasmeta.evaluation.methods import register_method
    from nasmeta.evaluation.synthetic import synthetic_tables

    @register_method("fails-without-syn-0")
    def _fails(train=None, **params):
        if "syn-0" not in train.task_ids:
            raise RuntimeError("syn-0 is held out")
        from nasmeta.blackbox.stopping import NoTermination

        return NoTermination()

    root = tmp_path / "store"
    store = MetadataStore(root)
    for name, rows in synthetic_tables(n_tasks=N_TASKS, n_runs=N_RUNS, epochs=EPOCHS, seed=1).items():
        store.append(name, rows)
    out = tmp_path / "out"
    common = {"store": str(root), "seeds": 2, "experiment": "lodo-fail", "tracking_uri": tracking_uri, "out": str(out)}
    results = lodo_evaluation(methods=["none", "fails-without-syn-0"], **common)
    failed = results[results["status"] == "failed"]
    assert len(results) == N_TASKS * 2 * 2 and len(failed) == 2
    assert set(failed["task_id"]) == {"syn-0"} and set(failed["error"]) == {"RuntimeError: syn-0 is held out"}
    # its MLflow run ends FAILED with the reason; the fold and the other method finish
    client = tracking.client(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("lodo-fail").experiment_id], max_results=100)
    by_name = {r.info.run_name: r for r in runs}
    assert by_name["fails-without-syn-0 on syn-0"].info.status == "FAILED"
    assert "syn-0 is held out" in by_name["fails-without-syn-0 on syn-0"].data.tags["error"]
    assert by_name["none on syn-0"].info.status == "FINISHED" and by_name["fold syn-0"].info.status == "FINISHED"
    # only completed rows become searches
    searches = MetadataStore(root).read("searches").to_pandas()
    assert len(searches) == len(results) - 2
    # the streamed CSV holds every row; resuming from it recomputes only the failed keys
    streamed = read_rows(out / "lodo_runs.csv")
    assert len(streamed) == len(results)
    again = lodo_evaluation(methods=["none", "fails-without-syn-0"], resume=str(out / "lodo_runs.csv"), **common)
    assert len(again) == len(results)
    assert again["mlflow_run_id"].notna().sum() == 2  # only the two retried rows ran (and failed) in this flow run
