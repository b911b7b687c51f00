"""The named collection (its tasks, plan, searched cells and repeated seeds), the blur corruption, the store
description (spread, seed noise, pairwise Kendall tau) and the lowest-seed view."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import kendalltau

from metadata_store import MetaDataset
from metadata_store.dataset import lowest_seed_view


def test_the_collection_registers_every_task_with_half_of_its_images_for_validation() -> None:
    from flows.collect_params import CollectParams
    from nasmeta.data.collections import collection_plan, collection_task_specs
    from nasmeta.data.tasks import get_task

    plan = collection_plan("nasmeta-meta-v1")
    assert len(plan["tasks"]) >= 12 and plan["n_archs"] >= 100 and plan["epochs"] >= 12
    sources = set()
    for name in plan["tasks"]:
        spec = get_task(name)
        assert spec.val_fraction == 0.5 and spec.samples_per_class is not None
        sources.add(spec.source)
    assert sources == {"digits", "mnist", "cifar10-10k"}
    assert {get_task(n).resolution for n in plan["tasks"]} >= {16, 32}
    params = CollectParams.from_collection("nasmeta-meta-v1", store="/tmp/x")
    assert params.collection == "nasmeta-meta-v1" and params.store == "/tmp/x" and params.repeat_seeds == [1]
    assert set(collection_task_specs("nasmeta-meta-v1")) == set(plan["tasks"])
    with pytest.raises(ValueError, match="unknown collection 'nope'.*nasmeta-meta-v1"):
        collection_plan("nope")
    assert set(params.repeat_tasks) < set(plan["tasks"])
    with pytest.raises(ValueError, match=r"repeat_tasks \['nope'\] are not among"):
        CollectParams(tasks=["digits"], repeat_tasks=["nope"])


def test_blur_changes_the_images_and_leaves_older_task_ids_alone() -> None:
    from nasmeta.data.tasks import Corruption, TaskSpec

    plain = TaskSpec(name="d", source="digits", samples_per_class=5, test_per_class=2)
    rotated = plain.with_(corruption=Corruption(rotation=30))
    # the id a rotation task had before blur existed (hash of the fields without "blur")
    from nasmeta.spaces.base import stable_hash

    fields = rotated.model_dump(mode="json", exclude={"name"})
    del fields["corruption"]["blur"]
    assert rotated.task_id == stable_hash("task", fields)
    blurred = plain.with_(corruption=Corruption(blur=1.0))
    assert blurred.task_id not in (plain.task_id, rotated.task_id)
    from nasmeta.data.tasks import _corrupt

    impulse = torch.zeros(1, 1, 15, 15)
    impulse[0, 0, 7, 7] = 1.0
    out = _corrupt(impulse, Corruption(blur=1.0), split=0)[0, 0]
    # a normalised Gaussian kernel (7 x 7 for sigma 1): mass kept, symmetric, centre weight about 1 / (2 pi)
    assert float(out.sum()) == pytest.approx(1.0, abs=1e-5)
    assert torch.allclose(out, out.T) and torch.allclose(out, out.flip(0))
    assert float(out[7, 7]) == pytest.approx(1 / (2 * np.pi), rel=0.05) and float(out[7, 11]) == 0.0
    assert plain.load().x_train.shape == blurred.load().x_train.shape
    with pytest.raises(ValueError):
        Corruption(blur=-1.0)


def test_search_proposals_are_new_mutations_of_the_best_cells_and_repeatable() -> None:
    from flows.collect_params import plan_architectures, search_proposals
    from nasmeta.spaces import get_space

    space = get_space("nb201")
    ranked = plan_architectures("nb201", 10, 0)
    first = search_proposals("nb201", ranked, {a.arch_id for a in ranked}, 6, [0, 7], top=3)
    again = search_proposals("nb201", ranked, {a.arch_id for a in ranked}, 6, [0, 7], top=3)
    assert [a.arch_id for a in first] == [a.arch_id for a in again] and len(first) == 6
    assert len({a.arch_id for a in first}) == 6 and not {a.arch_id for a in first} & {a.arch_id for a in ranked}
    for child in first:  # one edge away from one of the three best
        assert (
            min(sum(x != y for x, y in zip(space.tokens(child), space.tokens(p), strict=True)) for p in ranked[:3]) == 1
        )
    other = search_proposals("nb201", ranked, {a.arch_id for a in ranked}, 6, [0, 8], top=3)
    assert [a.arch_id for a in other] != [a.arch_id for a in first]
    assert search_proposals("nb201", [], set(), 3, 0) == []


def test_collect_trains_repeated_seeds_and_searched_cells_once(prefect_harness, tmp_path: Path) -> None:
    from flows.collect import collect_metadata
    from metadata_store import MetadataStore

    kwargs = dict(
        tasks=["digits-0to4", "digits-5to9"],
        n_archs=3,
        epochs=1,
        repeat_seeds=[1],
        repeat_archs=1,
        repeat_tasks=["digits-0to4"],
        search_archs=2,
        size={"C": 4, "N": 1},
        samples_per_class=10,
        landmarkers=False,
        store=str(tmp_path / "store"),
        track=False,
        train={"batch_size": 16, "num_threads": 1},
    )
    summary = collect_metadata(**kwargs)
    # per task: 3 planned cells + 2 searched cells, and 1 repeat seed on digits-0to4 only
    assert summary["planned"] == summary["completed"] == 2 * (3 + 2) + 1
    runs = MetadataStore(tmp_path / "store").read("runs").to_pylist()
    assert [r["task_id"] for r in runs if r["seed"] == 1] == [summary["task_ids"]["digits-0to4"]]
    per_task = {}
    for r in runs:
        per_task.setdefault(r["task_id"], set()).add(r["arch_id"])
    assert all(len(ids) == 5 for ids in per_task.values())
    again = collect_metadata(**kwargs)  # the same searched cells are planned again, and found done
    assert again["planned"] == 11 and again["trained"] == 0 and again["skipped"] == 11


def _meta_with_seeds() -> MetaDataset:
    """Three tasks x 8 cells; task c is task a's ranking reversed; cells 0-3 of task a have a second seed."""
    rows: dict[str, list] = {"tasks": [], "landmarkers": [], "runs": [], "curves": [], "architectures": []}
    accs = {"a": np.arange(8.0) * 2 + 50, "b": np.array([1, 0, 3, 2, 5, 4, 7, 6.0]) + 70, "c": 80 - np.arange(8.0)}
    for task, values in accs.items():
        rows["tasks"].append({"task_id": task, "name": f"task-{task}"})
        rows["landmarkers"].append({"task_id": task, "name": "dcn", "value": float(values.mean())})
        for i, acc in enumerate(values):
            seeds = [0, 1] if task == "a" and i < 4 else [0]
            for seed in seeds:
                rid = f"{task}-{i}-{seed}"
                value = float(acc + (3.0 if seed == 1 else 0.0) * (i % 2))
                rows["runs"].append(
                    {"run_id": rid, "task_id": task, "arch_id": f"x{i}", "seed": seed, "config_hash": "h",
                     "status": "completed", "final_val_acc": value, "final_test_acc": value}
                )  # fmt: skip
                rows["curves"] += [
                    {"run_id": rid, "task_id": task, "epoch": e, "val_acc": value - 3 + e, "seconds": float(e)}
                    for e in (1, 2, 3)
                ]
    return MetaDataset.from_tables(**rows)


def test_describe_reports_spread_seed_noise_and_pairwise_tau() -> None:
    from nasmeta.evaluation.collection import describe_collection, describe_markdown

    info = describe_collection(_meta_with_seeds())
    rows = {r["task_id"]: r for r in info["tasks"]}
    assert rows["a"]["runs"] == 12 and rows["a"]["cells"] == 8 and rows["b"]["seed_noise"] is None
    assert rows["a"]["acc_min"] == 50 and rows["a"]["acc_max"] == 64 and rows["a"]["acc_median"] == 57
    # seed 1 adds 3 points to cells 1 and 3 of task a: mean |difference| over the 4 repeated cells = 1.5
    assert rows["a"]["seed_noise"] == pytest.approx(1.5) and rows["a"]["repeated_cells"] == 4
    assert info["tau"][("a", "c")] == pytest.approx(-1.0)
    expected = kendalltau(np.arange(8), [1, 0, 3, 2, 5, 4, 7, 6]).statistic
    assert info["tau"][("a", "b")] == pytest.approx(expected) and info["tau"][("b", "a")] == info["tau"][("a", "b")]
    assert [r["task_id"] for r in info["tasks"]] == ["a", "b", "c"]  # hardest (lowest DCN) first
    text = describe_markdown(info)
    assert "| task-a | – | – | ?/?/? | 12 | 8 |" in text and "-1.00" in text


def test_the_lowest_seed_view_keeps_one_run_per_cell() -> None:
    view = lowest_seed_view(_meta_with_seeds())
    runs = view.runs.to_pylist()
    assert len(runs) == 24 and {r["seed"] for r in runs} == {0}
    assert set(view.curves["run_id"].to_pylist()) == {r["run_id"] for r in runs}
    assert view.landmarkers.num_rows == 3


def test_a_shipped_snapshot_imports_once(tmp_path: Path, monkeypatch) -> None:
    from metadata_store import MetadataStore, snapshots

    snap = tmp_path / "collections" / "tiny"
    source = MetadataStore(snap)
    meta = _meta_with_seeds()
    for table in ("tasks", "landmarkers", "runs", "curves"):
        source.append(table, meta.table(table).to_pylist())
    monkeypatch.setattr(snapshots, "SNAPSHOT_DIR", tmp_path / "collections")
    assert snapshots.list_snapshots() == ["tiny"]
    store = MetadataStore(tmp_path / "store")
    first = snapshots.import_snapshot(store, "tiny")
    assert first["imported"]["runs"] == 28 and first["task_ids"] == ["a", "b", "c"]
    files = len(store.files("runs"))
    assert snapshots.import_snapshot(store, "tiny")["imported"] == {} and len(store.files("runs")) == files
    assert store.read("runs").num_rows == 28
    with pytest.raises(ValueError, match="no shipped metadata collection 'other'; shipped: tiny"):
        snapshots.snapshot_path("other")
