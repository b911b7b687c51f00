"""The NAS-Bench-201 supernet: the benchmark's skeleton with a mixed op on every cell edge.

Dong & Yang, "NAS-Bench-201", ICLR 2020 (the search cells of its one-shot baselines: every edge holds the 5
candidate ops with BN ``affine=False``; stem, residual reduction blocks and head as in the standalone network).
The skeleton is :class:`nasmeta.spaces.nb201.NB201Network` itself, so the supernet and the networks the space
builds share their stem, reduction blocks, head and op modules.

All cells share one architecture matrix ``alpha_cell`` of shape ``(6 edges, 5 ops)`` (edges in
:data:`~nasmeta.spaces.nb201.EDGES` order, ops in :data:`~nasmeta.spaces.nb201.OPS` order).  Derivation: on
each edge the op with the largest weight among the non-``none`` ops (the DARTS rule; NB201 keeps every edge, so
there is no top-2 edge selection).  Published sizes ``C=16, N=5`` are the defaults.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from nasmeta.oneshot.mixed_ops import Choice, MixedOp
from nasmeta.oneshot.supernet import Path, Supernet
from nasmeta.spaces import get_space
from nasmeta.spaces.base import Architecture
from nasmeta.spaces.nb201 import EDGES, NUM_NODES, OPS, NB201Cell, NB201Network
from nasmeta.spaces.ops import NB201_OPS

CELL = "cell"
_LABELS = tuple(f"{dst}<-{src}" for dst, src in EDGES)
_NODE_EDGES = tuple(tuple(k for k, (dst, _) in enumerate(EDGES) if dst == j) for j in range(1, NUM_NODES))


class NB201SearchCell(NB201Cell):
    """An NB201 cell whose edges are mixed ops; ``forward(x, choices)`` gives each edge its choice."""

    def __init__(self, C: int) -> None:
        super().__init__(C, [MixedOp(OPS, NB201_OPS, C, C, 1) for _ in EDGES])

    def forward(self, x: torch.Tensor, choices: Sequence[Choice | None]) -> torch.Tensor:  # type: ignore[override]
        nodes = [x]
        for edges in _NODE_EDGES:
            total = None
            for k in edges:
                out = self.edges[k](nodes[EDGES[k][1]], choices[k])
                total = out if total is None else total + out
            nodes.append(total)
        return nodes[-1]


class _NB201SearchNetwork(NB201Network):
    """The NB201 skeleton passing the edge choices to its search cells."""

    def forward_features(self, x: torch.Tensor, choices: Sequence[Choice | None]) -> torch.Tensor:  # type: ignore[override]
        x = self.stem(x)
        cells = set(self.cell_indices)
        for i, layer in enumerate(self.cells):
            x = layer(x, choices) if i in cells else layer(x)
        return self.lastact(x)

    def forward(self, x: torch.Tensor, choices: Sequence[Choice | None]) -> torch.Tensor:  # type: ignore[override]
        return self.classifier(self.global_pooling(self.forward_features(x, choices)).flatten(1))


class NB201Supernet(Supernet):
    """NAS-Bench-201 supernet with ``C`` initial channels and ``N`` cells per stage."""

    def __init__(
        self,
        num_classes: int,
        input_shape: tuple[int, int, int] = (3, 32, 32),
        C: int = 16,
        N: int = 5,
        alpha_init_std: float = 1e-3,
    ) -> None:
        if len(input_shape) != 3 or min(int(d) for d in input_shape) < 1:
            raise ValueError(f"input_shape must be (channels, height, width), got {input_shape!r}")
        super().__init__(
            get_space("nb201"),
            edge_ops={CELL: [OPS] * len(EDGES)},
            edge_labels={CELL: _LABELS},
            node_edges={CELL: _NODE_EDGES},
            inputs_per_node=None,
            alpha_init_std=alpha_init_std,
        )
        self.net = _NB201SearchNetwork(C, N, num_classes, int(input_shape[0]), NB201SearchCell)
        self.size = {"C": C, "N": N}

    def _forward(self, x: torch.Tensor, choices: dict[str, Sequence[Choice | None]]) -> torch.Tensor:
        return self.net(x, choices[CELL])

    def edge_modules(self) -> list[tuple[str, int, MixedOp]]:
        return [(CELL, k, edge) for i in self.net.cell_indices for k, edge in enumerate(self.net.cells[i].edges)]

    def path_to_arch(self, path: Path) -> Architecture:
        choice = self.check_path(path)[CELL]
        return self.space.from_encoding([OPS[i] for i in choice])  # type: ignore[index]

    def arch_to_path(self, arch: Architecture) -> Path:
        self.space._check_space(arch)
        return {CELL: tuple(OPS.index(op) for op in self.space.from_encoding(arch.encoding).encoding)}

    def derive(self, weights: dict[str, torch.Tensor] | None = None) -> Architecture:
        w = (self.op_weights() if weights is None else weights)[CELL].detach().clone()
        if w.shape != (len(EDGES), len(OPS)):
            raise ValueError(f"NB201 op weights must have shape {(len(EDGES), len(OPS))}, got {tuple(w.shape)}")
        w[:, OPS.index("none")] = -float("inf")
        return self.path_to_arch({CELL: tuple(int(i) for i in w.argmax(dim=1))})
