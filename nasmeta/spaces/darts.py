"""The DARTS cell space (Liu, Simonyan & Yang, ICLR 2019) and the RobustDARTS spaces S1-S4 (Zela et al., "Understanding
and Robustifying Differentiable Architecture Search", ICLR 2020).

An architecture is a DARTS genotype: a normal and a reduction cell, each 8 ``(op, input)`` pairs, two per
intermediate node 2..5 (node ``k`` takes inputs from ``0..k-1``; 0 and 1 are the outputs of the two previous
cells); both cells concatenate nodes [2, 3, 4, 5].  The encoding is ``(normal_pairs, reduce_pairs)``; the human
form is the reference code's ``Genotype(normal=[...], normal_concat=[2, 3, 4, 5], reduce=[...],
reduce_concat=[2, 3, 4, 5])`` string, read by the parser in :mod:`nasmeta.spaces.darts_genotype` (never
``eval``).

The five spaces differ only in the candidate ops of each of the 14 edges (DARTS order: node 2 <- 0, 1; node 3 <-
0, 1, 2; node 4 <- 0..3; node 5 <- 0..4), see :meth:`DartsSpace.edge_ops` and METHODS.md.  They share one op
vocabulary (:data:`OP_VOCAB`: the 8 DARTS ops plus S4's ``noise``) for ``tokens``, ``graph`` and ``features``,
so encodings and ``arch_id`` agree across the family and predictors transfer between the variants.

Choices this module makes (documented where the papers leave room):

- ``size`` counts genotypes with the two pairs of a node taken as a set (they are summed), which gives the
  paper's ~10^18 for DARTS; ``sample`` is uniform over exactly that set.
- ``canonical`` is invariant to the order of a node's two pairs *and* to relabelling the intermediate nodes
  (all four are concatenated, so a relabelling only permutes output channel blocks, which the next cell's 1x1
  preprocessing and the classifier absorb): isomorphic cells share an ``arch_id``.
- :func:`derive_genotype` applies a softmax per edge to the raw alphas first, as the reference code does; pass
  ``normalize="none"`` for weights that are already normalised (e.g. FairDARTS sigmoids, PC-DARTS' edge-weighted
  probabilities).
- The network (``build``) is in :mod:`nasmeta.spaces.darts_network`; see its docstring for the auxiliary head on
  input sizes other than 32x32.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from nasmeta.spaces import register_space
from nasmeta.spaces.base import Architecture, SearchSpace
from nasmeta.spaces.darts_genotype import CELL_TYPES, CONCAT, parse_genotype

#: DARTS' candidate ops, in the reference order (alpha columns follow this order)
DARTS_PRIMITIVES = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
#: op ids shared by the whole DARTS family (tokens, graph, features)
OP_VOCAB = (*DARTS_PRIMITIVES, "noise")
#: node types of ``DartsSpace.graph``: the ops, the two cell inputs (c_{k-2}, c_{k-1}) and the concat output
GRAPH_NODE_TYPES = (*OP_VOCAB, "input_0", "input_1", "output")
N_INPUTS = 2
NODES = (2, 3, 4, 5)
#: the 14 edges as (node, input), in DARTS order
EDGES: tuple[tuple[int, int], ...] = tuple((node, j) for node in NODES for j in range(node))
N_EDGES = len(EDGES)
N_PAIRS = 2 * len(NODES)


def edge_index(node: int, input_index: int) -> int:
    """Position of the edge ``input_index -> node`` in DARTS order (node 2 <- 0,1 are edges 0,1; ...)."""
    if node not in NODES or not 0 <= input_index < node:
        raise ValueError(f"no DARTS edge from {input_index!r} to node {node!r}")
    return (node - 2) * (node + 1) // 2 + input_index


# --- RobustDARTS S1: a fixed pair of ops per edge (METHODS.md; Zela et al. 2020, Appendix) ---------------------
_ABBREV = {
    "skip": "skip_connect",
    "max": "max_pool_3x3",
    "avg": "avg_pool_3x3",
    "sep3": "sep_conv_3x3",
    "dil3": "dil_conv_3x3",
    "dil5": "dil_conv_5x5",
}
_S1_NORMAL = (
    "skip,dil3 skip,dil5 skip,dil5 skip,sep3 skip,dil3 max,skip skip,sep3 "
    "skip,sep3 skip,dil3 skip,sep3 max,skip skip,dil3 dil3,dil5 dil3,dil5"
)
_S1_REDUCE = (
    "max,avg max,dil3 max,avg max,avg skip,dil5 max,avg max,sep3 "
    "skip,dil3 skip,dil5 max,avg max,avg skip,dil5 skip,dil5 skip,dil5"
)


def _s1_table(text: str) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(_ABBREV[a] for a in edge.split(",")) for edge in text.split())


S1_EDGE_OPS = {"normal": _s1_table(_S1_NORMAL), "reduce": _s1_table(_S1_REDUCE)}
S2_OPS = ("skip_connect", "sep_conv_3x3")
S3_OPS = ("none", "skip_connect", "sep_conv_3x3")
S4_OPS = ("noise", "sep_conv_3x3")

#: the DARTS-V2 (second-order) cell of Liu et al. 2019, as printed in the reference code and METHODS.md
DARTS_V2_GENOTYPE = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
    "normal_concat=[2, 3, 4, 5], "
    "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), "
    "('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], "
    "reduce_concat=[2, 3, 4, 5])"
)
DARTS_V2 = Architecture(
    space="darts",
    encoding=(
        (
            ("sep_conv_3x3", 0),
            ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 0),
            ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 1),
            ("skip_connect", 0),
            ("skip_connect", 0),
            ("dil_conv_3x3", 2),
        ),
        (
            ("max_pool_3x3", 0),
            ("max_pool_3x3", 1),
            ("skip_connect", 2),
            ("max_pool_3x3", 1),
            ("max_pool_3x3", 0),
            ("skip_connect", 2),
            ("skip_connect", 2),
            ("max_pool_3x3", 1),
        ),
    ),
)


# --- the space ----------------------------------------------------------------------------------------------------
def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | np.integer):
        return int(value)
    return None


class DartsSpace(SearchSpace):
    """A DARTS-family cell space, defined by the candidate ops of each edge of each cell type.

    ``ops`` lists the ops this space can use (``OP_VOCAB`` order); op ids in ``tokens``/``graph``/``features``
    index :data:`OP_VOCAB`, shared by every variant.
    """

    def __init__(
        self,
        name: str,
        edge_ops: Mapping[str, Sequence[Sequence[str]]],
        description: str,
    ) -> None:
        self.name = name
        self.description = description
        table: dict[str, tuple[tuple[str, ...], ...]] = {}
        for cell in CELL_TYPES:
            rows = tuple(tuple(r) for r in edge_ops[cell])
            if len(rows) != N_EDGES:
                raise ValueError(f"{name}: {cell} cell needs ops for {N_EDGES} edges, got {len(rows)}")
            for row in rows:
                bad = [op for op in row if op not in OP_VOCAB]
                if bad or not [op for op in row if op != "none"]:
                    raise ValueError(f"{name}: bad op list {row!r} for a {cell} edge")
            table[cell] = rows
        self._edge_ops = table
        used = {op for cell in CELL_TYPES for row in table[cell] for op in row}
        self.ops = tuple(op for op in OP_VOCAB if op in used)
        self.compatible_spaces = tuple(n for n in _FAMILY if n != name)

    # -- edges -----------------------------------------------------------------------------------------------------
    def edge_ops(self, cell_type: str, edge: int) -> tuple[str, ...]:
        """Candidate ops (alpha column order) of edge ``edge`` (DARTS order, 0..13) of a ``normal``/``reduce`` cell."""
        if cell_type not in CELL_TYPES:
            raise ValueError(f"cell_type must be 'normal' or 'reduce', got {cell_type!r}")
        if _as_int(edge) is None or not 0 <= edge < N_EDGES:
            raise ValueError(f"edge must be an integer in [0, {N_EDGES}), got {edge!r}")
        return self._edge_ops[cell_type][int(edge)]

    def _choices(self, cell_type: str, edge: int) -> tuple[str, ...]:
        return tuple(op for op in self._edge_ops[cell_type][edge] if op != "none")

    # -- text and validation ----------------------------------------------------------------------------------------
    def parse(self, text: str) -> Architecture:
        """Read a ``Genotype(normal=[...], normal_concat=..., reduce=[...], reduce_concat=...)`` string.

        Pairs may be tuples or lists, strings single- or double-quoted, concat ``[2, 3, 4, 5]`` or
        ``range(2, 6)`` (or left out); anything else raises ``ValueError`` naming the position.
        """
        return self.from_encoding(parse_genotype(text))

    def to_str(self, arch: Architecture) -> str:
        self._check_space(arch)
        normal, reduce = (", ".join(f"({op!r}, {j})" for op, j in cell) for cell in arch.encoding)
        concat = list(CONCAT)
        return f"Genotype(normal=[{normal}], normal_concat={concat}, reduce=[{reduce}], reduce_concat={concat})"

    def from_encoding(self, encoding: Sequence) -> Architecture:
        if isinstance(encoding, Mapping):
            encoding = [encoding.get("normal"), encoding.get("reduce")]
        if isinstance(encoding, str | bytes) or not isinstance(encoding, Sequence) or len(encoding) != 2:
            raise ValueError(f"a DARTS encoding is (normal_pairs, reduce_pairs), got {encoding!r}")
        return Architecture(
            self.name, tuple(self._check_cell(c, cell) for c, cell in zip(CELL_TYPES, encoding, strict=True))
        )

    def _check_cell(self, cell_type: str, pairs: Any) -> tuple[tuple[str, int], ...]:
        if isinstance(pairs, str | bytes) or not isinstance(pairs, Sequence) or len(pairs) != N_PAIRS:
            count = len(pairs) if isinstance(pairs, Sequence) else "no"
            raise ValueError(
                f"a {cell_type} cell needs {N_PAIRS} (op, input) pairs (2 per node), got {count}: {pairs!r}"
            )
        out = []
        for k, pair in enumerate(pairs):
            node = NODES[k // 2]
            if isinstance(pair, str | bytes) or not isinstance(pair, Sequence) or len(pair) != 2:
                raise ValueError(f"{cell_type} pair {k} must be (op, input), got {pair!r}")
            op, j = pair[0], _as_int(pair[1])
            if not isinstance(op, str) or op not in OP_VOCAB:
                raise ValueError(f"unknown op {op!r} in {cell_type} pair {k}; known ops: {', '.join(OP_VOCAB)}")
            if op == "none":
                raise ValueError(f"op 'none' in {cell_type} pair {k}: a genotype keeps only real ops")
            if j is None or not 0 <= j < node:
                raise ValueError(f"input {pair[1]!r} of {cell_type} node {node} out of range [0, {node})")
            if k % 2 and j == out[-1][1]:
                raise ValueError(f"{cell_type} node {node} takes input {j} twice; its two inputs must differ")
            edge = edge_index(node, j)
            if op not in self._edge_ops[cell_type][edge]:
                raise ValueError(
                    f"op {op!r} is not allowed on {cell_type} edge {edge} ({j} -> {node}) of space {self.name!r};"
                    f" allowed: {self._choices(cell_type, edge)}"
                )
            out.append((op, j))
        return tuple(out)

    # -- identity -----------------------------------------------------------------------------------------------------
    @property
    def name_for_id(self) -> str:
        return "darts"

    def canonical(self, arch: Architecture) -> dict[str, list]:
        """Per cell, the lexicographically smallest relabelling of the intermediate nodes, pairs sorted."""
        self._check_space(arch)
        return {cell: _canonical_cell(pairs) for cell, pairs in zip(CELL_TYPES, arch.encoding, strict=True)}

    # -- sampling --------------------------------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Architecture:
        """Uniform over the genotypes counted by ``size``: per node 2 distinct inputs, a real op on each."""
        cells = []
        for cell in CELL_TYPES:
            pairs: list[tuple[str, int]] = []
            for node in NODES:
                # weighting each input pair by its number of op choices makes the genotype (not the pair) uniform
                options = [(a, b) for a, b in itertools.combinations(range(node), 2)]
                weights = np.array([self._n_edge_choices(cell, node, a, b) for a, b in options], dtype=float)
                a, b = options[rng.choice(len(options), p=weights / weights.sum())]
                for j in (a, b):
                    choices = self._choices(cell, edge_index(node, j))
                    pairs.append((choices[rng.integers(len(choices))], j))
            cells.append(tuple(pairs))
        return Architecture(self.name, tuple(cells))

    def _n_edge_choices(self, cell: str, node: int, a: int, b: int) -> int:
        return len(self._choices(cell, edge_index(node, a))) * len(self._choices(cell, edge_index(node, b)))

    def mutate(self, arch: Architecture, rng: np.random.Generator) -> Architecture:
        """Change one op, or move one pair to another input (re-drawing its op if the new edge forbids it)."""
        arch = self.from_encoding(self._encoding(arch))
        cells = [list(c) for c in arch.encoding]
        ci = int(rng.integers(2))
        cell = CELL_TYPES[ci]
        k = int(rng.integers(N_PAIRS))
        node = NODES[k // 2]
        op, j = cells[ci][k]
        other = cells[ci][k ^ 1][1]
        free_inputs = [i for i in range(node) if i not in (j, other)]
        other_ops = [o for o in self._choices(cell, edge_index(node, j)) if o != op]
        if free_inputs and (not other_ops or rng.random() < 0.5):
            j = free_inputs[rng.integers(len(free_inputs))]
            choices = self._choices(cell, edge_index(node, j))
            if op not in choices:
                op = choices[rng.integers(len(choices))]
        else:
            op = other_ops[rng.integers(len(other_ops))]
        cells[ci][k] = (op, j)
        return self.from_encoding(cells)

    @property
    def size(self) -> int:
        total = 1
        for cell in CELL_TYPES:
            for node in NODES:
                total *= sum(self._n_edge_choices(cell, node, a, b) for a, b in itertools.combinations(range(node), 2))
        return total

    # -- encodings for predictors ----------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return len(NODES) + 1 + len(OP_VOCAB)

    def tokens(self, arch: Architecture) -> list[int]:
        """Per cell (normal, reduce) and pair (node order, pairs sorted): input id (0..4), then 5 + op id."""
        out = []
        for pairs in _sorted_pairs(self._encoding(arch)):
            for op, j in pairs:
                out += [j, len(NODES) + 1 + OP_VOCAB.index(op)]
        return out

    def from_tokens(self, tokens: Sequence[int]) -> Architecture:
        """Inverse of :meth:`tokens` (the two pairs of a node may come in either order); the genotype is then
        validated as :meth:`from_encoding` does (distinct inputs per node, ops allowed on their edges)."""
        from nasmeta.spaces.nb201 import _token_list

        ids = _token_list(tokens, 2 * 2 * N_PAIRS)
        offset = len(NODES) + 1
        cells = []
        for ci in range(2):
            pairs = []
            for k in range(N_PAIRS):
                j, op = ids[ci * 2 * N_PAIRS + 2 * k], ids[ci * 2 * N_PAIRS + 2 * k + 1]
                position = ci * 2 * N_PAIRS + 2 * k
                if not 0 <= j < NODES[k // 2]:
                    raise ValueError(f"token {j!r} at position {position} is no input of node {NODES[k // 2]}")
                if not offset <= op < offset + len(OP_VOCAB):
                    raise ValueError(f"token {op!r} at position {position + 1} is no op token ({offset}..)")
                pairs.append((OP_VOCAB[op - offset], j))
            cells.append(pairs)
        return self.from_encoding(cells)

    def token_choices(self) -> list[tuple[int, ...]]:
        """Input positions: the inputs of the pair's node; op positions: the real ops of the cell type's edges."""
        offset = len(NODES) + 1
        out: list[tuple[int, ...]] = []
        for cell in CELL_TYPES:
            used = {op for row in self._edge_ops[cell] for op in row if op != "none"}
            op_tokens = tuple(offset + i for i, op in enumerate(OP_VOCAB) if op in used)
            for k in range(N_PAIRS):
                out += [tuple(range(NODES[k // 2])), op_tokens]
        return out

    def next_token_choices(self, prefix: Sequence[int]) -> tuple[int, ...]:
        """Input positions: the node's inputs other than its first pair's; op positions: the ops allowed on the
        edge the pair's input chose, so every sequence built this way is a valid genotype."""
        position = len(prefix)
        if not 0 <= position < 4 * N_PAIRS:
            raise ValueError(f"a DARTS token sequence has {4 * N_PAIRS} positions, got a prefix of {position}")
        cell = CELL_TYPES[position // (2 * N_PAIRS)]
        k = (position % (2 * N_PAIRS)) // 2
        node = NODES[k // 2]
        if position % 2 == 0:
            taken = {int(prefix[position - 2])} if k % 2 else set()
            return tuple(j for j in range(node) if j not in taken)
        offset = len(NODES) + 1
        return tuple(offset + OP_VOCAB.index(op) for op in self._choices(cell, edge_index(node, int(prefix[-1]))))

    def graph(self, arch: Architecture) -> tuple[np.ndarray, list[int]]:
        """Op-on-node DAG of both cells (22 nodes, topologically ordered).

        Per cell: 2 input nodes, one node per (op, input) pair (node order, pairs sorted), one output (concat)
        node fed by all 8 op nodes; a pair whose input is intermediate node ``k`` is fed by both op nodes of
        ``k``.  The normal cell's output feeds both inputs of the reduction cell, which follows it in the network.
        Node types index :data:`GRAPH_NODE_TYPES` (``OP_VOCAB``, then ``input_0``, ``input_1``, ``output``).
        """
        n_cell = N_INPUTS + N_PAIRS + 1
        adj = np.zeros((2 * n_cell, 2 * n_cell), dtype=np.int64)
        types: list[int] = []
        base_type = GRAPH_NODE_TYPES.index("input_0")
        for ci, pairs in enumerate(_sorted_pairs(self._encoding(arch))):
            off = ci * n_cell
            out_node = off + n_cell - 1
            types += [base_type, base_type + 1]
            for k, (op, j) in enumerate(pairs):
                me = off + N_INPUTS + k
                sources = (
                    [off + j] if j < N_INPUTS else [off + N_INPUTS + 2 * (j - 2), off + N_INPUTS + 2 * (j - 2) + 1]
                )
                adj[sources, me] = 1
                adj[me, out_node] = 1
                types.append(OP_VOCAB.index(op))
            types.append(base_type + 2)
            if ci == 1:
                adj[n_cell - 1, [off, off + 1]] = 1
        return adj, types

    def features(self, arch: Architecture) -> np.ndarray:
        """One-hot op per edge and cell (2 x 14 x |OP_VOCAB|); an unused edge is marked ``none``."""
        feats = np.zeros((2, N_EDGES, len(OP_VOCAB)), dtype=np.float32)
        feats[:, :, OP_VOCAB.index("none")] = 1.0
        for ci, pairs in enumerate(self._encoding(arch)):
            for k, (op, j) in enumerate(pairs):
                e = edge_index(NODES[k // 2], j)
                feats[ci, e, :] = 0.0
                feats[ci, e, OP_VOCAB.index(op)] = 1.0
        return feats.reshape(-1)

    # -- network ---------------------------------------------------------------------------------------------------
    def build(
        self,
        arch: Architecture,
        num_classes: int,
        input_shape: tuple[int, int, int] = (3, 32, 32),
        C: int = 36,
        layers: int = 20,
        auxiliary: bool = True,
        drop_path_prob: float = 0.2,
    ) -> Any:
        """The DARTS CIFAR evaluation network; defaults: the published 20 cells, C=36, auxiliary head, drop-path 0.2."""
        from nasmeta.spaces.darts_network import DartsNetwork

        normal, reduce = self._encoding(arch)
        return DartsNetwork(normal, reduce, num_classes, tuple(input_shape), C, layers, auxiliary, drop_path_prob)

    def supernet(self, num_classes: int, input_shape: tuple[int, int, int] = (3, 32, 32), **size: Any) -> Any:
        """The DARTS search network over this space's per-edge ops; ``size``: ``C``, ``layers``, ``stem_multiplier``."""
        from nasmeta.oneshot.supernet_darts import DartsSupernet

        return DartsSupernet(num_classes, tuple(input_shape), space=self.name, **size)

    # -- helpers -----------------------------------------------------------------------------------------------------
    def _encoding(self, arch: Architecture) -> tuple:
        self._check_space(arch)
        return arch.encoding


def _sorted_pairs(encoding: tuple) -> list[list[tuple[str, int]]]:
    """Each cell's pairs with the two pairs of every node sorted (their order carries no meaning)."""
    return [[p for k in range(0, N_PAIRS, 2) for p in sorted(cell[k : k + 2])] for cell in encoding]


def _canonical_cell(pairs: Sequence[tuple[str, int]]) -> list:
    best = None
    for perm in itertools.permutations(NODES):
        relabel = {**{j: j for j in range(N_INPUTS)}, **dict(zip(NODES, perm, strict=True))}
        nodes: dict[int, tuple] = {}
        for i, node in enumerate(NODES):
            nodes[relabel[node]] = tuple(sorted((op, relabel[j]) for op, j in pairs[2 * i : 2 * i + 2]))
        form = tuple(nodes[n] for n in NODES)
        if best is None or form < best:
            best = form
    return [[list(p) for p in node] for node in best]


# --- alphas -> genotype -----------------------------------------------------------------------------------------------
def _edge_weights(space: DartsSpace, cell: str, alphas: Any, normalize: str) -> list[np.ndarray]:
    if hasattr(alphas, "detach"):
        alphas = alphas.detach().cpu().numpy()
    rows = list(alphas) if not isinstance(alphas, np.ndarray) else [alphas[e] for e in range(alphas.shape[0])]
    if len(rows) != N_EDGES:
        raise ValueError(f"{cell} alphas need {N_EDGES} rows (one per edge), got {len(rows)}")
    out = []
    for e, row in enumerate(rows):
        if hasattr(row, "detach"):
            row = row.detach().cpu().numpy()
        w = np.asarray(row, dtype=np.float64)
        expected = len(space.edge_ops(cell, e))
        if w.shape != (expected,):
            raise ValueError(
                f"{cell} alphas of edge {e} must have shape ({expected},) for ops {space.edge_ops(cell, e)} "
                f"in space {space.name!r}, got {w.shape}"
            )
        if not np.all(np.isfinite(w)):
            raise ValueError(f"{cell} alphas of edge {e} are not finite: {w}")
        if normalize == "softmax":
            w = np.exp(w - w.max())
            w = w / w.sum()
        out.append(w)
    return out


def derive_genotype(
    space: DartsSpace | str, alphas_normal: Any, alphas_reduce: Any, *, normalize: str = "softmax"
) -> Architecture:
    """The DARTS discretisation rule (Liu et al. 2019, Section 2.4).

    ``alphas_*``: raw architecture weights, a (14, n_ops) tensor/array or (for S1, whose edges differ) a list of
    14 1-D arrays, columns in :meth:`DartsSpace.edge_ops` order.  With ``normalize="softmax"`` (default, as in
    the reference code) each edge's alphas are softmaxed first -- this matters, because edges are compared by
    weight across edges; ``normalize="none"`` uses the given weights as they are.  For each node the 2 incoming
    edges whose strongest non-``none`` weight is highest are kept (ties: lower input first), and each kept edge
    takes its strongest non-``none`` op (ties: first in column order).  Pairs are listed strongest edge first.
    """
    from nasmeta.spaces import get_space

    if isinstance(space, str):
        space = get_space(space)
    if not isinstance(space, DartsSpace):
        raise ValueError(f"derive_genotype needs a DARTS-family space, got {space!r}")
    if normalize not in ("softmax", "none"):
        raise ValueError(f"normalize must be 'softmax' or 'none', got {normalize!r}")
    cells = []
    for cell, alphas in zip(CELL_TYPES, (alphas_normal, alphas_reduce), strict=True):
        weights = _edge_weights(space, cell, alphas, normalize)
        best: list[tuple[float, str]] = []
        for e, w in enumerate(weights):
            ops = space.edge_ops(cell, e)
            k = max((i for i, op in enumerate(ops) if op != "none"), key=lambda i: (w[i], -i))
            best.append((float(w[k]), ops[k]))
        pairs = []
        for node in NODES:
            inputs = sorted(range(node), key=lambda j: (-best[edge_index(node, j)][0], j))[:2]
            pairs += [(best[edge_index(node, j)][1], j) for j in inputs]
        cells.append(tuple(pairs))
    return space.from_encoding(cells)


# --- registration -------------------------------------------------------------------------------------------------
_FAMILY = ("darts", "darts-s1", "darts-s2", "darts-s3", "darts-s4")


def _uniform(ops: tuple[str, ...]) -> dict[str, tuple[tuple[str, ...], ...]]:
    return {cell: (ops,) * N_EDGES for cell in CELL_TYPES}


@register_space("darts")
def _darts() -> DartsSpace:
    return DartsSpace("darts", _uniform(DARTS_PRIMITIVES), "DARTS (Liu et al. 2019): 8 ops on every edge")


@register_space("darts-s1")
def _darts_s1() -> DartsSpace:
    return DartsSpace("darts-s1", S1_EDGE_OPS, "RobustDARTS S1 (Zela et al. 2020): a fixed op pair per edge")


@register_space("darts-s2")
def _darts_s2() -> DartsSpace:
    return DartsSpace("darts-s2", _uniform(S2_OPS), "RobustDARTS S2: {skip_connect, sep_conv_3x3}")


@register_space("darts-s3")
def _darts_s3() -> DartsSpace:
    return DartsSpace("darts-s3", _uniform(S3_OPS), "RobustDARTS S3: {none, skip_connect, sep_conv_3x3}")


@register_space("darts-s4")
def _darts_s4() -> DartsSpace:
    return DartsSpace("darts-s4", _uniform(S4_OPS), "RobustDARTS S4: {noise, sep_conv_3x3}")
