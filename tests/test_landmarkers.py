"""Landmarkers: DCN orders tasks by difficulty and is reproducible; meta-features match the data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.datasets import load_digits

from nasmeta.data.landmarkers import compute_landmarkers, dcn, dcn_config, dcn_single, describe, meta_features
from nasmeta.data.tasks import get_task


def test_meta_features_of_digits() -> None:
    features = meta_features("digits")
    data = get_task("digits").load()
    assert features["n_classes"] == 10 and features["channels"] == 1 and features["resolution"] == 8
    assert features["n_train"] == len(data.x_train) and features["n_test"] == 450
    counts = np.bincount(data.y_train.numpy())
    p = counts / counts.sum()
    assert features["class_entropy"] == pytest.approx(-(p * np.log2(p)).sum())
    assert features["class_entropy"] < math.log2(10)
    # raw pixel statistics (0..16 scaled to [0, 1]) of the whole digits set are close to the train split's
    raw = load_digits().images / 16.0
    assert features["pixel_mean"] == pytest.approx(raw.mean(), abs=0.01)
    assert features["pixel_std"] == pytest.approx(raw.std(), abs=0.01)
    assert 0 < features["pixel_entropy"] <= 5.0  # 32 bins: at most 5 bits
    assert 85.0 < features["linear_probe_acc"] <= 100.0


def test_dcn_is_reproducible_and_easy_binary_subset_beats_its_parent() -> None:
    first, second = dcn_single("digits", seed=0), dcn_single("digits", seed=0)
    assert first == second  # bit for bit on the CPU
    binary, _ = dcn("digits-0v1", seeds=(0,))
    assert binary > first
    assert 80.0 < first < 100.0


def test_dcn_recipe_gives_every_task_about_the_same_number_of_steps() -> None:
    for n_train in (160, 1000, 9600):
        config = dcn_config(0, n_train)
        steps = config.epochs * math.ceil(n_train / config.batch_size)
        assert 150 <= steps < 150 + math.ceil(n_train / config.batch_size)
    assert dcn_config(0, 1000).config_hash() == dcn_config(3, 1000).config_hash()


def test_dcn_orders_tasks_by_difficulty(data_dir) -> None:
    landmarks = {
        name: compute_landmarkers(get_task(name).small(300, test_per_class=10), seeds=(0,))
        for name in ("digits", "mnist", "cifar10", "cifar10-plane-ship")
    }
    dcns = {name: values["dcn"] for name, values in landmarks.items()}
    assert min(dcns["digits"], dcns["mnist"]) > dcns["cifar10"] + 20, dcns
    assert dcns["cifar10-plane-ship"] > dcns["cifar10"], dcns
    assert landmarks["cifar10"]["channels"] == 3 and landmarks["cifar10"]["resolution"] == 32
    assert landmarks["cifar10"]["linear_probe_acc"] < landmarks["mnist"]["linear_probe_acc"]


def test_describe_and_errors() -> None:
    info = describe("digits-3v8", with_dcn=False)
    assert info["task_id"] == get_task("digits-3v8").task_id
    assert info["spec"]["classes"] == [3, 8] and "dcn" not in info["landmarkers"]
    assert info["landmarkers"]["n_classes"] == 2
    with pytest.raises(ValueError, match="unknown task"):
        compute_landmarkers("no-such-task")
    with pytest.raises(ValueError, match="at least one seed"):
        dcn("digits", seeds=())
