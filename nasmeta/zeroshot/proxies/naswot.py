"""NASWOT (Mellor et al., ICML 2021, "Neural Architecture Search without Training").

For every ReLU, the binary code c of each sample is (the ReLU's input > 0), flattened; the kernel
K = sum over ReLUs of c c^T + (1 - c)(1 - c)^T counts, for each pair of samples, the units on the same side
of their kink (N_A minus the Hamming distance); score = log|K| from ``slogdet``.  Published batch: 128.
Deviation: the reference counts only ReLUs reached by a backward pass; we count every ReLU module run in the
forward pass, which is the same set in nasmeta's spaces (no ReLU output is detached or discarded) and saves
a backward pass.  Codes are read by a forward *pre*-hook so in-place ReLUs cannot overwrite the input first.
"""

from __future__ import annotations

import torch
from torch import nn

from nasmeta.zeroshot.batch import Batch
from nasmeta.zeroshot.modules import model_device, relu_modules
from nasmeta.zeroshot.registry import proxy


def hamming_kernel(codes: torch.Tensor) -> torch.Tensor:
    """``c c^T + (1 - c)(1 - c)^T`` for binary codes ``(N, D)``, returned in float64."""
    if codes.shape[1] >= 2**24:
        raise ValueError(f"{codes.shape[1]} units per sample is too many for an exact float32 count")
    # float32 sums of 0/1 products are exact below 2**24 terms and several times faster than float64
    c = codes.float()
    ones = c.sum(dim=1).double()
    # c c^T + (1-c)(1-c)^T = D - |c_i| - |c_j| + 2 c c^T: one matrix product instead of two
    return codes.shape[1] - ones[:, None] - ones[None, :] + 2.0 * (c @ c.T).double()


@proxy("naswot", batch_size=128, description="log|K|, K = sum over ReLUs of N_A - Hamming distance of codes")
def naswot(model: nn.Module, batch: Batch) -> float:
    relus = relu_modules(model, "naswot")
    n = len(batch)
    kernel = torch.zeros(n, n, dtype=torch.float64)

    def pre_hook(module: nn.Module, inputs: tuple) -> None:
        nonlocal kernel
        kernel = kernel + hamming_kernel((inputs[0].detach().reshape(n, -1) > 0).cpu())

    handles = [relu.register_forward_pre_hook(pre_hook) for relu in relus]
    try:
        with torch.no_grad():
            model(batch.x.to(model_device(model)))
    finally:
        for handle in handles:
            handle.remove()
    return float(torch.linalg.slogdet(kernel).logabsdet)
