"""The DARTS search network (and the RobustDARTS S1-S4 variants): a mixed op on each of the 14 edges per cell.

Liu, Simonyan & Yang, "DARTS", ICLR 2019 (search network: 8 cells, ``C=16``, reduction cells at 1/3 and 2/3 of
the depth, stem of ``3C`` channels, cell output = concat of the 4 intermediate nodes); Zela et al.,
"Understanding and Robustifying DARTS", ICLR 2020 (S1-S4: other candidate ops per edge).  Stem, cell
preprocessing and channel plan come from :mod:`nasmeta.spaces.darts_network`, the ops from
:mod:`nasmeta.spaces.ops`, so the supernet is stacked exactly like the evaluation network.  Search convention:
BN ``affine=False`` in the preprocessing and in every mixed op, pooling followed by ``BatchNorm2d(affine=False)``.

Architecture parameters ``alpha_normal`` and ``alpha_reduce``: ``(14 edges, candidates)`` in the space's
:meth:`~nasmeta.spaces.darts.DartsSpace.edge_ops` column order, shared by all cells of a type.  A path names
the op of each of the two edges a node keeps (``None`` on the other edges).  Derivation is the space's
:func:`~nasmeta.spaces.darts.derive_genotype` (top-2 incoming edges per node by their strongest non-``none``
weight, strongest non-``none`` op on each).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nasmeta.oneshot.mixed_ops import Choice, MixedOp
from nasmeta.oneshot.supernet import Path, Supernet
from nasmeta.spaces import get_space
from nasmeta.spaces.base import Architecture
from nasmeta.spaces.darts import CELL_TYPES, EDGES, NODES, DartsSpace, derive_genotype, edge_index
from nasmeta.spaces.darts_network import CellSpec, cell_plan, edge_stride, make_preprocess, make_stem
from nasmeta.spaces.ops import DARTS_OPS

_LABELS = tuple(f"{node}<-{j}" for node, j in EDGES)
_NODE_EDGES = tuple(tuple(edge_index(node, j) for j in range(node)) for node in NODES)


class DartsSearchCell(nn.Module):
    """One search cell: node k = sum over its incoming edges of the edge's mixed op; output = concat(2..5)."""

    def __init__(self, spec: CellSpec, edge_ops: Sequence[Sequence[str]]) -> None:
        super().__init__()
        self.reduction = spec.reduction
        self.preprocess0, self.preprocess1 = make_preprocess(
            spec.c_prev_prev, spec.c_prev, spec.c, spec.reduction_prev, affine=False
        )
        self.edges = nn.ModuleList(
            MixedOp(ops, DARTS_OPS, spec.c, spec.c, edge_stride(spec.reduction, j), bn_after_pool=True)
            for ops, (_, j) in zip(edge_ops, EDGES, strict=True)
        )

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, choices: Sequence[Choice | None]) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for edges in _NODE_EDGES:
            total = None
            for j, e in enumerate(edges):
                if choices[e] is None:
                    continue
                h = self.edges[e](states[j], choices[e])
                total = h if total is None else total + h
            states.append(total)
        return torch.cat(states[2:], dim=1)


class DartsSupernet(Supernet):
    """DARTS search network over the space ``space`` (``darts`` or ``darts-s1`` .. ``darts-s4``).

    Published search sizes are the defaults: ``C=16``, ``layers=8``, stem multiplier 3.
    """

    def __init__(
        self,
        num_classes: int,
        input_shape: tuple[int, int, int] = (3, 32, 32),
        C: int = 16,
        layers: int = 8,
        space: str = "darts",
        stem_multiplier: int = 3,
        alpha_init_std: float = 1e-3,
    ) -> None:
        darts_space = get_space(space)
        if not isinstance(darts_space, DartsSpace):
            raise ValueError(f"DartsSupernet needs a DARTS-family space, got {space!r}")
        if len(input_shape) != 3 or min(int(d) for d in input_shape) < 1:
            raise ValueError(f"input_shape must be (channels, height, width), got {input_shape!r}")
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes!r}")
        edge_ops = {t: [darts_space.edge_ops(t, e) for e in range(len(EDGES))] for t in CELL_TYPES}
        super().__init__(
            darts_space,
            edge_ops=edge_ops,
            edge_labels={t: _LABELS for t in CELL_TYPES},
            node_edges={t: _NODE_EDGES for t in CELL_TYPES},
            inputs_per_node=2,
            alpha_init_std=alpha_init_std,
        )
        plan = cell_plan(C, layers, stem_multiplier)
        self.stem = make_stem(int(input_shape[0]), plan[0].c_prev)
        self.cells = nn.ModuleList(
            DartsSearchCell(spec, edge_ops["reduce" if spec.reduction else "normal"]) for spec in plan
        )
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(plan[-1].c_out, num_classes)
        self.size = {"C": C, "layers": layers}

    def _forward(self, x: torch.Tensor, choices: dict[str, Sequence[Choice | None]]) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, choices["reduce" if cell.reduction else "normal"])
        return self.classifier(self.global_pooling(s1).flatten(1))

    def edge_modules(self) -> list[tuple[str, int, MixedOp]]:
        return [
            ("reduce" if cell.reduction else "normal", e, edge)
            for cell in self.cells
            for e, edge in enumerate(cell.edges)
        ]

    def path_to_arch(self, path: Path) -> Architecture:
        path = self.check_path(path)
        cells = []
        for t in CELL_TYPES:
            pairs = []
            for edges in _NODE_EDGES:
                for j, e in enumerate(edges):
                    if path[t][e] is not None:
                        pairs.append((self.edge_ops[t][e][path[t][e]], j))
            cells.append(pairs)
        return self.space.from_encoding(cells)

    def arch_to_path(self, arch: Architecture) -> Path:
        self.space._check_space(arch)
        arch = self.space.from_encoding(arch.encoding)
        path: Path = {}
        for t, pairs in zip(CELL_TYPES, arch.encoding, strict=True):
            choice: list[int | None] = [None] * len(EDGES)
            for k, (op, j) in enumerate(pairs):
                e = edge_index(NODES[k // 2], j)
                if op not in self.edge_ops[t][e]:
                    raise ValueError(f"op {op!r} is not a candidate of {t} edge {_LABELS[e]} in this supernet")
                choice[e] = self.edge_ops[t][e].index(op)
            path[t] = tuple(choice)
        return self.check_path(path)

    def derive(self, weights: dict[str, torch.Tensor] | None = None) -> Architecture:
        w = self.op_weights() if weights is None else weights
        return derive_genotype(self.space, w["normal"], w["reduce"], normalize="none")  # type: ignore[arg-type]
