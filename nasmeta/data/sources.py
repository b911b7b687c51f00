"""Raw image sources behind every task: scikit-learn digits, ``.npz`` files, torchvision datasets, ImageFolder.

A source string names where pixels come from; :func:`get_source` turns it into a :class:`Source` whose
``load()`` returns a :class:`RawData` (integer pixels ``(N, C, H, W)`` + labels, the source's own train / test
split).  Everything derived (class subsets, resizing, channels, corruption, splits, normalisation) happens in
``nasmeta.data.tasks``.

Source strings:

- ``digits``: scikit-learn's bundled 8x8 digits (1,797 images, pixel values 0..16).  It has no official test
  split, so a stratified quarter (fixed seed 0) is held out as test, independent of any task's split seed.
- ``mnist`` / ``cifar10-10k``: ``images/mnist.npz`` and ``images/cifar10_10k.npz`` under ``NASMETA_DATA_DIR``.
- ``npz:PATH``: any ``.npz`` with ``x_train, y_train, x_test, y_test`` (NHW or NHWC uint8); a relative PATH is
  resolved under ``NASMETA_DATA_DIR``.
- ``torchvision:NAME`` with NAME in CIFAR10, CIFAR100, FashionMNIST, SVHN, MNIST, KMNIST: read from
  ``NASMETA_TORCHVISION_ROOT`` (default ``$NASMETA_DATA_DIR/torchvision``); downloaded only when asked
  (``download=True`` or ``NASMETA_DOWNLOAD=1``).
- ``imagefolder:PATH``: a folder of class sub-folders; with ``train/`` and ``test/`` sub-folders those are the
  splits, otherwise a stratified fifth (seed 0) is held out as test.  All images must share one size.

``hflip`` says whether a horizontal flip keeps an image's label (false for digits and characters); the trainer's
augmentation reads it.
"""

from __future__ import annotations

import abc
import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nasmeta.config import DATA_DIR_VAR, DataNotFoundError, data_dir, data_file

TORCHVISION_ROOT_VAR = "NASMETA_TORCHVISION_ROOT"
DOWNLOAD_VAR = "NASMETA_DOWNLOAD"

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
DIGIT_CLASSES = tuple(str(i) for i in range(10))

# torchvision dataset name -> (does a horizontal flip keep the label?, what torchvision stores under the root)
TORCHVISION_DATASETS = {
    "CIFAR10": (True, "cifar-10-batches-py"),
    "CIFAR100": (True, "cifar-100-python"),
    "FashionMNIST": (True, "FashionMNIST"),
    "SVHN": (False, "test_32x32.mat"),
    "MNIST": (False, "MNIST"),
    "KMNIST": (False, "KMNIST"),
}


@dataclass(frozen=True)
class RawData:
    """A source's own train / test split: integer pixels ``(N, C, H, W)`` in ``[0, max_value]``, int64 labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]
    max_value: float

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.ndim != 4:
                raise ValueError(f"x_{split} must be (N, C, H, W), got shape {x.shape}")
            if len(x) != len(y):
                raise ValueError(f"x_{split} has {len(x)} rows but y_{split} has {len(y)}")
            if len(y) and (y.min() < 0 or y.max() >= len(self.classes)):
                raise ValueError(f"y_{split} has labels outside range({len(self.classes)})")
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise ValueError(f"train images {self.x_train.shape[1:]} and test images {self.x_test.shape[1:]} differ")


class Source(abc.ABC):
    """Where a task's pixels come from."""

    #: the source string that names it
    spec: str
    #: does a horizontal flip keep the label (natural images yes, digits no)?
    hflip: bool = False

    @abc.abstractmethod
    def load(self, download: bool | None = None) -> RawData:
        """Read the data; a missing file raises ``DataNotFoundError`` naming the file and the variable to set."""

    @abc.abstractmethod
    def available(self) -> bool:
        """Whether ``load()`` can succeed without a download."""

    def location(self) -> str:
        """Where the data lives now (part of cache keys, so a changed data folder is re-read)."""
        return self.spec

    def __repr__(self) -> str:
        return f"<Source {self.spec}>"


def _stratified_holdout(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (keep, held out): ``round(fraction * n_c)`` of each class held out, chosen by ``seed``."""
    rng = np.random.default_rng(seed)
    keep, held = [], []
    for label in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == label))
        n_held = int(round(fraction * len(idx)))
        held.append(idx[:n_held])
        keep.append(idx[n_held:])
    return np.sort(np.concatenate(keep)), np.sort(np.concatenate(held))


def _to_nchw(x: np.ndarray) -> np.ndarray:
    """NHW -> N1HW, NHWC (C in 1, 3) -> NCHW."""
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4 and x.shape[-1] in (1, 3):
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    raise ValueError(f"images must be (N, H, W) or (N, H, W, C) with C in 1 or 3, got shape {x.shape}")


class DigitsSource(Source):
    """scikit-learn's bundled 8x8 digits (always present)."""

    spec = "digits"
    hflip = False
    test_fraction = 0.25

    def available(self) -> bool:
        return True

    def load(self, download: bool | None = None) -> RawData:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        x = bunch.images.astype(np.uint8)[:, None]
        y = bunch.target.astype(np.int64)
        train, test = _stratified_holdout(y, self.test_fraction, seed=0)
        return RawData(x[train], y[train], x[test], y[test], DIGIT_CLASSES, max_value=16.0)


class NpzSource(Source):
    """An ``.npz`` with ``x_train, y_train, x_test, y_test``; relative paths live under ``NASMETA_DATA_DIR``."""

    def __init__(self, path: str, spec: str, classes: tuple[str, ...] | None = None, hflip: bool = False) -> None:
        self.path, self.spec, self.classes, self.hflip = path, spec, classes, hflip

    def _file(self) -> Path:
        path = Path(self.path).expanduser()
        if path.is_absolute():
            if not path.is_file():
                raise DataNotFoundError(f"data file {str(path)!r} not found")
            return path
        return data_file(self.path)

    def available(self) -> bool:
        try:
            self._file()
        except DataNotFoundError:
            return False
        return True

    def location(self) -> str:
        return str(self._file().resolve())

    def load(self, download: bool | None = None) -> RawData:
        path = self._file()
        try:
            archive = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as error:  # numpy's own message does not name the file
            raise ValueError(f"{path} is not a readable .npz archive: {error}") from error
        if not hasattr(archive, "files"):
            raise ValueError(f"{path} holds a single array, not an .npz archive with x_train, y_train, x_test, y_test")
        with archive as data:
            missing = {"x_train", "y_train", "x_test", "y_test"} - set(data.files)
            if missing:
                raise ValueError(f"{path} lacks arrays {sorted(missing)} (has {sorted(data.files)})")
            arrays = {}
            for name in ("x_train", "y_train", "x_test", "y_test"):
                try:
                    arrays[name] = data[name]
                except (ValueError, OSError, EOFError) as error:  # object arrays need pickle, which stays off
                    raise ValueError(f"{path}: array {name!r} cannot be read without pickle: {error}") from error
        return _validated_npz(path, arrays, self.classes)


def _validated_npz(path: Path, arrays: dict[str, np.ndarray], classes: tuple[str, ...] | None) -> RawData:
    """Check the four arrays of an ``.npz`` task and build its :class:`RawData`; every problem is one
    ``ValueError`` naming the file, the array and what is wrong (numpy's own errors name neither)."""
    for name, array in arrays.items():
        if array.dtype == object or array.dtype.kind not in "biuf":
            raise ValueError(f"{path}: {name} has dtype {array.dtype}; expected numbers (uint8 pixels, integer labels)")
        if array.size == 0:
            raise ValueError(f"{path}: {name} is empty (shape {array.shape})")
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if y.ndim != 1:
            raise ValueError(f"{path}: y_{split} must be one label per image (1-D), got shape {y.shape}")
        if len(x) != len(y):
            raise ValueError(f"{path}: x_{split} has {len(x)} images but y_{split} has {len(y)} labels")
        if x.dtype.kind == "f" and not np.isfinite(x).all():
            bad = int(np.count_nonzero(~np.isfinite(x)))
            raise ValueError(f"{path}: x_{split} has {bad} NaN or infinite pixel value(s)")
        if y.dtype.kind == "f":
            fractional = y[y != np.round(y)]
            if len(fractional):
                raise ValueError(
                    f"{path}: y_{split} holds non-integer labels (e.g. {fractional[0]!r}); labels must be class ids"
                )
    try:
        x_train, x_test = _to_nchw(arrays["x_train"]), _to_nchw(arrays["x_test"])
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from error
    if x_train.shape[1:] != x_test.shape[1:]:
        raise ValueError(f"{path}: train images {x_train.shape[1:]} and test images {x_test.shape[1:]} differ in shape")
    y_train, y_test = arrays["y_train"].astype(np.int64), arrays["y_test"].astype(np.int64)
    labels = np.union1d(y_train, y_test)
    if classes is not None:
        outside = labels[(labels < 0) | (labels >= len(classes))]
        if len(outside):
            raise ValueError(
                f"{path}: label {int(outside[0])} is outside 0..{len(classes) - 1} ({len(classes)} classes)"
            )
    else:
        # the class count is max label + 1, so gaps would create classes without images ({0, 1000000} would
        # make a 1,000,001-way classifier)
        if labels[0] != 0 or labels[-1] != len(labels) - 1:
            shown = ", ".join(str(int(v)) for v in labels[:5]) + (", ..." if len(labels) > 5 else "")
            raise ValueError(
                f"{path}: labels must be the contiguous class ids 0..K-1; found {len(labels)} distinct "
                f"values {{{shown}}}"
            )
        classes = tuple(str(i) for i in range(len(labels)))
    max_value = 255.0 if x_train.dtype == np.uint8 else float(max(x_train.max(), x_test.max()))
    return RawData(x_train, y_train, x_test, y_test, classes, max_value)


def torchvision_root() -> Path:
    """``NASMETA_TORCHVISION_ROOT``, else ``$NASMETA_DATA_DIR/torchvision``."""
    value = os.environ.get(TORCHVISION_ROOT_VAR)
    if value:
        return Path(value).expanduser()
    base = data_dir(required=False)
    if base is None:
        raise DataNotFoundError(
            f"torchvision datasets need a root folder: set {TORCHVISION_ROOT_VAR} (or {DATA_DIR_VAR}, whose "
            "'torchvision' sub-folder is used)"
        )
    return base / "torchvision"


def _download_requested(download: bool | None) -> bool:
    if download is not None:
        return download
    return os.environ.get(DOWNLOAD_VAR, "").lower() in {"1", "true", "yes"}


class TorchvisionSource(Source):
    """One of torchvision's classification datasets, read from the root folder."""

    def __init__(self, name: str) -> None:
        if name not in TORCHVISION_DATASETS:
            raise ValueError(f"unknown torchvision dataset {name!r}; supported: {', '.join(TORCHVISION_DATASETS)}")
        self.name, self.spec = name, f"torchvision:{name}"
        self.hflip, self._marker = TORCHVISION_DATASETS[name]

    def location(self) -> str:
        return str(torchvision_root().resolve())

    def _split(self, train: bool, download: bool):
        import torchvision.datasets as tvd

        cls = getattr(tvd, self.name)
        root = torchvision_root()
        try:
            if self.name == "SVHN":
                return cls(str(root), split="train" if train else "test", download=download)
            return cls(str(root), train=train, download=download)
        except RuntimeError as exc:  # torchvision's "Dataset not found or corrupted"
            raise DataNotFoundError(
                f"torchvision dataset {self.name} not found under {root} ({exc}); set {TORCHVISION_ROOT_VAR} to the "
                f"folder holding it, or pass download=True / set {DOWNLOAD_VAR}=1 where a network exists"
            ) from exc

    def available(self) -> bool:
        """A cheap check (the folder torchvision keeps the dataset in exists); ``load`` verifies the files."""
        try:
            return (torchvision_root() / self._marker).exists()
        except DataNotFoundError:
            return False

    def load(self, download: bool | None = None) -> RawData:
        download = _download_requested(download)
        parts = []
        for train in (True, False):
            ds = self._split(train, download)
            x = np.asarray(ds.data)
            labels = ds.labels if self.name == "SVHN" else ds.targets
            x = x if self.name == "SVHN" else _to_nchw(x)  # SVHN is stored NCHW already
            parts.append((np.ascontiguousarray(x, dtype=np.uint8), np.asarray(labels, dtype=np.int64)))
            classes = tuple(getattr(ds, "classes", None) or DIGIT_CLASSES)
        (x_train, y_train), (x_test, y_test) = parts
        return RawData(x_train, y_train, x_test, y_test, classes, 255.0)


class ImageFolderSource(Source):
    """``root/<class>/<image>`` (or ``root/train/...`` and ``root/test/...``) via torchvision's ImageFolder."""

    test_fraction = 0.2

    def __init__(self, path: str) -> None:
        self.path, self.spec, self.hflip = Path(path).expanduser(), f"imagefolder:{path}", False

    def available(self) -> bool:
        return self.path.is_dir()

    def location(self) -> str:
        return str(self.path.resolve())

    def _read(self, folder: Path) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
        from torchvision.datasets import ImageFolder

        ds = ImageFolder(str(folder))  # default loader converts every image to RGB
        images, first = [], None
        for path, _ in ds.samples:
            array = np.asarray(ds.loader(path), dtype=np.uint8)
            if first is None:
                first = array.shape
            elif array.shape != first:
                raise ValueError(f"ImageFolder images differ in size: {path} is {array.shape}, the first is {first}")
            images.append(array)
        if not images:
            raise ValueError(f"ImageFolder {folder} holds no images")
        return _to_nchw(np.stack(images)), np.asarray(ds.targets, dtype=np.int64), tuple(ds.classes)

    def load(self, download: bool | None = None) -> RawData:
        if not self.path.is_dir():
            raise DataNotFoundError(f"ImageFolder root {str(self.path)!r} is not a folder")
        if (self.path / "train").is_dir() and (self.path / "test").is_dir():
            x_train, y_train, classes = self._read(self.path / "train")
            x_test, y_test, test_classes = self._read(self.path / "test")
            if test_classes != classes:
                raise ValueError(f"train classes {classes} and test classes {test_classes} differ in {self.path}")
        else:
            x, y, classes = self._read(self.path)
            train, test = _stratified_holdout(y, self.test_fraction, seed=0)
            x_train, y_train, x_test, y_test = x[train], y[train], x[test], y[test]
        return RawData(x_train, y_train, x_test, y_test, classes, 255.0)


def get_source(spec: str) -> Source:
    """The :class:`Source` named by a source string (see the module docstring)."""
    if spec == "digits":
        return DigitsSource()
    if spec == "mnist":
        return NpzSource("images/mnist.npz", spec, DIGIT_CLASSES, hflip=False)
    if spec == "cifar10-10k":
        return NpzSource("images/cifar10_10k.npz", spec, CIFAR10_CLASSES, hflip=True)
    kind, sep, rest = spec.partition(":")
    if sep and rest:
        if kind == "npz":
            return NpzSource(rest, spec)
        if kind == "torchvision":
            return TorchvisionSource(rest)
        if kind == "imagefolder":
            return ImageFolderSource(rest)
    raise ValueError(
        f"unknown data source {spec!r}; use 'digits', 'mnist', 'cifar10-10k', 'npz:PATH', "
        f"'torchvision:NAME' ({', '.join(TORCHVISION_DATASETS)}) or 'imagefolder:PATH'"
    )


def load_source(spec: str, download: bool | None = None) -> RawData:
    """``get_source(spec).load(download)``, cached per process and location (derived tasks share raw pixels).

    Treat the arrays as read-only: they are shared by every caller.
    """
    source = get_source(spec)
    return _load_cached(spec, source.location(), _download_requested(download))


@functools.lru_cache(maxsize=4)
def _load_cached(spec: str, location: str, download: bool) -> RawData:
    return get_source(spec).load(download)
