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

import abc
from collections.abc import Sequence

import torch
from torch import nn

from nasmeta.spaces.ops import OpFactory, Zero, make_op


class EdgeChoice(abc.ABC):
    """A strategy's own way to run one edge (sampled gates, partial channels, a weighted single op): the mixed op
    hands itself and its input to the choice.  Strategies subclass this in their own file."""

    @abc.abstractmethod
    def __call__(self, op: MixedOp, x: torch.Tensor) -> torch.Tensor:
        """The edge's output for input ``x``."""


class WeightedOp(EdgeChoice):
    """Only candidate ``index`` runs, scaled by the 0-d tensor ``weight`` (GDAS's hard straight-through sample:
    the value is 1, the gradient reaches the architecture through ``weight``)."""

    def __init__(self, index: int, weight: torch.Tensor, rest: torch.Tensor | None = None) -> None:
        self.index = int(index)
        self.weight = weight
        #: optional 0-d tensor added to the output (value 0): GDAS's reference adds the straight-through weights of
        #: the ops it does not run, which gives their architecture parameters a gradient too
        self.rest = rest

    def __call__(self, op: MixedOp, x: torch.Tensor) -> torch.Tensor:
        out = self.weight * op.run(self.index, x)
        return out if self.rest is None else out + self.rest


#: what a mixed op is told to compute: a weight per candidate (sum), the index of the one op to run, or a
#: strategy-defined :class:`EdgeChoice`
Choice = torch.Tensor | int | EdgeChoice


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
        # kept so that a strategy can rebuild the edge at another width (PC-DARTS' partial channels)
        self.family, self.c_in, self.c_out, self.stride, self.bn_after_pool = family, c_in, c_out, stride, bn_after_pool
        ops = []
        for name in self.names:
            op = make_op(family, name, c_in, c_out, stride, affine=False)
            if bn_after_pool and "pool" in name:
                op = nn.Sequential(op, nn.BatchNorm2d(c_out, affine=False))
            ops.append(op)
        self.ops = nn.ModuleList(ops)
        # the none op contributes exactly zero to the mixture and zero to every gradient: it is never run there
        self._zero = tuple(isinstance(op, Zero) for op in self.ops)

    def run(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """The output of candidate ``index`` alone."""
        if not 0 <= index < len(self.ops):
            raise ValueError(f"op index {index} out of range for candidates {list(self.names)}")
        return self.ops[index](x)

    def mix(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """``sum_o weights[o] * o(x)`` over the candidates (``none`` skipped: its term and its gradients are 0)."""
        if weights.shape != (len(self.ops),):
            raise ValueError(f"expected {len(self.ops)} op weights for {list(self.names)}, got {tuple(weights.shape)}")
        out = None
        for w, op, zero in zip(weights.unbind(0), self.ops, self._zero, strict=True):
            if zero:
                continue
            y = op(x) * w
            out = y if out is None else out.add_(y)
        if out is None:  # every candidate is none
            return self.ops[0](x) * weights[0]
        return out

    def forward(self, x: torch.Tensor, choice: Choice) -> torch.Tensor:
        if isinstance(choice, EdgeChoice):
            return choice(self, x)
        if isinstance(choice, int):
            return self.run(choice, x)
        return self.mix(x, choice)
