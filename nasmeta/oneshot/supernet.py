"""What every one-shot supernet offers the search strategies: architecture parameters kept apart from the
network weights, a forward pass that either mixes every candidate (DARTS) or runs one path (ENAS, random
one-shot, evaluation of a discrete architecture), and conversions between paths and ``Architecture`` values.

A *path* is ``{cell_type: (op index or None, one per edge)}``: the index points into that edge's candidate list
(``edge_ops[cell_type][edge]``), ``None`` marks an edge the architecture does not use (DARTS cells keep two
inputs per node; every NB201 edge is always present, ``none`` being one of its ops).

Architecture parameters are one ``(edges, candidates)`` matrix per cell type, initialised as
``alpha_init_std * randn`` (DARTS: 1e-3).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from nasmeta.oneshot.mixed_ops import Choice, MixedOp
from nasmeta.spaces.base import Architecture, SearchSpace

#: ``{cell_type: (op index into that edge's candidates, or None for an unused edge)}``
Path = dict[str, tuple[int | None, ...]]


@dataclass(frozen=True)
class Choices:
    """Explicit per-edge choices ``{cell_type: (Choice or None, one per edge)}`` for a forward pass.

    Unlike a :data:`Path` they need not describe a discrete architecture: sampled strategies (GDAS, ProxylessNAS)
    run one sampled op on *every* edge of a DARTS cell, PC-DARTS passes its partial-channel choices.  Only the cell
    types and the number of entries are checked.
    """

    per_cell: dict[str, tuple[Choice | None, ...]]


SKIP = "skip_connect"


class Supernet(nn.Module, abc.ABC):
    """Base of the supernets: arch parameters ``alpha_<cell_type>``, weights, paths and derivation."""

    def __init__(
        self,
        space: SearchSpace,
        edge_ops: dict[str, Sequence[Sequence[str]]],
        edge_labels: dict[str, Sequence[str]],
        node_edges: dict[str, Sequence[Sequence[int]]],
        inputs_per_node: int | None,
        alpha_init_std: float = 1e-3,
    ) -> None:
        super().__init__()
        if alpha_init_std < 0:
            raise ValueError(f"alpha_init_std must be >= 0, got {alpha_init_std!r}")
        self.space = space
        self.cell_types: tuple[str, ...] = tuple(edge_ops)
        self.edge_ops = {t: tuple(tuple(ops) for ops in edge_ops[t]) for t in self.cell_types}
        self.edge_labels = {t: tuple(edge_labels[t]) for t in self.cell_types}
        #: per cell type, per node, the edge indices that feed the node
        self.node_edges = {t: tuple(tuple(n) for n in node_edges[t]) for t in self.cell_types}
        #: how many incoming edges a discrete architecture keeps per node (None: all of them)
        self.inputs_per_node = inputs_per_node
        for t in self.cell_types:
            sizes = {len(ops) for ops in self.edge_ops[t]}
            if len(sizes) != 1:
                raise ValueError(f"every edge of cell {t!r} needs the same number of candidates, got {sorted(sizes)}")
            alpha = nn.Parameter(alpha_init_std * torch.randn(len(self.edge_ops[t]), sizes.pop()))
            self.register_parameter(f"alpha_{t}", alpha)
        self._extra_arch: list[str] = []

    # -- parameters -------------------------------------------------------------------------------------------
    def alphas(self) -> dict[str, nn.Parameter]:
        return {t: getattr(self, f"alpha_{t}") for t in self.cell_types}

    def arch_parameters(self) -> list[nn.Parameter]:
        """The alphas, then any parameters a strategy added with :meth:`add_arch_parameter` (PC-DARTS' betas)."""
        return [*self.alphas().values(), *(getattr(self, n) for n in self._extra_arch)]

    def add_arch_parameter(self, name: str, value: torch.Tensor) -> nn.Parameter:
        """Register a further architecture parameter (kept out of :meth:`weights`) on the supernet's device."""
        if hasattr(self, name):
            raise ValueError(f"the supernet already has an attribute {name!r}")
        device = self.alphas()[self.cell_types[0]].device
        param = nn.Parameter(value.detach().clone().to(device))
        self.register_parameter(name, param)
        self._extra_arch.append(name)
        return param

    @abc.abstractmethod
    def edge_modules(self) -> list[tuple[str, int, MixedOp]]:
        """Every mixed op of the network with its cell type and edge index, in forward order."""

    def replace_mixed_ops(self, make: Callable[[MixedOp], nn.Module]) -> None:
        """Swap every mixed op for ``make(op)`` (a module with the same ``forward(x, choice)``; PC-DARTS' partial
        channel edges).  Run this before the weight optimiser is built; new modules move to the supernet's device."""
        device = self.alphas()[self.cell_types[0]].device
        for module in list(self.modules()):
            for name, child in list(module.named_children()):
                if isinstance(child, MixedOp):
                    module._modules[name] = make(child).to(device)

    def named_weights(self) -> list[tuple[str, nn.Parameter]]:
        arch = {id(p) for p in self.arch_parameters()}
        return [(n, p) for n, p in self.named_parameters() if id(p) not in arch]

    def weights(self) -> list[nn.Parameter]:
        return [p for _, p in self.named_weights()]

    def op_weights(self) -> dict[str, torch.Tensor]:
        """softmax(alpha) per cell type: ``(edges, candidates)``."""
        return {t: a.softmax(dim=-1) for t, a in self.alphas().items()}

    # -- forward ------------------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, path: Path | Choices | None = None) -> torch.Tensor:
        """Logits; without ``path`` every edge mixes its candidates by softmax(alpha), with a ``Path`` one op runs
        per used edge, with :class:`Choices` each edge does what its choice says."""
        if path is None:
            choices: dict[str, Sequence[Choice | None]] = {t: w.unbind(0) for t, w in self.op_weights().items()}
        elif isinstance(path, Choices):
            choices = self.check_choices(path)
        else:
            choices = self.check_path(path)
        return self._forward(x, choices)

    def check_choices(self, choices: Choices) -> dict[str, Sequence[Choice | None]]:
        """The per-cell choices after checking cell types and entry counts (``ValueError`` naming the fault)."""
        if set(choices.per_cell) != set(self.cell_types):
            raise ValueError(f"choices must cover the cell types {list(self.cell_types)}, got {list(choices.per_cell)}")
        for t in self.cell_types:
            if len(choices.per_cell[t]) != len(self.edge_ops[t]):
                raise ValueError(
                    f"choices for cell {t!r} need {len(self.edge_ops[t])} entries, got {len(choices.per_cell[t])}"
                )
        return choices.per_cell

    @abc.abstractmethod
    def _forward(self, x: torch.Tensor, choices: dict[str, Sequence[Choice | None]]) -> torch.Tensor:
        """Run the network with one choice (weights, op index or None) per edge of each cell type."""

    # -- paths and architectures --------------------------------------------------------------------------------
    def check_path(self, path: Path) -> Path:
        """Validate a path (types, lengths, index ranges, inputs per node); raise ``ValueError`` naming the fault."""
        if not isinstance(path, dict) or set(path) != set(self.cell_types):
            raise ValueError(f"a path maps the cell types {list(self.cell_types)} to op indices, got {path!r}")
        out: Path = {}
        for t in self.cell_types:
            choice = tuple(path[t])
            n_edges = len(self.edge_ops[t])
            if len(choice) != n_edges:
                raise ValueError(f"path for cell {t!r} needs {n_edges} entries, got {len(choice)}: {choice}")
            for e, c in enumerate(choice):
                if c is None:
                    continue
                if isinstance(c, bool) or not isinstance(c, int | np.integer) or not 0 <= c < len(self.edge_ops[t][e]):
                    raise ValueError(
                        f"op index {c!r} on edge {self.edge_labels[t][e]} of cell {t!r} is not in "
                        f"range({len(self.edge_ops[t][e])})"
                    )
            choice = tuple(None if c is None else int(c) for c in choice)
            for node, edges in enumerate(self.node_edges[t]):
                used = sum(choice[e] is not None for e in edges)
                wanted = len(edges) if self.inputs_per_node is None else min(self.inputs_per_node, len(edges))
                if used != wanted:
                    raise ValueError(
                        f"node {node} of cell {t!r} must use {wanted} incoming edges, the path uses {used}: {choice}"
                    )
            out[t] = choice
        return out

    @abc.abstractmethod
    def path_to_arch(self, path: Path) -> Architecture:
        """The discrete architecture a path runs."""

    @abc.abstractmethod
    def arch_to_path(self, arch: Architecture) -> Path:
        """The path that runs ``arch`` through the supernet; ``ValueError`` if the supernet cannot express it."""

    def sample_path(self, rng: np.random.Generator) -> Path:
        """A path drawn uniformly from the space (``space.sample``), for single-path training and ranking."""
        return self.arch_to_path(self.space.sample(rng))

    @abc.abstractmethod
    def derive(self, weights: dict[str, torch.Tensor] | None = None) -> Architecture:
        """The discrete architecture of the op weights (default softmax(alpha)) by the space's rule."""

    # -- summaries ---------------------------------------------------------------------------------------------
    def skip_share(self, weights: dict[str, torch.Tensor] | None = None) -> dict[str, float]:
        """Mean weight of ``skip_connect`` over the edges offering it: overall and per cell type."""
        weights = _detached(self.op_weights() if weights is None else weights)
        out: dict[str, float] = {}
        total: list[float] = []
        for t in self.cell_types:
            values = [float(weights[t][e, ops.index(SKIP)]) for e, ops in enumerate(self.edge_ops[t]) if SKIP in ops]
            if values:
                out[f"skip_share_{t}"] = float(np.mean(values))
                total.extend(values)
        if total:
            out["skip_share"] = float(np.mean(total))
        return out

    def weights_table(self, weights: dict[str, torch.Tensor] | None = None) -> dict[str, dict[str, dict[str, float]]]:
        """``{cell_type: {edge label: {op: weight}}}`` as plain floats (for traces, JSON and plots)."""
        weights = _detached(self.op_weights() if weights is None else weights)
        return {
            t: {
                label: {op: float(weights[t][e, k]) for k, op in enumerate(self.edge_ops[t][e])}
                for e, label in enumerate(self.edge_labels[t])
            }
            for t in self.cell_types
        }


def _detached(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {t: torch.as_tensor(w).detach().cpu() for t, w in weights.items()}
