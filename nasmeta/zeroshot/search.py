"""Zero-shot (hardware-aware) NAS: score many architectures with training-free proxies on one batch of the
target task, rank them by the mean rank over the chosen proxies, and optionally evaluate the top k.

The mean-rank vote is the "majority vote" of Abdelfattah et al. (ICLR 2021, "Zero-Cost Proxies for Lightweight
NAS"), who combine synflow, jacob_cov and snip; with one proxy it is that proxy's ranking (NASWOT, Mellor et
al., ICML 2021, ranks N sampled cells by its score and keeps the best).  Ranks are average ranks (ties share
them); a score that is NaN (proxy not applicable) or -inf ranks below every finite score.  Composite proxies
(TE-NAS) enter the vote as one proxy whose score is the mean rank of their parts.

Constraints on parameters, FLOPs and CPU latency (batch 1, median of repeats; :mod:`nasmeta.cost`) filter the
candidates before any proxy runs, which is what makes zero-shot search hardware-aware.  Parameters and FLOPs
are exact; latency is wall-clock, so a candidate near ``max_latency_ms`` may fall either side between runs.
A ``latency`` source (:data:`nasmeta.latency.LatencySource`) replaces that ad-hoc timing with the latency measured
on the target device and kept in the store (:class:`nasmeta.latency.MeasuredLatency`, or OFA's lookup-table
predictor), the same numbers OFA's deployment search uses; with it, ``latency`` may also be named among the
proxies: it then enters the vote as an objective (score = minus the latency in ms, lower is better).

Results leave through ``reporter.report(i, ...)`` (one call per architecture) and the returned
:class:`~nasmeta.search_result.SearchResult`, whose ``extra["rows"]`` are ``proxy_scores`` rows
(``arch_id, arch, proxy, seed, value, seconds``) that a flow writes with :func:`nasmeta.zeroshot.store.write_scores`.
Everything is seeded: the same inputs give the same ranking on CPU.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from scipy.stats import rankdata

from nasmeta.cost import count_flops, count_params, measure_latency
from nasmeta.data.types import TaskData
from nasmeta.evaluators import Evaluation, Evaluator
from nasmeta.reporting import NullReporter, Reporter
from nasmeta.search_result import SearchResult
from nasmeta.spaces import get_space
from nasmeta.spaces.base import Architecture, SearchSpace
from nasmeta.zeroshot.batch import Batch
from nasmeta.zeroshot.registry import compute_proxy, expand, get_proxy

#: NASWOT plus the two strongest data-independent proxies on NB201 (see benchmarks/proxy_correlations.py)
DEFAULT_PROXIES: tuple[str, ...] = ("naswot", "synflow", "params")
#: the pseudo-proxy scoring a candidate by its measured latency (needs a ``latency`` source)
LATENCY = "latency"


def _split_latency(proxies: Sequence[str], latency: Any) -> tuple[list[str], bool]:
    """(the registry's proxies, whether the latency objective is asked for)."""
    names = list(dict.fromkeys(proxies))
    if LATENCY in names and latency is None:
        raise ValueError("proxy 'latency' needs a latency source (e.g. nasmeta.latency.MeasuredLatency)")
    return [n for n in names if n != LATENCY], LATENCY in names


class Constraints(BaseModel):
    """Upper bounds a candidate must meet (``None``: unbounded); FLOPs count a multiply-add as 2."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_params: int | None = Field(None, gt=0)
    max_flops: float | None = Field(None, gt=0)
    max_latency_ms: float | None = Field(None, gt=0)

    def violations(self, params: int, flops: float | None, latency_ms: float | None) -> list[str]:
        out = []
        if self.max_params is not None and params > self.max_params:
            out.append(f"params {params} > {self.max_params}")
        if self.max_flops is not None and flops is not None and flops > self.max_flops:
            out.append(f"flops {flops:.4g} > {self.max_flops:.4g}")
        if self.max_latency_ms is not None and latency_ms is not None and latency_ms > self.max_latency_ms:
            out.append(f"latency {latency_ms:.3g} ms > {self.max_latency_ms:.3g} ms")
        return out


@dataclass
class ScoredArch:
    """One candidate: its cost, its proxy scores (sign applied, higher is better), wall and CPU seconds per proxy.

    ``flops`` is counted only under a FLOPs constraint (the ``flops`` proxy gives it otherwise); ``latency_ms``
    only under a latency constraint.
    """

    arch: Architecture
    arch_id: str
    params: int
    flops: int | None = None
    latency_ms: float | None = None
    violations: list[str] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    not_applicable: dict[str, str] = field(default_factory=dict)
    vote: float = math.nan

    @property
    def feasible(self) -> bool:
        return not self.violations

    def to_dict(self) -> dict[str, Any]:
        return {
            "arch": str(self.arch),
            "arch_id": self.arch_id,
            "params": self.params,
            "flops": self.flops,
            "latency_ms": self.latency_ms,
            "feasible": self.feasible,
            "violations": list(self.violations),
            "vote": self.vote,
            **{f"score/{k}": v for k, v in self.scores.items()},
        }


def rank_scores(values: Sequence[float]) -> np.ndarray:
    """Average ranks 1..n, higher value -> higher rank; NaN ranks with -inf, below every finite value."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"rank_scores needs a 1-D sequence, got shape {arr.shape}")
    return rankdata(np.where(np.isnan(arr), -np.inf, arr), method="average")


def combine_ranks(columns: dict[str, Sequence[float]]) -> np.ndarray:
    """Mean over proxies of each architecture's rank (the vote); higher is better."""
    if not columns:
        raise ValueError("combine_ranks needs at least one proxy column")
    lengths = {name: len(col) for name, col in columns.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"proxy columns differ in length: {lengths}")
    return np.mean([rank_scores(col) for col in columns.values()], axis=0)


def sample_architectures(space: SearchSpace, n: int, seed: int) -> list[Architecture]:
    """``n`` architectures with distinct ``arch_id`` drawn uniformly (rejecting isomorphic repeats)."""
    if n < 1:
        raise ValueError(f"n_samples must be >= 1, got {n}")
    rng = np.random.default_rng(seed)
    seen: set[str] = set()
    out: list[Architecture] = []
    for _ in range(50 * n):
        arch = space.sample(rng)
        if arch.arch_id not in seen:
            seen.add(arch.arch_id)
            out.append(arch)
            if len(out) == n:
                return out
    raise ValueError(f"could not draw {n} distinct architectures from space {space.name!r} (got {len(out)})")


def _as_batch(data: TaskData | Batch, size: int, seed: int) -> Batch:
    if isinstance(data, Batch):
        return data
    if isinstance(data, TaskData):
        return Batch.from_task(data, size=min(size, len(data.x_train)), seed=seed)
    raise TypeError(f"expected TaskData or Batch, got {type(data).__name__}")


def _seeded(seed: int, build: Any, *args: Any, **kwargs: Any) -> Any:
    # the same init stream for every architecture, so a score does not depend on the order of scoring; the
    # caller's torch RNG is left as it was
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build(*args, **kwargs)


def score_architectures(
    space: SearchSpace | str,
    archs: Iterable[Architecture],
    data: TaskData | Batch,
    proxies: Sequence[str] = DEFAULT_PROXIES,
    *,
    seed: int = 42,
    build_kwargs: dict[str, Any] | None = None,
    constraints: Constraints | None = None,
    proxy_options: dict[str, dict[str, Any]] | None = None,
    reporter: Reporter | None = None,
    batch_size: int = 128,
    latency: Any = None,
) -> list[ScoredArch]:
    """Cost and proxy scores of every architecture; infeasible ones are costed but not scored.

    ``latency``: a :data:`nasmeta.latency.LatencySource` used for ``max_latency_ms`` and the ``latency`` objective
    instead of timing each network here.

    Composite proxies (``te_nas``) are filled in over the feasible architectures by the mean rank of their
    parts; their seconds are the sum of the parts'.  The vote is not computed here (see :func:`rank_candidates`).
    """
    space = get_space(space) if isinstance(space, str) else space
    proxies = list(dict.fromkeys(proxies))
    if not proxies:
        raise ValueError("give at least one proxy")
    registered, latency_objective = _split_latency(proxies, latency)
    parts = expand(registered)
    proxy_options = proxy_options or {}
    for name in proxy_options:
        if name not in parts:
            raise ValueError(f"proxy_options given for {name!r}, which is not among the proxies {parts}")
    build_kwargs = dict(build_kwargs or {})
    constraints = constraints or Constraints()
    reporter = reporter or NullReporter()
    batch = _as_batch(data, batch_size, seed)
    scored: list[ScoredArch] = []
    for step, arch in enumerate(archs):
        shape = batch.input_shape
        model = _seeded(seed, space.build, arch, batch.num_classes, shape, **build_kwargs)
        latency_ms = None
        if latency is not None and (constraints.max_latency_ms is not None or latency_objective):
            latency_ms = float(latency(arch, model, shape))
        elif constraints.max_latency_ms is not None:
            latency_ms = 1000.0 * measure_latency(model, shape, batch_sizes=(1,), repeats=5, warmup=1)["latency_b1"]
        # FLOPs need a counting forward pass (and torch's flop counter costs seconds to import): only on demand
        flops = count_flops(model, shape) if constraints.max_flops is not None else None
        item = ScoredArch(arch, arch.arch_id, count_params(model, trainable_only=True), flops, latency_ms)
        item.violations = constraints.violations(item.params, item.flops, latency_ms)
        if item.feasible and latency_objective and latency_ms is not None:
            item.scores[LATENCY] = -latency_ms
            item.seconds[LATENCY] = 0.0
            item.cpu_seconds[LATENCY] = 0.0
        if item.feasible:
            for name in parts:
                spec = get_proxy(name)
                net, options = model, dict(proxy_options.get(name, {}))
                hook = spec.network_hook
                hooked = None
                if hook is not None:
                    hooked = _seeded(seed, hook, space, arch, batch.num_classes, shape, build_kwargs)
                if hooked is not None:
                    net, hook_options = hooked
                    options = {**hook_options, **options}
                value = compute_proxy(name, net, batch, seed=seed, **options)
                item.scores[name] = value.score
                item.seconds[name] = value.seconds
                item.cpu_seconds[name] = value.cpu_seconds
                if not value.applicable:
                    item.not_applicable[name] = value.reason or "not applicable"
        scored.append(item)
        reporter.report(step, arch=str(arch), arch_id=item.arch_id, feasible=item.feasible, **item.scores)
    return fill_composites(scored, proxies)


def fill_composites(scored: list[ScoredArch], proxies: Sequence[str]) -> list[ScoredArch]:
    """Score the composite proxies among ``proxies`` over the feasible candidates (mean rank of their parts).

    Call it once on the whole population (after merging chunks scored in parallel): the rank depends on it.
    """
    feasible = [s for s in scored if s.feasible]
    for name in proxies:
        if name == LATENCY:
            continue
        spec = get_proxy(name)
        if spec.is_composite and feasible:
            combined = combine_ranks({p: [s.scores[p] for s in feasible] for p in spec.parts})
            for s, value in zip(feasible, combined, strict=True):
                s.scores[name] = float(value)
                s.seconds[name] = sum(s.seconds[p] for p in spec.parts)
                s.cpu_seconds[name] = sum(s.cpu_seconds[p] for p in spec.parts)
    return scored


def rank_candidates(scored: list[ScoredArch], proxies: Sequence[str]) -> tuple[list[ScoredArch], list[str]]:
    """Feasible candidates sorted best first by the mean-rank vote over ``proxies``, and the proxies used.

    A proxy with no finite score on any candidate (not applicable anywhere) is left out of the vote and
    missing from the returned list; ties in the vote are
    broken by ``arch_id`` so the order does not depend on the order of sampling.
    """
    feasible = [s for s in scored if s.feasible]
    if not feasible:
        reasons = sorted({v for s in scored for v in s.violations})[:5]
        raise ValueError(f"no architecture satisfies the constraints ({len(scored)} tried; e.g. {reasons})")
    used = [p for p in proxies if any(math.isfinite(s.scores.get(p, math.nan)) for s in feasible)]
    if not used:
        raise ValueError(f"none of the proxies {list(proxies)} applies to any candidate")
    votes = combine_ranks({p: [s.scores[p] for s in feasible] for p in used})
    for s, vote in zip(feasible, votes, strict=True):
        s.vote = float(vote)
    return sorted(feasible, key=lambda s: (-s.vote, s.arch_id)), used


def zero_shot_search(
    space: SearchSpace | str,
    data: TaskData | Batch,
    proxies: Sequence[str] = DEFAULT_PROXIES,
    *,
    n_samples: int = 100,
    archs: Sequence[Architecture] | None = None,
    seed: int = 42,
    build_kwargs: dict[str, Any] | None = None,
    constraints: Constraints | None = None,
    top_k_evaluator: Evaluator | None = None,
    top_k: int = 1,
    proxy_options: dict[str, dict[str, Any]] | None = None,
    reporter: Reporter | None = None,
    batch_size: int = 128,
    latency: Any = None,
) -> SearchResult:
    """Rank ``archs`` (or ``n_samples`` distinct sampled architectures) by the proxies' mean rank.

    ``seed`` fixes the sample, the batch drawn from ``data``, the network init and the proxies' randomness.
    With ``top_k_evaluator`` the ``top_k`` best-voted candidates are evaluated and the best by ``val_acc``
    is returned (NASWOT-style search evaluates only the top one); otherwise the top-voted candidate.
    ``result.extra``: ``ranking`` (feasible candidates, best first, as dicts), ``rows`` (``proxy_scores``
    rows), ``proxies_used``, ``n_infeasible``, ``proxy_seconds``, ``wall_seconds``; ``cost_seconds`` adds the
    evaluations' (possibly simulated) cost to the wall time.  ``latency``: see :func:`score_architectures`.
    """
    start = time.perf_counter()
    space = get_space(space) if isinstance(space, str) else space
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    candidates = list(archs) if archs is not None else sample_architectures(space, n_samples, seed)
    if not candidates:
        raise ValueError("no architectures to score")
    scored = score_architectures(
        space,
        candidates,
        data,
        proxies,
        seed=seed,
        build_kwargs=build_kwargs,
        constraints=constraints,
        proxy_options=proxy_options,
        reporter=reporter,
        batch_size=batch_size,
        latency=latency,
    )
    ranking, used = rank_candidates(scored, list(dict.fromkeys(proxies)))
    history: list[Evaluation] = []
    best, best_val, best_test = ranking[0].arch, None, None
    if top_k_evaluator is not None:
        history = [top_k_evaluator.evaluate(s.arch, seed=seed) for s in ranking[:top_k]]
        done = [e for e in history if e.status == "completed"]
        if done:
            chosen = max(done, key=lambda e: e.val_acc)
            best, best_val, best_test = chosen.arch, chosen.val_acc, chosen.test_acc
    rows = [
        {"arch_id": s.arch_id, "arch": str(s.arch), "proxy": p, "seed": seed, "value": v, "seconds": s.seconds[p]}
        for s in scored
        if s.feasible
        for p, v in s.scores.items()
    ]
    proxy_seconds = sum(s.seconds.get(p, 0.0) for s in scored for p in expand(_split_latency(proxies, latency)[0]))
    wall = time.perf_counter() - start
    return SearchResult(
        method="zeroshot",
        best_arch=best,
        best_val_acc=best_val,
        best_test_acc=best_test,
        history=history,
        trace=[s.to_dict() for s in scored],
        cost_seconds=wall + sum(e.cost_seconds for e in history),
        n_evaluations=len(history),
        extra={
            "ranking": [s.to_dict() for s in ranking],
            "rows": rows,
            "proxies": list(proxies),
            "proxies_used": used,
            "n_infeasible": sum(not s.feasible for s in scored),
            "proxy_seconds": proxy_seconds,
            "wall_seconds": wall,
            "seed": seed,
        },
    )
