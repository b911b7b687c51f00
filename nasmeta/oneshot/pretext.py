"""UnNAS: pretext objectives that replace the labels as the search objective of any one-shot strategy.

Liu, Dollar, He, Girshick, Yuille & Xie, "Are Labels Necessary for Neural Architecture Search?", ECCV 2020.  The
architecture search (DARTS in the paper; here every strategy of :mod:`nasmeta.oneshot`) runs on a self-supervised
task built from the images alone; the found cell is then trained on the labels (``nasmeta.retrain`` / the NB201
table).  The three pretext tasks, as the paper and its CIFAR-10 code define them:

* **rotation** (Gidaris et al., ICLR 2018): each image rotated by ``k * 90`` degrees (``torch.rot90(x, k,
  dims=(2, 3))``, counter-clockwise), label ``k`` in ``0..3``; all four rotations of every image are samples
  (``all_rotations=True``, the paper).  The head is a 4-way classifier.
* **colorization** (Zhang et al., ECCV 2016): input = the CIE Lab ``L`` channel (sRGB, D65), target = per pixel the
  nearest in-gamut ``ab`` bin of a grid of spacing 10; per-pixel cross-entropy.  The head replaces pooling and
  linear layer by a 1x1 convolution to the bins, upsampled bilinearly to the input size (the paper's targets are at
  full resolution).
* **jigsaw** (Noroozi & Favaro, ECCV 2016): the image is cut into a ``grid x grid`` board, a random gap leaves a
  tile of ``int(0.76 * patch)`` pixels in each patch, each tile is normalised to zero mean / unit std, the tiles are
  placed by a permutation drawn from a fixed set (tile of patch ``p`` goes to slot ``perm[p]``) and the label is the
  permutation's index.  The tiles run through the supernet one by one (shared weights, a siamese network); the head
  concatenates their pooled features and classifies the permutation (Noroozi & Favaro's context-free network).
  On CIFAR-10 the paper uses a 2x2 grid and all 24 permutations (the default); larger grids take ``permutations``
  of the ``grid**2!`` by Noroozi's greedy maximal-Hamming-distance selection.

Only ``task.x_train`` (and, for colorization, the task's normalisation statistics) is read: no label of any split.

Deviations:

* The pretext samples are drawn once per search from the seed (which rotation when ``all_rotations=False``, which
  permutation and gap per jigsaw image) instead of afresh in every epoch: the one-shot loop and the strategies read
  fixed tensors (``SearchData``).  The search uses no data augmentation (no flips, crops, grayscale jitter), as the
  label search here.
* Colorization: hard nearest-bin targets, as the paper's code does (Zhang et al. soft-encode each pixel over 5
  neighbours and rebalance rare colours; neither is used).  The bins are the grid cells a dense sample of the sRGB
  cube (64 levels per channel) falls in: 261 bins here against Zhang et al.'s 313 (their hull comes from ImageNet
  colours with a different sampling).  The ``L`` input is standardised with its mean / std on the weight half
  (the paper: ``L / 100`` with CIFAR's RGB mean / std).
* The colorization head (1x1 convolution on the last feature map, bilinear upsampling) is this module's choice; the
  paper's dense-prediction network is not reproduced.
* Rotation's four copies of an image are shuffled into different training batches (the paper keeps them in one
  batch); in the stored order (what evaluations batch) they are adjacent.
* Strategies that measure something on the search data's input shape (ProxylessNAS' latency table) measure it on
  the pretext inputs (one ``L`` channel; the jigsaw's stacked tiles), not on the label task's images.
"""

from __future__ import annotations

import abc
import itertools
import math
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from nasmeta.data.types import TaskData
from nasmeta.oneshot.loop import SearchData
from nasmeta.oneshot.supernet import Supernet
from nasmeta.spaces.base import SearchSpace

OBJECTIVES = ("labels", "rotation", "colorization", "jigsaw")


# -- rotation ---------------------------------------------------------------------------------------------------
def rotate(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Image ``i`` of ``x`` ``(N, C, H, W)`` rotated by ``k[i] * 90`` degrees counter-clockwise (``torch.rot90``)."""
    if x.shape[-1] != x.shape[-2]:
        raise ValueError(f"rotation needs square images, got {tuple(x.shape[-2:])}")
    out = x.clone()
    for r in range(1, 4):
        mask = k == r
        out[mask] = torch.rot90(x[mask], r, dims=(2, 3))
    return out


# -- colorization -----------------------------------------------------------------------------------------------
_RGB_TO_XYZ = torch.tensor(
    [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]]
)
_D65 = torch.tensor([0.95047, 1.0, 1.08883])


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """CIE Lab (D65) of sRGB values in ``[0, 1]``, channels at dim -3: ``L`` in ``[0, 100]``, ``a``, ``b``."""
    if rgb.shape[-3] != 3:
        raise ValueError(f"rgb_to_lab needs 3 channels at dim -3, got shape {tuple(rgb.shape)}")
    c = rgb.double().clamp(0.0, 1.0)
    linear = torch.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    xyz = torch.einsum("ij,...jhw->...ihw", _RGB_TO_XYZ.double(), linear) / _D65.double().view(3, 1, 1)
    delta = 6.0 / 29.0
    f = torch.where(xyz > delta**3, xyz.clamp_min(1e-12) ** (1.0 / 3.0), xyz / (3 * delta**2) + 4.0 / 29.0)
    fx, fy, fz = f.unbind(-3)
    return torch.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], dim=-3).float()


def ab_bins(spacing: float = 10.0, levels: int = 64) -> torch.Tensor:
    """``(K, 2)`` centres (multiples of ``spacing``) of the ``ab`` grid cells that sRGB colours fall in, sorted by
    ``a`` then ``b``: the colours are a ``levels**3`` grid over the sRGB cube."""
    if spacing <= 0 or levels < 2:
        raise ValueError(f"spacing must be > 0 and levels >= 2, got {spacing!r}, {levels!r}")
    grid = torch.linspace(0.0, 1.0, levels)
    rgb = torch.cartesian_prod(grid, grid, grid).T.reshape(1, 3, levels**3, 1)
    ab = rgb_to_lab(rgb)[0, 1:, :, 0].T
    centres = torch.unique(torch.round(ab / spacing).long(), dim=0)
    return centres.float() * spacing


def ab_targets(ab: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """Index of the nearest bin (Euclidean in ``ab``) of each pixel: ``(N, 2, H, W)`` -> ``(N, H, W)`` int64."""
    flat = ab.permute(0, 2, 3, 1).reshape(-1, 2)
    out = torch.empty(len(flat), dtype=torch.long)
    for i in range(0, len(flat), 65536):  # cdist of a whole data set against the bins would not fit in memory
        out[i : i + 65536] = torch.cdist(flat[i : i + 65536], bins).argmin(dim=1)
    return out.reshape(ab.shape[0], *ab.shape[2:])


# -- jigsaw -----------------------------------------------------------------------------------------------------
def jigsaw_permutations(grid: int, count: int | None = None, seed: int = 0) -> torch.Tensor:
    """``(count, grid**2)`` permutations: all of them in lexicographic order when ``count`` is None or covers
    them all, else Noroozi & Favaro's greedy selection (start from a random one, repeatedly add the permutation whose
    smallest Hamming distance to the chosen ones is largest, ties to the lowest index)."""
    if isinstance(grid, bool) or not isinstance(grid, int) or grid < 2:
        raise ValueError(f"jigsaw grid must be an integer >= 2, got {grid!r}")
    n_tiles = grid * grid
    total = math.factorial(n_tiles)
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 2):
        raise ValueError(f"jigsaw permutations must be an integer >= 2 or None, got {count!r}")
    if count is None or count >= total:
        return torch.tensor(list(itertools.permutations(range(n_tiles))), dtype=torch.long)
    if total > 10**7:
        raise ValueError(f"a {grid}x{grid} jigsaw has {total} permutations: too many to select from")
    every = np.array(list(itertools.permutations(range(n_tiles))), dtype=np.int8)
    chosen = [int(np.random.default_rng(seed).integers(total))]
    nearest = (every != every[chosen[0]]).sum(axis=1)
    for _ in range(count - 1):
        pick = int(nearest.argmax())
        chosen.append(pick)
        nearest = np.minimum(nearest, (every != every[pick]).sum(axis=1))
    return torch.from_numpy(every[chosen].astype(np.int64))


def shuffle_tiles(tiles: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """Place tile ``p`` of ``tiles`` ``(N, T, ...)`` at slot ``perm[i, p]`` (one permutation per image)."""
    out = torch.empty_like(tiles)
    rows = torch.arange(len(tiles)).unsqueeze(1)
    out[rows, perm] = tiles
    return out


def unshuffle_tiles(slots: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`shuffle_tiles`: tile ``p`` is read back from slot ``perm[i, p]``."""
    return slots[torch.arange(len(slots)).unsqueeze(1), perm]


# -- head surgery -----------------------------------------------------------------------------------------------
def _head_owner(supernet: Supernet) -> nn.Module:
    """The module whose forward ends in ``classifier(global_pooling(features).flatten(1))`` (both supernets)."""
    for module in supernet.modules():
        if isinstance(getattr(module, "global_pooling", None), nn.Module) and isinstance(
            getattr(module, "classifier", None), nn.Linear
        ):
            return module
    raise ValueError(f"{type(supernet).__name__} has no global_pooling / Linear classifier head to replace")


def _feature_shape(supernet: Supernet, owner: nn.Module, input_shape: tuple[int, int, int]) -> torch.Size:
    """The feature map's ``(C, h, w)`` before pooling, from a forward pass in eval mode (no BN statistics move)."""
    seen: list[torch.Size] = []
    handle = owner.global_pooling.register_forward_pre_hook(lambda _m, args: seen.append(args[0].shape[1:]))
    was_training = supernet.training
    supernet.eval()
    try:
        with torch.no_grad():
            supernet(torch.zeros(2, *input_shape, device=next(supernet.parameters()).device))
    finally:
        handle.remove()
        supernet.train(was_training)
    return seen[0]


class _TileConcat(nn.Module):
    """Siamese jigsaw head: ``(N * T, C)`` pooled tile features -> ``(N, T * C)`` -> permutation logits."""

    def __init__(self, tiles: int, channels: int, classes: int) -> None:
        super().__init__()
        self.tiles = tiles
        self.fc = nn.Linear(tiles * channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.reshape(-1, self.tiles * x.shape[1]))


# -- objectives -------------------------------------------------------------------------------------------------
class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RotationConfig(_Config):
    name: Literal["rotation"] = "rotation"
    #: every image in all four rotations (the paper), or one uniformly drawn rotation per image (same steps per epoch
    #: as a label search)
    all_rotations: bool = True


class ColorizationConfig(_Config):
    name: Literal["colorization"] = "colorization"
    spacing: float = Field(10.0, gt=0)
    #: per-channel mean / std that normalised the images (``[0, 1]`` scale); None: the task's own
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None


class JigsawConfig(_Config):
    name: Literal["jigsaw"] = "jigsaw"
    grid: int = Field(2, ge=2)
    #: size of the permutation set (None: all ``grid**2!``)
    permutations: int | None = Field(None, ge=2)
    #: tile side over patch side (the gap; paper: 0.76)
    tile_fraction: float = Field(0.76, gt=0, le=1)


class Pretext(abc.ABC):
    """A pretext task: images -> (inputs, targets), and the head the supernet needs for it."""

    name: ClassVar[str]
    config: Any

    @property
    @abc.abstractmethod
    def num_classes(self) -> int:
        """Outputs of the head (per image, or per pixel for colorization)."""

    @abc.abstractmethod
    def input_shape(self, image_shape: tuple[int, int, int]) -> tuple[int, int, int]:
        """Shape of one pretext input made from an image of ``image_shape``."""

    @abc.abstractmethod
    def transform(self, x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Pretext inputs and targets made from images ``x`` (no labels)."""

    def prepare(self, task: TaskData) -> None:  # noqa: B027 - only colorization needs the task's statistics
        """Read what the transform needs from the task besides its images (never its labels)."""

    def adapt(self, supernet: Supernet, image_shape: tuple[int, int, int]) -> None:  # noqa: B027
        """Resize or replace the supernet's head for the task (classification tasks need nothing: the supernet is
        built with ``num_classes`` outputs)."""

    def state(self) -> dict[str, Any]:
        return {**self.config.model_dump(), "num_classes": self.num_classes}


class RotationPretext(Pretext):
    name = "rotation"

    def __init__(self, config: RotationConfig) -> None:
        self.config = config

    @property
    def num_classes(self) -> int:
        return 4

    def input_shape(self, image_shape: tuple[int, int, int]) -> tuple[int, int, int]:
        return image_shape

    def transform(self, x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        if self.config.all_rotations:
            # image-major (image i's rotations at rows 4i..4i+3): any run of rows, such as an evaluation batch whose
            # BN uses batch statistics, holds the four rotations equally often
            k = torch.arange(4).repeat(len(x))
            return rotate(x.repeat_interleave(4, dim=0), k), k
        k = torch.randint(0, 4, (len(x),), generator=generator)
        return rotate(x, k), k


class ColorizationPretext(Pretext):
    name = "colorization"

    def __init__(self, config: ColorizationConfig) -> None:
        self.config = config
        self.bins = ab_bins(config.spacing)
        self.mean: tuple[float, ...] | None = config.mean
        self.std: tuple[float, ...] | None = config.std
        self.l_stats: tuple[float, float] | None = None

    @property
    def num_classes(self) -> int:
        return len(self.bins)

    def input_shape(self, image_shape: tuple[int, int, int]) -> tuple[int, int, int]:
        return 1, image_shape[1], image_shape[2]

    def prepare(self, task: TaskData) -> None:
        if task.input_shape[0] != 3:
            raise ValueError(f"colorization needs RGB images, task {task.name!r} has {task.input_shape[0]} channel(s)")
        self.l_stats = None  # set again by the weight half of this task
        if self.mean is None or self.std is None:
            from nasmeta.data.tasks import spec_of

            spec = spec_of(task)
            if spec is None:
                raise ValueError(
                    f"colorization needs the per-channel mean / std that normalised task {task.name!r}; pass "
                    "objective={'name': 'colorization', 'mean': ..., 'std': ...}"
                )
            self.mean, self.std = spec.normalisation()

    def lab(self, x: torch.Tensor) -> torch.Tensor:
        """Lab of normalised images (undoing the task's per-channel normalisation)."""
        if self.mean is None or self.std is None:
            raise ValueError("colorization: prepare(task) must run before the transform (it reads mean / std)")
        mean = torch.tensor(self.mean, dtype=x.dtype).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype).view(1, 3, 1, 1)
        return rgb_to_lab(x * std + mean)

    def transform(self, x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        lab = self.lab(x)
        lightness = lab[:, :1] / 100.0
        if self.l_stats is None:  # the first (weight) half sets the standardisation, as the task's own statistics
            self.l_stats = float(lightness.mean()), float(lightness.std().clamp_min(1e-8))
        inputs = (lightness - self.l_stats[0]) / self.l_stats[1]
        return inputs.contiguous(), ab_targets(lab[:, 1:], self.bins)

    def adapt(self, supernet: Supernet, image_shape: tuple[int, int, int]) -> None:
        owner = _head_owner(supernet)
        channels = _feature_shape(supernet, owner, self.input_shape(image_shape))[0]
        size = (image_shape[1], image_shape[2])
        # forward: classifier(global_pooling(features).flatten(1)); the conv + upsampling take the pooling's place
        # and the classifier's place restores the map, so the supernet's own forward stays as it is
        owner.global_pooling = nn.Sequential(
            nn.Conv2d(channels, self.num_classes, 1), nn.Upsample(size=size, mode="bilinear", align_corners=False)
        )
        owner.classifier = nn.Unflatten(1, (self.num_classes, *size))

    def state(self) -> dict[str, Any]:
        return {**super().state(), "mean": self.mean, "std": self.std, "l_stats": self.l_stats}


class JigsawPretext(Pretext):
    name = "jigsaw"

    def __init__(self, config: JigsawConfig, seed: int = 0) -> None:
        self.config = config
        self.perms = jigsaw_permutations(config.grid, config.permutations, seed)

    @property
    def num_classes(self) -> int:
        return len(self.perms)

    def _sizes(self, image_shape: tuple[int, int, int]) -> tuple[int, int]:
        patch = min(image_shape[1], image_shape[2]) // self.config.grid
        tile = int(patch * self.config.tile_fraction)
        if tile < 1:
            grid = self.config.grid
            raise ValueError(f"a {grid}x{grid} jigsaw of {image_shape[1:]} images leaves tiles without pixels")
        return patch, tile

    def input_shape(self, image_shape: tuple[int, int, int]) -> tuple[int, int, int]:
        _, tile = self._sizes(image_shape)
        return self.config.grid**2 * image_shape[0], tile, tile

    def tiles(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """``(N, grid**2, C, tile, tile)``: each patch (row-major) cropped at a random offset and normalised."""
        n, c = x.shape[:2]
        patch, tile = self._sizes((c, x.shape[2], x.shape[3]))
        g = self.config.grid
        offsets = torch.randint(0, patch - tile + 1, (n, g * g, 2), generator=generator)
        rows = torch.arange(tile)
        out = torch.empty(n, g * g, c, tile, tile, dtype=x.dtype)
        index = torch.arange(n).view(n, 1, 1)
        for p in range(g * g):
            top = (p // g) * patch + offsets[:, p, 0].view(n, 1) + rows  # (n, tile)
            left = (p % g) * patch + offsets[:, p, 1].view(n, 1) + rows
            out[:, p] = x[index, :, top.unsqueeze(2), left.unsqueeze(1)].permute(0, 3, 1, 2)
        mu = out.mean(dim=(2, 3, 4), keepdim=True)
        sigma = out.std(dim=(2, 3, 4), keepdim=True).clamp_min(1e-8)
        return (out - mu) / sigma

    def transform(self, x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        tiles = self.tiles(x, generator)
        labels = torch.randint(0, len(self.perms), (len(x),), generator=generator)
        slots = shuffle_tiles(tiles, self.perms[labels])
        return slots.flatten(1, 2).contiguous(), labels

    def adapt(self, supernet: Supernet, image_shape: tuple[int, int, int]) -> None:
        owner = _head_owner(supernet)
        n_tiles, c = self.config.grid**2, image_shape[0]

        def split_tiles(_module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
            x = args[0]  # (N, T * C, t, t): one image's tiles side by side in channels -> (N * T, C, t, t)
            return (x.reshape(x.shape[0] * n_tiles, c, *x.shape[2:]), *args[1:])

        supernet.register_forward_pre_hook(split_tiles)
        owner.classifier = _TileConcat(n_tiles, owner.classifier.in_features, self.num_classes)


def pretext_objective(objective: str | Mapping[str, Any] | Pretext | None, seed: int = 0) -> Pretext | None:
    """The pretext task named by ``objective`` (a name, a mapping with ``name`` and settings, or a ``Pretext``);
    None for ``"labels"`` (or None): the ordinary label search."""
    if isinstance(objective, Pretext):
        return objective
    if objective is None or objective == "labels":
        return None
    settings: dict[str, Any]
    if isinstance(objective, str):
        name, settings = objective, {}
    elif isinstance(objective, Mapping):
        name, settings = objective.get("name"), {k: v for k, v in objective.items() if k != "name"}
    else:
        raise ValueError(f"unknown search objective {objective!r}; known: {', '.join(OBJECTIVES)}")
    if name == "rotation":
        return RotationPretext(RotationConfig(**settings))
    if name == "colorization":
        return ColorizationPretext(ColorizationConfig(**settings))
    if name == "jigsaw":
        return JigsawPretext(JigsawConfig(**settings), seed)
    raise ValueError(f"unknown search objective {name!r}; known: {', '.join(OBJECTIVES)}")


def pretext_search_data(task: TaskData, pretext: Pretext, seed: int = 0, train_portion: float = 0.5) -> SearchData:
    """The pretext version of :meth:`SearchData.from_task`: the same shuffled halves of ``task.x_train``, each turned
    into pretext inputs and targets; no label of the task is read."""
    if not 0.0 < train_portion < 1.0:
        raise ValueError(f"train_portion must be in (0, 1), got {train_portion!r}")
    x = task.x_train
    n = len(x)
    cut = int(math.floor(n * train_portion))
    if cut < 1 or cut >= n:
        raise ValueError(f"the train split has {n} samples: too few to halve into weight and arch data")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    pretext.prepare(task)
    generator = torch.Generator().manual_seed(seed + 1)
    x_train, y_train = pretext.transform(x[order[:cut]], generator)
    x_val, y_val = pretext.transform(x[order[cut:]], generator)
    return SearchData(x_train, y_train, x_val, y_val, pretext.num_classes)


def search_data(
    objective: str | Mapping[str, Any] | Pretext | None, task: TaskData, seed: int, train_portion: float
) -> tuple[SearchData, Pretext | None]:
    """Search data for ``objective`` (labels: the task's labels; a pretext: its label-free inputs and targets) and
    the pretext (None for labels).  Seeded by ``seed`` alone: the global random state is not touched."""
    pretext = pretext_objective(objective, seed)
    if pretext is None:
        return SearchData.from_task(task, seed, train_portion), None
    return pretext_search_data(task, pretext, seed, train_portion), pretext


def search_supernet(
    space: SearchSpace, task: TaskData, data: SearchData, pretext: Pretext | None, size: Mapping[str, Any]
) -> Supernet:
    """The supernet for :func:`search_data`'s ``data``: the task's classes, or the pretext's head.  Its init draws
    from the global random state (seed it first)."""
    if pretext is None:
        return space.supernet(task.num_classes, task.input_shape, **size)
    image_shape = task.input_shape
    # the jigsaw supernet sees single tiles: its stem takes the image channels, not the stacked tiles
    tile_shape = (image_shape[0], *data.input_shape[1:]) if isinstance(pretext, JigsawPretext) else data.input_shape
    supernet = space.supernet(pretext.num_classes, tile_shape, **size)
    pretext.adapt(supernet, image_shape)
    return supernet


def search_setup(
    objective: str | Mapping[str, Any] | Pretext | None,
    space: SearchSpace,
    task: TaskData,
    seed: int,
    train_portion: float,
    size: Mapping[str, Any],
) -> tuple[Supernet, SearchData, Pretext | None]:
    """:func:`search_data` and :func:`search_supernet` in one call.  ``torch.manual_seed(seed)`` must precede it
    (it seeds the supernet's init)."""
    data, pretext = search_data(objective, task, seed, train_portion)
    return search_supernet(space, task, data, pretext, size), data, pretext


__all__ = [
    "OBJECTIVES",
    "ColorizationConfig",
    "JigsawConfig",
    "Pretext",
    "RotationConfig",
    "ab_bins",
    "ab_targets",
    "jigsaw_permutations",
    "pretext_objective",
    "pretext_search_data",
    "rgb_to_lab",
    "rotate",
    "search_data",
    "search_setup",
    "search_supernet",
    "shuffle_tiles",
    "unshuffle_tiles",
]
