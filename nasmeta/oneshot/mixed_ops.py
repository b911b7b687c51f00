"""Mixed operations: the candidate ops of one supernet edge.

Liu, Simonyan & Yang, "DARTS: Differentiable Architecture Search", ICLR 2019 (continuous relaxation: the edge
output is ``sum_o softmax(alpha)_o * o(x)``); Pham et al., "Efficient Neural Architecture Search via Parameter
Sharing", ICML 2018, and Guo et al., "Single Path One-Shot NAS" (SPOS), ECCV 2020 (one op of the edge runs).

The ops are the same modules the standalone networks use (``nasmeta.spaces.ops``), built with BN
``affine=False`` as in the DARTS and NAS-Bench-201 search code: a learnable BN scale would let an op rescale its
output and so mimic its architecture weight.  In the DARTS space each pooling op is followed by
``BatchNorm2d(affine=False)`` (the DARTS search convention: it puts pooling outputs on the scale of the
conv outputs, which end in BN); the NAS-Bench-201 search cells use their pooling op unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nasmeta.spaces.ops import OpFactory, make_op

#: what a mixed op is told to compute: a weight per candidate (sum), or the index of the one op to run
Choice = torch.Tensor | int


class MixedOp(nn.Module):
    """The candidate ops of one edge, in ``names`` order.

    ``forward(x, choice)``: with a 1-D tensor of one weight per candidate, the weighted sum of every candidate's
    output (DARTS); with an ``int``, only that candidate runs (single path: ENAS, random one-shot, and the
    evaluation of a discrete architecture through the supernet).
    """

    def __init__(
        self,
        names: Sequence[str],
        family: dict[str, OpFactory],
        c_in: int,
        c_out: int,
        stride: int,
        bn_after_pool: bool = False,
    ) -> None:
        super().__init__()
        if not names:
            raise ValueError("a mixed op needs at least one candidate op, got none")
        if len(set(names)) != len(names):
            raise ValueError(f"candidate ops of a mixed op must be distinct, got {list(names)}")
        self.names = tuple(names)
        ops = []
        for name in self.names:
            op = make_op(family, name, c_in, c_out, stride, affine=False)
            if bn_after_pool and "pool" in name:
                op = nn.Sequential(op, nn.BatchNorm2d(c_out, affine=False))
            ops.append(op)
        self.ops = nn.ModuleList(ops)

    def forward(self, x: torch.Tensor, choice: Choice) -> torch.Tensor:
        if isinstance(choice, int):
            if not 0 <= choice < len(self.ops):
                raise ValueError(f"op index {choice} out of range for candidates {list(self.names)}")
            return self.ops[choice](x)
        if choice.shape != (len(self.ops),):
            raise ValueError(f"expected {len(self.ops)} op weights for {list(self.names)}, got {tuple(choice.shape)}")
        out = None
        for w, op in zip(choice, self.ops, strict=True):
            y = w * op(x)
            out = y if out is None else out + y
        return out
