"""Issue 19, fault 7: a bad ``.npz`` task fails on load with one line naming the file and the problem."""

from __future__ import annotations

import numpy as np
import pytest

from nasmeta.data.sources import get_source


def _write(path, **overrides):
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (12, 5, 5), dtype=np.uint8),
        "y_train": np.repeat(np.arange(3), 4),
        "x_test": rng.integers(0, 256, (6, 5, 5), dtype=np.uint8),
        "y_test": np.repeat(np.arange(3), 2),
    }
    arrays.update(overrides)
    np.savez(path, **arrays)
    return path


def test_a_valid_npz_loads(tmp_path) -> None:
    data = get_source(f"npz:{_write(tmp_path / 'ok.npz')}").load()
    assert data.num_classes == 3 and data.x_train.shape == (12, 1, 5, 5)


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"y_train": np.array([0] * 6 + [1000000] * 6), "y_test": np.array([0, 1000000] * 3)}, "contiguous"),
        ({"y_train": np.linspace(0.0, 2.5, 12)}, "non-integer labels"),
        ({"x_train": np.full((12, 5, 5), np.nan)}, "NaN"),
        ({"x_test": np.zeros((0, 5, 5), dtype=np.uint8), "y_test": np.zeros(0, dtype=np.int64)}, "empty"),
        ({"y_train": np.array(["a"] * 12)}, "dtype"),
        ({"y_train": np.arange(3)}, "12 images but y_train has 3 labels"),
        ({"x_test": np.zeros((6, 4, 4), dtype=np.uint8)}, "differ in shape"),
        ({"y_train": np.zeros((12, 2), dtype=np.int64)}, "1-D"),
    ],
    ids=["gap-labels", "float-labels", "nan-pixels", "empty", "text-labels", "length", "image-shape", "2d-labels"],
)
def test_a_bad_npz_is_one_line_naming_the_file(tmp_path, overrides, problem) -> None:
    path = _write(tmp_path / "bad.npz", **overrides)
    with pytest.raises(ValueError) as error:
        get_source(f"npz:{path}").load()
    message = str(error.value)
    assert str(path) in message and problem in message and "\n" not in message


def test_an_object_array_is_refused_without_unpickling(tmp_path) -> None:
    path = tmp_path / "obj.npz"
    good = np.load(_write(tmp_path / "ok.npz"))
    np.savez(path, **{k: good[k] for k in ("x_train", "x_test", "y_test")}, y_train=np.array([object()] * 12))
    with pytest.raises(ValueError, match=r"obj\.npz.*y_train.*pickle"):
        get_source(f"npz:{path}").load()
