"""N-way K-shot episodes drawn from class pools with disjoint meta-train / meta-test classes.

Finn, Abbeel & Levine, "Model-Agnostic Meta-Learning", ICML 2017 (Omniglot protocol: characters are classes,
rotations by 90/180/270 degrees add new classes, meta-train and meta-test classes are disjoint); Vinyals et al.,
"Matching Networks", NeurIPS 2016 (the episode: N classes, K labelled support images each, query images of the
same classes, labels 0..N-1 in a random order per episode).

Pools:
- ``omniglot``: ``images/omniglot_small_28.npz``; split 0 (images_background_small1, 136 characters of 5
  alphabets) is the meta-train pool, split 1 (images_background_small2) the meta-test pool *without* the 50
  characters it shares with split 0 (Greek and Latin are in both sets with identical drawings): 106 characters of
  Japanese (katakana), Sanskrit and Tagalog.  Strokes are made
  high (1 - x/255).  With ``rotations`` every character gives four classes (0/90/180/270 degrees) in its own pool,
  so rotated copies of a meta-test character never reach meta-training.
- ``mnist`` / ``cifar10``: digits 0-4 (CIFAR-10: airplane..deer) are meta-train classes, 5-9 (dog..truck)
  meta-test classes, taken from the training split (``max_per_class`` images each); rotations add classes.

Deviations: images are resized with area interpolation when ``image_size`` differs from the file's size (MAML
resized Omniglot to 28x28 with PIL, which the file already is); the small Omniglot background sets replace the
full 1,623-character set (not in the data folder).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from nasmeta.config import data_file

POOLS = ("omniglot", "mnist", "cifar10")
_ROTATIONS = (0, 1, 2, 3)  # multiples of 90 degrees


@dataclass(frozen=True)
class ClassPool:
    """Images grouped by class: ``images[c]`` is ``(n_c, C, H, W)`` float32 in [0, 1]; ``names[c]`` its label."""

    name: str
    images: tuple[np.ndarray, ...]
    names: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.images) != len(self.names):
            raise ValueError(f"{len(self.images)} image groups but {len(self.names)} class names")
        if len(set(self.names)) != len(self.names):
            raise ValueError("class names of a pool must be distinct")
        shapes = {im.shape[1:] for im in self.images}
        if len(shapes) > 1:
            raise ValueError(f"all images of a pool need one shape, got {sorted(shapes)}")

    @property
    def num_classes(self) -> int:
        return len(self.images)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self.images[0].shape[1:])  # type: ignore[return-value]

    @property
    def min_per_class(self) -> int:
        return min(len(im) for im in self.images)


@dataclass(frozen=True)
class Episode:
    """One few-shot task: support and query tensors, labels ``0..ways-1``, and the pool classes behind them."""

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor
    classes: tuple[str, ...]

    @property
    def ways(self) -> int:
        return len(self.classes)


def _resize(x: np.ndarray, size: int) -> np.ndarray:
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    t = torch.from_numpy(x)
    return torch.nn.functional.interpolate(t, size=(size, size), mode="area").numpy()


def _grouped(
    x: np.ndarray,
    y: np.ndarray,
    classes: list[int],
    labels: list[str],
    rotations: bool,
    size: int,
    max_per_class: int | None,
    rng: np.random.Generator,
) -> tuple[list[np.ndarray], list[str]]:
    images, names = [], []
    for c, label in zip(classes, labels, strict=True):
        idx = np.flatnonzero(y == c)
        if max_per_class is not None and len(idx) > max_per_class:
            idx = np.sort(rng.choice(idx, size=max_per_class, replace=False))
        group = _resize(x[idx], size)
        for k in _ROTATIONS if rotations else (0,):
            images.append(np.ascontiguousarray(np.rot90(group, k, axes=(2, 3))))
            names.append(label if not rotations else f"{label}@rot{90 * k}")
    return images, names


def load_pools(
    name: str = "omniglot",
    image_size: int = 28,
    rotations: bool = True,
    max_per_class: int | None = 200,
    seed: int = 0,
) -> tuple[ClassPool, ClassPool]:
    """``(meta_train_pool, meta_test_pool)`` of ``name`` (``omniglot``, ``mnist``, ``cifar10``) from the data folder.

    ``max_per_class`` caps MNIST / CIFAR-10 classes (a seeded draw); Omniglot classes have 20 drawings each.
    """
    if name not in POOLS:
        raise ValueError(f"unknown few-shot pool {name!r}; choose from {list(POOLS)}")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 4:
        raise ValueError(f"image_size must be an integer >= 4, got {image_size!r}")
    rng = np.random.default_rng(seed)
    if name == "omniglot":
        with np.load(data_file("images/omniglot_small_28.npz")) as f:
            x = (1.0 - f["x"].astype(np.float32) / 255.0)[:, None]
            y, split, class_names = f["y"], f["split"], [str(s) for s in f["class_names"]]
        pools = []
        train_names = {class_names[int(c)] for c in np.unique(y[split == 0])}
        for s in (0, 1):
            classes = sorted(int(c) for c in np.unique(y[split == s]))
            if s == 1:
                # the two "small" sets share the Greek and Latin alphabets (50 characters, identical drawings)
                classes = [c for c in classes if class_names[c] not in train_names]
            images, names = _grouped(x, y, classes, [class_names[c] for c in classes], rotations, image_size, None, rng)
            pools.append(ClassPool(f"omniglot/{'meta-train' if s == 0 else 'meta-test'}", tuple(images), tuple(names)))
        return pools[0], pools[1]
    if name == "mnist":
        with np.load(data_file("images/mnist.npz")) as f:
            x = (f["x_train"].astype(np.float32) / 255.0)[:, None]
            y = f["y_train"]
        labels = [str(d) for d in range(10)]
    else:
        with np.load(data_file("images/cifar10_10k.npz")) as f:
            x = f["x_train"].astype(np.float32).transpose(0, 3, 1, 2) / 255.0
            y = f["y_train"]
        labels = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    out = []
    for part, classes in (("meta-train", list(range(5))), ("meta-test", list(range(5, 10)))):
        images, names = _grouped(x, y, classes, [labels[c] for c in classes], rotations, image_size, max_per_class, rng)
        out.append(ClassPool(f"{name}/{part}", tuple(images), tuple(names)))
    return out[0], out[1]


class EpisodeSampler:
    """Seeded ``ways``-way ``shots``-shot episodes with ``queries`` query images per class from ``pool``.

    ``episode(i)`` is a pure function of ``(seed, i)``, so the i-th meta-test episode is the same for every
    method compared on it.
    """

    def __init__(self, pool: ClassPool, ways: int, shots: int, queries: int = 15, seed: int = 0) -> None:
        for label, value, low in (("ways", ways, 2), ("shots", shots, 1), ("queries", queries, 1)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
                raise ValueError(f"{label} must be an integer >= {low}, got {value!r}")
        if ways > pool.num_classes:
            raise ValueError(f"ways={ways} exceeds the {pool.num_classes} classes of pool {pool.name!r}")
        if shots + queries > pool.min_per_class:
            raise ValueError(
                f"shots={shots} + queries={queries} exceeds the {pool.min_per_class} images of the smallest class "
                f"of pool {pool.name!r}"
            )
        self.pool, self.ways, self.shots, self.queries, self.seed = pool, int(ways), int(shots), int(queries), seed

    def episode(self, index: int) -> Episode:
        rng = np.random.default_rng([self.seed, int(index)])
        classes = rng.choice(self.pool.num_classes, size=self.ways, replace=False)
        sx, qx = [], []
        for c in classes:
            group = self.pool.images[c]
            pick = rng.choice(len(group), size=self.shots + self.queries, replace=False)
            sx.append(group[pick[: self.shots]])
            qx.append(group[pick[self.shots :]])
        labels = np.arange(self.ways)
        return Episode(
            support_x=torch.from_numpy(np.concatenate(sx)),
            support_y=torch.from_numpy(np.repeat(labels, self.shots)),
            query_x=torch.from_numpy(np.concatenate(qx)),
            query_y=torch.from_numpy(np.repeat(labels, self.queries)),
            classes=tuple(self.pool.names[c] for c in classes),
        )

    def batch(self, start: int, size: int) -> list[Episode]:
        return [self.episode(start + i) for i in range(size)]
