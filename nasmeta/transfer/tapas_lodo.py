"""TAPAS leave-one-dataset-out on the NAS-Bench-201 table: fit on two of cifar10 / cifar100 / imagenet16-120,
evaluate on the third, against random search with the same number of evaluations.

**DCN on NB201.**  The table has no images for CIFAR-100 or ImageNet16-120, so the probe network cannot be trained
here; instead the DCN is the table's accuracy of one fixed probe network under one fixed recipe, which is what a
DCN is.  Probe: the NB201 cell :data:`NB201_PROBE_CELL` = ``|none~0|+|none~0|none~1|+|nor_conv_3x3~0|none~1|none~2|``
(one 3x3 ReLU-Conv-BN per cell: with NB201's skeleton a plain 15-convolution CNN with two residual reduction
blocks, the small plain CNN a probe net is; 0.23 M parameters on CIFAR-10), recipe: NB201's 12-epoch schedule,
value: its 12-epoch *validation* accuracy / 100 (0.760 cifar10, 0.473 cifar100, 0.229 imagenet16-120).  The probe
is one of the 15,625 cells, so the held-out dataset's table contributes exactly one short (12-epoch) run to
TAPAS, the cost of characterising it; this run is reported, not hidden.

**Protocol.**  For each held-out dataset and seed:

- LDE: ``n_train`` architectures drawn (seeded, without replacement) from the 15,625 cells for each of the two
  source datasets, independently per dataset, labelled with their 200-epoch test accuracy (the TAP predicts the
  final accuracy of a full training run; on the sources that is known knowledge).
- TAP fitted for the held-out DCN (``TAPAS.fit(records, target=dcn)``); Kendall tau and Spearman rho of its
  predictions against the held-out dataset's 200-epoch test accuracy over all 15,625 cells.
- Search on the held-out dataset through ``TabularEvaluator("nb201", dataset)`` (200 epochs; a search selects on
  the cell's 12-epoch validation accuracy and reports the 200-epoch test accuracy -- NB201's protocol for its
  black-box baselines, no test leak): TAPAS = TAP-scored regularised evolution, then the ``k`` distinct top-predicted
  cells evaluated; random search = ``k`` uniform cells.  Regret = best 200-epoch test accuracy in the table minus
  the test accuracy of the returned cell.

The folds run through the project's one LODO loop (``nasmeta.evaluation.lodo.lodo_loop``): a fold's training
view is its two source datasets, its one "method" (:data:`METHOD`, :class:`NB201Comparison`) computes the TAPAS
pick and the random pick of a seed together, so rows stream through the loop's hooks, an interrupted run resumes
from its finished (dataset, seed) rows, and every row carries ``task_id`` (the dataset), ``method``, ``seed`` and
``status``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from nasmeta.evaluation.lodo import Fold, LodoHooks, check_seeds, lodo_loop
from nasmeta.spaces.base import stable_hash
from nasmeta.transfer.tapas import TAPAS, TAPASConfig, TapasRecord, tapas_search

__all__ = [
    "METHOD",
    "NB201_PROBE_CELL",
    "NB201Comparison",
    "NB201LodoConfig",
    "nb201_dcn",
    "nb201_lodo",
    "nb201_folds",
    "nb201_lodo_fold",
    "nb201_lodo_rows",
    "nb201_records",
    "nb201_task_id",
    "summarize_nb201_lodo",
]

NB201_PROBE_CELL = "|none~0|+|none~0|none~1|+|nor_conv_3x3~0|none~1|none~2|"
PROBE_EPOCHS = 12
#: the method name of an NB201 fold's rows: TAPAS and random search are evaluated together, one row per seed
METHOD = "tapas-vs-random"


def nb201_task_id(dataset: str) -> str:
    """The store's task id of an NB201 dataset (``nasmeta.data.store_import``): ``nb201:<dataset>``."""
    from nasmeta.data.benchmarks import normalize_dataset

    return f"nb201:{normalize_dataset(dataset)}"


def nb201_dcn(dataset: str) -> float:
    """DCN of an NB201 dataset: 12-epoch validation accuracy of :data:`NB201_PROBE_CELL`, as a fraction."""
    from nasmeta.data.benchmarks import nb201_accuracy

    return nb201_accuracy(NB201_PROBE_CELL, dataset, PROBE_EPOCHS, "val") / 100.0


def nb201_records(dataset: str, n_archs: int | None = None, seed: int = 0, epochs: int = 200) -> list[TapasRecord]:
    """LDE records of one NB201 dataset: ``n_archs`` cells drawn without replacement (all 15,625 when None),
    labelled with their ``epochs``-epoch test accuracy, DCN from :func:`nb201_dcn`."""
    from nasmeta.data.benchmarks import nb201_column, nb201_table, normalize_dataset
    from nasmeta.spaces import get_space

    dataset = normalize_dataset(dataset)
    table = nb201_table()
    column = table.columns[nb201_column(dataset, epochs, "test")]
    if n_archs is None:
        rows = np.arange(len(table))
    else:
        if isinstance(n_archs, bool) or not isinstance(n_archs, int) or not 1 <= n_archs <= len(table):
            raise ValueError(f"n_archs must be an integer in [1, {len(table)}], got {n_archs!r}")
        rng = np.random.default_rng([int(seed), int(stable_hash(dataset, length=8), 16)])
        rows = np.sort(rng.choice(len(table), size=n_archs, replace=False))
    space = get_space("nb201")
    task, dcn = nb201_task_id(dataset), nb201_dcn(dataset)
    return [TapasRecord(space.from_index(int(i)), task, dcn, float(column[i])) for i in rows]


class NB201LodoConfig(BaseModel):
    """Budget of the NB201 LODO experiment (defaults: a few minutes on two CPU cores)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: evaluations (table look-ups at 200 epochs) each method may spend on the held-out dataset
    k: int = Field(10, ge=1)
    #: training architectures per source dataset
    n_train: int = Field(1000, ge=2)
    #: TAP calls of the evolutionary search
    n_predictions: int = Field(1000, ge=1)
    population_size: int = Field(50, ge=1)
    sample_size: int = Field(10, ge=1)
    #: cells on which Kendall tau is measured (None: all 15,625)
    tau_archs: int | None = Field(None, ge=2)
    #: refit the TAP for every seed (seeded training sample and initialisation); False: one fit per fold
    refit_per_seed: bool = True
    tapas: TAPASConfig = TAPASConfig()


class NB201Comparison:
    """The "method" of an NB201 LODO fold: TAPAS (fitted on the fold's source datasets) against random search on
    the held-out dataset, one row per seed (:meth:`row`).  Built once per fold from the sources; what depends on
    the held-out dataset (its DCN, probe run, table column, tau cells) is computed at the first seed."""

    def __init__(
        self, sources: Sequence[str], seeds: Sequence[int], config: NB201LodoConfig, reporter: Any = None
    ) -> None:
        self.sources = list(sources)
        self.seeds = list(seeds)
        self.config = config
        self.reporter = reporter
        self._held_out: dict[str, dict[str, Any]] = {}
        self._tapas: TAPAS | None = None
        self._correlations: dict[str, float] = {}

    def _target(self, held_out: str) -> dict[str, Any]:
        from nasmeta.data.benchmarks import TabularEvaluator, nb201_best_accuracy, nb201_column, nb201_table
        from nasmeta.spaces import get_space

        if held_out not in self._held_out:
            space = get_space("nb201")
            evaluator = TabularEvaluator("nb201", held_out)
            all_archs = list(space.enumerate())  # NB201 index order = the table's row order
            tau_rows = np.arange(len(all_archs))
            if self.config.tau_archs is not None:
                tau_rows = np.sort(
                    np.random.default_rng(0).choice(len(all_archs), self.config.tau_archs, replace=False)
                )
            self._held_out[held_out] = {
                "space": space,
                "evaluator": evaluator,
                "dcn": nb201_dcn(held_out),
                "best": nb201_best_accuracy(held_out),
                "tau_archs": [all_archs[i] for i in tau_rows],
                "tau_actual": nb201_table().columns[nb201_column(held_out, 200, "test")][tau_rows],
                "probe": evaluator.evaluate(space.parse(NB201_PROBE_CELL), epochs=PROBE_EPOCHS),
            }
        return self._held_out[held_out]

    def row(self, held_out: str, seed: int) -> dict[str, Any]:
        """TAPAS and random search on ``held_out`` for ``seed``; see the module docstring."""
        from nasmeta.blackbox import random_search
        from nasmeta.evaluation.metrics import rank_correlations, regret

        cfg, target = self.config, self._target(held_out)
        fit_seconds = 0.0
        if self._tapas is None or cfg.refit_per_seed:
            data_seed = seed if cfg.refit_per_seed else self.seeds[0]
            records = [r for d in self.sources for r in nb201_records(d, cfg.n_train, seed=data_seed)]
            start = time.perf_counter()
            self._tapas = TAPAS(cfg.tapas.model_copy(update={"seed": data_seed})).fit(records, target=target["dcn"])
            fit_seconds = time.perf_counter() - start
            scores = self._tapas.predict(target["tau_archs"], target["dcn"])
            self._correlations = rank_correlations(scores, target["tau_actual"])
        tapas = self._tapas
        found = tapas_search(
            tapas,
            target["space"],
            target["dcn"],
            target["evaluator"],
            cfg.k,
            cfg.n_predictions,
            cfg.population_size,
            cfg.sample_size,
            seed=seed,
            reporter=self.reporter,
        )
        baseline = random_search(target["space"], target["evaluator"], cfg.k, seed=seed)
        best = target["best"]
        return {
            "held_out": held_out,
            "sources": ",".join(f"{t}:{w:.3g}" for t, w in tapas.select_sources(target["dcn"])),
            "dcn": target["dcn"],
            "n_train": cfg.n_train * len(self.sources),
            "kendall_tau": self._correlations["kendall_tau"],
            "spearman_rho": self._correlations["spearman_rho"],
            "k": cfg.k,
            "best_acc": best,
            "tapas_test_acc": found.best_test_acc,
            "random_test_acc": baseline.best_test_acc,
            "tapas_regret": regret(best, found.best_test_acc),
            "random_regret": regret(best, baseline.best_test_acc),
            "tapas_cost_seconds": found.cost_seconds,
            "random_cost_seconds": baseline.cost_seconds,
            "probe_cost_seconds": target["probe"].cost_seconds,
            "fit_seconds": fit_seconds,
            "tap_search_seconds": found.extra["tap_seconds"],
            "tapas_arch": str(found.best_arch),
        }


def nb201_folds(held_out: Sequence[str] | None = None) -> list[Fold]:
    """LODO folds over NB201's datasets (default: all three): ``train`` = the other two dataset names, ``test`` =
    the held-out one; ``task_id`` is the dataset name."""
    from nasmeta.data.benchmarks import NB201_DATASETS, normalize_dataset

    datasets = [normalize_dataset(d) for d in (NB201_DATASETS if held_out is None else held_out)]
    if not datasets:
        raise ValueError("held_out is empty: name at least one NB201 dataset")
    return [Fold(d, tuple(s for s in NB201_DATASETS if s != d), d) for d in datasets]


def nb201_lodo_rows(
    held_out: Sequence[str] | None = None,
    seeds: Iterable[int] = range(10),
    config: NB201LodoConfig | None = None,
    reporter: Any = None,
    hooks: LodoHooks | None = None,
    done: Iterable[Mapping[str, Any]] | None = None,
    errors: Literal["raise", "record"] = "raise",
) -> list[dict[str, Any]]:
    """The NB201 folds through the project's one LODO loop (``nasmeta.evaluation.lodo.lodo_loop``): method
    :data:`METHOD` (:class:`NB201Comparison`) per fold; ``hooks`` / ``done`` / ``errors`` as there."""
    cfg = config or NB201LodoConfig()
    seeds = check_seeds(seeds)
    folds = nb201_folds(held_out)

    def build(sources: Sequence[str]) -> NB201Comparison:
        return NB201Comparison(sources, seeds, cfg, reporter)

    def evaluate(name: str, method: NB201Comparison, fold: Fold, seed: int) -> dict[str, Any]:
        return method.row(fold.test, seed)

    return lodo_loop(folds, {METHOD: build}, evaluate, seeds, hooks=hooks, done=done, errors=errors)


def nb201_lodo_fold(
    held_out: str, seeds: Iterable[int], config: NB201LodoConfig | None = None, reporter: Any = None
) -> list[dict[str, Any]]:
    """Rows (one per seed) for one held-out dataset; see the module docstring."""
    return nb201_lodo_rows([held_out], seeds, config, reporter)


def nb201_lodo(
    held_out: Sequence[str] | None = None,
    seeds: Iterable[int] = range(10),
    config: NB201LodoConfig | None = None,
    hooks: LodoHooks | None = None,
    done: Iterable[Mapping[str, Any]] | None = None,
    errors: Literal["raise", "record"] = "raise",
) -> Any:
    """The experiment over every held-out dataset (default: all three); a pandas DataFrame, one row per
    (held-out dataset, seed)."""
    import pandas as pd

    return pd.DataFrame(nb201_lodo_rows(held_out, seeds, config, hooks=hooks, done=done, errors=errors))


def summarize_nb201_lodo(frame: Any) -> Any:
    """Per held-out dataset: mean tau, mean (std) accuracy and regret of both methods, TAPAS wins / ties."""
    import pandas as pd

    if frame is None or len(frame) == 0:
        raise ValueError("no LODO rows to summarise")
    out = []
    for dataset, group in frame.groupby("held_out", sort=False):
        diff = group["tapas_test_acc"] - group["random_test_acc"]
        out.append(
            {
                "held_out": dataset,
                "seeds": len(group),
                "k": int(group["k"].iloc[0]),
                "kendall_tau": group["kendall_tau"].mean(),
                "spearman_rho": group["spearman_rho"].mean(),
                "tapas_acc": group["tapas_test_acc"].mean(),
                "tapas_acc_std": group["tapas_test_acc"].std(ddof=0),
                "random_acc": group["random_test_acc"].mean(),
                "random_acc_std": group["random_test_acc"].std(ddof=0),
                "tapas_regret": group["tapas_regret"].mean(),
                "random_regret": group["random_regret"].mean(),
                "tapas_wins": int((diff > 0).sum()),
                "ties": int((diff == 0).sum()),
                "fit_seconds": group["fit_seconds"].mean(),
            }
        )
    return pd.DataFrame(out)
