"""ASAP: architecture search with an annealed softmax and pruning of weak ops during the search.

Noy et al., "ASAP: Architecture Search, Anneal and Prune", AISTATS 2020.  Every edge mixes its ops by the annealed
softmax ``softmax(alpha / T)``; the temperature falls as ``T_e = T0 * 0.95^(e - 1)`` at epoch ``e`` (``T0 = 1.6``,
METHODS.md), so the distribution sharpens gradually and the final cell is close to the mixture that was trained
("no final discretisation jump").  After ``grace_epochs`` epochs, at the end of every epoch each op whose annealed
weight falls below the threshold is pruned: it is no longer computed and its weight is 0 (the softmax runs over the
remaining ops).  An edge always keeps its strongest non-``none`` op.  The architecture is updated first order with
DARTS' arch optimiser (Adam lr 3e-4, betas (0.5, 0.999), weight decay 1e-3).  The result is derived from the
annealed weights of the remaining ops by the space's rule.

Threshold: ``threshold_factor / n`` for an edge with ``n`` candidates (default factor 0.4, i.e. 40 % of the uniform
weight), constant over the search -- METHODS.md gives the schedule's form only; the annealing is what drives
weights below it.  ``grace_epochs=None``: the first 20 % of the epochs (rounded, at least 1).

Deviations: pruning is checked once per epoch (the paper checks during the epoch); no data augmentation (shared
loop).
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field

from nasmeta.oneshot.loop import (
    AlphaStrategy,
    Batch,
    SearchData,
    arch_optimizer,
    register_strategy,
)
from nasmeta.oneshot.pdarts import masked_choices, masked_softmax
from nasmeta.oneshot.supernet import Choices, Supernet
from nasmeta.spaces.base import Architecture

GRACE_SHARE = 0.2


class AsapConfig(BaseModel):
    """ASAP settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    T0: float = Field(1.6, gt=0)
    temperature_decay: float = Field(0.95, gt=0, le=1)
    threshold_factor: float = Field(0.4, ge=0, lt=1)
    grace_epochs: int | None = Field(None, ge=0)
    arch_lr: float = Field(3e-4, gt=0)
    arch_betas: tuple[float, float] = (0.5, 0.999)
    arch_weight_decay: float = Field(1e-3, ge=0)


def asap_temperature(epoch: int, T0: float = 1.6, decay: float = 0.95) -> float:
    """``T0 * decay^(epoch - 1)`` at 1-based ``epoch``."""
    if epoch < 1:
        raise ValueError(f"epoch must be >= 1, got {epoch!r}")
    return T0 * decay ** (epoch - 1)


def prune_below(weights: torch.Tensor, mask: torch.Tensor, edge_ops: Any, threshold_factor: float) -> torch.Tensor:
    """The mask without the active ops whose weight is below ``threshold_factor / n_candidates`` of their edge; the
    strongest active non-``none`` op of an edge is always kept."""
    new = mask.clone()
    for e in range(mask.shape[0]):
        ops = edge_ops[e]
        threshold = threshold_factor / len(ops)
        alive = [k for k in range(mask.shape[1]) if bool(mask[e, k])]
        real = [k for k in alive if ops[k] != "none"]
        keep = max(real, key=lambda k: (float(weights[e, k]), -k)) if real else alive[0]
        for k in alive:
            if k != keep and float(weights[e, k]) < threshold:
                new[e, k] = False
    return new


@register_strategy("asap")
class Asap(AlphaStrategy):
    """ASAP over a supernet's edges (module docstring)."""

    def __init__(self, supernet: Supernet, data: SearchData, batch_size: int, seed: int, **kwargs: Any) -> None:
        super().__init__(supernet, data, batch_size, seed)
        self.config = AsapConfig(**kwargs)
        self.masks = {t: torch.ones_like(a, dtype=torch.bool) for t, a in supernet.alphas().items()}
        self.optimizer = arch_optimizer(supernet.arch_parameters(), self.config)
        self.T = self.config.T0
        self.grace = self.config.grace_epochs or 0

    def begin_epoch(self, epoch: int, epochs: int) -> None:
        super().begin_epoch(epoch, epochs)
        self.T = asap_temperature(epoch, self.config.T0, self.config.temperature_decay)
        if self.config.grace_epochs is None:
            self.grace = max(1, round(GRACE_SHARE * epochs))

    def annealed(self) -> dict[str, torch.Tensor]:
        return {t: masked_softmax(a, self.masks[t], self.T) for t, a in self.supernet.alphas().items()}

    def op_weights(self) -> dict[str, torch.Tensor]:
        return {t: w.detach() for t, w in self.annealed().items()}

    def choices(self) -> Choices:
        return masked_choices(self.annealed(), self.masks)

    def arch_step(self, train_batch: Batch, val_batch: Batch, lr: float) -> None:
        self.first_order_step(val_batch, self.choices())

    def weight_path(self) -> Choices:
        return self.choices()

    def eval_path(self) -> Choices:
        return self.choices()

    def end_epoch(self, epoch: int) -> dict[str, float]:
        if epoch > self.grace:
            weights = self.op_weights()
            for t in self.supernet.cell_types:
                self.masks[t] = prune_below(
                    weights[t], self.masks[t], self.supernet.edge_ops[t], self.config.threshold_factor
                )
        active = {f"active_ops_{t}": float(m.sum(dim=1).float().mean()) for t, m in self.masks.items()}
        return {"temperature": self.T, **active}

    def current_arch(self) -> Architecture:
        return self.supernet.derive(self.op_weights())

    def finish_extra(self) -> dict[str, Any]:
        return {"masks": {t: m.cpu().tolist() for t, m in self.masks.items()}, "final_temperature": self.T}

    def state(self) -> dict[str, Any]:
        return self.config.model_dump()
