"""Tabular NAS benchmarks as look-up tables and as an :class:`~nasmeta.evaluators.Evaluator` with simulated cost.

Tables (read from ``NASMETA_DATA_DIR``, see ``data/README.md``):

- NAS-Bench-201 (Dong & Yang 2020), ``benchmarks/nb201_accuracy.csv``: all 15,625 cells, 200-epoch test accuracy
  (mean over seeds) for cifar10 / cifar100 / imagenet16-120, and the 12-epoch schedule's validation and test
  accuracy.  cifar10 at 12 epochs is NB201's ``cifar10-valid`` setting (trained on half of the training set,
  validated on the other half); cifar100 and imagenet16-120 split their test set into the val and test halves.
- NAS-Bench-Macro (Su et al. 2021), ``benchmarks/nas-bench-macro_cifar10.json``: 6,561 encodings, CIFAR-10 test
  accuracy of 3 independent training runs, their mean, params and FLOPs (multiply-accumulates).  The benchmark's
  training script runs 50 epochs and records the best test accuracy over the epochs, so that is the table's
  single fidelity (50 epochs).

:class:`TabularEvaluator` -- which column plays which role (``val_acc`` is what a search selects on, ``test_acc``
is only reported):

- NB201, 12 epochs: ``val_acc`` = ``<dataset>_val_12ep`` (cifar10: ``cifar10_valid_val_12ep``), ``test_acc`` =
  ``<dataset>_test_12ep`` (cifar10: ``cifar10_valid_test_12ep``).
- NB201, 200 epochs: ``test_acc`` = ``<dataset>_test_200ep``; ``val_acc`` = the 12-epoch validation column above
  (default, ``val_at_200="val12"``) or ``<dataset>_test_200ep`` (``val_at_200="test"``).
- Macro, 50 epochs: ``val_acc`` = ``test_acc[run]``, one of the 3 runs chosen by (seed, architecture);
  ``test_acc`` = ``mean_acc``.

The NB201 table has no 200-epoch validation accuracy.  The default selects on the 12-epoch validation accuracy of
the same cell and reports its 200-epoch test accuracy -- the protocol of NB201's own black-box baselines (its REA
and random search select on the 12-epoch ``cifar10-valid`` validation accuracy, ``use_012_epoch_training``, and
report 200-epoch test accuracy; these are the published REA 93.92 / RS 93.70 on cifar10).  ``val_at_200="test"``
selects on the 200-epoch test accuracy itself: an oracle that leaks the test set into selection, for upper bounds
only.  The NB201 table holds means over seeds only, so its evaluations are deterministic.  NAS-Bench-Macro has no
validation split either; there ``val_acc`` is one training run's test accuracy (which of the 3 runs is a
deterministic function of the evaluation seed and the architecture, so different seeds see different runs) and
``test_acc`` is the 3-run mean.

Cost model (simulated seconds, ``cost_seconds`` of each :class:`~nasmeta.evaluators.Evaluation`)::

    cost_seconds = epochs * n_train * 3 * forward_flops / flops_per_second

``forward_flops`` is the forward FLOPs of one image through the built network (``space.build`` with the dataset's
input shape and classes, counted by ``torch.utils.flop_counter`` via :func:`nasmeta.cost.count_flops`, 2 FLOPs per
multiply-accumulate).  For NB201 it is assembled from 5 counted networks per dataset, because the FLOPs are additive
over edges (:func:`nb201_forward_flops`; a test checks it against counting the built network); for NAS-Bench-Macro
it is twice the table's ``flops`` column, which is the same number (the table counts multiply-accumulates; a test
checks the equality).  The factor 3 charges the backward pass as twice the forward (the usual estimate),
``n_train`` is the dataset's full training-set size (:data:`N_TRAIN`; NB201's 12-epoch cifar10 runs actually
trained on half of it, which the model ignores), and ``flops_per_second`` (default
:data:`DEFAULT_FLOPS_PER_SECOND`, 5e12) is a nominal effective throughput of one GPU on these small networks.
The constant only scales all costs; comparisons between architectures and between search methods depend on FLOP
ratios alone.  Data loading and evaluation time are not modelled.
"""

from __future__ import annotations

import csv
import functools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from nasmeta.config import DataNotFoundError, data_file
from nasmeta.evaluators import Evaluation, Evaluator
from nasmeta.spaces.base import Architecture

NB201_FILE = "benchmarks/nb201_accuracy.csv"
MACRO_FILE = "benchmarks/nas-bench-macro_cifar10.json"

NB201_DATASETS: tuple[str, ...] = ("cifar10", "cifar100", "imagenet16-120")
NB201_EPOCHS: tuple[int, ...] = (12, 200)
MACRO_EPOCHS = 50
#: (dataset, epochs, split) -> CSV column of the NB201 table
NB201_COLUMNS: dict[tuple[str, int, str], str] = {
    ("cifar10", 200, "test"): "cifar10_test_200ep",
    ("cifar100", 200, "test"): "cifar100_test_200ep",
    ("imagenet16-120", 200, "test"): "imagenet16_120_test_200ep",
    ("cifar10", 12, "val"): "cifar10_valid_val_12ep",
    ("cifar10", 12, "test"): "cifar10_valid_test_12ep",
    ("cifar100", 12, "val"): "cifar100_val_12ep",
    ("cifar100", 12, "test"): "cifar100_test_12ep",
    ("imagenet16-120", 12, "val"): "imagenet16_120_val_12ep",
    ("imagenet16-120", 12, "test"): "imagenet16_120_test_12ep",
}
#: training-set size, input shape (C, H, W) and number of classes of each benchmark dataset
N_TRAIN = {"cifar10": 50_000, "cifar100": 50_000, "imagenet16-120": 151_700}
INPUT_SHAPE = {"cifar10": (3, 32, 32), "cifar100": (3, 32, 32), "imagenet16-120": (3, 16, 16)}
NUM_CLASSES = {"cifar10": 10, "cifar100": 100, "imagenet16-120": 120}
DEFAULT_FLOPS_PER_SECOND = 5e12
BENCHMARK_SPACES: tuple[str, ...] = ("nb201", "macro")


def normalize_dataset(dataset: str, space: str = "nb201") -> str:
    """``"ImageNet16-120"`` / ``"imagenet16_120"`` -> ``"imagenet16-120"``; unknown names raise ``ValueError``."""
    name = str(dataset).strip().lower().replace("_", "-")
    known = NB201_DATASETS if space == "nb201" else ("cifar10",)
    if name not in known:
        raise ValueError(f"unknown dataset {dataset!r} for the {space} benchmark; expected one of {list(known)}")
    return name


def _benchmark_file(relative: str) -> Path:
    try:
        return data_file(relative)
    except DataNotFoundError as err:
        # config's messages name NASMETA_DATA_DIR in every case; add which table was wanted
        raise DataNotFoundError(f"benchmark table {relative!r} is unavailable: {err}") from err


# -- NAS-Bench-201 -------------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class NB201Table:
    """The NB201 accuracy table: one row per cell in benchmark index order, accuracies in percent."""

    path: Path
    arch_strs: tuple[str, ...]
    columns: dict[str, np.ndarray]
    row_of: dict[str, int]

    def row(self, arch: Architecture | str) -> int:
        """The table row (= NB201 index) of an architecture or NB201 string; unknown strings raise ``ValueError``."""
        if isinstance(arch, Architecture):
            if arch.space != "nb201":
                raise ValueError(f"the NB201 table holds nb201 architectures, got one of space {arch.space!r}")
            key = str(arch)
        else:
            key = str(arch).strip()
        try:
            return self.row_of[key]
        except KeyError:
            raise ValueError(f"architecture {key!r} is not in the NB201 table {self.path}") from None

    def accuracy(
        self, arch: Architecture | str, dataset: str = "cifar10", epochs: int = 200, split: str = "test"
    ) -> float:
        """Accuracy (%) of ``arch`` on ``dataset`` after ``epochs`` (12 or 200) on ``split`` (val / test)."""
        return float(self.columns[nb201_column(dataset, epochs, split)][self.row(arch)])

    def best(self, dataset: str = "cifar10", epochs: int = 200, split: str = "test") -> float:
        """The highest accuracy of any cell in the column (the optimum used for regret)."""
        return float(self.columns[nb201_column(dataset, epochs, split)].max())

    def __len__(self) -> int:
        return len(self.arch_strs)


def nb201_column(dataset: str, epochs: int, split: str) -> str:
    """The CSV column for (dataset, epochs, split); combinations the table lacks raise ``ValueError``."""
    name = normalize_dataset(dataset, "nb201")
    if epochs not in NB201_EPOCHS:
        raise ValueError(f"NB201 has fidelities {list(NB201_EPOCHS)} epochs, got {epochs!r}")
    if split not in ("val", "test"):
        raise ValueError(f"split must be 'val' or 'test', got {split!r}")
    key = (name, int(epochs), split)
    if key not in NB201_COLUMNS:
        raise ValueError(f"the NB201 table has no {split} accuracy at {epochs} epochs (only test at 200 epochs)")
    return NB201_COLUMNS[key]


@functools.lru_cache(maxsize=4)
def _load_nb201(path: Path) -> NB201Table:
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in ("index", "arch_str", *NB201_COLUMNS.values()) if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path} lacks the columns {missing}")
        rows = list(reader)
    indices = [int(r["index"]) for r in rows]
    if indices != list(range(len(rows))):
        raise ValueError(f"{path} is not in NB201 index order (column 'index' must be 0, 1, 2, ...)")
    arch_strs = tuple(r["arch_str"] for r in rows)
    columns = {c: np.array([float(r[c]) for r in rows]) for c in NB201_COLUMNS.values()}
    return NB201Table(path, arch_strs, columns, {s: i for i, s in enumerate(arch_strs)})


def nb201_table() -> NB201Table:
    """The NB201 table from ``$NASMETA_DATA_DIR/benchmarks/nb201_accuracy.csv`` (read once per path)."""
    return _load_nb201(_benchmark_file(NB201_FILE).resolve())


def nb201_accuracy(arch: Architecture | str, dataset: str = "cifar10", epochs: int = 200, split: str = "test") -> float:
    """Accuracy (%) of an NB201 cell from the table; see :meth:`NB201Table.accuracy`."""
    return nb201_table().accuracy(arch, dataset, epochs, split)


def nb201_best_accuracy(dataset: str = "cifar10", epochs: int = 200, split: str = "test") -> float:
    """The best accuracy in the NB201 table (94.37 / 73.51 / 47.31 test at 200 epochs)."""
    return nb201_table().best(dataset, epochs, split)


# -- NAS-Bench-Macro -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MacroEntry:
    """One NAS-Bench-Macro record: CIFAR-10 test accuracy (%) of 3 runs, their mean and std, params, MACs."""

    test_acc: tuple[float, ...]
    mean_acc: float
    std: float
    params: int
    flops: int


@dataclass(frozen=True, eq=False)
class MacroTable:
    path: Path
    entries: dict[str, MacroEntry]

    def entry(self, arch: Architecture | str) -> MacroEntry:
        if isinstance(arch, Architecture):
            if arch.space != "macro":
                raise ValueError(f"the Macro table holds macro architectures, got one of space {arch.space!r}")
            key = str(arch)
        else:
            key = str(arch).strip()
        try:
            return self.entries[key]
        except KeyError:
            raise ValueError(f"architecture {key!r} is not in the NAS-Bench-Macro table {self.path}") from None

    def best(self) -> float:
        """The highest 3-run mean test accuracy in the table."""
        return max(e.mean_acc for e in self.entries.values())

    def __len__(self) -> int:
        return len(self.entries)


@functools.lru_cache(maxsize=4)
def _load_macro(path: Path) -> MacroTable:
    with open(path) as handle:
        raw = json.load(handle)
    entries = {}
    for key, record in raw.items():
        entries[key] = MacroEntry(
            test_acc=tuple(float(a) for a in record["test_acc"]),
            mean_acc=float(record["mean_acc"]),
            std=float(record["std"]),
            params=int(record["params"]),
            flops=int(record["flops"]),
        )
    return MacroTable(path, entries)


def macro_table() -> MacroTable:
    """The NAS-Bench-Macro table from ``$NASMETA_DATA_DIR/benchmarks/nas-bench-macro_cifar10.json`` (read once)."""
    return _load_macro(_benchmark_file(MACRO_FILE).resolve())


def macro_accuracy(arch: Architecture | str) -> float:
    """3-run mean CIFAR-10 test accuracy (%) of a Macro architecture."""
    return macro_table().entry(arch).mean_acc


def macro_best_accuracy() -> float:
    return macro_table().best()


def best_accuracy(space: str, dataset: str = "cifar10", epochs: int | None = None) -> float:
    """The table's best test accuracy at ``epochs`` (the optimum for regret): NB201 or Macro."""
    if space == "nb201":
        return nb201_best_accuracy(dataset, 200 if epochs is None else epochs, "test")
    if space == "macro":
        normalize_dataset(dataset, "macro")
        if epochs not in (None, MACRO_EPOCHS):
            raise ValueError(f"NAS-Bench-Macro has one fidelity ({MACRO_EPOCHS} epochs), got {epochs!r}")
        return macro_best_accuracy()
    raise ValueError(f"no benchmark table for space {space!r}; expected one of {list(BENCHMARK_SPACES)}")


# -- cost model ------------------------------------------------------------------------------------------------------
def count_forward_flops(space: str, arch: Architecture, dataset: str) -> int:
    """Forward FLOPs of one image through ``space.build(arch)`` at the dataset's input shape and classes.

    Counted by ``torch.utils.flop_counter`` (via :func:`nasmeta.cost.count_flops`) on a network built on the meta
    device: FLOPs depend on shapes only, and no weights need initialising.
    """
    import torch

    from nasmeta.cost import count_flops
    from nasmeta.spaces import get_space

    shape = INPUT_SHAPE[dataset]
    with torch.device("meta"):
        model = get_space(space).build(arch, NUM_CLASSES[dataset], shape)
    return count_flops(model, shape)


@functools.lru_cache(maxsize=8)
def _nb201_flop_terms(dataset: str) -> tuple[float, dict[str, float]]:
    from nasmeta.spaces import get_space

    space = get_space("nb201")
    n_edges = len(space.sample(np.random.default_rng(0)).encoding)
    uniform = {op: count_forward_flops("nb201", space.from_encoding((op,) * n_edges), dataset) for op in space.ops}
    base = float(uniform["none"])
    return base, {op: (flops - base) / n_edges for op, flops in uniform.items()}


def nb201_forward_flops(arch: Architecture, dataset: str = "cifar10") -> float:
    """Forward FLOPs of an NB201 network, from 5 counted networks instead of one per cell.

    Every cell of a stage sees the same shape and each stage doubles the channels while halving the resolution,
    so an edge op costs the same wherever it sits and the network's FLOPs are additive over edges:
    ``F(arch) = F(all none) + sum over edges of (F(all op_e) - F(all none)) / 6``.  The five uniform networks are
    counted once per dataset; a test checks the sum against counting the built network directly.
    """
    base, per_op = _nb201_flop_terms(normalize_dataset(dataset, "nb201"))
    return base + sum(per_op[op] for op in arch.encoding)


class FlopsCostModel:
    """Simulated training seconds per epoch = ``n_train * 3 * forward_flops / flops_per_second`` (module doc).

    ``flops_fn(arch) -> forward FLOPs of one image`` defaults to :func:`count_forward_flops` on the built
    network; NB201 passes :func:`nb201_forward_flops` and NAS-Bench-Macro the table's MACs x 2, the same numbers
    obtained faster.  Results are cached per architecture.
    """

    def __init__(
        self,
        space: str,
        dataset: str,
        flops_per_second: float = DEFAULT_FLOPS_PER_SECOND,
        flops_fn: Callable[[Architecture], float] | None = None,
    ) -> None:
        if not flops_per_second > 0:
            raise ValueError(f"flops_per_second must be positive, got {flops_per_second!r}")
        self.space = space
        self.dataset = dataset
        self.flops_per_second = float(flops_per_second)
        self._flops_fn = flops_fn or (lambda arch: count_forward_flops(space, arch, dataset))
        self._cache: dict[tuple, float] = {}

    def forward_flops(self, arch: Architecture) -> float:
        if arch.encoding not in self._cache:
            self._cache[arch.encoding] = float(self._flops_fn(arch))
        return self._cache[arch.encoding]

    def seconds_per_epoch(self, arch: Architecture) -> float:
        return N_TRAIN[self.dataset] * 3.0 * self.forward_flops(arch) / self.flops_per_second


# -- evaluator ---------------------------------------------------------------------------------------------------------
class TabularEvaluator(Evaluator):
    """Accuracy from a benchmark table plus a simulated cost; see the module docstring for the column roles.

    ``space``: ``"nb201"`` or ``"macro"``; ``dataset``: NB201's cifar10 / cifar100 / imagenet16-120 (Macro:
    cifar10); ``max_epochs``: the default fidelity (NB201 200, Macro 50); ``val_at_200``: NB201's selection
    signal at 200 epochs, ``"val12"`` (default, no test leak) or ``"test"`` (oracle).  The tables are read at
    construction, so a missing data folder fails here with a message naming the file and ``NASMETA_DATA_DIR``.
    """

    def __init__(
        self,
        space: str = "nb201",
        dataset: str = "cifar10",
        max_epochs: int | None = None,
        val_at_200: Literal["val12", "test"] = "val12",
        flops_per_second: float = DEFAULT_FLOPS_PER_SECOND,
    ) -> None:
        if space not in BENCHMARK_SPACES:
            raise ValueError(f"no benchmark table for space {space!r}; expected one of {list(BENCHMARK_SPACES)}")
        if val_at_200 not in ("val12", "test"):
            raise ValueError(f"val_at_200 must be 'val12' or 'test', got {val_at_200!r}")
        self.space = space
        self.dataset = normalize_dataset(dataset, space)
        self.val_at_200 = val_at_200
        self.fidelities = NB201_EPOCHS if space == "nb201" else (MACRO_EPOCHS,)
        self.max_epochs = self._check_epochs(max(self.fidelities) if max_epochs is None else max_epochs)
        if space == "nb201":
            self._nb201 = nb201_table()
            self.cost_model = FlopsCostModel(
                space, self.dataset, flops_per_second, lambda a: nb201_forward_flops(a, self.dataset)
            )
        else:
            self._macro = macro_table()
            self.cost_model = FlopsCostModel(
                space, self.dataset, flops_per_second, lambda a: 2.0 * self._macro.entry(a).flops
            )

    def _check_epochs(self, epochs: int) -> int:
        if isinstance(epochs, bool) or epochs not in self.fidelities:
            raise ValueError(f"the {self.space} table has fidelities {list(self.fidelities)} epochs, got {epochs!r}")
        return int(epochs)

    def columns(self, epochs: int | None = None) -> tuple[str, str]:
        """(column giving ``val_acc``, column giving ``test_acc``) at ``epochs``."""
        epochs = self._check_epochs(self.max_epochs if epochs is None else epochs)
        if self.space == "macro":
            return "test_acc[run]", "mean_acc"
        test = nb201_column(self.dataset, epochs, "test")
        if epochs == 200 and self.val_at_200 == "test":
            return test, test
        return nb201_column(self.dataset, 12, "val"), test

    def evaluate(self, arch: Architecture, epochs: int | None = None, seed: int = 0) -> Evaluation:
        if not isinstance(arch, Architecture) or arch.space != self.space:
            raise ValueError(f"this evaluator looks up {self.space} architectures, got {arch!r}")
        epochs = self._check_epochs(self.max_epochs if epochs is None else epochs)
        val_column, test_column = self.columns(epochs)
        extra: dict = {"dataset": self.dataset, "val_column": val_column, "test_column": test_column}
        if self.space == "nb201":
            row = self._nb201.row(arch)
            val = float(self._nb201.columns[val_column][row])
            test = float(self._nb201.columns[test_column][row])
            extra["nb201_index"] = row
        else:
            entry = self._macro.entry(arch)
            run = _run_index(seed, arch, len(entry.test_acc))
            val, test = entry.test_acc[run], entry.mean_acc
            extra["run"] = run
        flops = self.cost_model.forward_flops(arch)
        extra["flops"] = flops
        cost = epochs * self.cost_model.seconds_per_epoch(arch)
        if not (math.isfinite(val) and math.isfinite(test)):
            return Evaluation(arch, val, test, cost, epochs, status="failed", error="non-finite table entry")
        return Evaluation(arch, val, test, cost, epochs, extra=extra)


def _run_index(seed: int, arch: Architecture, n_runs: int) -> int:
    """Which of the table's runs a (seed, network) evaluation observes: uniform, deterministic, and the same for
    every encoding of one network (keyed by ``arch_id``)."""
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(arch.arch_id[:8], 16)])
    return int(rng.integers(n_runs))
