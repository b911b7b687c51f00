"""UnNAS pretext objectives (nasmeta/oneshot/pretext.py): exact transforms, label-free search, any strategy."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import torch

from nasmeta.data.types import TaskData
from nasmeta.oneshot import oneshot_search
from nasmeta.oneshot.pretext import (
    JigsawConfig,
    JigsawPretext,
    RotationConfig,
    RotationPretext,
    ab_bins,
    jigsaw_permutations,
    pretext_objective,
    pretext_search_data,
    rgb_to_lab,
    rotate,
    search_setup,
    shuffle_tiles,
    unshuffle_tiles,
)
from nasmeta.spaces import get_space

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
COLOR = {"name": "colorization", "mean": MEAN, "std": STD}
TINY = {"C": 4, "N": 1}


class _Poison(torch.Tensor):
    """Labels that fail the test when anything but their length is read."""

    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if func is torch.Tensor.__len__:  # TaskData checks that x and y have as many rows
            with torch._C.DisableTorchFunctionSubclass():
                return func(*args, **(kwargs or {}))
        raise AssertionError(f"a label tensor was read: {getattr(func, '__name__', func)}")


def _images(n: int, seed: int = 0, size: int = 8) -> torch.Tensor:
    """Normalised images of values in [0, 1] (mean 0.5, std 0.25 per channel, as ``MEAN`` / ``STD``)."""
    return (torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) - 0.5) / 0.25


def _task(labels: str = "true", n: int = 24) -> TaskData:
    x = _images(n)
    y = {
        "true": torch.arange(n) % 10,
        "other": torch.randint(0, 10, (n,), generator=torch.Generator().manual_seed(9)),
    }.get(labels)
    if labels == "poison":
        y, y4 = (torch.zeros(k, dtype=torch.long).as_subclass(_Poison) for k in (n, 4))
        return TaskData("toy", "toy", x, y, x[:4], y4, x[:4], y4, 10)
    return TaskData("toy", "toy", x, y, x[:4], y[:4], x[:4], y[:4], 10)


def _search(method: str, objective: Any, task: TaskData | None = None, space: str = "nb201", **size: Any) -> Any:
    return oneshot_search(
        method, space, task or _task(), 1, 8, 0, supernet_size=size or TINY, device="cpu", objective=objective
    )


# -- rotation ---------------------------------------------------------------------------------------------------
def test_rotate_is_rot90_counter_clockwise() -> None:
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2).repeat(4, 1, 1, 1)
    out = rotate(x, torch.arange(4))[:, 0]
    assert out[0].tolist() == [[1, 2], [3, 4]]
    assert out[1].tolist() == [[2, 4], [1, 3]]  # 90 degrees counter-clockwise
    assert out[2].tolist() == [[4, 3], [2, 1]]
    assert out[3].tolist() == [[3, 1], [4, 2]]
    with pytest.raises(ValueError, match="square"):
        rotate(torch.zeros(1, 3, 4, 6), torch.zeros(1, dtype=torch.long))


def test_rotation_samples_and_labels() -> None:
    x = _images(5)
    every = RotationPretext(RotationConfig())
    inputs, k = every.transform(x, torch.Generator().manual_seed(0))
    assert every.num_classes == 4 and inputs.shape == (20, 3, 8, 8)
    assert k.tolist() == [0, 1, 2, 3] * 5  # image-major: every batch of rows holds the rotations equally often
    for r in range(4):
        assert torch.equal(inputs[r::4], torch.rot90(x, r, dims=(2, 3)))
    one = RotationPretext(RotationConfig(all_rotations=False))
    inputs, k = one.transform(x, torch.Generator().manual_seed(3))
    assert inputs.shape == x.shape and set(k.tolist()) <= {0, 1, 2, 3}
    for i in range(5):  # rotating back by the label recovers the image
        assert torch.equal(torch.rot90(inputs[i], -int(k[i]), dims=(1, 2)), x[i])


# -- jigsaw -----------------------------------------------------------------------------------------------------
def test_jigsaw_permutation_sets() -> None:
    perms = jigsaw_permutations(2)
    assert perms.shape == (24, 4)
    assert {tuple(p) for p in perms.tolist()} == set(itertools.permutations(range(4)))
    chosen = jigsaw_permutations(3, 12, seed=1)
    assert chosen.shape == (12, 9) and len({tuple(p) for p in chosen.tolist()}) == 12
    assert all(sorted(p) == list(range(9)) for p in chosen.tolist())
    # greedy maximal Hamming distance: 9 permutations pairwise differ in every position (a Latin square)
    for a, b in itertools.combinations(chosen[:9].tolist(), 2):
        assert sum(i != j for i, j in zip(a, b, strict=True)) == 9
    with pytest.raises(ValueError, match="grid"):
        jigsaw_permutations(1)


def test_jigsaw_shuffle_round_trip_and_transform() -> None:
    tiles = torch.randn(6, 4, 3, 2, 2)
    perm = jigsaw_permutations(2)[torch.tensor([0, 5, 11, 17, 20, 23])]
    slots = shuffle_tiles(tiles, perm)
    assert torch.equal(unshuffle_tiles(slots, perm), tiles)
    assert torch.equal(slots[1, perm[1, 2]], tiles[1, 2])  # tile of patch p sits at slot perm[p]
    x = _images(6)
    jig = JigsawPretext(JigsawConfig(grid=2, tile_fraction=1.0))  # no gap: each tile is its whole patch
    inputs, labels = jig.transform(x, torch.Generator().manual_seed(0))
    assert inputs.shape == (6, 12, 4, 4) and jig.input_shape((3, 8, 8)) == (12, 4, 4)
    back = unshuffle_tiles(inputs.view(6, 4, 3, 4, 4), jig.perms[labels])
    for p, (r, c) in enumerate([(0, 0), (0, 4), (4, 0), (4, 4)]):
        patch = x[:, :, r : r + 4, c : c + 4]
        mu, sd = patch.mean(dim=(1, 2, 3), keepdim=True), patch.std(dim=(1, 2, 3), keepdim=True)
        torch.testing.assert_close(back[:, p], (patch - mu) / sd)


# -- colorization -----------------------------------------------------------------------------------------------
def test_lab_values_and_bins() -> None:
    lab = rgb_to_lab(torch.tensor([[1.0, 0, 0], [1, 1, 1], [0, 0, 1]]).T.reshape(3, 3, 1))
    torch.testing.assert_close(lab[:, 0, 0], torch.tensor([53.2406, 80.0923, 67.2028]), atol=1e-3, rtol=0)
    torch.testing.assert_close(lab[:, 1, 0], torch.tensor([100.0, 0.0, 0.0]), atol=1e-2, rtol=0)
    torch.testing.assert_close(lab[:, 2, 0], torch.tensor([32.2957, 79.1856, -107.8573]), atol=1e-3, rtol=0)
    bins = ab_bins()
    assert len(bins) == 261  # sRGB gamut on a 10-spaced ab grid (Zhang et al.'s ImageNet hull: 313)
    assert torch.equal(bins % 10, torch.zeros_like(bins))
    assert [0.0, 0.0] in bins.tolist() and [80.0, 70.0] in bins.tolist()


def test_colorization_inputs_and_targets() -> None:
    color = pretext_objective(COLOR)
    gray = torch.full((2, 3, 4, 4), 0.3)
    red = torch.zeros(2, 3, 4, 4)
    red[:, 0] = 1.0
    task = _task()
    x = (torch.cat([gray, red]) - 0.5) / 0.25
    color.prepare(task)
    inputs, targets = color.transform(x, torch.Generator())
    assert inputs.shape == (4, 1, 4, 4) and targets.shape == (4, 4, 4) and targets.dtype == torch.long
    bins = color.bins.tolist()
    assert set(targets[:2].flatten().tolist()) == {bins.index([0.0, 0.0])}
    assert set(targets[2:].flatten().tolist()) == {bins.index([80.0, 70.0])}
    lightness = torch.tensor([rgb_to_lab(gray[:1])[0, 0, 0, 0], 53.2406]) / 100
    mean, std = color.l_stats
    torch.testing.assert_close(inputs[[0, 2], 0, 0, 0], (lightness - mean) / std, atol=1e-4, rtol=0)


def test_colorization_head_is_dense() -> None:
    task = _task()
    torch.manual_seed(0)
    supernet, data, pretext = search_setup(COLOR, get_space("nb201"), task, 0, 0.5, TINY)
    assert data.input_shape == (1, 8, 8) and data.y_train.shape == (12, 8, 8)
    assert supernet(data.x_train[:3]).shape == (3, pretext.num_classes, 8, 8)


def test_colorization_needs_statistics_and_colour() -> None:
    with pytest.raises(ValueError, match="mean / std"):
        pretext_search_data(_task(), pretext_objective("colorization"))
    x = _images(8)[:, :1]
    gray = TaskData("g", "g", x, torch.zeros(8, dtype=torch.long), x, torch.zeros(8), x, torch.zeros(8), 2)
    with pytest.raises(ValueError, match="RGB"):
        pretext_search_data(gray, pretext_objective(COLOR))


# -- the search -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("objective", ["rotation", "jigsaw", COLOR])
def test_pretext_search_reads_no_label(objective: Any) -> None:
    result = _search("darts", objective, _task("poison"))
    assert result.extra["objective"]["num_classes"] in (4, 24, 261)
    with pytest.raises(AssertionError, match="label tensor was read"):
        _search("darts", "labels", _task("poison"))


@pytest.mark.parametrize("method", ["darts", "gdas", "pcdarts"])
def test_pretext_search_is_label_invariant_for_strategies(method: str) -> None:
    """Other labels, same pretext search (to the bit); the label search differs, so labels did matter there."""
    a, b = _search(method, "rotation", _task("true")), _search(method, "rotation", _task("other"))
    assert a.extra["alphas"] == b.extra["alphas"] and str(a.best_arch) == str(b.best_arch)
    assert a.extra["supernet_params"] != _search(method, "labels").extra["supernet_params"]  # 4-way head, not 10
    la, lb = _search(method, "labels", _task("true")), _search(method, "labels", _task("other"))
    assert la.extra["alphas"] != lb.extra["alphas"]


def test_staged_pdarts_searches_a_pretext_without_labels() -> None:
    """P-DARTS builds a new supernet per stage: each must carry the pretext's head and read no label."""
    result = oneshot_search(
        "pdarts", "nb201", _task("poison"), 3, 8, 0, supernet_size=TINY, device="cpu", objective="rotation"
    )
    assert result.extra["objective"]["num_classes"] == 4 and len(result.extra["depths"]) == 3
    assert result.trace[-1]["epoch"] == 3
    labels = oneshot_search("pdarts", "nb201", _task(), 3, 8, 0, supernet_size=TINY, device="cpu")
    assert result.extra["supernet_params"] != labels.extra["supernet_params"]  # the last stage's head is 4-way


def test_default_objective_is_the_label_search() -> None:
    default = oneshot_search("darts", "nb201", _task(), 1, 8, 0, supernet_size=TINY, device="cpu")
    labels = _search("darts", "labels")
    assert default.extra["alphas"] == labels.extra["alphas"] and default.extra["objective"] == "labels"
    assert default.trace[-1]["val_acc"] == labels.trace[-1]["val_acc"]


@pytest.mark.parametrize("objective", ["jigsaw", COLOR])
def test_pretext_heads_on_the_darts_space(objective: Any) -> None:
    result = _search("darts", objective, _task(n=16), "darts", C=2, layers=2)
    assert len(result.trace) == 2 and 0.0 <= result.trace[-1]["val_acc"] <= 100.0


def test_bad_objective_names_itself() -> None:
    with pytest.raises(ValueError, match="'rotate'"):
        _search("darts", "rotate")
    with pytest.raises(ValueError, match="'puzzle'"):
        pretext_objective({"name": "puzzle"})
    with pytest.raises(ValueError, match="grid"):
        pretext_objective({"name": "jigsaw", "grid": 1})
    with pytest.raises(ValueError, match="42"):
        pretext_objective(42)  # type: ignore[arg-type]


def test_cli_objective() -> None:
    """``nasmeta search oneshot --objective rotation``: searched without labels, then retrained on them."""
    from typer.testing import CliRunner

    from flows.cli import app

    args = ["search", "oneshot", "--task", "digits", "--method", "darts", "--epochs", "1", "--size", "C=4"]
    args += ["--size", "N=1", "--samples-per-class", "4", "--batch-size", "8", "--device", "cpu", "--no-track"]
    done = CliRunner().invoke(app, [*args, "--objective", "rotation", "--retrain-epochs", "1"])
    assert done.exit_code == 0, done.output
    assert "found: |" in done.output and "retrained 1 epochs" in done.output
    bad = CliRunner().invoke(app, [*args, "--objective", "nope"])
    assert bad.exit_code == 2 and "'nope'" in bad.output
