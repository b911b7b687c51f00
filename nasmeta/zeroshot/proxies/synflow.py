"""SynFlow (Tanaka et al., NeurIPS 2020, "Pruning neural networks without any data by iteratively conserving
synaptic flow"), as a zero-cost proxy (Abdelfattah et al., ICLR 2021, "Zero-Cost Proxies for Lightweight NAS").

On a copy: BatchNorm bypassed, every parameter replaced by its absolute value, double precision, input one
all-ones sample of the input shape; R = sum of the outputs; score = sum over Conv/Linear weights of
|w * dR/dw|.  The sum reaches 1e30-1e60 on NB201, so the proxy reports its natural log (the ranking is
unchanged).  Signs are restored afterwards, as in the reference, though the copy is discarded anyway.
Deviation: none; an all-zero flow gives log(0) = -inf (the worst score).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from nasmeta.zeroshot.batch import Batch
from nasmeta.zeroshot.modules import bypass_batchnorm, model_device, weight_layers
from nasmeta.zeroshot.registry import proxy


@proxy("synflow", needs_data=False, batch_size=None, description="log sum |w * dR/dw|, |w|, no BN, float64, ones in")
def synflow(model: nn.Module, batch: Batch) -> float:
    bypass_batchnorm(model)
    model.double()
    layers = weight_layers(model, "synflow")
    params = list(model.parameters())
    with torch.no_grad():
        signs = [torch.sign(p) for p in params]
        for p in params:
            p.abs_()
    model.zero_grad(set_to_none=True)
    x = torch.ones((1, *batch.input_shape), dtype=torch.float64, device=model_device(model))
    model(x).sum().backward()
    total = 0.0
    with torch.no_grad():
        for layer in layers:
            if layer.weight.grad is not None:
                total += float((layer.weight * layer.weight.grad).abs().sum())
        for p, s in zip(params, signs, strict=True):
            p.mul_(s)
    return math.log(total) if total > 0 else -math.inf
