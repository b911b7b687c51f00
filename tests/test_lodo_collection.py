"""The lodo_collection flow end to end on a small synthetic store: the three parts, their files, MLflow runs."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from metadata_store import MetadataStore
from nasmeta.evaluation.synthetic import synthetic_tables


def _store(root: Path) -> str:
    tables = synthetic_tables(3, 12, 8, seed=5)
    tables["landmarkers"] = [
        {"task_id": t["task_id"], "name": "dcn", "value": 55.0 + 10 * i} for i, t in enumerate(tables["tasks"])
    ]
    store = MetadataStore(root)
    for name, rows in tables.items():
        store.append(name, rows)
    return str(root)


def test_lodo_collection_writes_every_table_with_intervals_and_tracks_the_parts(prefect_harness, tmp_path):
    from mlflow import MlflowClient

    from flows.lodo_collection import lodo_collection

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    try:
        result = lodo_collection(
            store=_store(tmp_path / "store"),
            seeds=2,
            ks=[2, 5],
            pool_methods=["random", "portfolio", "tapas"],
            stopping_methods=["none", "median", "lcranknet"],
            method_params={"tapas": {"epochs": 2}, "lcranknet": {"steps": 10}},
            out=str(tmp_path / "out"),
            curve_epochs=[1, 3],
        )
    finally:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    out = tmp_path / "out"
    for name in ("pool.md", "pool_runs.csv", "pool_summary.csv", "pool_wins.csv", "pool_regret_vs_k.png",
                 "curve_ranking.md", "stopping/lodo.md", "stopping/stopping_intervals.md",
                 "stopping/lodo_regret_vs_cost.png"):  # fmt: skip
        assert (out / name).is_file(), name
    pool = pd.read_csv(out / "pool_runs.csv")
    assert len(pool) == 3 * 3 * 2 and set(pool["status"]) == {"completed"}
    text = (out / "pool.md").read_text()
    assert "## k = 2" in text and "| portfolio | random |" in text and "[" in text  # intervals over 3 tasks
    summary = {r["method"]: r for r in result["pool"]["table"]}
    assert summary["random"]["tasks"] == 3 and summary["random"]["regret_val@5_lo"] <= summary["random"]["regret_val@5"]
    stopping = {r["method"]: r for r in result["stopping"]["table"]}
    assert (
        set(stopping) == {"none", "median", "lcranknet"} and stopping["none"]["epochs"] >= stopping["median"]["epochs"]
    )
    assert len(result["curve_ranking"]) == 1 and "kendall_tau@3" in result["curve_ranking"][0]
    client = MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()], max_results=500)
    parts = {r.data.tags.get("part") for r in runs}
    assert {"pool", "curve-ranking"} <= parts
    assert any(r.data.tags.get("flow") == "lodo_evaluation" for r in runs)


def test_lodo_collection_resumes_the_stopping_part_from_its_csv(prefect_harness, tmp_path):
    from flows.lodo_collection import lodo_collection

    store = _store(tmp_path / "store")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    try:
        first = lodo_collection(
            store=store, seeds=1, pool_methods=[], stopping_methods=["none", "median"], out=str(tmp_path / "a"),
            curve_epochs=[],
        )  # fmt: skip
        rows = pd.read_csv(tmp_path / "a" / "stopping" / "lodo_runs.csv")
        # a marker no replay computes: the resumed run must carry it, so reused rows are not recomputed
        rows.loc[rows["method"] == "median", "hours"] = 123.0
        rows.to_csv(tmp_path / "resume.csv", index=False)
        second = lodo_collection(
            store=store, seeds=1, pool_methods=[], stopping_methods=["none", "median"], out=str(tmp_path / "b"),
            curve_epochs=[], resume=str(tmp_path / "resume.csv"),
        )  # fmt: skip
    finally:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    before = {r["method"]: r for r in first["stopping"]["table"]}
    after = {r["method"]: r for r in second["stopping"]["table"]}
    assert before["median"]["hours"] != 123.0 and after["median"]["hours"] == 123.0
    assert after["none"]["hours"] == before["none"]["hours"]
