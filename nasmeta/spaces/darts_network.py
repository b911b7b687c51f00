"""The DARTS CIFAR evaluation network and the cell-level building blocks it shares with the DARTS supernet.

Liu, Simonyan & Yang, "DARTS: Differentiable Architecture Search", ICLR 2019 (evaluation network of
Section 3.3 / Appendix A.2), which follows the NASNet layout (Zoph et al. 2018).  Written anew from the paper
and METHODS.md; the published sizes (C=36, 20 cells, auxiliary head 0.4, drop-path 0.2) are the defaults of
``DartsSpace.build``.

Reusable building blocks (also for the one-shot supernet, which swaps the fixed ops for mixed ops):

- :func:`drop_path` -- NASNet/DARTS scheduled drop-path on one op output.
- :func:`make_stem` -- Conv3x3 (no bias) + BN stem.
- :func:`make_preprocess` -- the two input preprocessing modules of a cell (FactorizedReduce after a reduction
  cell, else ReLUConvBN 1x1).
- :func:`edge_stride` -- stride of an edge (2 on the edges leaving the input nodes of a reduction cell).
- :func:`reduction_indices` / :func:`cell_plan` -- where the reduction cells sit and the channel bookkeeping of
  every cell (``CellSpec``), so a supernet stacks cells exactly like the evaluation network.
- :class:`AuxiliaryHeadCIFAR` -- the DARTS CIFAR auxiliary classifier.

Deviations from the reference code (none change the function or the parameter count):

- The auxiliary head's first ReLU is not in-place.  The reference's in-place ReLU also rectifies the main path,
  which the following cells rectify again anyway, so outputs are identical whenever the auxiliary cell is not
  the last one (true from 3 cells up; with 2 cells the reference would also rectify the final features).
- Input sizes other than 32x32: the auxiliary head uses the DARTS pooling (AvgPool 5, stride 3) whenever that
  yields a 2x2 map (maps of 8..10 pixels, e.g. the 8x8 map of 32x32 inputs) and otherwise an adaptive average
  pool to 2x2 (e.g. the 7x7 map of 28x28 MNIST inputs: overlapping 4x4 windows, close to DARTS' 5x5 windows on
  8x8), so the head and its parameter count are the same for every input size.  Maps smaller than 2x2 cannot
  feed the 2x2 convolution: ``build`` then raises ``ValueError`` (pass ``auxiliary=False``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from nasmeta.spaces.ops import DARTS_OPS, FactorizedReduce, Identity, OpFactory, ReLUConvBN, make_op

#: the intermediate nodes of a cell are concatenated into its output (fixed in this space)
N_NODES = 4
MULTIPLIER = N_NODES
STEM_MULTIPLIER = 3
#: auxiliary loss weight of DARTS / NASNet
AUXILIARY_WEIGHT = 0.4


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Drop whole samples of one op's output with probability ``drop_prob``; survivors are scaled by 1/(1-p).

    The caller decides when to apply it (DARTS: training mode only, never on identity ops).
    """
    if not 0.0 <= drop_prob < 1.0:
        raise ValueError(f"drop_prob must be in [0, 1), got {drop_prob!r}")
    if drop_prob == 0.0:
        return x
    keep = 1.0 - drop_prob
    mask = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device).bernoulli_(keep)
    return x / keep * mask


def edge_stride(reduction: bool, input_index: int) -> int:
    """Stride of the op on an edge from ``input_index``: 2 on edges from the cell inputs of a reduction cell."""
    return 2 if reduction and input_index < 2 else 1


def make_stem(in_channels: int, c_stem: int) -> nn.Sequential:
    """DARTS CIFAR stem: Conv3x3 (stride 1, no bias) + BN."""
    return nn.Sequential(nn.Conv2d(in_channels, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem))


def make_preprocess(
    c_prev_prev: int, c_prev: int, c: int, reduction_prev: bool, affine: bool = True
) -> tuple[nn.Module, nn.Module]:
    """The modules mapping the two cell inputs to ``c`` channels at the cell's input resolution.

    Input 0 (output of the cell two back) is halved by ``FactorizedReduce`` when the previous cell reduced,
    otherwise it and input 1 go through ReLU -> Conv1x1 -> BN.
    """
    pre0: nn.Module
    if reduction_prev:
        pre0 = FactorizedReduce(c_prev_prev, c, affine=affine)
    else:
        pre0 = ReLUConvBN(c_prev_prev, c, 1, 1, 0, affine=affine)
    return pre0, ReLUConvBN(c_prev, c, 1, 1, 0, affine=affine)


def reduction_indices(layers: int) -> tuple[int, int]:
    """Indices of the two reduction cells (at 1/3 and 2/3 of the depth)."""
    if layers < 2:
        raise ValueError(f"a DARTS network needs at least 2 cells (two reduction cells), got layers={layers!r}")
    return layers // 3, 2 * layers // 3


@dataclass(frozen=True)
class CellSpec:
    """Channel bookkeeping of one cell: input channels, per-node channels ``c``, whether it / the last reduced."""

    index: int
    c_prev_prev: int
    c_prev: int
    c: int
    reduction: bool
    reduction_prev: bool

    @property
    def c_out(self) -> int:
        return MULTIPLIER * self.c


def cell_plan(C: int, layers: int, stem_multiplier: int = STEM_MULTIPLIER) -> list[CellSpec]:
    """The cells of a DARTS network with ``C`` initial channels: channels double at each reduction cell."""
    if C < 1:
        raise ValueError(f"C must be a positive number of channels, got {C!r}")
    reductions = reduction_indices(layers)
    c_prev_prev = c_prev = stem_multiplier * C
    c = C
    reduction_prev = False
    plan = []
    for i in range(layers):
        reduction = i in reductions
        if reduction:
            c *= 2
        spec = CellSpec(i, c_prev_prev, c_prev, c, reduction, reduction_prev)
        plan.append(spec)
        c_prev_prev, c_prev, reduction_prev = c_prev, spec.c_out, reduction
    return plan


class Cell(nn.Module):
    """A discrete DARTS cell: node ``k`` (2..5) = op_a(state[i_a]) + op_b(state[i_b]); output = concat(2..5).

    ``pairs`` are the 8 ``(op, input)`` pairs of a genotype cell, two per node in node order.
    """

    def __init__(
        self,
        pairs: Sequence[tuple[str, int]],
        spec: CellSpec,
        affine: bool = True,
        op_family: dict[str, OpFactory] = DARTS_OPS,
    ) -> None:
        super().__init__()
        if len(pairs) != 2 * N_NODES:
            raise ValueError(f"a cell needs {2 * N_NODES} (op, input) pairs, got {len(pairs)}")
        self.reduction = spec.reduction
        self.preprocess0, self.preprocess1 = make_preprocess(
            spec.c_prev_prev, spec.c_prev, spec.c, spec.reduction_prev, affine
        )
        c = spec.c
        self.ops = nn.ModuleList(
            make_op(op_family, name, c, c, edge_stride(spec.reduction, j), affine) for name, j in pairs
        )
        self.inputs = tuple(int(j) for _, j in pairs)
        # DARTS never drops identity paths: dropping a skip connection removes the cell's shortcut
        self._droppable = tuple(not isinstance(op, Identity) for op in self.ops)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float = 0.0) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for node in range(N_NODES):
            total = None
            for k in (2 * node, 2 * node + 1):
                h = self.ops[k](states[self.inputs[k]])
                if self.training and drop_prob > 0.0 and self._droppable[k]:
                    h = drop_path(h, drop_prob)
                total = h if total is None else total + h
            states.append(total)
        return torch.cat(states[2:], dim=1)


def _aux_pool(x: torch.Tensor) -> torch.Tensor:
    h, w = x.shape[-2:]
    if (h - 5) // 3 + 1 == 2 and (w - 5) // 3 + 1 == 2:
        return F.avg_pool2d(x, 5, stride=3, padding=0, count_include_pad=False)
    if h < 2 or w < 2:
        raise ValueError(f"the auxiliary head needs a map of at least 2x2, got {h}x{w}")
    return F.adaptive_avg_pool2d(x, 2)


class AuxiliaryHeadCIFAR(nn.Module):
    """DARTS CIFAR auxiliary head: ReLU, AvgPool 5/3 (8x8 -> 2x2), Conv1x1 128 + BN + ReLU, Conv2x2 768 + BN +
    ReLU, Linear.  Other map sizes are pooled adaptively to 2x2 (see the module docstring)."""

    def __init__(self, c_in: int, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(c_in, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.BatchNorm2d(768),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(_aux_pool(F.relu(x)))
        return self.classifier(x.flatten(1))


def feature_map_size(size: int, n_reductions: int) -> int:
    """Spatial size after ``n_reductions`` stride-2 cells (every DARTS stride-2 op maps s -> ceil(s / 2))."""
    for _ in range(n_reductions):
        size = math.ceil(size / 2)
    return size


class DartsNetwork(nn.Module):
    """The DARTS CIFAR evaluation network for one genotype.

    ``forward(x)`` returns logits; ``forward_features(x)`` the last cell's map before global pooling.  In
    training mode with the auxiliary head, the head's logits of the last forward are in ``last_aux_logits``
    (``None`` otherwise); the trainer adds ``auxiliary_weight`` (0.4) times their loss.  ``drop_path_prob`` is
    read at every forward, so trainers may schedule it (DARTS: ``0.2 * epoch / epochs``).
    """

    def __init__(
        self,
        normal: Sequence[tuple[str, int]],
        reduce: Sequence[tuple[str, int]],
        num_classes: int,
        input_shape: tuple[int, int, int] = (3, 32, 32),
        C: int = 36,
        layers: int = 20,
        auxiliary: bool = True,
        drop_path_prob: float = 0.2,
        op_family: dict[str, OpFactory] = DARTS_OPS,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes!r}")
        if len(input_shape) != 3 or min(input_shape) < 1:
            raise ValueError(f"input_shape must be (C, H, W), got {input_shape!r}")
        plan = cell_plan(C, layers)
        self.C, self.layers = C, layers
        self.drop_path_prob = drop_path_prob
        self.auxiliary_weight = AUXILIARY_WEIGHT
        self.last_aux_logits: torch.Tensor | None = None
        self.stem = make_stem(input_shape[0], plan[0].c_prev)
        self.cells = nn.ModuleList(
            Cell(reduce if spec.reduction else normal, spec, affine=True, op_family=op_family) for spec in plan
        )
        self.aux_position = reduction_indices(layers)[1]
        self.auxiliary_head: AuxiliaryHeadCIFAR | None = None
        if auxiliary:
            h, w = (feature_map_size(s, 2) for s in input_shape[1:])
            if h < 2 or w < 2:
                raise ValueError(
                    f"input {input_shape[1]}x{input_shape[2]} leaves a {h}x{w} map after the second reduction "
                    "cell; the auxiliary head needs at least 2x2: build with auxiliary=False"
                )
            self.auxiliary_head = AuxiliaryHeadCIFAR(plan[self.aux_position].c_out, num_classes)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(plan[-1].c_out, num_classes)

    @property
    def drop_path_prob(self) -> float:
        return self._drop_path_prob

    @drop_path_prob.setter
    def drop_path_prob(self, value: float) -> None:
        if not 0.0 <= float(value) < 1.0:
            raise ValueError(f"drop_path_prob must be in [0, 1), got {value!r}")
        self._drop_path_prob = float(value)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        aux = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self._drop_path_prob)
            if i == self.aux_position and self.auxiliary_head is not None and self.training:
                aux = self.auxiliary_head(s1)
        self.last_aux_logits = aux
        return s1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.global_pooling(self.forward_features(x)).flatten(1))
