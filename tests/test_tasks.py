"""Tasks and data sources: identity, derivations, splits, normalisation, registry and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from nasmeta.config import DataNotFoundError
from nasmeta.data.sources import TORCHVISION_ROOT_VAR
from nasmeta.data.tasks import Corruption, TaskSpec, get_task, list_tasks, register_task, spec_of


def test_task_id_is_stable_and_ignores_the_name() -> None:
    spec = get_task("digits-3v8")
    again = TaskSpec.from_json(spec.to_json())
    assert again == spec and again.task_id == spec.task_id
    assert spec.with_(name="another label").task_id == spec.task_id
    assert spec.with_(split_seed=1).task_id != spec.task_id
    assert spec.with_(classes=[8, 3]).classes == (3, 8)  # order-free subset, one id
    # a corruption that changes nothing is the same task as no corruption
    assert spec.with_(corruption=Corruption(rotation=0, noise_std=0, seed=5)).task_id == spec.task_id


def test_registry_has_many_derived_tasks_and_rejects_unknown_names() -> None:
    digits_tasks = [n for n in list_tasks() if get_task(n).source == "digits"]
    assert len(digits_tasks) >= 5 and "digits" in digits_tasks
    assert {"mnist", "mnist-0to4", "mnist-5to9", "cifar10", "cifar10-animals", "cifar10-vehicles"} <= set(list_tasks())
    with pytest.raises(ValueError, match="unknown task 'no-such-task'.*digits"):
        get_task("no-such-task")
    with pytest.raises(ValueError, match="already registered"):
        register_task("digits", TaskSpec(name="digits"))


def test_bad_specs_are_rejected() -> None:
    with pytest.raises(ValueError, match="empty subset"):
        TaskSpec(name="none", source="digits", classes=[])
    with pytest.raises(ValueError, match="unknown data source 'nowhere'"):
        TaskSpec(name="x", source="nowhere")
    with pytest.raises(ValueError, match=r"classes \[12\] not in source 'digits'"):
        TaskSpec(name="x", source="digits", classes=[1, 12]).load()


def test_digits_splits_normalisation_and_determinism() -> None:
    spec = get_task("digits")
    data = spec.load()
    assert spec.load() is data  # cached per task_id
    renamed = spec.with_(name="digits-alias").load()
    assert renamed.name == "digits-alias" and renamed.x_train is data.x_train
    assert spec_of(data) == spec
    assert data.input_shape == (1, 8, 8) and data.num_classes == 10
    assert len(data.x_train) + len(data.x_val) + len(data.x_test) == 1797
    assert len(data.x_test) == 450  # the fixed stratified quarter
    assert abs(len(data.x_val) - 0.2 * (len(data.x_train) + len(data.x_val))) <= 10
    assert set(data.y_val.tolist()) == set(range(10))
    # statistics from the train split only: exact there, not on the other splits
    assert abs(float(data.x_train.mean())) < 1e-5 and abs(float(data.x_train.std()) - 1) < 1e-4
    assert abs(float(data.x_val.mean())) > 1e-4
    mean, std = spec.normalisation()
    raw = data.x_train * std[0] + mean[0]
    assert float(raw.min()) == pytest.approx(0.0, abs=1e-5) and float(raw.max()) == pytest.approx(1.0, abs=1e-5)

    reseeded = spec.with_(split_seed=1).load()
    assert not torch.equal(reseeded.y_val, data.y_val)
    # the test split does not depend on the split seed (up to the normalisation, which is per train split)
    assert torch.equal(reseeded.y_test, data.y_test)
    assert torch.allclose(reseeded.x_test.std(), data.x_test.std(), atol=0.05)


def test_class_subset_remaps_labels_and_keeps_every_image() -> None:
    y = load_digits().target
    data = get_task("digits-3v8").load()
    assert data.num_classes == 2
    ys = torch.cat([data.y_train, data.y_val, data.y_test])
    assert ys.bincount().tolist() == [int((y == 3).sum()), int((y == 8).sum())]


def test_small_version_caps_images_per_class() -> None:
    spec = get_task("digits").small(40, test_per_class=10)
    data = spec.load()
    assert spec.name == "digits-s40"
    counts = torch.cat([data.y_train, data.y_val]).bincount()
    assert counts.tolist() == [40] * 10
    assert data.y_test.bincount().tolist() == [10] * 10


def test_channels_resolution_and_corruption() -> None:
    base = get_task("digits").load()
    rgb = get_task("digits-rgb16").load()
    assert rgb.input_shape == (3, 16, 16) and len(rgb.x_train) == len(base.x_train)
    assert torch.equal(rgb.x_train[:, 0], rgb.x_train[:, 1])
    rotated = get_task("digits-rot30").load()
    assert rotated.x_train.shape == base.x_train.shape
    assert torch.equal(rotated.y_train, base.y_train)
    assert not torch.allclose(rotated.x_train, base.x_train, atol=0.1)
    noisy = get_task("digits-noisy")
    assert noisy.normalisation()[1][0] != get_task("digits").normalisation()[1][0]


def test_npz_and_imagefolder_sources(tmp_path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "toy.npz"
    np.savez(
        path,
        x_train=rng.integers(0, 256, (40, 6, 6, 3), dtype=np.uint8),
        y_train=np.repeat(np.arange(4), 10),
        x_test=rng.integers(0, 256, (8, 6, 6, 3), dtype=np.uint8),
        y_test=np.repeat(np.arange(4), 2),
    )
    data = TaskSpec(name="toy", source=f"npz:{path}", channels=1).load()
    assert data.input_shape == (1, 6, 6) and data.num_classes == 4 and len(data.x_test) == 8

    from PIL import Image

    for label in ("cat", "dog"):
        (tmp_path / "folder" / label).mkdir(parents=True)
        for i in range(5):
            pixels = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "folder" / label / f"{i}.png")
    data = TaskSpec(name="folder", source=f"imagefolder:{tmp_path / 'folder'}", resolution=4).load()
    assert data.input_shape == (3, 4, 4) and data.num_classes == 2
    assert len(data.x_train) + len(data.x_val) + len(data.x_test) == 10


def test_missing_data_file_names_the_file_and_the_variable(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("NASMETA_DATA_DIR", str(tmp_path))
    with pytest.raises(DataNotFoundError, match=r"images/mnist\.npz.*NASMETA_DATA_DIR"):
        get_task("mnist-0to4").load()
    monkeypatch.delenv("NASMETA_DATA_DIR")
    with pytest.raises(DataNotFoundError, match="NASMETA_DATA_DIR is not set"):
        get_task("cifar10").load()
    monkeypatch.setenv(TORCHVISION_ROOT_VAR, str(tmp_path))
    assert not get_task("cifar100").available()
    with pytest.raises(DataNotFoundError, match=f"CIFAR100 not found.*{TORCHVISION_ROOT_VAR}"):
        get_task("cifar100").load()


def test_real_mnist_and_cifar_subsets(data_dir) -> None:
    mnist = get_task("mnist-5to9").small(30, test_per_class=20).load()
    assert mnist.input_shape == (1, 28, 28) and mnist.num_classes == 5
    assert mnist.y_test.bincount().tolist() == [20] * 5
    cifar = get_task("cifar10").small(30, test_per_class=20).load()
    assert cifar.input_shape == (3, 32, 32) and cifar.num_classes == 10
    mean, _ = get_task("cifar10").small(30, test_per_class=20).normalisation()
    assert len(mean) == 3 and all(0.3 < m < 0.6 for m in mean)
    assert get_task("cifar10-animals").small(5, test_per_class=5).load().num_classes == 6
    assert get_task("cifar10-gray").small(5, test_per_class=5).load().input_shape == (1, 32, 32)
    # the published test split is kept whole unless asked
    full = get_task("mnist").load()
    assert len(full.x_test) == 10_000 and len(full.x_train) + len(full.x_val) == 60_000


def test_cli_lists_and_describes_tasks() -> None:
    import json

    from typer.testing import CliRunner

    from flows.cli import app

    runner = CliRunner()
    listed = runner.invoke(app, ["tasks", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = {row["name"]: row for row in json.loads(listed.output)}
    assert rows["digits"]["available"] is True and rows["digits-3v8"]["classes"] == [3, 8]
    described = runner.invoke(app, ["tasks", "describe", "digits-0v1", "--no-dcn", "--json"])
    assert described.exit_code == 0, described.output
    info = json.loads(described.output)
    assert info["task_id"] == get_task("digits-0v1").task_id and info["landmarkers"]["n_classes"] == 2
    unknown = runner.invoke(app, ["tasks", "describe", "no-such-task"])
    assert unknown.exit_code != 0 and "unknown task" in unknown.output
