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
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from nasmeta.spaces.base import stable_hash
from nasmeta.transfer.tapas import TAPAS, TAPASConfig, TapasRecord, tapas_search

__all__ = [
    "NB201_PROBE_CELL",
    "NB201LodoConfig",
    "nb201_dcn",
    "nb201_lodo",
    "nb201_lodo_fold",
    "nb201_records",
    "nb201_task_id",
    "summarize_nb201_lodo",
]

NB201_PROBE_CELL = "|none~0|+|none~0|none~1|+|nor_conv_3x3~0|none~1|none~2|"
PROBE_EPOCHS = 12


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


def nb201_lodo_fold(
    held_out: str, seeds: Iterable[int], config: NB201LodoConfig | None = None, reporter: Any = None
) -> list[dict[str, Any]]:
    """Rows (one per seed) for one held-out dataset; see the module docstring."""
    from nasmeta.blackbox import random_search
    from nasmeta.data.benchmarks import (
        NB201_DATASETS,
        TabularEvaluator,
        nb201_best_accuracy,
        nb201_column,
        nb201_table,
        normalize_dataset,
    )
    from nasmeta.evaluation.metrics import rank_correlations, regret
    from nasmeta.spaces import get_space

    cfg = config or NB201LodoConfig()
    held_out = normalize_dataset(held_out)
    seeds = _check_seeds(seeds)
    sources = [d for d in NB201_DATASETS if d != held_out]
    space = get_space("nb201")
    evaluator = TabularEvaluator("nb201", held_out)
    target_dcn = nb201_dcn(held_out)
    best = nb201_best_accuracy(held_out)
    all_archs = list(space.enumerate())  # NB201 index order = the table's row order
    actual = nb201_table().columns[nb201_column(held_out, 200, "test")]
    tau_rows = np.arange(len(all_archs))
    if cfg.tau_archs is not None:
        tau_rows = np.sort(np.random.default_rng(0).choice(len(all_archs), cfg.tau_archs, replace=False))
    probe = evaluator.evaluate(space.parse(NB201_PROBE_CELL), epochs=PROBE_EPOCHS)
    rows: list[dict[str, Any]] = []
    tapas: TAPAS | None = None
    for seed in seeds:
        fit_seconds = 0.0
        if tapas is None or cfg.refit_per_seed:
            data_seed = seed if cfg.refit_per_seed else seeds[0]
            records = [r for d in sources for r in nb201_records(d, cfg.n_train, seed=data_seed)]
            start = time.perf_counter()
            tapas = TAPAS(cfg.tapas.model_copy(update={"seed": data_seed})).fit(records, target=target_dcn)
            fit_seconds = time.perf_counter() - start
            scores = tapas.predict([all_archs[i] for i in tau_rows], target_dcn)
            correlations = rank_correlations(scores, actual[tau_rows])
        found = tapas_search(
            tapas,
            space,
            target_dcn,
            evaluator,
            cfg.k,
            cfg.n_predictions,
            cfg.population_size,
            cfg.sample_size,
            seed=seed,
            reporter=reporter,
        )
        baseline = random_search(space, evaluator, cfg.k, seed=seed)
        rows.append(
            {
                "held_out": held_out,
                "seed": seed,
                "sources": ",".join(f"{t}:{w:.3g}" for t, w in tapas.select_sources(target_dcn)),
                "dcn": target_dcn,
                "n_train": cfg.n_train * len(sources),
                "kendall_tau": correlations["kendall_tau"],
                "spearman_rho": correlations["spearman_rho"],
                "k": cfg.k,
                "best_acc": best,
                "tapas_test_acc": found.best_test_acc,
                "random_test_acc": baseline.best_test_acc,
                "tapas_regret": regret(best, found.best_test_acc),
                "random_regret": regret(best, baseline.best_test_acc),
                "tapas_cost_seconds": found.cost_seconds,
                "random_cost_seconds": baseline.cost_seconds,
                "probe_cost_seconds": probe.cost_seconds,
                "fit_seconds": fit_seconds,
                "tap_search_seconds": found.extra["tap_seconds"],
                "tapas_arch": str(found.best_arch),
            }
        )
    return rows


def _check_seeds(seeds: Iterable[int]) -> list[int]:
    seeds = list(seeds)
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int | np.integer) for s in seeds):
        raise ValueError(f"seeds must be a non-empty list of integers, got {seeds!r}")
    return [int(s) for s in seeds]


def nb201_lodo(
    held_out: Sequence[str] | None = None,
    seeds: Iterable[int] = range(10),
    config: NB201LodoConfig | None = None,
) -> Any:
    """The experiment over every held-out dataset (default: all three); a pandas DataFrame, one row per
    (held-out dataset, seed)."""
    import pandas as pd

    from nasmeta.data.benchmarks import NB201_DATASETS

    datasets = list(NB201_DATASETS if held_out is None else held_out)
    if not datasets:
        raise ValueError("held_out is empty: name at least one NB201 dataset")
    seeds = _check_seeds(seeds)
    return pd.DataFrame([row for d in datasets for row in nb201_lodo_fold(d, seeds, config)])


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
