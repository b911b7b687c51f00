"""P-DARTS (search-space approximation, skip-connection dropout, skip limit) and DARTS+ (skip-limit early stop).

Chen et al., "Progressive Differentiable Architecture Search: Bridging the Depth Gap between Search and
Evaluation", ICCV 2019.  The search runs in stages (published 3 x 25 epochs), each a new, deeper network
(published 5 -> 11 -> 17 cells) over a smaller op space: between stages every edge's op space is pruned to the
ops with the largest softmax weights (published 8 -> 5 -> 3 ops per edge, then 1 by derivation; in the last
pruning ``none`` is never kept, as in the reference code).  Each stage is one run of the one-shot loop
(:func:`~nasmeta.oneshot.loop.run_search`) over a newly built supernet of the stage's depth, with fresh weights,
fresh alphas (``1e-3 * randn``), a fresh weight optimiser and its own cosine schedule, as the reference code
builds a new model per stage; :meth:`PDarts.run_stages` drives the stages and ``oneshot_search`` calls it.
Within stage ``s`` the output of every ``skip_connect`` is dropped out with rate ``p`` (published CIFAR-10 rates
0.1, 0.4, 0.7 for the three stages): during the stage's weight-only warm-up (published 10 of 25 epochs) ``p =
rate_s * (L - i - 1) / L`` at stage epoch ``i`` of ``L``, afterwards ``p = rate_s * exp(-0.2 * (i - warm-up))``
with architecture updates (reference code).  The final normal cell keeps at most 2 skip connections: while it
has more, the weakest kept skip is removed (its weight set below every other) and the cell derived again
(:func:`limit_skips`).  Architecture optimiser (published): Adam lr 6e-4, betas (0.5, 0.999), weight decay 1e-3,
first order.

The loop's epochs are split into ``stages`` nearly equal stages; ``keep_ops`` are the op counts per edge after
each stage but the last (published ``(5, 3)``), capped at the edge's candidates; ``depths`` the supernet depth per
stage (DARTS: ``layers``, published ``(5, 11, 17)``; NB201: ``N``).  Default depths: the requested supernet's
depth ``d`` first, then ``d + 3``, ``d + 6`` (half the published step of 6, for the small search budgets here);
NB201 keeps its ``N`` in every stage (the paper grows the DARTS network only).

Deviations: a stage's supernet is the full-op supernet with the pruned ops masked (:class:`MaskedMix`): pruned
ops are never run and get no gradient, but their (unused) modules are still built.  No data augmentation (shared
loop).

Liang et al., "DARTS+: Improved Differentiable Architecture Search with Early Stopping", 2019: the search stops
once the derived normal cell holds 2 ``skip_connect`` ops.  Any strategy takes the rule as the loop option
``skip_stop`` (:meth:`nasmeta.oneshot.loop.Strategy.stop_requested`, ``oneshot_search(..., skip_stop=2)``);
``darts-plus`` is first-order DARTS with it on.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch.nn import functional as F

from nasmeta.oneshot.darts import Darts
from nasmeta.oneshot.loop import (
    AlphaStrategy,
    Batch,
    SearchData,
    WeightConfig,
    arch_optimizer,
    register_strategy,
    run_search,
)
from nasmeta.oneshot.mixed_ops import EdgeChoice, MixedOp
from nasmeta.oneshot.supernet import SKIP, Choices, Supernet
from nasmeta.reporting import CallbackReporter, NullReporter, Reporter, ShouldStop
from nasmeta.spaces.base import Architecture


class MaskedMix(EdgeChoice):
    """``sum_{o active} weights[o] * o(x)``: pruned ops are not run; ``skip_dropout`` drops the skip output."""

    def __init__(self, weights: torch.Tensor, active: tuple[int, ...], skip_dropout: float = 0.0) -> None:
        self.weights = weights
        self.active = active
        self.skip_dropout = skip_dropout

    def __call__(self, op: MixedOp, x: torch.Tensor) -> torch.Tensor:
        out = None
        for k in self.active:
            if op.names[k] == "none":
                continue  # contributes exactly zero
            y = op.run(k, x)
            if op.names[k] == SKIP and self.skip_dropout > 0:
                y = F.dropout(y, self.skip_dropout, training=True)
            y = y * self.weights[k]
            out = y if out is None else out + y
        if out is None:  # only none left on this edge
            return op.run(self.active[0], x) * self.weights[self.active[0]]
        return out


def masked_choices(
    weights: dict[str, torch.Tensor], masks: dict[str, torch.Tensor], skip_dropout: float = 0.0
) -> Choices:
    """Per cell type and edge, a :class:`MaskedMix` of ``weights`` over the ops ``masks`` keeps."""
    out = {}
    for t, w in weights.items():
        active = [tuple(int(k) for k in row.nonzero().flatten()) for row in masks[t]]
        out[t] = tuple(MaskedMix(w[e], active[e], skip_dropout) for e in range(len(active)))
    return Choices(out)


def masked_softmax(alpha: torch.Tensor, mask: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Row-wise ``softmax(alpha / temperature)`` over the entries where ``mask`` is True; 0 elsewhere."""
    if not bool(mask.any(dim=-1).all()):
        raise ValueError("every edge needs at least one active op")
    return (alpha / temperature).masked_fill(~mask, float("-inf")).softmax(dim=-1)


def prune_mask(
    weights: torch.Tensor, mask: torch.Tensor, keep: int, edge_ops: Any, drop_none: bool = False
) -> torch.Tensor:
    """A new mask keeping, per edge, the ``keep`` active ops with the largest weights (ties: first in column order);
    ``drop_none``: ``none`` is never kept (P-DARTS' last pruning).  Edges with at most ``keep`` candidates lose only
    ``none`` (when dropped)."""
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep!r}")
    new = torch.zeros_like(mask)
    for e in range(mask.shape[0]):
        ops = edge_ops[e]
        cand = [k for k in range(mask.shape[1]) if bool(mask[e, k]) and not (drop_none and ops[k] == "none")]
        if not cand:
            raise ValueError(f"edge {e} would keep no op")
        for k in sorted(cand, key=lambda i: (-float(weights[e, i]), i))[:keep]:
            new[e, k] = True
    return new


def limit_skips(
    supernet: Supernet, weights: dict[str, torch.Tensor], max_skips: int = 2, cell: str | None = None
) -> tuple[Architecture, dict[str, torch.Tensor]]:
    """P-DARTS' final rule: derive; while the cell (default: ``normal``, or the only cell type) has more than
    ``max_skips`` skip connections, set the weight of its weakest kept skip to 0 and derive again.  Returns the
    architecture and the weights it was derived from."""
    if max_skips < 0:
        raise ValueError(f"max_skips must be >= 0, got {max_skips!r}")
    cell = cell or ("normal" if "normal" in supernet.cell_types else supernet.cell_types[0])
    weights = {t: w.detach().clone() for t, w in weights.items()}
    for _ in range(len(supernet.edge_ops[cell]) + 1):  # each round removes one kept skip for good
        arch = supernet.derive(weights)
        path = supernet.arch_to_path(arch)[cell]
        skips = [e for e, k in enumerate(path) if k is not None and supernet.edge_ops[cell][e][k] == SKIP]
        if len(skips) <= max_skips:
            return arch, weights
        weakest = min(skips, key=lambda e: (float(weights[cell][e, path[e]]), e))
        # below every weight, so the edge competes with its next-strongest op and the skip never returns
        weights[cell][weakest, path[weakest]] = -1.0
    raise AssertionError("limit_skips did not converge")


class PDartsConfig(BaseModel):
    """P-DARTS settings (published defaults; the stage lengths follow the loop's epochs)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stages: int = Field(3, ge=1)
    keep_ops: tuple[int, ...] = (5, 3)
    skip_dropout: tuple[float, ...] = (0.1, 0.4, 0.7)
    warmup_share: float = Field(10 / 25, ge=0, lt=1)
    dropout_decay: float = Field(0.2, ge=0)
    max_skips: int | None = Field(2, ge=0)
    arch_lr: float = Field(6e-4, gt=0)
    arch_betas: tuple[float, float] = (0.5, 0.999)
    arch_weight_decay: float = Field(1e-3, ge=0)
    alpha_init_std: float = Field(1e-3, ge=0)
    #: supernet depth per stage (DARTS ``layers``, NB201 ``N``); None: see the module docstring
    depths: tuple[int, ...] | None = None

    @model_validator(mode="after")
    def _lengths(self) -> PDartsConfig:
        if len(self.keep_ops) != self.stages - 1:
            raise ValueError(f"keep_ops needs stages - 1 = {self.stages - 1} entries, got {self.keep_ops}")
        if len(self.skip_dropout) != self.stages:
            raise ValueError(f"skip_dropout needs one rate per stage ({self.stages}), got {self.skip_dropout}")
        if any(k < 1 for k in self.keep_ops) or any(not 0 <= p < 1 for p in self.skip_dropout):
            raise ValueError(f"keep_ops must be >= 1 and rates in [0, 1), got {self.keep_ops}, {self.skip_dropout}")
        if self.depths is not None and (len(self.depths) != self.stages or min(self.depths) < 1):
            raise ValueError(f"depths needs {self.stages} positive entries (one per stage), got {self.depths}")
        return self


def stage_of(epoch: int, epochs: int, stages: int) -> tuple[int, int, int]:
    """(stage index, epoch index within the stage, stage length) of 1-based ``epoch`` when ``epochs`` are split into
    ``stages`` nearly equal parts (the first stages get the extra epochs)."""
    if not 1 <= epoch <= epochs:
        raise ValueError(f"epoch must be in 1..{epochs}, got {epoch!r}")
    if epochs < stages:
        raise ValueError(f"P-DARTS needs at least one epoch per stage: {epochs} epochs for {stages} stages")
    parts = np.array_split(np.arange(1, epochs + 1), stages)
    for s, part in enumerate(parts):
        if epoch in part:
            return s, int(epoch - part[0]), len(part)
    raise AssertionError("unreachable")


def skip_dropout_rate(rate: float, i: int, length: int, warmup: int, decay: float) -> float:
    """P-DARTS' skip dropout at stage epoch ``i`` (0-based) of ``length`` with ``warmup`` weight-only epochs."""
    if i < warmup:
        return rate * (length - i - 1) / length
    return rate * math.exp(-decay * (i - warmup))


def stage_lengths(epochs: int, stages: int) -> list[int]:
    """Epochs per stage when ``epochs`` are split into ``stages`` nearly equal parts (the first get the extra)."""
    if epochs < stages:
        raise ValueError(f"P-DARTS needs at least one epoch per stage: {epochs} epochs for {stages} stages")
    return [len(part) for part in np.array_split(np.arange(epochs), stages)]


def _depth_key(size: dict[str, Any]) -> str:
    for key in ("layers", "N"):
        if key in size:
            return key
    raise ValueError(f"P-DARTS cannot tell the depth of a supernet of size {size!r} (no 'layers' or 'N')")


def _shifted(reporter: Reporter, done: int, keep_row0: bool) -> Reporter:
    """A stage's reports at the search's epoch numbers (a later stage's row 0 is its predecessor's last epoch)."""

    def report(step: int, metrics: dict[str, Any]) -> None:
        if keep_row0 or step > 0:
            reporter.report(step + done, **metrics)

    return CallbackReporter(report)


@register_strategy("pdarts")
class PDarts(AlphaStrategy):
    """One P-DARTS stage over a supernet whose op space is ``masks`` (module docstring); :meth:`run_stages` runs
    the whole progressive search.  Run alone through the loop, it is one stage over all ops."""

    def __init__(
        self,
        supernet: Supernet,
        data: SearchData,
        batch_size: int,
        seed: int,
        stage: int = 0,
        masks: dict[str, torch.Tensor] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(supernet, data, batch_size, seed)
        self.config = PDartsConfig(**kwargs)
        if not 0 <= stage < self.config.stages:
            raise ValueError(f"stage must be in 0..{self.config.stages - 1}, got {stage!r}")
        alphas = supernet.alphas()
        self.masks = {t: torch.ones_like(a, dtype=torch.bool) for t, a in alphas.items()}
        if masks is not None:
            for t, m in masks.items():
                if t not in self.masks or tuple(m.shape) != tuple(self.masks[t].shape):
                    raise ValueError(f"mask of cell {t!r} has shape {tuple(m.shape)}, the supernet's alphas differ")
                self.masks[t] = m.to(dtype=torch.bool, device=alphas[t].device).clone()
        self.stage, self.p, self.update_arch = stage, 0.0, False
        generator = torch.Generator().manual_seed(seed + 1000 * stage)
        with torch.no_grad():  # fresh alphas per stage (reference code: a new model per stage)
            for a in alphas.values():
                a.copy_(self.config.alpha_init_std * torch.randn(a.shape, generator=generator))
        self.optimizer = arch_optimizer(self.supernet.arch_parameters(), self.config)

    @classmethod
    def run_stages(
        cls,
        build: Callable[..., Supernet],
        data: SearchData,
        batch_size: int,
        seed: int,
        epochs: int,
        weight_config: WeightConfig | None = None,
        reporter: Reporter | None = None,
        should_stop: ShouldStop | None = None,
        skip_stop: int | None = None,
        **kwargs: Any,
    ) -> tuple[PDarts, list[dict[str, Any]], float]:
        """The progressive search: stage ``s`` is one :func:`run_search` of its share of ``epochs`` over
        ``build(<depth key>=depths[s])`` (seeded with ``seed + s``) restricted to the ops kept after stage ``s -
        1``.  Returns the last stage's strategy, the trace of all stages (epochs numbered on; one row 0) and the
        search seconds.  The search ends early when a stage stops (``skip_stop``, ``should_stop``)."""
        config = PDartsConfig(**kwargs)
        lengths = stage_lengths(epochs, config.stages)
        reporter = reporter or NullReporter()
        torch.manual_seed(seed)
        probe = build()
        key = _depth_key(probe.size)
        first = int(probe.size[key])
        depths = config.depths or tuple(first + (3 * s if key == "layers" else 0) for s in range(config.stages))
        masks: dict[str, torch.Tensor] | None = None
        trace: list[dict[str, Any]] = []
        elapsed = 0.0
        strategy: PDarts | None = None
        for s, length in enumerate(lengths):
            torch.manual_seed(seed + s)
            supernet = probe if s == 0 and depths[0] == first else build(**{key: depths[s]})
            strategy = cls(supernet, data, batch_size, seed, stage=s, masks=masks, **kwargs)
            strategy.skip_stop = skip_stop
            strategy.depth = depths[s]
            done = max(len(trace) - 1, 0)
            stage_reporter = _shifted(reporter, done, keep_row0=s == 0)
            stage_stop = None
            if should_stop is not None:
                stage_stop = lambda rows, before=list(trace[1:]): should_stop(before + rows)  # noqa: E731
            stage_trace, seconds = run_search(strategy, length, weight_config, stage_reporter, stage_stop)
            for row in stage_trace[1:]:
                row["epoch"] += done
                row["seconds"] += elapsed
            trace.extend(stage_trace if s == 0 else stage_trace[1:])
            elapsed += seconds
            if len(stage_trace) - 1 < length:  # the stage stopped: so does the search
                break
            if s < config.stages - 1:
                weights = strategy.op_weights()
                last = s == config.stages - 2
                masks = {
                    t: prune_mask(weights[t], strategy.masks[t], config.keep_ops[s], supernet.edge_ops[t], last)
                    for t in supernet.cell_types
                }
        assert strategy is not None
        strategy.depths = depths
        return strategy, trace, elapsed

    def begin_epoch(self, epoch: int, epochs: int) -> None:
        super().begin_epoch(epoch, epochs)
        i, length = epoch - 1, epochs
        warmup = round(self.config.warmup_share * length)
        self.p = skip_dropout_rate(self.config.skip_dropout[self.stage], i, length, warmup, self.config.dropout_decay)
        self.update_arch = i >= warmup

    def op_weights(self) -> dict[str, torch.Tensor]:
        return {t: masked_softmax(a, self.masks[t]).detach() for t, a in self.supernet.alphas().items()}

    def choices(self, p: float) -> Choices:
        weights = {t: masked_softmax(a, self.masks[t]) for t, a in self.supernet.alphas().items()}
        return masked_choices(weights, self.masks, p)

    def arch_step(self, train_batch: Batch, val_batch: Batch, lr: float) -> None:
        if not self.update_arch:
            return
        self.first_order_step(val_batch, self.choices(self.p))

    def weight_path(self) -> Choices:
        return self.choices(self.p)

    def eval_path(self) -> Choices:
        return self.choices(0.0)

    def end_epoch(self, epoch: int) -> dict[str, float]:
        active = {t: float(m.sum(dim=1).float().mean()) for t, m in self.masks.items()}
        return {
            "stage": float(self.stage + 1),
            "depth": float(self.supernet.size[_depth_key(self.supernet.size)]),
            "skip_dropout": self.p,
            **{f"active_ops_{t}": v for t, v in active.items()},
        }

    def current_arch(self) -> Architecture:
        if self.config.max_skips is None:
            return self.supernet.derive(self.op_weights())
        return limit_skips(self.supernet, self.op_weights(), self.config.max_skips)[0]

    def finish_extra(self) -> dict[str, Any]:
        return {
            "masks": {t: m.cpu().tolist() for t, m in self.masks.items()},
            "stages_done": self.stage + 1,
            "depths": list(getattr(self, "depths", [self.supernet.size[_depth_key(self.supernet.size)]])),
        }

    def state(self) -> dict[str, Any]:
        return self.config.model_dump()


@register_strategy("darts-plus")
class DartsPlus(Darts):
    """DARTS+: first-order DARTS that stops once the derived normal cell holds ``max_skips`` (2) skip connections."""

    def __init__(
        self, supernet: Supernet, data: SearchData, batch_size: int, seed: int, max_skips: int = 2, **kwargs: Any
    ) -> None:
        if isinstance(max_skips, bool) or not isinstance(max_skips, int) or max_skips < 1:
            raise ValueError(f"max_skips must be a positive integer, got {max_skips!r}")
        super().__init__(supernet, data, batch_size, seed, **kwargs)
        self.skip_stop = max_skips

    def state(self) -> dict[str, Any]:
        return {**super().state(), "max_skips": self.skip_stop}
