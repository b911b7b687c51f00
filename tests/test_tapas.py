"""TAPAS: cost features against built networks, DCN source selection, fitting on records and on a MetaDataset,
save/load and MLflow models, NB201 leave-one-dataset-out rank correlation and search against random search, bad
input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from nasmeta.spaces import get_space
from nasmeta.transfer.base import MissingMetadataError
from nasmeta.transfer.tap_model import encode, marginal_costs, prefix_cost_features
from nasmeta.transfer.tapas import TAPAS, TAPASConfig, TapasRecord, tapas_search

NB201 = get_space("nb201")
# small, fast TAP for tests (the defaults are for the benchmark)
FAST = {"hidden_size": 32, "mlp_size": 32, "epochs": 30, "batch_size": 64, "lr": 1e-2}


def _synthetic_accuracy(arch, dcn: float) -> float:
    """A dataset-independent architecture ranking scaled by the dataset's difficulty."""
    ops = arch.encoding
    quality = 2.0 * ops.count("nor_conv_3x3") + ops.count("nor_conv_1x1") - 3.0 * (ops[5] == "none")
    return float(100 * dcn * (0.7 + 0.03 * quality))


def _synthetic_records(tasks: dict[str, float], n: int, seed: int = 0) -> list[TapasRecord]:
    rng = np.random.default_rng(seed)
    archs = [NB201.sample(rng) for _ in range(n)]
    return [TapasRecord(a, task, dcn, _synthetic_accuracy(a, dcn)) for task, dcn in tasks.items() for a in archs]


# -- cost features ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("space_name", ["nb201", "macro"])
def test_prefix_costs_sum_to_the_built_networks_costs(space_name: str) -> None:
    import torch

    from nasmeta.cost import count_flops, count_params

    space = get_space(space_name)
    arch = space.sample(np.random.default_rng(3))
    base = space.from_encoding(["none"] * 6 if space_name == "nb201" else [0] * 8)

    def costs(a):
        with torch.device("meta"):
            model = space.build(a, 10, (3, 32, 32))
        return count_flops(model, (3, 32, 32)), count_params(model)

    (f_arch, p_arch), (f_base, p_base) = costs(arch), costs(base)
    flops, params = marginal_costs(space_name)
    features = prefix_cost_features(space_name, np.array([space.tokens(arch)]))[0]
    assert features[-1, 1] * flops.max(axis=1).sum() == pytest.approx(f_arch - f_base, rel=1e-5)
    assert features[-1, 2] * params.max(axis=1).sum() == pytest.approx(p_arch - p_base, rel=1e-5)
    assert np.all(np.diff(features, axis=0) >= 0) and features.min() >= 0 and features.max() <= 1


def test_nb201_prefix_depth_is_the_longest_path_so_far() -> None:
    resnet = NB201.parse("|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|")
    _, features = encode([resnet])
    np.testing.assert_allclose(features[0, :, 0], np.array([1, 1, 2, 2, 2, 2]) / 3, rtol=1e-6)
    empty = NB201.parse("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    assert encode([empty])[1].max() == 0.0
    chain = NB201.parse("|avg_pool_3x3~0|+|none~0|nor_conv_1x1~1|+|none~0|none~1|nor_conv_3x3~2|")
    np.testing.assert_allclose(encode([chain])[1][0, :, 0], np.array([1, 1, 2, 2, 2, 3]) / 3, rtol=1e-6)


# -- selection, fitting, persistence --------------------------------------------------------------------------------
def test_sources_are_selected_by_dcn_distance() -> None:
    tasks = {"a": 0.90, "b": 0.84, "c": 0.30}
    tapas = TAPAS(dcn_threshold=0.1, min_sources=1, epochs=1)
    tapas._set_records(_synthetic_records(tasks, 4))
    assert tapas.select_sources(0.88) == (("a", 0.5), ("b", 0.5))
    assert tapas.select_sources(0.35) == (("c", 1.0),)
    # fewer than min_sources inside the threshold: the nearest are added
    tapas = TAPAS(dcn_threshold=0.1, min_sources=2, source_weighting="similarity", epochs=1)
    tapas._set_records(_synthetic_records(tasks, 4))
    selection = dict(tapas.select_sources(0.35))
    assert set(selection) == {"b", "c"}
    assert selection["c"] > selection["b"] and sum(selection.values()) == pytest.approx(1.0)


def test_tap_transfers_a_ranking_to_an_unseen_dcn_and_round_trips(tmp_path) -> None:
    records = _synthetic_records({"easy": 0.9, "hard": 0.4}, 150)
    tapas = TAPAS(seed=1, **FAST).fit(records, target=0.6)
    rng = np.random.default_rng(99)
    archs = [NB201.sample(rng) for _ in range(300)]
    truth = [_synthetic_accuracy(a, 0.6) for a in archs]
    predicted = tapas.predict(archs, {"task_id": "new", "dcn": 0.6})
    assert stats.kendalltau(predicted, truth).statistic > 0.7
    # the level follows the DCN: the unseen dataset is predicted between the two sources
    assert np.mean(tapas.predict(archs, 0.4)) < np.mean(predicted) < np.mean(tapas.predict(archs, 0.9))

    loaded = TAPAS.load(tapas.save(tmp_path / "tapas"))
    np.testing.assert_array_equal(loaded.predict(archs, 0.6), predicted)
    np.testing.assert_array_equal(loaded.predict(archs, "easy"), tapas.predict(archs, 0.9))
    # same seed, same data: the same network (deterministic on CPU)
    again = TAPAS(seed=1, **FAST).fit(records, target=0.6)
    np.testing.assert_array_equal(again.predict(archs, 0.6), predicted)

    from nasmeta import tracking

    with tracking.parent_run("tapas-test", "fit"):
        model_id = tracking.log_model(tapas, "tapas", params={"target_dcn": 0.6})
    np.testing.assert_array_equal(tracking.load_model(model_id).predict(archs, 0.6), predicted)


def test_fit_on_a_metadataset_view_and_leave_one_out() -> None:
    from metadata_store import MetaDataset, run_id
    from nasmeta.data.store_import import architecture_row

    rng = np.random.default_rng(0)
    archs = list({a.arch_id: a for a in (NB201.sample(rng) for _ in range(80))}.values())
    dcns = {"t1": 0.9, "t2": 0.5, "t3": 0.7}
    runs = [
        {
            "run_id": run_id(task, a.arch_id, seed, "cfg"),
            "task_id": task,
            "arch_id": a.arch_id,
            "seed": seed,
            "config_hash": "cfg",
            "status": "completed",
            "final_val_acc": _synthetic_accuracy(a, dcn) + seed,
        }
        for task, dcn in dcns.items()
        for a in archs
        for seed in (0, 1)
    ]
    # the store keeps the DCN in percent, like every accuracy; TAPAS converts to its fraction
    landmarkers = [{"task_id": t, "name": "dcn", "value": 100.0 * v} for t, v in dcns.items()]
    meta = MetaDataset.from_tables(
        runs=runs, landmarkers=landmarkers, architectures=[architecture_row(a) for a in archs]
    )
    tapas = TAPAS(**FAST).fit(meta.without("t3"), target={"task_id": "t3", "dcn": 0.7})
    assert sorted(tapas.dcn) == ["t1", "t2"]
    assert len(tapas.records) == 2 * len(archs)  # two seeds averaged into one record
    assert tapas.records[0].accuracy == pytest.approx(_synthetic_accuracy(tapas.records[0].arch, 0.9) + 0.5)
    truth = [_synthetic_accuracy(a, 0.7) for a in archs]
    assert stats.kendalltau(tapas.predict(archs, 0.7), truth).statistic > 0.5

    no_dcn = MetaDataset.from_tables(runs=runs, architectures=[architecture_row(a) for a in archs])
    with pytest.raises(MissingMetadataError, match="dcn"):
        TAPAS(**FAST).fit(no_dcn)


def test_bad_input_raises() -> None:
    arch = NB201.sample(np.random.default_rng(0))
    with pytest.raises(ValueError, match="DCN"):
        TapasRecord(arch, "t", 1.5, 50.0)
    with pytest.raises(ValueError, match="accuracy"):
        TapasRecord(arch, "t", 0.5, 120.0)
    with pytest.raises(ValueError, match="lr"):
        TAPASConfig(lr=-1.0)
    with pytest.raises(ValueError, match="at least one"):
        TAPAS().fit([])
    with pytest.raises(ValueError, match="MetaDataset"):
        TAPAS().fit({"not": "records"})
    darts = get_space("darts")
    with pytest.raises(ValueError, match="supports spaces"):
        TAPAS().fit([TapasRecord(darts.sample(np.random.default_rng(0)), "t", 0.5, 50.0)])
    with pytest.raises(ValueError, match="two DCNs"):
        TAPAS().fit([TapasRecord(arch, "t", 0.5, 50.0), TapasRecord(arch, "t", 0.6, 50.0)])
    with pytest.raises(RuntimeError, match="not fitted"):
        TAPAS().predict([arch], 0.5)

    tapas = TAPAS(epochs=1).fit(_synthetic_records({"a": 0.8, "b": 0.5}, 8))
    with pytest.raises(ValueError, match="unknown task 'zzz'"):
        tapas.predict([arch], "zzz")
    with pytest.raises(MissingMetadataError, match="dcn"):
        tapas.predict([arch], {"task_id": "zzz", "n_classes": 10})
    with pytest.raises(ValueError, match="DCN"):
        tapas.predict([arch], 0.0)
    with pytest.raises(ValueError, match="fitted on nb201"):
        tapas.predict([get_space("macro").sample(np.random.default_rng(0))], 0.5)
    with pytest.raises(ValueError, match="n_predictions"):
        tapas_search(tapas, NB201, 0.5, evaluator=None, n_evaluations=10, n_predictions=5)
    with pytest.raises(ValueError, match="no saved TAPAS"):
        TAPAS.load("/nonexistent/tapas")


# -- NB201 leave-one-dataset-out (real table) --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def nb201_fold(data_dir):
    """TAPAS fitted on cifar10 + cifar100 (400 cells each), target imagenet16-120."""
    from nasmeta.transfer.tapas_lodo import nb201_dcn, nb201_records

    records = nb201_records("cifar10", 400, seed=0) + nb201_records("cifar100", 400, seed=0)
    target = nb201_dcn("imagenet16-120")
    return TAPAS(**FAST).fit(records, target=target), target


def test_nb201_dcn_orders_the_datasets_by_difficulty(data_dir) -> None:
    from nasmeta.transfer.tapas_lodo import nb201_dcn

    assert nb201_dcn("cifar10") == pytest.approx(0.76006)
    assert nb201_dcn("cifar10") > nb201_dcn("cifar100") > nb201_dcn("imagenet16-120") == pytest.approx(0.229333, 1e-4)


def test_nb201_held_out_kendall_tau(nb201_fold) -> None:
    from nasmeta.data.benchmarks import nb201_accuracy

    tapas, target = nb201_fold
    rng = np.random.default_rng(1)
    archs = [NB201.from_index(int(i)) for i in rng.choice(NB201.size, 2000, replace=False)]
    actual = [nb201_accuracy(a, "imagenet16-120") for a in archs]
    tau = stats.kendalltau(tapas.predict(archs, target), actual).statistic
    # measured 0.622 with this budget (about 0.7 with the benchmark's); the other datasets' own 200-epoch
    # accuracies rank imagenet16-120 at 0.84-0.85, the ceiling of any transfer
    assert tau > 0.5


def test_nb201_tapas_pick_beats_random_search_at_equal_evaluations(nb201_fold) -> None:
    from nasmeta.blackbox import random_search
    from nasmeta.data.benchmarks import TabularEvaluator

    tapas, target = nb201_fold
    evaluator = TabularEvaluator("nb201", "imagenet16-120")
    tapas_acc, random_acc = [], []
    for seed in range(3):
        found = tapas_search(tapas, NB201, target, evaluator, n_evaluations=5, n_predictions=300, seed=seed)
        assert found.n_evaluations == 5 and len({e.arch.arch_id for e in found.history}) == 5
        assert found.history[0].val_acc > 0 and found.extra["predicted"] == sorted(found.extra["predicted"])[::-1]
        tapas_acc.append(found.best_test_acc)
        random_acc.append(random_search(NB201, evaluator, 5, seed=seed).best_test_acc)
    # measured (test accuracy, %): TAPAS 43.42 / 45.62 / 46.59, random search 38.29 / 39.85 / 33.62
    assert min(tapas_acc) > max(random_acc)
