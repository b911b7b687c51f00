"""jacob_cov: the Jacobian-covariance score of NASWOT v1 (Mellor et al., 2020, arXiv:2006.04647v1), as used
by Abdelfattah et al. (ICLR 2021).

J = d(sum of all outputs)/dx for the batch (network in train mode, as in the reference), one row per sample;
C = corrcoef of the rows; with eigenvalues l of C and k = 1e-5, score = -sum(log(l + k) + 1 / (l + k)).
Deviations: eigenvalues come from ``eigvalsh`` (C is symmetric) instead of a general ``eig``; a network whose
output ignores its input (a zero Jacobian row makes C undefined) scores -inf, the worst value, instead of NaN.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from nasmeta.zeroshot.batch import Batch
from nasmeta.zeroshot.modules import model_device
from nasmeta.zeroshot.registry import proxy

_K = 1e-5


def jacobian_score(jacobian: np.ndarray) -> float:
    """The NASWOT v1 score of per-sample Jacobian rows ``(N, D)``."""
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(jacobian.astype(np.float64))
    if not np.all(np.isfinite(corr)):
        return -math.inf
    eig = np.linalg.eigvalsh(corr)
    return float(-np.sum(np.log(eig + _K) + 1.0 / (eig + _K)))


@proxy("jacob_cov", description="-sum(log(l+k) + 1/(l+k)) over eigenvalues of corrcoef of input Jacobians")
def jacob_cov(model: nn.Module, batch: Batch) -> float:
    x = batch.x.to(model_device(model)).clone().requires_grad_(True)
    out = model(x)
    out.backward(torch.ones_like(out))
    return jacobian_score(x.grad.detach().reshape(len(x), -1).cpu().numpy())
