"""TE-NAS (Chen, Gong & Wang, ICLR 2021, "Neural Architecture Search on ImageNet in Four GPU Hours: A
Theoretically Inspired Perspective"): trainability by the NTK condition number, expressivity by the number of
linear regions, combined by rank.

- ``ntk``: Kaiming-normal (fan_out) init, train mode; G = per-sample gradients of each sample's summed logits
  w.r.t. every parameter named ``*weight`` (Conv, Linear and BN scales, as in the reference), from one forward
  pass of the whole batch, so BN statistics couple the samples exactly as in the reference; Theta = G G^T;
  raw = lambda_max / lambda_min (NaN -> 1e5 as in the reference).  Lower is better (sign -1).
  Two interchangeable ways to get G (a test checks they agree): ``method="autograd"`` (default), one
  ``torch.autograd.grad`` per sample on the retained graph, as the reference does; ``method="jacrev"``,
  ``torch.func.jacrev`` over ``functional_call``.  The default is not ``torch.func`` because its batched
  backward needs far more memory: on a C=16, N=1 NB201 network at batch 64 we measured 1.1 GB and 12 s for the
  autograd loop against 7.4 GB (chunk_size 1) and 19 GB (chunk_size 8) for ``jacrev``; at the benchmark size
  (N=5) ``jacrev`` passed 22 GB and was killed.
- ``linear_regions``: Kaiming-normal (fan_in) init, train mode; the number of distinct ReLU on/off patterns
  (all ReLU module outputs > 0, concatenated) over ``n_samples`` = 3,000 Gaussian inputs fed in chunks of 1,000.
  Higher is better.  TE-NAS counts on a thin network (C=1, N=1, 1x3x3 input) so the count does not saturate
  at 3,000; the ``network_hook`` builds that network for NB201 (keeping our stem and the three stages, which
  the reference drops); other spaces use the network given, at ``input_shape`` when set.
- ``te_nas``: the mean of the two ranks over the scored population (TE-NAS sums the ranks; same order).

Deviations: one repeat by default (TE-NAS' pruning averages 3: pass ``repeats=3``); regions are counted with
``torch.unique`` on the patterns instead of the reference's pairwise matrix (same count); Gaussian inputs
(the reference resizes dataset images).  BN layers are switched to batch statistics without running-stat
updates for ``ntk`` (``torch.func.replace_all_batch_norm_modules_``), which leaves the train-mode forward
unchanged.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, jacrev, replace_all_batch_norm_modules_

from nasmeta.zeroshot.batch import Batch
from nasmeta.zeroshot.modules import kaiming_init, model_device, relu_modules
from nasmeta.zeroshot.registry import proxy, register_composite

#: the reference's value for an undefined condition number
NAN_CONDITION = 1e5


def _gram_autograd(model: nn.Module, x: torch.Tensor, names: list[str]) -> torch.Tensor:
    params = dict(model.named_parameters())
    weights = [params[name] for name in names]
    out = model(x).reshape(len(x), -1).sum(dim=1)
    rows = []
    for i in range(len(x)):
        grads = torch.autograd.grad(out[i], weights, retain_graph=i < len(x) - 1, allow_unused=True)
        rows.append(
            torch.cat(
                [(torch.zeros_like(w) if g is None else g).reshape(-1) for w, g in zip(weights, grads, strict=True)]
            )
        )
    g = torch.stack(rows).cpu()
    theta = torch.zeros(len(x), len(x), dtype=torch.float64)
    # float64 products over column blocks: no float64 copy of the whole of G
    for start in range(0, g.shape[1], 1 << 20):
        block = g[:, start : start + (1 << 20)].double()
        theta += block @ block.T
    return theta


def _gram_jacrev(model: nn.Module, x: torch.Tensor, names: list[str], chunk_size: int | None) -> torch.Tensor:
    weights = {name: p.detach() for name, p in model.named_parameters() if name in names}

    def summed_logits(w: dict[str, torch.Tensor]) -> torch.Tensor:
        return functional_call(model, w, (x,), strict=False).reshape(len(x), -1).sum(dim=1)

    jac = jacrev(summed_logits, chunk_size=chunk_size)(weights)
    theta = torch.zeros(len(x), len(x), dtype=torch.float64)
    for j in jac.values():
        g = j.detach().reshape(len(x), -1).double().cpu()
        theta += g @ g.T
    return theta


def ntk_condition_number(
    model: nn.Module, x: torch.Tensor, method: str = "autograd", chunk_size: int | None = 8
) -> float:
    """lambda_max / lambda_min of the empirical NTK of ``model`` on ``x`` (model used as is, train-mode BN)."""
    names = [name for name, _ in model.named_parameters() if name.endswith("weight")]
    if not names:
        raise ValueError("the network has no parameters named '*weight'")
    if method == "autograd":
        theta = _gram_autograd(model, x, names)
    elif method == "jacrev":
        theta = _gram_jacrev(model, x, names, chunk_size)
    else:
        raise ValueError(f"ntk method must be 'autograd' or 'jacrev', got {method!r}")
    eig = torch.linalg.eigvalsh(theta)
    cond = float(eig[-1] / eig[0])
    return NAN_CONDITION if math.isnan(cond) else cond


@proxy(
    "ntk",
    sign=-1,
    batch_size=64,
    repeats=1,
    method="autograd",
    chunk_size=8,
    description="NTK condition number (lower better)",
)
def ntk(model: nn.Module, batch: Batch, *, repeats: int, method: str, chunk_size: int | None) -> float:
    if repeats < 1:
        raise ValueError(f"ntk repeats must be >= 1, got {repeats}")
    replace_all_batch_norm_modules_(model)
    x = batch.x.to(model_device(model))
    values = []
    for _ in range(repeats):
        kaiming_init(model, "fan_out")
        values.append(ntk_condition_number(model, x, method, chunk_size))
    return float(np.mean(values))


def count_linear_regions(
    model: nn.Module, input_shape: tuple[int, ...], n_samples: int = 3000, chunk: int = 1000
) -> int:
    """Distinct ReLU activation patterns of ``model`` over ``n_samples`` Gaussian inputs (model used as is)."""
    if n_samples < 1 or chunk < 1:
        raise ValueError(f"n_samples and chunk must be >= 1, got {n_samples} and {chunk}")
    relus = relu_modules(model, "linear_regions")
    codes: list[torch.Tensor] = []

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        codes.append((output.detach() > 0).flatten(1).cpu())

    handles = [relu.register_forward_hook(hook) for relu in relus]
    patterns: list[torch.Tensor] = []
    device = model_device(model)
    try:
        with torch.no_grad():
            for start in range(0, n_samples, chunk):
                codes.clear()
                model(torch.randn((min(chunk, n_samples - start), *input_shape), device=device))
                packed = np.packbits(torch.cat(codes, dim=1).numpy(), axis=1)
                patterns.append(torch.from_numpy(packed))
    finally:
        for handle in handles:
            handle.remove()
    return int(torch.unique(torch.cat(patterns), dim=0).shape[0])


def thin_network(space: Any, arch: Any, num_classes: int, input_shape: tuple[int, int, int], build_kwargs: dict):
    """TE-NAS' thin network for region counting: C=1, N=1 on 1x3x3 inputs (NB201 only; else the default)."""
    if getattr(space, "name", None) != "nb201":
        return None
    return space.build(arch, num_classes, (1, 3, 3), C=1, N=1), {"input_shape": (1, 3, 3)}


@proxy(
    "linear_regions",
    needs_data=False,
    batch_size=None,
    network_hook=thin_network,
    n_samples=3000,
    chunk=1000,
    input_shape=None,
    repeats=1,
    description="distinct ReLU patterns over 3,000 Gaussian inputs",
)
def linear_regions(
    model: nn.Module, batch: Batch, *, n_samples: int, chunk: int, input_shape: tuple[int, ...] | None, repeats: int
) -> float:
    if repeats < 1:
        raise ValueError(f"linear_regions repeats must be >= 1, got {repeats}")
    shape = batch.input_shape if input_shape is None else tuple(input_shape)
    counts = []
    for _ in range(repeats):
        kaiming_init(model, "fan_in")
        counts.append(count_linear_regions(model, shape, n_samples, chunk))
    return float(np.mean(counts))


register_composite("te_nas", ("ntk", "linear_regions"), "TE-NAS: mean rank of NTK condition number and #regions")
