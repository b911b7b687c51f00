"""Zen-score (Lin et al., ICCV 2021, "Zen-NAS: A Zero-Shot NAS for High-Performance Image Recognition").

Per repeat: Conv/Linear weights re-drawn from N(0, 1) (biases 0), BN gamma 1 / beta 0, BN in train mode;
x, eps ~ N(0, I) of the batch's shape; delta = batch mean of sum |f(x) - f(x + gamma * eps)| with gamma = 1e-2
and f = ``model.forward_features`` (the feature map before global pooling); score = log delta + sum over BN
layers of log sqrt(mean running_var).  The score is the mean over ``repeats`` (default 4, a parameter; each repeat
is two forward passes).  As in the reference, the BN running statistics carry over from one repeat to the next
(they are not reset).
Not applicable to networks without BatchNorm (no correction term; the paper assumes BN) or without
``forward_features``.  Deviation: none.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from nasmeta.zeroshot.batch import Batch
from nasmeta.zeroshot.modules import bn_modules, gaussian_init, model_device
from nasmeta.zeroshot.registry import ProxyNotApplicable, proxy


@proxy("zen", needs_data=False, batch_size=64, repeats=4, gamma=1e-2, description="Zen-NAS score with BN correction")
def zen(model: nn.Module, batch: Batch, *, repeats: int, gamma: float) -> float:
    if repeats < 1:
        raise ValueError(f"zen repeats must be >= 1, got {repeats}")
    bns = bn_modules(model, "zen")
    if not callable(getattr(model, "forward_features", None)):
        raise ProxyNotApplicable("zen: the network has no forward_features (the feature map before global pooling)")
    if any(bn.running_var is None for bn in bns):
        raise ProxyNotApplicable("zen: a BatchNorm layer does not track running statistics")
    device = model_device(model)
    shape = (len(batch), *batch.input_shape)
    scores = []
    with torch.no_grad():
        for _ in range(repeats):
            gaussian_init(model)
            x = torch.randn(shape, device=device)
            eps = torch.randn(shape, device=device)
            delta = (model.forward_features(x) - model.forward_features(x + gamma * eps)).abs()
            delta = float(delta.flatten(1).sum(dim=1).mean())
            bn_term = sum(math.log(math.sqrt(float(bn.running_var.mean()))) for bn in bns)
            scores.append((math.log(delta) if delta > 0 else -math.inf) + bn_term)
    return float(sum(scores) / len(scores))
