"""DARTS: differentiable architecture search, first and second order.

Liu, Simonyan & Yang, "DARTS: Differentiable Architecture Search", ICLR 2019.  Every edge computes
``sum_o softmax(alpha)_o * o(x)``; the search alternates an architecture step on a validation batch and a weight
step on a train batch (:mod:`nasmeta.oneshot.loop`).

* First order: the architecture gradient is ``grad_alpha L_val(w, alpha)``.
* Second order (paper eq. 6-8): the gradient of ``L_val(w', alpha)`` with ``w' = w - xi * grad_w
  L_train(w, alpha)`` (one unrolled SGD step, ``xi`` = the current weight learning rate), i.e.
  ``grad_alpha L_val(w', alpha) - xi * grad^2_{alpha,w} L_train(w, alpha) grad_w' L_val(w', alpha)``, with the
  Hessian-vector product by central finite differences at ``w+- = w +- eps * grad_w' L_val(w', alpha)``,
  ``eps = 0.01 / ||grad_w' L_val(w', alpha)||``.

Architecture optimiser (METHODS.md): Adam lr 3e-4, betas (0.5, 0.999), weight decay 1e-3; alphas start at
``1e-3 * randn``.  The result is derived by the space's rule (strongest non-``none`` op per edge; in DARTS cells
the two edges per node with the strongest such op).

Deviation: the unrolled step is the paper's plain gradient step; the reference code also adds the weight
optimiser's momentum and weight decay to the virtual step.  Neither term depends on ``alpha``, so the
finite-difference Hessian term is the same; only the point ``w'`` differs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch.func import functional_call
from torch.nn import functional as F

from nasmeta.oneshot.loop import AlphaStrategy, Batch, SearchData, apply_gradients, arch_optimizer, register_strategy
from nasmeta.oneshot.supernet import Path, Supernet

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class DartsConfig(BaseModel):
    """DARTS architecture-step settings (published defaults)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    order: Literal[1, 2] = 1
    arch_lr: float = Field(3e-4, gt=0)
    arch_betas: tuple[float, float] = (0.5, 0.999)
    arch_weight_decay: float = Field(1e-3, ge=0)


def _grads(loss: torch.Tensor, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    grads = torch.autograd.grad(loss, tensors, allow_unused=True)
    return [torch.zeros_like(t) if g is None else g for t, g in zip(tensors, grads, strict=True)]


def unrolled_hypergradient(
    supernet: Supernet,
    train_batch: Batch,
    val_batch: Batch,
    xi: float,
    loss_fn: LossFn = F.cross_entropy,
    eps_scale: float = 0.01,
) -> list[torch.Tensor]:
    """DARTS' second-order architecture gradient (module docstring), one tensor per ``arch_parameters()``.

    ``eps_scale`` is the 0.01 of ``eps = 0.01 / ||grad_w' L_val||``.  The finite difference assumes the
    ``alpha``-gradient of ``L_train`` is smooth in ``w`` over ``w +- eps * v``; ReLU kinks inside that range make
    it a coarser estimate, which is the method as published.  The supernet's weights are not modified: the
    unrolled and perturbed weights are passed through ``torch.func.functional_call``.
    """
    if eps_scale <= 0:
        raise ValueError(f"eps_scale must be positive, got {eps_scale!r}")
    (xt, yt), (xv, yv) = train_batch, val_batch
    names, weights = zip(*supernet.named_weights(), strict=True)
    alphas = supernet.arch_parameters()

    def loss_at(params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return loss_fn(functional_call(supernet, params, (x,)), y)

    g_train = _grads(loss_fn(supernet(xt), yt), list(weights))
    unrolled = [(w - xi * g).detach().requires_grad_(True) for w, g in zip(weights, g_train, strict=True)]
    g_val = _grads(loss_at(dict(zip(names, unrolled, strict=True)), xv, yv), [*unrolled, *alphas])
    dw, dalpha = g_val[: len(unrolled)], g_val[len(unrolled) :]

    norm = torch.cat([d.reshape(-1) for d in dw]).norm()
    if not torch.isfinite(norm) or norm == 0:
        return dalpha  # a zero validation gradient in w leaves no second-order term
    eps = eps_scale / norm
    with torch.no_grad():
        plus = {n: w + eps * d for n, w, d in zip(names, weights, dw, strict=True)}
        minus = {n: w - eps * d for n, w, d in zip(names, weights, dw, strict=True)}
    g_plus = _grads(loss_at(plus, xt, yt), alphas)
    g_minus = _grads(loss_at(minus, xt, yt), alphas)
    return [(da - xi * (gp - gm) / (2 * eps)).detach() for da, gp, gm in zip(dalpha, g_plus, g_minus, strict=True)]


@register_strategy("darts")
class Darts(AlphaStrategy):
    """DARTS (first or second order) over a supernet's softmax-relaxed edges."""

    def __init__(self, supernet: Supernet, data: SearchData, batch_size: int, seed: int, **kwargs: Any) -> None:
        super().__init__(supernet, data, batch_size, seed)
        self.config = DartsConfig(**kwargs)
        self.optimizer = arch_optimizer(supernet.arch_parameters(), self.config)

    def arch_step(self, train_batch: Batch, val_batch: Batch, lr: float) -> None:
        alphas = self.supernet.arch_parameters()
        if self.config.order == 1:
            xv, yv = val_batch
            grads = _grads(F.cross_entropy(self.supernet(xv), yv), alphas)
        else:
            grads = unrolled_hypergradient(self.supernet, train_batch, val_batch, xi=lr)
        apply_gradients(self.optimizer, alphas, grads)

    def weight_path(self) -> Path | None:
        return None

    def eval_path(self) -> Path | None:
        return None

    def end_epoch(self, epoch: int) -> dict[str, float]:
        return {}

    def state(self) -> dict[str, Any]:
        return {"order": self.config.order, **self.config.model_dump(exclude={"order"})}
