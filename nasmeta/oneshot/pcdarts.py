"""PC-DARTS: partial channel connections and edge normalisation.

Xu et al., "PC-DARTS: Partial Channel Connections for Memory-Efficient Architecture Search", ICLR 2020.
On every edge only the first ``C/K`` channels (``K = 4``) pass through the mixed op; the other channels bypass it
(max-pooled 2x2 on stride-2 edges), the two parts are concatenated and the channels shuffled in ``K`` groups, so
that the next edge sees a different subset.  Edge normalisation: the input of node ``j`` is ``sum_i
softmax(beta_j)_i * f_ij(x_i)`` over its incoming edges, with one ``beta`` per edge (softmax per node), and the
DARTS-space derivation ranks edges by ``softmax(alpha) * softmax(beta)``.  The architecture (alphas and betas) is
updated first order, and only after ``warmup_epochs`` epochs of weight training (published: 15 of 50).  Arch
optimiser (published): Adam lr 6e-4, betas (0.5, 0.999), weight decay 1e-3; betas start at ``1e-3 * randn``.

The strategy rebuilds every mixed op of the supernet at ``C/K`` channels (:class:`PartialMixedOp`) before the
weight optimiser is built; the rest of the network is unchanged.  ``warmup_epochs=None`` scales the published
15/50 share to the search length (``round(0.3 * epochs)``).

Deviations: the weight optimiser is the loop's shared DARTS setting (PC-DARTS used batch 256 and lr 0.1 on CIFAR-10
because its memory allowed it); no data augmentation in the search (shared loop).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from nasmeta.oneshot.loop import (
    AlphaStrategy,
    Batch,
    SearchData,
    arch_optimizer,
    register_strategy,
)
from nasmeta.oneshot.mixed_ops import Choice, EdgeChoice, MixedOp
from nasmeta.oneshot.supernet import Choices, Supernet
from nasmeta.spaces.base import Architecture

#: published share of the search spent on weights only (15 of 50 epochs)
WARMUP_SHARE = 15 / 50


class PcDartsConfig(BaseModel):
    """PC-DARTS settings (published defaults)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    K: int = Field(4, ge=1)
    warmup_epochs: int | None = Field(None, ge=0)
    arch_lr: float = Field(6e-4, gt=0)
    arch_betas: tuple[float, float] = (0.5, 0.999)
    arch_weight_decay: float = Field(1e-3, ge=0)
    beta_init_std: float = Field(1e-3, ge=0)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet's channel shuffle: ``(B, g*n, H, W)`` viewed as ``(B, g, n)`` channels and transposed."""
    b, c, h, w = x.shape
    if c % groups:
        raise ValueError(f"channel_shuffle needs channels divisible by {groups}, got {c}")
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class PartialMixedOp(MixedOp):
    """A mixed op on the first ``C/K`` channels; the rest bypass it; then a channel shuffle in ``K`` groups."""

    def __init__(self, template: MixedOp, K: int) -> None:
        if template.c_in != template.c_out:
            raise ValueError(f"partial channels need c_in == c_out, got {template.c_in} -> {template.c_out}")
        if template.c_in % K:
            raise ValueError(f"K={K} must divide the edge's {template.c_in} channels")
        super().__init__(
            template.names, template.family, template.c_in // K, template.c_out // K, template.stride,
            template.bn_after_pool,
        )  # fmt: skip
        self.K = K
        self.channels = template.c_in
        self.bypass = nn.MaxPool2d(2, 2, ceil_mode=True) if template.stride == 2 else nn.Identity()

    def partial(
        self, x: torch.Tensor, run: Callable[[torch.Tensor], torch.Tensor], scale: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``shuffle(cat(run(x[:, :C/K]), scale * bypass(x[:, C/K:])))``: ``run`` must apply ``scale`` to its own
        part (folding the edge weight into the op weights keeps no extra full-width tensor for its gradient)."""
        if x.shape[1] != self.channels:
            raise ValueError(f"this edge takes {self.channels} channels, got {x.shape[1]}")
        part = self.channels // self.K
        rest = self.bypass(x[:, part:])
        out = torch.cat([run(x[:, :part]), rest if scale is None else rest * scale], dim=1)
        return channel_shuffle(out, self.K)

    def forward(self, x: torch.Tensor, choice: Choice) -> torch.Tensor:
        if isinstance(choice, EdgeChoice):
            return choice(self, x)
        return self.partial(x, lambda part: MixedOp.forward(self, part, choice))


class PartialChoice(EdgeChoice):
    """``edge_weight * partial(mix by op_weights)``: an edge's output with PC-DARTS' edge normalisation."""

    def __init__(self, op_weights: torch.Tensor, edge_weight: torch.Tensor) -> None:
        self.op_weights = op_weights
        self.edge_weight = edge_weight

    def __call__(self, op: MixedOp, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(op, PartialMixedOp):
            raise ValueError("PartialChoice needs a supernet whose mixed ops were made partial (PC-DARTS)")
        # = edge_weight * partial(mix): the weight is folded into both parts before the concatenation
        return op.partial(x, lambda part: op.mix(part, self.op_weights * self.edge_weight), self.edge_weight)


@register_strategy("pcdarts")
class PcDarts(AlphaStrategy):
    """PC-DARTS over a supernet whose mixed ops it makes partial (module docstring)."""

    def __init__(self, supernet: Supernet, data: SearchData, batch_size: int, seed: int, **kwargs: Any) -> None:
        super().__init__(supernet, data, batch_size, seed)
        self.config = PcDartsConfig(**kwargs)
        supernet.replace_mixed_ops(lambda op: PartialMixedOp(op, self.config.K))
        gen = torch.Generator().manual_seed(seed)
        self.betas = {
            t: supernet.add_arch_parameter(
                f"beta_{t}", self.config.beta_init_std * torch.randn(len(supernet.edge_ops[t]), generator=gen)
            )
            for t in supernet.cell_types
        }
        self.optimizer = arch_optimizer(supernet.arch_parameters(), self.config)
        self.warmup = self.config.warmup_epochs if self.config.warmup_epochs is not None else 0
        self.epoch = 0

    def begin_epoch(self, epoch: int, epochs: int) -> None:
        super().begin_epoch(epoch, epochs)
        if self.config.warmup_epochs is None:
            self.warmup = round(WARMUP_SHARE * epochs)

    def edge_weights(self) -> dict[str, torch.Tensor]:
        """Per cell type, ``softmax(beta)`` over each node's incoming edges, one value per edge."""
        out = {}
        for t, beta in self.betas.items():
            weights = torch.empty_like(beta)
            for edges in self.supernet.node_edges[t]:
                index = torch.tensor(edges, device=beta.device)
                weights = weights.index_copy(0, index, beta[index].softmax(dim=0))
            out[t] = weights
        return out

    def choices(self) -> Choices:
        ops, edges = self.supernet.op_weights(), self.edge_weights()
        return Choices(
            {t: tuple(PartialChoice(w, b) for w, b in zip(ops[t].unbind(0), edges[t].unbind(0), strict=True))
             for t in self.supernet.cell_types}
        )  # fmt: skip

    def arch_step(self, train_batch: Batch, val_batch: Batch, lr: float) -> None:
        if self.epoch <= self.warmup:
            return  # warm-up: the weights train alone
        self.first_order_step(val_batch, self.choices())

    def weight_path(self) -> Choices:
        return self.choices()

    def eval_path(self) -> Choices:
        return self.choices()

    def end_epoch(self, epoch: int) -> dict[str, float]:
        return {"arch_updates": float(epoch > self.warmup)}

    def derive_weights(self) -> dict[str, torch.Tensor]:
        """``softmax(alpha) * softmax(beta)`` per edge: what the derivation ranks (PC-DARTS' genotype)."""
        ops, edges = self.supernet.op_weights(), self.edge_weights()
        return {t: (ops[t] * edges[t][:, None]).detach() for t in self.supernet.cell_types}

    def current_arch(self) -> Architecture:
        return self.supernet.derive(self.derive_weights())

    def finish_extra(self) -> dict[str, Any]:
        betas = {t: b.detach().cpu().tolist() for t, b in self.betas.items()}
        return {"betas": betas, "warmup_epochs": self.warmup}

    def state(self) -> dict[str, Any]:
        return self.config.model_dump()
