"""Gradient-saliency proxies of Abdelfattah et al. (ICLR 2021, "Zero-Cost Proxies for Lightweight NAS"),
each summed over the weights of every Conv/Linear layer, cross-entropy on the batch, network in train mode:

- ``snip`` (Lee et al., ICLR 2019): sum |dL/dm| for a multiplicative ones-mask m on each weight = sum |w * dL/dw|.
- ``grad_norm``: sum over layers of the L2 norm of the layer's weight gradient.
- ``grasp`` (Wang et al., ICLR 2020): sum of -w * Hg, with g = dL/dw from a first pass and Hg the gradient of
  z = sum(g.detach() * dL/dw) from a second pass built with ``create_graph``.
- ``fisher`` (Turner et al., ICLR 2020 / Theis et al. 2018): at each Conv/Linear output a, per channel
  0.5 * mean over the batch of (sum over positions of a * dL/da)^2, summed over channels and layers.

Deviation: none (the reference's optional batch splitting is not needed on one batch).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nasmeta.zeroshot.batch import Batch
from nasmeta.zeroshot.modules import model_device, weight_layers
from nasmeta.zeroshot.registry import proxy


def _loss(model: nn.Module, batch: Batch) -> torch.Tensor:
    device = model_device(model)
    return F.cross_entropy(model(batch.x.to(device)), batch.y.to(device))


def _weight_grads(model: nn.Module, batch: Batch, proxy_name: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    weights = [layer.weight for layer in weight_layers(model, proxy_name)]
    grads = torch.autograd.grad(_loss(model, batch), weights, allow_unused=True)
    return [(w, g) for w, g in zip(weights, grads, strict=True) if g is not None]


@proxy("snip", description="sum |w * dL/dw| over Conv/Linear weights")
def snip(model: nn.Module, batch: Batch) -> float:
    grads = _weight_grads(model, batch, "snip")
    with torch.no_grad():
        return float(sum((w * g).abs().sum() for w, g in grads))


@proxy("grad_norm", description="sum over layers of ||dL/dw||_2")
def grad_norm(model: nn.Module, batch: Batch) -> float:
    return float(sum(g.norm() for _, g in _weight_grads(model, batch, "grad_norm")))


@proxy("grasp", description="sum of -w * Hg (Hessian-gradient product)")
def grasp(model: nn.Module, batch: Batch) -> float:
    weights = [layer.weight for layer in weight_layers(model, "grasp")]
    first = torch.autograd.grad(_loss(model, batch), weights, allow_unused=True)
    second = torch.autograd.grad(_loss(model, batch), weights, create_graph=True, allow_unused=True)
    z = sum((g.detach() * gf).sum() for g, gf in zip(first, second, strict=True) if g is not None and gf is not None)
    if not isinstance(z, torch.Tensor) or not z.requires_grad:
        return 0.0
    hg = torch.autograd.grad(z, weights, allow_unused=True)
    return float(sum((-w.detach() * h).sum() for w, h in zip(weights, hg, strict=True) if h is not None))


@proxy("fisher", description="per-channel 0.5 * E[(sum a * dL/da)^2] at Conv/Linear outputs")
def fisher(model: nn.Module, batch: Batch) -> float:
    layers = weight_layers(model, "fisher")
    totals: list[torch.Tensor] = []

    def forward_hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        if not output.requires_grad:
            return
        act = output.detach()

        def on_grad(grad: torch.Tensor) -> None:
            per_channel = act * grad
            if per_channel.ndim > 2:
                per_channel = per_channel.flatten(2).sum(dim=2)
            totals.append(0.5 * per_channel.pow(2).mean(dim=0).sum())

        output.register_hook(on_grad)

    handles = [layer.register_forward_hook(forward_hook) for layer in layers]
    try:
        _loss(model, batch).backward()
    finally:
        for handle in handles:
            handle.remove()
    return float(sum(totals)) if totals else 0.0
