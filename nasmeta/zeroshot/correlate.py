"""Rank correlation of proxy scores with ground-truth accuracy (``scipy.stats``), and the published numbers.

``spearman`` and ``kendall`` (tau-b) come from ``scipy.stats.spearmanr`` / ``kendalltau``.  ``pair_accuracy`` is
the fraction of pairs with different accuracies that the score orders the same way (a score tie counts one
half): the "orders 81.7 % of NB201 pairs correctly" measure of Abdelfattah et al. (ICLR 2021).  NaN scores
(proxy not applicable) are ranked below every finite score, as in the search, so every architecture counts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import kendalltau, spearmanr

from nasmeta.data.types import TaskData
from nasmeta.reporting import Reporter
from nasmeta.spaces.base import Architecture, SearchSpace
from nasmeta.zeroshot.batch import Batch
from nasmeta.zeroshot.search import ScoredArch, combine_ranks, score_architectures

#: Spearman rho with final accuracy on all 15,625 NB201 cells, (CIFAR-10, CIFAR-100, ImageNet16-120):
#: Abdelfattah et al. 2021 (synflow .. flops), Mellor et al. 2021 (naswot), TE-NAS / Zen as compiled in METHODS.md
PUBLISHED_NB201_SPEARMAN: dict[str, tuple[float, float, float]] = {
    "synflow": (0.74, 0.76, 0.75),
    "jacob_cov": (0.73, 0.70, 0.70),
    "snip": (0.60, 0.64, 0.58),
    "grad_norm": (0.59, 0.64, 0.58),
    "grasp": (0.51, 0.55, 0.55),
    "fisher": (0.36, 0.39, 0.33),
    "naswot": (0.77, 0.80, 0.78),
    "params": (0.75, 0.73, 0.69),
    "flops": (0.73, 0.71, 0.67),
    "ntk": (0.44, 0.43, 0.63),
    "zen": (0.38, 0.36, 0.40),
}
#: majority vote of synflow, jacob_cov and snip: fraction of NB201 pairs ordered correctly on CIFAR-10
PUBLISHED_NB201_VOTE_PAIR_ACCURACY = 0.817
PUBLISHED_DATASET_INDEX = {"cifar10": 0, "cifar100": 1, "imagenet16-120": 2}


@dataclass(frozen=True)
class Correlation:
    spearman: float
    kendall: float
    pair_accuracy: float
    n: int


def _clean(scores: Sequence[float]) -> np.ndarray:
    arr = np.asarray(scores, dtype=np.float64)
    return np.where(np.isnan(arr), -np.inf, arr)


def pair_accuracy(scores: Sequence[float], truth: Sequence[float], chunk: int = 2048) -> float:
    """Fraction of pairs with different ``truth`` that ``scores`` order the same way (score ties count 1/2)."""
    s, t = _clean(scores), np.asarray(truth, dtype=np.float64)
    if len(s) != len(t):
        raise ValueError(f"{len(s)} scores but {len(t)} truth values")
    right, total = 0.0, 0
    for lo in range(0, len(s), chunk):
        with np.errstate(invalid="ignore"):
            ds = np.sign(s[lo : lo + chunk, None] - s[None, :])
        dt = np.sign(t[lo : lo + chunk, None] - t[None, :])
        # inf - inf is nan: two equal infinite scores are a tie
        ds = np.nan_to_num(ds, nan=0.0)
        mask = dt != 0
        total += int(mask.sum())
        right += float((ds[mask] == dt[mask]).sum()) + 0.5 * float((ds[mask] == 0).sum())
    return right / total if total else math.nan


def rank_correlation(scores: Sequence[float], truth: Sequence[float]) -> Correlation:
    """Spearman, Kendall tau-b and pair accuracy of ``scores`` against ``truth`` (needs >= 3 points)."""
    s, t = _clean(scores), np.asarray(truth, dtype=np.float64)
    if len(s) != len(t):
        raise ValueError(f"{len(s)} scores but {len(t)} truth values")
    if len(s) < 3:
        raise ValueError(f"a rank correlation needs at least 3 architectures, got {len(s)}")
    if not np.all(np.isfinite(t)):
        raise ValueError("truth values must be finite")
    rho = float(spearmanr(s, t).statistic)
    tau = float(kendalltau(s, t).statistic)
    return Correlation(rho, tau, pair_accuracy(s, t), len(s))


def correlation_table(columns: dict[str, Sequence[float]], truth: Sequence[float]) -> dict[str, Correlation]:
    """:func:`rank_correlation` of every proxy column against ``truth``."""
    return {name: rank_correlation(col, truth) for name, col in columns.items()}


def published_spearman(proxy: str, dataset: str = "cifar10") -> float | None:
    """The published NB201 Spearman rho of ``proxy`` on ``dataset`` (``None`` when not published)."""
    if dataset not in PUBLISHED_DATASET_INDEX:
        raise ValueError(f"published NB201 numbers exist for {sorted(PUBLISHED_DATASET_INDEX)}, got {dataset!r}")
    row = PUBLISHED_NB201_SPEARMAN.get(proxy)
    return None if row is None else row[PUBLISHED_DATASET_INDEX[dataset]]


def table_accuracy(space: str, dataset: str = "cifar10") -> Callable[[Architecture], float]:
    """Ground truth from a benchmark table: NB201 200-epoch test accuracy of ``dataset``, or Macro mean accuracy."""
    from nasmeta.data.benchmarks import macro_accuracy, nb201_accuracy, nb201_column

    if space == "nb201":
        nb201_column(dataset, 200, "test")  # validates the dataset name early
        return lambda arch: nb201_accuracy(arch, dataset, 200, "test")
    if space == "macro":
        if dataset != "cifar10":
            raise ValueError(f"NAS-Bench-Macro has cifar10 only, got {dataset!r}")
        return macro_accuracy
    raise ValueError(f"no benchmark table for space {space!r}; expected nb201 or macro")


@dataclass
class CorrelationReport:
    """Scores of a population, its ground truth, and the rank correlation of each proxy and of the vote."""

    scored: list[ScoredArch]
    truth: np.ndarray
    correlations: dict[str, Correlation]
    seconds_per_arch: dict[str, float]
    vote: list[str]


def correlate_scored(
    scored: list[ScoredArch], truth: Sequence[float], proxies: Sequence[str], vote: Sequence[str] = ()
) -> CorrelationReport:
    """:class:`CorrelationReport` of already scored architectures (all feasible) against ``truth``."""
    if any(not s.feasible for s in scored):
        raise ValueError("correlations need every architecture scored; drop the constraints")
    columns = {p: [s.scores[p] for s in scored] for p in proxies}
    table = correlation_table(columns, truth)
    if vote:
        missing = [p for p in vote if p not in columns]
        if missing:
            raise ValueError(f"vote proxies {missing} were not scored (scored: {list(columns)})")
        table["vote"] = rank_correlation(combine_ranks({p: columns[p] for p in vote}), truth)
    seconds = {p: float(np.mean([s.seconds[p] for s in scored])) for p in proxies}
    return CorrelationReport(scored, np.asarray(truth, dtype=np.float64), table, seconds, list(vote))


def correlate_proxies(
    space: SearchSpace | str,
    archs: Sequence[Architecture],
    data: TaskData | Batch,
    proxies: Sequence[str],
    truth: Callable[[Architecture], float],
    *,
    vote: Sequence[str] = (),
    seed: int = 42,
    build_kwargs: dict[str, Any] | None = None,
    reporter: Reporter | None = None,
    batch_size: int = 128,
) -> CorrelationReport:
    """Score ``archs`` with ``proxies`` and correlate each (and the mean-rank ``vote``) with ``truth(arch)``."""
    y = [float(truth(a)) for a in archs]
    scored = score_architectures(
        space, archs, data, proxies, seed=seed, build_kwargs=build_kwargs, reporter=reporter, batch_size=batch_size
    )
    return correlate_scored(scored, y, proxies, vote)
