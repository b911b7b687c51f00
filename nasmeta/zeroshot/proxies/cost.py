"""Cost baselines of the zero-cost-proxy studies (Abdelfattah et al., ICLR 2021): parameter count and FLOPs.

``params`` counts trainable parameters; ``flops`` counts the forward FLOPs of one sample with
``torch.utils.flop_counter`` through :mod:`nasmeta.cost` (a multiply-add counts 2; only matrix-like ops are
counted, as in the usual MAC counters, which report half this number).  Neither is seed- or data-dependent.
"""

from __future__ import annotations

from torch import nn

from nasmeta.cost import count_flops, count_params
from nasmeta.zeroshot.batch import Batch
from nasmeta.zeroshot.registry import proxy


@proxy("params", needs_data=False, batch_size=None, copies=False, description="number of trainable parameters")
def params(model: nn.Module, batch: Batch) -> float:
    return float(count_params(model, trainable_only=True))


@proxy(
    "flops",
    needs_data=False,
    batch_size=None,
    copies=False,
    description="forward FLOPs of one sample (multiply-add = 2)",
)
def flops(model: nn.Module, batch: Batch) -> float:
    return float(count_flops(model, batch.input_shape))
