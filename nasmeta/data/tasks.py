"""Tasks: a hashable :class:`TaskSpec` (source + derivations) that loads to train / val / test tensors.

Derived tasks give many source tasks from few datasets (as TAPAS did with ImageNet subsets): class subsets
(labels remapped to ``0..k-1`` in ascending order of the original labels), per-class subsampling, resizing,
grayscale <-> RGB, and corruptions (a random rotation per image, Gaussian blur, additive Gaussian pixel noise).

``load()`` applies, in this order: class subset -> per-class subsample of the source's train split
(``samples_per_class``, chosen by ``split_seed``) and of its test split (``test_per_class``, fixed seed 0 so every
split seed shares one test set) -> stratified validation split carved from train (``val_fraction``, by
``split_seed``) -> to float in ``[0, 1]`` -> channels -> resolution (bilinear, antialiased) -> corruption (same
for all splits, by ``corruption.seed``) -> per-channel normalisation with mean / std of the train split only.

``task_id`` hashes every field that changes the tensors; ``name`` is a label and is not part of it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import threading
from collections import OrderedDict
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from nasmeta.data.sources import RawData, get_source, load_source
from nasmeta.data.types import TaskData
from nasmeta.spaces.base import stable_hash

__all__ = [
    "Corruption",
    "TaskSpec",
    "get_task",
    "list_tasks",
    "register_task",
    "resolve_task",
    "spec_of",
]

_TEST_SUBSAMPLE_SEED = 0
_CACHE_SIZE = 6


class Corruption(BaseModel):
    """Per-image corruption applied to every split.

    ``rotation``: each image is rotated by an angle drawn uniformly from ``[-rotation, rotation]`` degrees
    (bilinear, zero fill).  ``blur``: Gaussian blur with this standard deviation in output pixels
    (``torchvision``'s ``gaussian_blur``, kernel ``2 * ceil(3 * blur) + 1``, reflect padding).  ``noise_std``:
    Gaussian noise of this standard deviation on the ``[0, 1]`` pixel scale, then clipped to ``[0, 1]``.  They are
    applied in that order; ``seed`` fixes the random draws.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    rotation: float = Field(0.0, ge=0.0, le=180.0)
    noise_std: float = Field(0.0, ge=0.0)
    blur: float = Field(0.0, ge=0.0, le=10.0)
    seed: int = 0

    @property
    def is_identity(self) -> bool:
        return self.rotation == 0.0 and self.noise_std == 0.0 and self.blur == 0.0


class TaskSpec(BaseModel):
    """A named, hashable description of an image-classification task (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    source: str = "digits"
    #: original class labels to keep (sorted, remapped to 0..k-1); None keeps all
    classes: tuple[int, ...] | None = None
    #: square output size in pixels; None keeps the source's
    resolution: int | None = Field(None, ge=2)
    #: 1 (grayscale, ITU-R 601 luma) or 3 (gray replicated); None keeps the source's
    channels: Literal[1, 3] | None = None
    #: at most this many images per class from the source's train split (before the validation carve)
    samples_per_class: int | None = Field(None, ge=2)
    #: at most this many images per class from the source's test split
    test_per_class: int | None = Field(None, ge=1)
    val_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    split_seed: int = 0
    corruption: Corruption | None = None

    @field_validator("classes", mode="before")
    @classmethod
    def _check_classes(cls, value: object) -> object:
        if value is None:
            return None
        labels = list(value)  # type: ignore[call-overload]
        if not labels:
            raise ValueError("classes is an empty subset; give at least one class label or None for all")
        if any(not isinstance(c, int | np.integer) or c < 0 for c in labels):
            raise ValueError(f"classes must be non-negative integer labels, got {labels}")
        if len(set(labels)) != len(labels):
            raise ValueError(f"classes has duplicates: {labels}")
        return tuple(sorted(int(c) for c in labels))

    @field_validator("source")
    @classmethod
    def _check_source(cls, value: str) -> str:
        get_source(value)  # raises ValueError for an unknown source string
        return value

    @model_validator(mode="after")
    def _normalise_corruption(self) -> TaskSpec:
        if self.corruption is not None and self.corruption.is_identity:
            object.__setattr__(self, "corruption", None)
        return self

    # -- identity ------------------------------------------------------------------------------------------
    @property
    def task_id(self) -> str:
        """Stable hash of everything that determines the tensors (``name`` excluded)."""
        fields = self.model_dump(mode="json", exclude={"name"})
        if fields["corruption"] is not None and fields["corruption"]["blur"] == 0.0:
            del fields["corruption"]["blur"]  # ids of tasks made before blur existed stay what they were
        return stable_hash("task", fields)

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, data: str | dict) -> TaskSpec:
        return cls.model_validate(json.loads(data) if isinstance(data, str) else data)

    def with_(self, **changes: object) -> TaskSpec:
        """A validated copy with some fields changed."""
        return TaskSpec.model_validate({**self.model_dump(), **changes})

    def small(self, samples_per_class: int = 200, test_per_class: int | None = 100) -> TaskSpec:
        """A few-thousand-image version for tests and CPU runs (name gets a ``-s<N>`` suffix)."""
        spc = samples_per_class if self.samples_per_class is None else min(samples_per_class, self.samples_per_class)
        tpc = test_per_class
        if self.test_per_class is not None and test_per_class is not None:
            tpc = min(test_per_class, self.test_per_class)
        return self.with_(name=f"{self.name}-s{spc}", samples_per_class=spc, test_per_class=tpc)

    @property
    def hflip(self) -> bool:
        """Whether a horizontal flip keeps labels (from the source: false for digits and characters)."""
        return get_source(self.source).hflip

    def available(self) -> bool:
        """Whether the data is present (no download needed)."""
        return get_source(self.source).available()

    # -- loading -------------------------------------------------------------------------------------------
    def load(self, download: bool | None = None) -> TaskData:
        """Train / val / test tensors, cached in-process per ``task_id`` (treat them as read-only)."""
        data = self._loaded(download)[0]
        # specs that differ only in name share the tensors but keep their own label
        return data if data.name == self.name else dataclasses.replace(data, name=self.name)

    def normalisation(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel (mean, std) of the train split on the ``[0, 1]`` pixel scale, used to normalise."""
        _, mean, std = self._loaded(None)
        return mean, std

    def _loaded(self, download: bool | None) -> tuple[TaskData, tuple[float, ...], tuple[float, ...]]:
        key = (self.task_id, get_source(self.source).location())
        with _LOCK:
            hit = _CACHE.get(key)
            if hit is not None:
                _CACHE.move_to_end(key)
                return hit
        result = _build(self, load_source(self.source, download))
        with _LOCK:
            _CACHE[key] = result
            _SPECS[self.task_id] = self
            while len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
        return result


_LOCK = threading.Lock()
_CACHE: OrderedDict[tuple[str, str], tuple[TaskData, tuple[float, ...], tuple[float, ...]]] = OrderedDict()
# task_id -> spec of every task loaded in this process (how the trainer learns e.g. whether flips apply)
_SPECS: dict[str, TaskSpec] = {}


def spec_of(task: TaskData) -> TaskSpec | None:
    """The spec a ``TaskData`` was loaded from in this process (``None`` for hand-made ``TaskData``)."""
    return _SPECS.get(task.task_id)


# -- the pipeline -------------------------------------------------------------------------------------------
def _per_class_take(y: np.ndarray, cap: int | None, rng: np.random.Generator) -> np.ndarray:
    """Indices of up to ``cap`` random images per class (all when ``cap`` is None), sorted."""
    if cap is None:
        return np.arange(len(y))
    keep = [rng.permutation(np.flatnonzero(y == label))[:cap] for label in np.unique(y)]
    return np.sort(np.concatenate(keep))


def _carve_val(y: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Stratified (train, val) indices; every class keeps at least one training image."""
    train, val = [], []
    for label in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == label))
        n_val = min(int(round(fraction * len(idx))), len(idx) - 1)
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def _to_channels(x: torch.Tensor, channels: int | None) -> torch.Tensor:
    if channels is None or x.shape[1] == channels:
        return x
    if channels == 3 and x.shape[1] == 1:
        return x.expand(-1, 3, -1, -1).contiguous()
    if channels == 1 and x.shape[1] == 3:
        luma = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype).view(1, 3, 1, 1)
        return (x * luma).sum(dim=1, keepdim=True)
    raise ValueError(f"cannot convert {x.shape[1]} channels to {channels}")


def _resize(x: torch.Tensor, resolution: int | None) -> torch.Tensor:
    if resolution is None or x.shape[-2:] == (resolution, resolution) or len(x) == 0:
        return x
    out = torch.nn.functional.interpolate(x, size=(resolution, resolution), mode="bilinear", antialias=True)
    return out.clamp_(0.0, 1.0)


def _corrupt(x: torch.Tensor, corruption: Corruption | None, split: int) -> torch.Tensor:
    if corruption is None or len(x) == 0:
        return x
    rng = np.random.default_rng([corruption.seed, split])
    if corruption.rotation > 0:
        angles = np.deg2rad(rng.uniform(-corruption.rotation, corruption.rotation, size=len(x)))
        cos, sin = torch.from_numpy(np.cos(angles)).float(), torch.from_numpy(np.sin(angles)).float()
        zeros = torch.zeros_like(cos)
        theta = torch.stack([torch.stack([cos, -sin, zeros], 1), torch.stack([sin, cos, zeros], 1)], 1)
        grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
        x = torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if corruption.blur > 0:
        from torchvision.transforms.functional import gaussian_blur

        kernel = 2 * math.ceil(3 * corruption.blur) + 1
        x = gaussian_blur(x, [kernel, kernel], [corruption.blur, corruption.blur])
    if corruption.noise_std > 0:
        noise = torch.from_numpy(rng.standard_normal(size=x.shape, dtype=np.float32))
        x = (x + corruption.noise_std * noise).clamp_(0.0, 1.0)
    return x


def _build(spec: TaskSpec, raw: RawData) -> tuple[TaskData, tuple[float, ...], tuple[float, ...]]:
    y_train, y_test = raw.y_train, raw.y_test
    train_idx, test_idx = np.arange(len(y_train)), np.arange(len(y_test))
    num_classes = raw.num_classes
    if spec.classes is not None:
        unknown = [c for c in spec.classes if c >= raw.num_classes]
        if unknown:
            raise ValueError(
                f"task {spec.name!r}: classes {unknown} not in source {spec.source!r} with {raw.num_classes} classes"
            )
        remap = np.full(raw.num_classes, -1, dtype=np.int64)
        remap[list(spec.classes)] = np.arange(len(spec.classes))
        train_idx, test_idx = np.flatnonzero(remap[y_train] >= 0), np.flatnonzero(remap[y_test] >= 0)
        y_train, y_test = remap[y_train], remap[y_test]
        num_classes = len(spec.classes)

    split_rng = np.random.default_rng(spec.split_seed)
    train_idx = train_idx[_per_class_take(y_train[train_idx], spec.samples_per_class, split_rng)]
    test_idx = test_idx[
        _per_class_take(y_test[test_idx], spec.test_per_class, np.random.default_rng(_TEST_SUBSAMPLE_SEED))
    ]
    fit, val = _carve_val(y_train[train_idx], spec.val_fraction, split_rng)
    fit_idx, val_idx = train_idx[fit], train_idx[val]

    def pixels(x: np.ndarray, idx: np.ndarray, split: int) -> torch.Tensor:
        t = torch.from_numpy(x[idx]).float().div_(raw.max_value)
        return _corrupt(_resize(_to_channels(t, spec.channels), spec.resolution), spec.corruption, split)

    xs = [pixels(raw.x_train, fit_idx, 0), pixels(raw.x_train, val_idx, 1), pixels(raw.x_test, test_idx, 2)]
    mean = xs[0].mean(dim=(0, 2, 3), dtype=torch.float64)
    std = xs[0].std(dim=(0, 2, 3)).double().clamp_min(1e-8)
    xs = [((x - mean.float().view(1, -1, 1, 1)) / std.float().view(1, -1, 1, 1)).contiguous() for x in xs]
    ys = [torch.from_numpy(y_train[fit_idx]), torch.from_numpy(y_train[val_idx]), torch.from_numpy(y_test[test_idx])]
    data = TaskData(
        task_id=spec.task_id,
        name=spec.name,
        x_train=xs[0],
        y_train=ys[0],
        x_val=xs[1],
        y_val=ys[1],
        x_test=xs[2],
        y_test=ys[2],
        num_classes=num_classes,
    )
    return data, tuple(float(m) for m in mean), tuple(float(s) for s in std)


# -- registry -------------------------------------------------------------------------------------------------
_REGISTRY: dict[str, TaskSpec] = {}


def register_task(name: str, spec: TaskSpec, overwrite: bool = False) -> TaskSpec:
    """Register ``spec`` under ``name`` (the spec is renamed to ``name``)."""
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"task {name!r} is already registered; pass overwrite=True to replace it")
    spec = spec if spec.name == name else spec.with_(name=name)
    _REGISTRY[name] = spec
    return spec


#: source strings usable directly as task names: a whole dataset from a file or folder
_FILE_SOURCES = ("npz:", "imagefolder:", "torchvision:")


def get_task(name: str) -> TaskSpec:
    """The registered task called ``name``, or a whole dataset named by its source (``npz:PATH``,
    ``imagefolder:PATH``, ``torchvision:NAME``); unknown names raise ``ValueError`` listing the registered ones."""
    if isinstance(name, str) and name.startswith(_FILE_SOURCES):
        return TaskSpec(name=name, source=name)
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        shown = name if not isinstance(name, str) or len(name) <= 80 else name[:77] + "..."
        raise ValueError(
            f"unknown task {shown!r}; registered tasks: {', '.join(list_tasks())}, or npz:PATH, imagefolder:PATH"
        ) from None


def check_data(name: str | TaskSpec) -> TaskSpec:
    """The task, after checking that its data can be found (a missing file raises ``DataNotFoundError`` naming the
    file and ``NASMETA_DATA_DIR``); nothing is loaded."""
    from nasmeta.config import DataNotFoundError

    spec = get_task(name) if isinstance(name, str) else name
    source = get_source(spec.source)
    location = source.location()  # files under the data folder raise here, naming the file and the variable
    if not source.available():
        raise DataNotFoundError(f"task {spec.name!r}: no data at {location}")
    return spec


def list_tasks(available_only: bool = False) -> list[str]:
    """Registered task names (optionally only those whose data is present)."""
    names = sorted(_REGISTRY)
    return [n for n in names if _REGISTRY[n].available()] if available_only else names


def resolve_task(task: str | TaskSpec | TaskData) -> TaskData:
    """Load a task given by registered name, spec or already-loaded data."""
    if isinstance(task, TaskData):
        return task
    if isinstance(task, str):
        task = get_task(task)
    if not isinstance(task, TaskSpec):
        raise TypeError(f"expected a task name, TaskSpec or TaskData, got {type(task).__name__}")
    return task.load()


def _register_defaults() -> None:
    even, odd = (0, 2, 4, 6, 8), (1, 3, 5, 7, 9)
    low, high = (0, 1, 2, 3, 4), (5, 6, 7, 8, 9)
    for base in ("digits", "mnist"):
        register_task(base, TaskSpec(name=base, source=base))
        register_task(f"{base}-0to4", TaskSpec(name="", source=base, classes=low))
        register_task(f"{base}-5to9", TaskSpec(name="", source=base, classes=high))
        register_task(f"{base}-even", TaskSpec(name="", source=base, classes=even))
        register_task(f"{base}-odd", TaskSpec(name="", source=base, classes=odd))
        register_task(f"{base}-3v8", TaskSpec(name="", source=base, classes=(3, 8)))
        register_task(f"{base}-1v7", TaskSpec(name="", source=base, classes=(1, 7)))
        register_task(f"{base}-0v1", TaskSpec(name="", source=base, classes=(0, 1)))
    register_task("digits-rot30", TaskSpec(name="", source="digits", corruption=Corruption(rotation=30)))
    register_task("digits-noisy", TaskSpec(name="", source="digits", corruption=Corruption(noise_std=0.3)))
    register_task("digits-rgb16", TaskSpec(name="", source="digits", channels=3, resolution=16))
    register_task("mnist-rot45", TaskSpec(name="", source="mnist", corruption=Corruption(rotation=45)))
    register_task("mnist-noisy", TaskSpec(name="", source="mnist", corruption=Corruption(noise_std=0.5)))
    register_task("mnist-14px", TaskSpec(name="", source="mnist", resolution=14))

    c10 = "cifar10-10k"
    register_task("cifar10", TaskSpec(name="", source=c10))
    register_task("cifar10-animals", TaskSpec(name="", source=c10, classes=(2, 3, 4, 5, 6, 7)))
    register_task("cifar10-vehicles", TaskSpec(name="", source=c10, classes=(0, 1, 8, 9)))
    register_task("cifar10-cat-dog", TaskSpec(name="", source=c10, classes=(3, 5)))
    register_task("cifar10-plane-ship", TaskSpec(name="", source=c10, classes=(0, 8)))
    register_task("cifar10-gray", TaskSpec(name="", source=c10, channels=1))
    register_task("cifar10-16px", TaskSpec(name="", source=c10, resolution=16))

    for name, tv in [
        ("cifar10-full", "CIFAR10"),
        ("cifar100", "CIFAR100"),
        ("fashion-mnist", "FashionMNIST"),
        ("svhn", "SVHN"),
        ("kmnist", "KMNIST"),
        ("mnist-tv", "MNIST"),
    ]:
        register_task(name, TaskSpec(name=name, source=f"torchvision:{tv}"))

    from nasmeta.data.collections import collection_task_specs

    for name, fields in collection_task_specs().items():
        register_task(name, TaskSpec(name=name, **fields))


_register_defaults()


def describe_spec(spec: TaskSpec) -> dict[str, object]:
    """The spec's fields plus ``task_id`` and whether its data is present (for tables)."""
    return {"task_id": spec.task_id, **spec.model_dump(mode="json"), "available": spec.available()}
