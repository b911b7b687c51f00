"""The NAS-Bench-201 cell search space (Dong & Yang, ICLR 2020, "NAS-Bench-201: Extending the Scope of
Reproducible Neural Architecture Search"), written anew from the paper and METHODS.md.

A cell has 4 nodes and 6 edges; node ``j`` is the sum over ``i < j`` of ``op_ij(x_i)`` and node 3 is the output.
The encoding is the tuple of the 6 op names in the order of the benchmark string
``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``, i.e. the edges :data:`EDGES` ``(1,0) (2,0) (2,1) (3,0) (3,1) (3,2)``
given as ``(to, from)``.

Identity (``canonical`` / ``arch_id``) follows the benchmark's isomorphism rule, the one that yields the published
6,466 unique cells out of 15,625: every node gets a text expression built recursively from the input ``0``; an
edge contributes ``#`` (zero) when its op is ``none`` or its input node's expression *is* ``#``; ``skip_connect``
contributes its input's expression unchanged; any other op contributes ``(input)@op``; a node is the ``+``-join of
its contributions sorted as strings (a sorted multiset).  Two consequences are part of the published rule and are
kept on purpose, since changing either changes the count:

* only a node whose single contribution is ``#`` counts as zero; a node with several inputs that are all zero reads
  ``#+#`` and is *not* propagated as zero (propagating every all-zero node gives 5,390 classes);
* a ``skip_connect`` from a multi-input node splices that node's ``a+b`` text into the next sum before sorting, so
  some, not all, re-associations of a sum coincide (with the same zero rule, nested multisets give 6,900 classes
  and fully flattened multisets 5,755; ignoring zeros altogether gives 12,751).  Which ones coincide depends on
  the string order of the symbols, so the texts use exactly ``0``, ``#`` and ``(e)@op`` (other symbols: 6,344).

:meth:`NB201Space.enumerate` follows the benchmark's index order: the product over edges (edge ``1<-0`` slowest,
ops in :data:`OPS` order) shuffled once by ``random.Random(88).shuffle``, which is how the benchmark fixed its
order; it equals the ``arch_str`` column of ``nb201_accuracy.csv`` row for row.

The network (:meth:`NB201Space.build`) is the benchmark's macro skeleton: stem Conv3x3 (no bias) + BN; three
stages of ``N`` cells at ``C``, ``2C``, ``4C`` channels with a :class:`~nasmeta.spaces.ops.ResNetBasicBlock`
(stride 2) between stages; head BN -> ReLU -> global average pool -> Linear.  Defaults ``C=16, N=5`` give the
published parameter counts (1,531,546 for the all-``nor_conv_3x3`` cell with 10 classes).  Deviation: only the
number of input channels is taken from ``input_shape``; the spatial size is free because the head pools globally.

Reuse by supernets: :class:`NB201Network` takes a ``cell_factory(C) -> nn.Module`` and :class:`NB201Cell` takes
one module per edge, so a one-shot supernet passes mixed-op modules (``NB201Cell(C, [MixedOp(...) for _ in
EDGES])``) and gets the same skeleton, stem and head as the standalone networks.
"""

from __future__ import annotations

import functools
import itertools
import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from nasmeta.spaces import register_space
from nasmeta.spaces.base import Architecture, SearchSpace
from nasmeta.spaces.ops import NB201_OPS, ResNetBasicBlock, make_op

__all__ = [
    "EDGES",
    "GRAPH_INPUT_ID",
    "GRAPH_NUM_OP_IDS",
    "GRAPH_OUTPUT_ID",
    "NB201Cell",
    "NB201Network",
    "NB201Space",
    "NUM_NODES",
    "OPS",
]

OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: (to_node, from_node) per edge, in the order of the benchmark string and of the encoding
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
NUM_NODES = 4
#: op ids of the input and output nodes in :meth:`NB201Space.graph` (edge-op nodes use 0..4, the index in OPS)
GRAPH_INPUT_ID = len(OPS)
GRAPH_OUTPUT_ID = len(OPS) + 1
GRAPH_NUM_OP_IDS = len(OPS) + 2

# the seed the benchmark authors shuffled their product-ordered list with; it defines the NB201 index
_INDEX_SHUFFLE_SEED = 88
_OP_ID = {op: i for i, op in enumerate(OPS)}
# per node j >= 1: the (edge position, source node) pairs feeding it
_INCOMING: tuple[tuple[tuple[int, int], ...], ...] = tuple(
    tuple((k, src) for k, (dst, src) in enumerate(EDGES) if dst == j) for j in range(NUM_NODES)
)


def _graph_adjacency() -> np.ndarray:
    """Op-on-node DAG: 0 = input, 1..6 = the edges in EDGES order, 7 = output; ``adj[i, j] = 1`` for i -> j."""
    n = len(EDGES) + 2
    adj = np.zeros((n, n), dtype=np.float32)
    for k, (dst, src) in enumerate(EDGES):
        if src == 0:
            adj[0, k + 1] = 1.0
        else:
            for feeding, _ in _INCOMING[src]:
                adj[feeding + 1, k + 1] = 1.0
        if dst == NUM_NODES - 1:
            adj[k + 1, n - 1] = 1.0
    return adj


_ADJACENCY = _graph_adjacency()


@functools.cache
def _index_order() -> tuple[tuple[str, ...], ...]:
    encodings = list(itertools.product(OPS, repeat=len(EDGES)))
    random.Random(_INDEX_SHUFFLE_SEED).shuffle(encodings)
    return tuple(encodings)


@functools.cache
def _index_of() -> dict[tuple[str, ...], int]:
    return {encoding: i for i, encoding in enumerate(_index_order())}


@register_space("nb201")
class NB201Space(SearchSpace):
    """NAS-Bench-201: 5 ops on each of 6 edges, 15,625 cells, 6,466 unique up to the benchmark's isomorphism."""

    name = "nb201"
    ops = OPS

    # -- text and validation -------------------------------------------------------------------------
    def parse(self, text: str) -> Architecture:
        if not isinstance(text, str):
            raise ValueError(f"an NB201 string is text, got {type(text).__name__}: {text!r}")
        parts = text.strip().split("+")
        if len(parts) != NUM_NODES - 1:
            raise ValueError(
                f"NB201 string {text!r} must have {NUM_NODES - 1} nodes separated by '+', found {len(parts)}"
            )
        encoding: list[str] = []
        for node, part in enumerate(parts, start=1):
            if len(part) < 2 or not (part.startswith("|") and part.endswith("|")):
                raise ValueError(f"node {node} part {part!r} of {text!r} must be enclosed in '|'")
            edges = part[1:-1].split("|")
            if len(edges) != node:
                raise ValueError(f"node {node} part {part!r} of {text!r} must list {node} edges, found {len(edges)}")
            for expected_src, edge in enumerate(edges):
                op, sep, src = edge.partition("~")
                if not sep:
                    raise ValueError(f"edge {edge!r} in node {node} of {text!r} must read 'op~input'")
                if op not in _OP_ID:
                    raise ValueError(f"unknown op {op!r} in {text!r}; expected one of {list(OPS)}")
                if src != str(expected_src):
                    raise ValueError(
                        f"edge {edge!r} is edge {expected_src} of node {node} in {text!r} and must read "
                        f"'~{expected_src}', got input index {src!r}"
                    )
                encoding.append(op)
        return Architecture(self.name, tuple(encoding))

    def to_str(self, arch: Architecture) -> str:
        ops = self._ops(arch)
        nodes = ("|" + "|".join(f"{ops[k]}~{src}" for k, src in _INCOMING[j]) + "|" for j in range(1, NUM_NODES))
        return "+".join(nodes)

    def from_encoding(self, encoding: Sequence) -> Architecture:
        return Architecture(self.name, self._validated(encoding))

    @staticmethod
    def _validated(encoding: Sequence) -> tuple[str, ...]:
        if isinstance(encoding, str) or not isinstance(encoding, Sequence):
            raise ValueError(
                f"an NB201 encoding is a sequence of {len(EDGES)} op names (use parse() for strings), got {encoding!r}"
            )
        if len(encoding) != len(EDGES):
            raise ValueError(f"an NB201 encoding has {len(EDGES)} edges, got {len(encoding)}: {list(encoding)!r}")
        for position, op in enumerate(encoding):
            if op not in _OP_ID:
                raise ValueError(f"unknown op {op!r} on edge {position} {EDGES[position]}; expected one of {list(OPS)}")
        return tuple(str(op) for op in encoding)

    def _ops(self, arch: Architecture) -> tuple[str, ...]:
        self._check_space(arch)
        return self._validated(arch.encoding)

    # -- identity --------------------------------------------------------------------------------------
    def canonical(self, arch: Architecture) -> str:
        """The output node's expression under the benchmark rule (module docstring); equal iff isomorphic."""
        ops = self._ops(arch)
        # these exact symbols fix the string sort order that decides the published 6,466 classes
        zero = "#"
        nodes = ["0"]
        for j in range(1, NUM_NODES):
            terms = []
            for k, src in _INCOMING[j]:
                source = nodes[src]
                if ops[k] == "none" or source == zero:
                    terms.append(zero)
                elif ops[k] == "skip_connect":
                    terms.append(source)
                else:
                    terms.append(f"({source})@{ops[k]}")
            nodes.append("+".join(sorted(terms)))
        return nodes[-1]

    # -- benchmark index -------------------------------------------------------------------------------
    def index(self, arch: Architecture) -> int:
        """The architecture's NAS-Bench-201 index (row of the benchmark tables)."""
        return _index_of()[self._ops(arch)]

    def from_index(self, index: int) -> Architecture:
        if isinstance(index, bool) or not isinstance(index, int | np.integer) or not 0 <= index < self.size:
            raise ValueError(f"NB201 index must be an integer in [0, {self.size}), got {index!r}")
        return Architecture(self.name, _index_order()[int(index)])

    # -- sampling ----------------------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Architecture:
        choice = rng.integers(0, len(OPS), size=len(EDGES))
        return Architecture(self.name, tuple(OPS[int(i)] for i in choice))

    def mutate(self, arch: Architecture, rng: np.random.Generator) -> Architecture:
        ops = list(self._ops(arch))
        edge = int(rng.integers(len(EDGES)))
        others = [op for op in OPS if op != ops[edge]]
        ops[edge] = others[int(rng.integers(len(others)))]
        return Architecture(self.name, tuple(ops))

    @property
    def size(self) -> int:
        return len(OPS) ** len(EDGES)

    def enumerate(self) -> Iterator[Architecture]:
        """All 15,625 cells in NAS-Bench-201 index order."""
        for encoding in _index_order():
            yield Architecture(self.name, encoding)

    # -- encodings for predictors ---------------------------------------------------------------------------
    def tokens(self, arch: Architecture) -> list[int]:
        """Op id (index in :data:`OPS`) of each edge, in :data:`EDGES` order."""
        return [_OP_ID[op] for op in self._ops(arch)]

    @property
    def vocab_size(self) -> int:
        return len(OPS)

    def from_tokens(self, tokens: Sequence[int]) -> Architecture:
        """Inverse of :meth:`tokens`: one op id (index in :data:`OPS`) per edge."""
        ids = _token_list(tokens, len(EDGES))
        for position, token in enumerate(ids):
            if not 0 <= token < len(OPS):
                raise ValueError(f"token {token!r} at position {position} is no NB201 op id (0..{len(OPS) - 1})")
        return Architecture(self.name, tuple(OPS[t] for t in ids))

    def token_choices(self) -> list[tuple[int, ...]]:
        return [tuple(range(len(OPS)))] * len(EDGES)

    def graph(self, arch: Architecture) -> tuple[np.ndarray, list[int]]:
        """Op-on-node form used by NB201 predictors (e.g. MetaD2A, arch2vec): 8 nodes.

        Node 0 is the cell input (op id :data:`GRAPH_INPUT_ID` = 5), nodes 1..6 are the edges in :data:`EDGES`
        order carrying their op id 0..4 (``none`` edges included), node 7 is the output (:data:`GRAPH_OUTPUT_ID`
        = 6).  An edge node feeds every edge node leaving its target node; edges into node 3 feed the output.
        Returns a float32 ``(8, 8)`` upper-triangular 0/1 matrix with ``adj[i, j] = 1`` for ``i -> j``.
        """
        return _ADJACENCY.copy(), [GRAPH_INPUT_ID, *self.tokens(arch), GRAPH_OUTPUT_ID]

    def features(self, arch: Architecture) -> np.ndarray:
        """30-dim float32 one-hot: position ``5 * edge + op_id``."""
        out = np.zeros(len(EDGES) * len(OPS), dtype=np.float32)
        for edge, op_id in enumerate(self.tokens(arch)):
            out[edge * len(OPS) + op_id] = 1.0
        return out

    # -- networks ------------------------------------------------------------------------------------------
    def build(
        self,
        arch: Architecture,
        num_classes: int,
        input_shape: tuple[int, int, int] = (3, 32, 32),
        C: int = 16,
        N: int = 5,
    ) -> NB201Network:
        """The benchmark network for ``arch``; ``C`` (initial channels) and ``N`` (cells per stage) shrink it."""
        ops = self._ops(arch)
        if len(input_shape) != 3 or any(int(d) < 1 for d in input_shape):
            raise ValueError(f"input_shape must be (channels, height, width) with positive sizes, got {input_shape!r}")
        return NB201Network(C, N, num_classes, int(input_shape[0]), lambda c: NB201Cell(c, ops))

    def supernet(self, num_classes: int, input_shape: tuple[int, int, int] = (3, 32, 32), **size: Any) -> Any:
        """The NB201 supernet (every edge a mixed op); ``size``: ``C``, ``N``."""
        from nasmeta.oneshot.supernet_nb201 import NB201Supernet

        return NB201Supernet(num_classes, input_shape, **size)


def _token_list(tokens: Sequence[int], length: int) -> list[int]:
    """``tokens`` as a list of ``length`` Python ints; anything else raises ``ValueError`` naming the value."""
    if isinstance(tokens, str | bytes) or not isinstance(tokens, Sequence | np.ndarray):
        raise ValueError(f"tokens must be a sequence of {length} integers, got {tokens!r}")
    values = list(tokens)
    if len(values) != length:
        raise ValueError(f"expected {length} tokens, got {len(values)}: {values!r}")
    out = []
    for position, token in enumerate(values):
        if isinstance(token, bool) or not isinstance(token, int | np.integer):
            raise ValueError(f"token {token!r} at position {position} is not an integer")
        out.append(int(token))
    return out


class NB201Cell(nn.Module):
    """One NB201 cell at ``C`` channels: node j = sum over incoming edges of ``edge(x_i)``, output = node 3.

    ``ops_by_edge`` holds one entry per edge in :data:`EDGES` order: an op name (built with the NB201 op family,
    stride 1, ``C -> C``) or a ready ``nn.Module`` mapping ``(B, C, H, W) -> (B, C, H, W)`` (a supernet's mixed op).
    The edges live in ``self.edges`` (an ``nn.ModuleList`` in :data:`EDGES` order).
    """

    def __init__(self, C: int, ops_by_edge: Sequence[str | nn.Module]) -> None:
        super().__init__()
        if len(ops_by_edge) != len(EDGES):
            raise ValueError(f"an NB201 cell needs {len(EDGES)} edges, got {len(ops_by_edge)}")
        self.C = C
        self.edges = nn.ModuleList(
            op if isinstance(op, nn.Module) else make_op(NB201_OPS, op, C, C, 1) for op in ops_by_edge
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for incoming in _INCOMING[1:]:
            total = None
            for k, src in incoming:
                out = self.edges[k](nodes[src])
                total = out if total is None else total + out
            nodes.append(total)
        return nodes[-1]


class NB201Network(nn.Module):
    """NB201 macro skeleton around cells made by ``cell_factory(C) -> nn.Module``.

    ``stem`` (Conv3x3 ``in_channels -> C``, no bias, + BN) -> ``cells`` (``nn.ModuleList``: N cells at C,
    ResNetBasicBlock(C, 2C, stride 2), N cells at 2C, ResNetBasicBlock(2C, 4C, stride 2), N cells at 4C) ->
    ``lastact`` (BN + ReLU) -> global average pool -> ``classifier`` (Linear).  ``forward_features`` returns the map
    after ``lastact``, just before pooling.  Subclasses (supernets) may override ``forward_features`` to pass
    extra arguments to their cells; ``cell_indices`` lists the positions of the cells inside ``cells``.
    """

    def __init__(
        self, C: int, N: int, num_classes: int, in_channels: int, cell_factory: Callable[[int], nn.Module]
    ) -> None:
        super().__init__()
        for label, value in (("C", C), ("N", N), ("num_classes", num_classes), ("in_channels", in_channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{label} must be a positive integer, got {value!r}")
        self.stem = nn.Sequential(nn.Conv2d(in_channels, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))
        layers: list[nn.Module] = []
        self.cell_indices: list[int] = []
        c_prev = C
        for stage in range(3):
            c_stage = C * 2**stage
            if stage > 0:
                layers.append(ResNetBasicBlock(c_prev, c_stage, stride=2))
            for _ in range(N):
                self.cell_indices.append(len(layers))
                layers.append(cell_factory(c_stage))
            c_prev = c_stage
        self.cells = nn.ModuleList(layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c_prev), nn.ReLU(inplace=False))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)
        self.feature_channels = c_prev

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for layer in self.cells:
            x = layer(x)
        return self.lastact(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.global_pooling(self.forward_features(x))
        return self.classifier(features.flatten(1))
