"""GDAS: one op per edge sampled by Gumbel-softmax, hard forward with a straight-through soft backward; and SNAS'
relaxed variant (``variant="snas"``).

Dong & Yang, "Searching for a Robust Neural Architecture in Four GPU Hours", CVPR 2019.  At every forward pass
each edge draws ``h = softmax((log softmax(alpha) + g) / tau)`` with Gumbel noise ``g``; the forward runs only the
op ``k = argmax h``, scaled by the straight-through weight ``onehot_k - h_k.detach() + h_k`` (value 1, gradient
that of ``h_k``), so the architecture gradient flows through the soft sample while one op per edge is computed.
All cells of a type share one sample per forward pass, as they share their alphas.  The temperature falls linearly
from ``tau_max = 10`` at the first epoch to ``tau_min = 0.1`` at the last (``tau_e = tau_max - (tau_max -
tau_min) * (e - 1) / (E - 1)``).  Architecture optimiser as GDAS' NAS-Bench-201 runs: Adam lr 3e-4, betas
(0.5, 0.999), weight decay 1e-3.  The weight step trains the sampled path too.

Xie et al., "SNAS: Stochastic Neural Architecture Search", ICLR 2019: ``variant="snas"`` mixes every op by the
relaxed sample ``h`` itself (all ops computed, as DARTS), with the same schedule.  SNAS' resource penalty is not
implemented.

Checked against the reference NAS-Bench-201 search (AutoDL-Projects ``GDAS.py`` / ``TinyNetworkGDAS``), which
matches here in: one Gumbel draw per forward shared by every cell (redrawn on inf / nan); search cells with BN
``affine=False`` (its ``track_running_stats`` only matters in eval mode, which the search never uses); Adam lr 3e-4,
betas (0.5, 0.999), weight decay 1e-3; tau linear from 10 to 0.1 over the epochs; the arch step on a separate batch
of the held-out half.

Deviations: the reference GDAS forward also adds the (zero-valued) straight-through weights of the ops it does not
run, which passes a ``sum(dL/dout)`` gradient to them; by default only the sampled op's term is formed
(``unsampled_term=True`` adds the reference's; on NB201 at our budgets both end in parameter-free cells).  The
reference takes each iteration's weight step before its arch step (the shared loop: arch step first).  In the DARTS
space GDAS searches both cell types (the paper's GDAS-FRC fixes a hand-designed reduction cell).  Discretisation
is the space's rule on softmax(alpha) (NB201: strongest non-``none`` op per edge, where the reference's NB201
genotype takes the argmax over all five ops; DARTS: top-2 edges per node).

Behaviour at short budgets (issue 16; ``benchmarks/oneshot_sampled_diagnostics.py``): on NB201 with 8 epochs, C=8 N=1,
16 px, 800+800 CIFAR images the found cells are parameter-free on 17 of their 18 edges (200-epoch table 56.70 +- 13.65
over seeds 0-2).  That is what GDAS's objective says at that budget, not a wrong gradient: the supernet trained on
sampled paths has its lowest ``E[L_val | op on edge e]`` at skip or avg-pool on every edge (also after 40 epochs on
4000+4000 images), the all-conv cells run through it have a higher validation loss than the all-skip / all-pool cells
(2.28 vs 2.12 / 2.08 after 8 epochs), and the mean of GDAS's straight-through gradient is aligned with the exact
``dE[L_val]/dalpha`` (cosine over the non-``none`` ops 0.78-0.90 for tau 10 / 1 / 0.1; 0.53-0.69 after 40 epochs on
4000+4000 images, where the top op agrees on 5 of 6 edges).  Given weights that favour convs (trained through conv paths
only), GDAS's arch steps alone derive a conv cell (93.21 % in the table).  With ~100 Adam steps of 3e-4 softmax(alpha)
stays within 0.005 of uniform, so the derived cell is the argmax of that early drift.  The straight-through gradient
gives ``none`` no direct signal (its output is 0 at any weight), so its weight moves only through the softmax coupling.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch.nn import functional as F

from nasmeta.oneshot.loop import (
    AlphaStrategy,
    Batch,
    SearchData,
    apply_gradients,
    arch_gradients,
    arch_optimizer,
    register_strategy,
)
from nasmeta.oneshot.mixed_ops import WeightedOp
from nasmeta.oneshot.supernet import Choices, Path, Supernet


class GdasConfig(BaseModel):
    """GDAS / SNAS settings (published defaults)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    variant: Literal["gdas", "snas"] = "gdas"
    tau_max: float = Field(10.0, gt=0)
    tau_min: float = Field(0.1, gt=0)
    arch_lr: float = Field(3e-4, gt=0)
    arch_betas: tuple[float, float] = (0.5, 0.999)
    arch_weight_decay: float = Field(1e-3, ge=0)
    #: add the (zero-valued) straight-through weights of the ops not run, as the reference GDAS code does
    unsampled_term: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> GdasConfig:
        if self.tau_min > self.tau_max:
            raise ValueError(f"tau_min {self.tau_min} must not exceed tau_max {self.tau_max}")
        return self


def temperature(epoch: int, epochs: int, tau_max: float = 10.0, tau_min: float = 0.1) -> float:
    """GDAS' linear schedule: ``tau_max`` at epoch 1, ``tau_min`` at epoch ``epochs`` (1-based epochs)."""
    if not 1 <= epoch <= epochs:
        raise ValueError(f"epoch must be in 1..{epochs}, got {epoch!r}")
    if epochs == 1:
        return tau_max
    return tau_max - (tau_max - tau_min) * (epoch - 1) / (epochs - 1)


def gumbel_softmax_sample(
    alpha: torch.Tensor, tau: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(soft, index, hard)`` per row of ``alpha``: the relaxed sample, its argmax and the straight-through one-hot
    ``onehot - soft.detach() + soft``.  Redrawn while a row is not finite (as the reference code does)."""
    while True:
        noise = torch.empty(alpha.shape, device=alpha.device, dtype=alpha.dtype).exponential_(generator=generator)
        logits = (alpha.log_softmax(dim=-1) - noise.log()) / tau  # -log(Exp(1)) is Gumbel(0, 1)
        soft = logits.softmax(dim=-1)
        if torch.isfinite(soft).all():
            break
    index = soft.argmax(dim=-1)
    hard = F.one_hot(index, alpha.shape[-1]).to(soft.dtype) - soft.detach() + soft
    return soft, index, hard


@register_strategy("gdas")
class Gdas(AlphaStrategy):
    """GDAS (or SNAS with ``variant="snas"``) over a supernet's edges (module docstring)."""

    def __init__(self, supernet: Supernet, data: SearchData, batch_size: int, seed: int, **kwargs: Any) -> None:
        super().__init__(supernet, data, batch_size, seed)
        self.config = GdasConfig(**kwargs)
        self.optimizer = arch_optimizer(supernet.alphas().values(), self.config)
        device = supernet.alphas()[supernet.cell_types[0]].device
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.tau = self.config.tau_max

    def begin_epoch(self, epoch: int, epochs: int) -> None:
        super().begin_epoch(epoch, epochs)
        self.tau = temperature(epoch, epochs, self.config.tau_max, self.config.tau_min)

    def sample(self) -> Choices:
        """One Gumbel sample per edge (shared by the cells of a type) at the current temperature."""
        per_cell: dict[str, tuple[Any, ...]] = {}
        for t, alpha in self.supernet.alphas().items():
            soft, index, hard = gumbel_softmax_sample(alpha, self.tau, self.generator)
            if self.config.variant == "snas":
                per_cell[t] = tuple(soft.unbind(0))
            else:
                rest = hard.sum(dim=1) - hard.gather(1, index[:, None]).squeeze(1)  # value 0, gradients of the others
                per_cell[t] = tuple(
                    WeightedOp(int(k), hard[e, k], rest[e] if self.config.unsampled_term else None)
                    for e, k in enumerate(index.tolist())
                )
        return Choices(per_cell)

    def arch_step(self, train_batch: Batch, val_batch: Batch, lr: float) -> None:
        xv, yv = val_batch
        alphas = list(self.supernet.alphas().values())
        loss = F.cross_entropy(self.supernet(xv, self.sample()), yv)
        grads = arch_gradients(loss, alphas)
        apply_gradients(self.optimizer, alphas, grads)

    def weight_path(self) -> Choices:
        return self.sample()

    def eval_path(self) -> Path:
        return self.supernet.arch_to_path(self.supernet.derive())

    def end_epoch(self, epoch: int) -> dict[str, float]:
        return {"tau": self.tau}

    def finish_extra(self) -> dict[str, Any]:
        return {"final_tau": self.tau}

    def state(self) -> dict[str, Any]:
        return self.config.model_dump()
