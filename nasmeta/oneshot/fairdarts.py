"""FairDARTS: independent sigmoid op weights and a zero-one loss.

Chu et al., "Fair DARTS: Eliminating Unfair Advantages in Differentiable Architecture Search", ECCV 2020.  Every
edge computes ``sum_o sigmoid(alpha)_o * o(x)``: the ops no longer compete for one softmax budget, so a skip
connection's early advantage does not starve the other ops.  The architecture loss adds the zero-one loss
``L01 = -mean((sigmoid(alpha) - 0.5)^2)`` (over every alpha of every cell type) with weight ``w01 = 10``, which pushes
each weight towards 0 or 1.  Discretisation: an op is kept where its sigmoid weight reaches the threshold
``0.85``, at most 2 inputs per node.  Architecture optimiser as DARTS (Adam lr 3e-4, betas (0.5, 0.999), weight
decay 1e-3), first order.

Discretisation per space:

* NB201 (every edge may be ``none``): an edge takes its strongest non-``none`` op if that op's sigmoid weight is
  ``>= threshold``, else ``none``; where a node has more than 2 such edges, the 2 strongest stay (node 3 has 3
  incoming edges).  A cell may so lose every path to the output (it then computes zero) -- that is the rule.
* DARTS spaces: the genotype has exactly 2 inputs per node, so the threshold cannot remove an edge there; the 2
  incoming edges with the strongest non-``none`` sigmoid weight are kept (the DARTS rule on sigmoid weights), and
  the trace reports how many edge weights pass the threshold (``share_above_threshold``).

Deviations: FairDARTS drops ``none`` from the DARTS op set; here the space's ops are used as they are (``none``
adds nothing to a mixture, so its weight only matters for derivation, which ignores it).  No data augmentation in
the search (shared loop).
"""

from __future__ import annotations

from collections.abc import Sequence
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
from nasmeta.oneshot.supernet import Choices, Supernet
from nasmeta.spaces.base import Architecture


class FairDartsConfig(BaseModel):
    """FairDARTS settings (published defaults)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    zero_one_weight: float = Field(10.0, ge=0)
    threshold: float = Field(0.85, gt=0, lt=1)
    max_inputs: int = Field(2, ge=1)
    arch_lr: float = Field(3e-4, gt=0)
    arch_betas: tuple[float, float] = (0.5, 0.999)
    arch_weight_decay: float = Field(1e-3, ge=0)


def zero_one_loss(alphas: Sequence[torch.Tensor]) -> torch.Tensor:
    """``-mean((sigmoid(alpha) - 0.5)^2)`` over every entry of every tensor (FairDARTS' L01)."""
    if not alphas:
        raise ValueError("zero_one_loss needs at least one alpha tensor")
    values = torch.cat([a.reshape(-1) for a in alphas])
    return -((values.sigmoid() - 0.5) ** 2).mean()


def threshold_edges(
    weights: torch.Tensor,
    edge_ops: Sequence[Sequence[str]],
    node_edges: Sequence[Sequence[int]],
    threshold: float = 0.85,
    max_inputs: int = 2,
) -> list[int | None]:
    """FairDARTS' discretisation of one cell: per edge the index of its strongest non-``none`` op if that weight is
    ``>= threshold`` (else ``None``), then per node at most ``max_inputs`` kept edges (the strongest)."""
    if weights.shape[0] != len(edge_ops):
        raise ValueError(f"weights have {weights.shape[0]} edges, the cell has {len(edge_ops)}")
    best: list[tuple[float, int | None]] = []
    for e, ops in enumerate(edge_ops):
        candidates = [k for k, op in enumerate(ops) if op != "none"]
        if not candidates:
            best.append((float("-inf"), None))
            continue
        k = max(candidates, key=lambda i: (float(weights[e, i]), -i))
        best.append((float(weights[e, k]), k))
    out: list[int | None] = [k if w >= threshold else None for w, k in best]
    for edges in node_edges:
        kept = sorted((e for e in edges if out[e] is not None), key=lambda e: (-best[e][0], e))
        for e in kept[max_inputs:]:
            out[e] = None
    return out


@register_strategy("fairdarts")
class FairDarts(AlphaStrategy):
    """FairDARTS over a supernet's edges (module docstring)."""

    def __init__(self, supernet: Supernet, data: SearchData, batch_size: int, seed: int, **kwargs: Any) -> None:
        super().__init__(supernet, data, batch_size, seed)
        self.config = FairDartsConfig(**kwargs)
        self.optimizer = arch_optimizer(supernet.arch_parameters(), self.config)

    def op_weights(self) -> dict[str, torch.Tensor]:
        """sigmoid(alpha) per cell type (each op weighted on its own)."""
        return {t: a.detach().sigmoid() for t, a in self.supernet.alphas().items()}

    def choices(self) -> Choices:
        return Choices({t: tuple(a.sigmoid().unbind(0)) for t, a in self.supernet.alphas().items()})

    def arch_step(self, train_batch: Batch, val_batch: Batch, lr: float) -> None:
        self.first_order_step(
            val_batch, self.choices(), lambda alphas: self.config.zero_one_weight * zero_one_loss(alphas)
        )

    def weight_path(self) -> Choices:
        return self.choices()

    def eval_path(self) -> Choices:
        return self.choices()

    def end_epoch(self, epoch: int) -> dict[str, float]:
        return {}

    def summary(self) -> dict[str, float]:
        weights = torch.cat([w.reshape(-1) for w in self.op_weights().values()])
        return {
            "zero_one_loss": float(zero_one_loss([a.detach() for a in self.supernet.alphas().values()])),
            "share_above_threshold": float((weights >= self.config.threshold).float().mean()),
        }

    def current_arch(self) -> Architecture:
        weights = self.op_weights()
        if self.supernet.inputs_per_node is not None:
            return self.supernet.derive(weights)  # DARTS genotype: exactly 2 inputs per node (module docstring)
        (cell,) = self.supernet.cell_types
        picks = threshold_edges(
            weights[cell],
            self.supernet.edge_ops[cell],
            self.supernet.node_edges[cell],
            self.config.threshold,
            self.config.max_inputs,
        )
        ops = self.supernet.edge_ops[cell]
        return self.supernet.space.from_encoding(["none" if k is None else ops[e][k] for e, k in enumerate(picks)])

    def state(self) -> dict[str, Any]:
        return self.config.model_dump()
