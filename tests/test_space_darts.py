"""DARTS cell space and RobustDARTS S1-S4: published facts, the derivation rule, invariants, failure paths.

Sources: Liu et al. 2019 ("DARTS", ICLR) for the DARTS-V2 genotype, the evaluation network and its 3.3M
parameters; Zela et al. 2020 ("Understanding and Robustifying DARTS", ICLR) for S1-S4; exact values in
../shared/METHODS.md ("DARTS / NASNet cell space").
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from nasmeta.spaces import Architecture, get_space
from nasmeta.spaces.darts import (
    DARTS_PRIMITIVES,
    DARTS_V2,
    DARTS_V2_GENOTYPE,
    EDGES,
    GRAPH_NODE_TYPES,
    NODES,
    OP_VOCAB,
    DartsSpace,
    derive_genotype,
    edge_index,
)
from nasmeta.spaces.darts_network import Cell, cell_plan, drop_path

FAMILY = ("darts", "darts-s1", "darts-s2", "darts-s3", "darts-s4")


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --- text form -----------------------------------------------------------------------------------------------------
def test_darts_v2_parses_and_round_trips() -> None:
    space = get_space("darts")
    arch = space.parse(DARTS_V2_GENOTYPE)
    assert arch == DARTS_V2
    assert str(arch) == DARTS_V2_GENOTYPE
    assert space.parse(str(arch)) == arch
    assert arch.encoding[0][7] == ("dil_conv_3x3", 2) and arch.encoding[1][0] == ("max_pool_3x3", 0)
    # the reference code also prints range(2, 6) and may use double quotes
    variant = DARTS_V2_GENOTYPE.replace("[2, 3, 4, 5]", "range(2, 6)").replace("'", '"')
    assert space.parse(variant) == arch
    assert Architecture.from_json(arch.to_json()) == arch


def test_sampled_genotypes_round_trip_in_every_space() -> None:
    for name in FAMILY:
        space = get_space(name)
        for seed in range(20):
            arch = space.sample(np.random.default_rng(seed))
            assert space.parse(str(arch)) == arch
            assert space.from_encoding(arch.to_json()["encoding"]) == arch


# --- the evaluation network: published parameter counts ------------------------------------------------------------
def test_darts_v2_evaluation_network_parameter_counts() -> None:
    """METHODS.md / Liu et al. 2019 Table 1 ("3.3M"): 3,349,342 without the auxiliary head, 3,825,768 with it."""
    space = get_space("darts")
    assert n_params(space.build(DARTS_V2, 10, auxiliary=False)) == 3_349_342
    assert n_params(space.build(DARTS_V2, 10)) == 3_825_768


# --- derivation rule -----------------------------------------------------------------------------------------------
def _alphas(table: dict[int, dict[str, float]], offset: bool = True) -> np.ndarray:
    """Raw alphas whose per-edge softmax is the given probabilities (unlisted ops share the rest equally)."""
    rows = []
    for e in range(len(EDGES)):
        spec = table[e]
        rest = (1.0 - sum(spec.values())) / (len(DARTS_PRIMITIVES) - len(spec))
        p = np.array([spec.get(op, rest) for op in DARTS_PRIMITIVES])
        # a per-edge shift leaves the softmax unchanged but would change a raw-alpha comparison across edges
        rows.append(np.log(p) + (3.0 * e if offset else 0.0))
    return np.stack(rows)


# per-edge probabilities; edges 0, 2, 6 and 11 have `none` as their largest weight
_TABLE = {
    0: {"none": 0.9, "sep_conv_5x5": 0.05},
    1: {"dil_conv_3x3": 0.6},
    2: {"none": 0.93, "skip_connect": 0.02},
    3: {"sep_conv_3x3": 0.3},
    4: {"max_pool_3x3": 0.2},
    5: {"avg_pool_3x3": 0.5},
    6: {"none": 0.99},
    7: {"skip_connect": 0.4},
    8: {"dil_conv_5x5": 0.45},
    9: {"sep_conv_3x3": 0.3},
    10: {"skip_connect": 0.35},
    11: {"none": 0.5, "dil_conv_3x3": 0.45},
    12: {"sep_conv_5x5": 0.2},
    13: {"max_pool_3x3": 0.31},
}
_EXPECTED = (
    ("dil_conv_3x3", 1),  # node 2 keeps both edges; none dominates edge 0 but its best real op is sep_conv_5x5
    ("sep_conv_5x5", 0),
    ("sep_conv_3x3", 1),  # node 3: edge 2 (largest single weight: none 0.93, best real op 0.02) is dropped
    ("max_pool_3x3", 2),
    ("avg_pool_3x3", 0),
    ("dil_conv_5x5", 3),
    ("dil_conv_3x3", 2),  # node 5: none 0.5 is ignored, dil_conv_3x3 0.45 is the strongest real op
    ("skip_connect", 1),
)


def test_derive_genotype_keeps_top2_edges_by_strongest_non_none_op() -> None:
    alphas = _alphas(_TABLE)
    arch = derive_genotype("darts", torch.tensor(alphas), alphas)
    assert arch.space == "darts"
    assert arch.encoding == (_EXPECTED, _EXPECTED)
    assert all(op != "none" for cell in arch.encoding for op, _ in cell)


def test_derive_genotype_applies_softmax_per_edge_first() -> None:
    # edge 0: seven real ops at raw 5 (softmax ~0.14 each); edge 1: one real op at raw 4 (softmax ~0.89)
    raw = np.zeros((14, 8))
    raw[0, 1:] = 5.0
    raw[1, DARTS_PRIMITIVES.index("sep_conv_3x3")] = 4.0
    raw[2:, DARTS_PRIMITIVES.index("skip_connect")] = 1.0
    raw[3, DARTS_PRIMITIVES.index("skip_connect")] = 0.0  # node 3 (edges 2..4): drop input 1
    soft = derive_genotype("darts", raw, raw)
    plain = derive_genotype("darts", raw, raw, normalize="none")
    assert soft.encoding[0][:2] == (("sep_conv_3x3", 1), ("max_pool_3x3", 0))
    assert plain.encoding[0][:2] == (("max_pool_3x3", 0), ("sep_conv_3x3", 1))
    assert soft.encoding[0][2:4] == (("skip_connect", 0), ("skip_connect", 2))


def test_derive_genotype_on_per_edge_op_lists() -> None:
    s1 = get_space("darts-s1")
    # equal alphas: every edge ties, so the lower inputs and the first op of each edge win
    flat = [np.zeros(len(s1.edge_ops(c, e))) for c in ("normal",) for e in range(14)]
    arch = derive_genotype(s1, flat, [np.zeros(2) for _ in range(14)])
    assert arch.space == "darts-s1"
    for cell in ("normal", "reduce"):
        expected = tuple((s1.edge_ops(cell, edge_index(n, j))[0], j) for n in NODES for j in (0, 1))
        assert arch.encoding[("normal", "reduce").index(cell)] == expected
    # S3 has `none` on every edge: it is never chosen even when it dominates
    s3 = get_space("darts-s3")
    raw = np.tile(np.array([9.0, 0.0, 1.0]), (14, 1))
    arch3 = derive_genotype(s3, raw, raw)
    assert {op for cell in arch3.encoding for op, _ in cell} == {"sep_conv_3x3"}


def test_derive_genotype_rejects_bad_alphas() -> None:
    with pytest.raises(ValueError, match=r"shape \(8,\)"):
        derive_genotype("darts", np.zeros((14, 7)), np.zeros((14, 8)))
    with pytest.raises(ValueError, match="14 rows"):
        derive_genotype("darts", np.zeros((13, 8)), np.zeros((14, 8)))
    with pytest.raises(ValueError, match="'sigmoid'"):
        derive_genotype("darts", np.zeros((14, 8)), np.zeros((14, 8)), normalize="sigmoid")


# --- S1-S4 op sets -------------------------------------------------------------------------------------------------
_S = {"skip": "skip_connect", "max": "max_pool_3x3", "avg": "avg_pool_3x3", "sep3": "sep_conv_3x3"}
_S.update({"dil3": "dil_conv_3x3", "dil5": "dil_conv_5x5"})
S1_NORMAL = [
    ["skip", "dil3"], ["skip", "dil5"], ["skip", "dil5"], ["skip", "sep3"], ["skip", "dil3"], ["max", "skip"],
    ["skip", "sep3"], ["skip", "sep3"], ["skip", "dil3"], ["skip", "sep3"], ["max", "skip"], ["skip", "dil3"],
    ["dil3", "dil5"], ["dil3", "dil5"],
]  # fmt: skip
S1_REDUCE = [
    ["max", "avg"], ["max", "dil3"], ["max", "avg"], ["max", "avg"], ["skip", "dil5"], ["max", "avg"],
    ["max", "sep3"], ["skip", "dil3"], ["skip", "dil5"], ["max", "avg"], ["max", "avg"], ["skip", "dil5"],
    ["skip", "dil5"], ["skip", "dil5"],
]  # fmt: skip


def expected_edge_ops(name: str, cell: str, edge: int) -> tuple[str, ...]:
    """METHODS.md, RobustDARTS spaces (Zela et al. 2020)."""
    if name == "darts-s1":
        return tuple(_S[a] for a in (S1_NORMAL if cell == "normal" else S1_REDUCE)[edge])
    return {
        "darts": DARTS_PRIMITIVES,
        "darts-s2": ("skip_connect", "sep_conv_3x3"),
        "darts-s3": ("none", "skip_connect", "sep_conv_3x3"),
        "darts-s4": ("noise", "sep_conv_3x3"),
    }[name]


@pytest.mark.parametrize("name", FAMILY)
def test_edge_op_sets_match_methods_md(name: str) -> None:
    space = get_space(name)
    for cell in ("normal", "reduce"):
        for edge in range(14):
            assert space.edge_ops(cell, edge) == expected_edge_ops(name, cell, edge)


@pytest.mark.parametrize("name", FAMILY)
def test_sample_uses_only_allowed_ops(name: str) -> None:
    space = get_space(name)
    seen = set()
    for seed in range(200):
        arch = space.sample(np.random.default_rng(seed))
        for ci, cell in enumerate(("normal", "reduce")):
            pairs = arch.encoding[ci]
            assert len(pairs) == 8
            for k, (op, j) in enumerate(pairs):
                node = NODES[k // 2]
                assert 0 <= j < node and op != "none"
                assert op in expected_edge_ops(name, cell, edge_index(node, j))
                seen.add(op)
            assert all(pairs[k][1] != pairs[k + 1][1] for k in range(0, 8, 2))
    allowed = {op for c in ("normal", "reduce") for e in range(14) for op in expected_edge_ops(name, c, e)}
    assert seen == allowed - {"none"}
    assert space.sample(np.random.default_rng(7)) == space.sample(np.random.default_rng(7))


def _count_cell_genotypes(choices) -> int:
    """Brute-force: distinct sets of two (op, input) pairs with distinct inputs, multiplied over nodes."""
    total = 1
    for node in NODES:
        pairs = [(op, j) for j in range(node) for op in choices(node, j)]
        total *= len({frozenset(c) for c in itertools.combinations(pairs, 2) if c[0][1] != c[1][1]})
    return total


def test_space_sizes() -> None:
    darts_cell = _count_cell_genotypes(lambda n, j: DARTS_PRIMITIVES[1:])
    assert darts_cell == 180 * 7**8
    assert get_space("darts").size == darts_cell**2  # ~1.1e18, the paper's "~10^18"
    for name in FAMILY[1:]:
        space = get_space(name)
        cells = [
            _count_cell_genotypes(
                lambda n, j, c=c, sp=space: [o for o in sp.edge_ops(c, edge_index(n, j)) if o != "none"]
            )
            for c in ("normal", "reduce")
        ]
        assert space.size == cells[0] * cells[1] == (180 * 2**8) ** 2
    with pytest.raises(TypeError):
        next(iter(get_space("darts").enumerate()))


def test_s4_noise_ignores_input_values() -> None:
    s4 = get_space("darts-s4")
    all_noise = s4.from_encoding([[("noise", j) for _ in NODES for j in (0, 1)]] * 2)
    spec = cell_plan(4, 5)[1]  # a reduction cell: noise on stride-2 edges
    cell = Cell(all_noise.encoding[1], spec).eval()
    x0a, x0b = torch.randn(2, spec.c_prev_prev, 8, 8), torch.randn(2, spec.c_prev_prev, 8, 8)
    x1a, x1b = torch.randn(2, spec.c_prev, 8, 8), torch.randn(2, spec.c_prev, 8, 8)
    torch.manual_seed(3)
    out_a = cell(x0a, x1a)
    torch.manual_seed(3)
    out_b = cell(x0b, x1b)
    assert out_a.shape == (2, 4 * spec.c, 4, 4)
    assert torch.equal(out_a, out_b)
    # whole network: the last cell's output is pure noise, so the logits do not depend on the image
    model = s4.build(all_noise, 10, C=4, layers=3, auxiliary=False).eval()
    outs = []
    for x in (torch.zeros(2, 3, 16, 16), torch.rand(2, 3, 16, 16)):
        torch.manual_seed(0)
        outs.append(model(x))
    assert torch.equal(*outs)
    torch.manual_seed(1)
    assert not torch.equal(model(torch.zeros(2, 3, 16, 16)), outs[0])


# --- identity ------------------------------------------------------------------------------------------------------
def _swap_pairs(arch: Architecture) -> tuple:
    return tuple(tuple(p for k in range(0, 8, 2) for p in (cell[k + 1], cell[k])) for cell in arch.encoding)


def test_arch_id_ignores_pair_order_and_node_labels() -> None:
    space = get_space("darts")
    swapped = space.from_encoding(_swap_pairs(DARTS_V2))
    assert swapped != DARTS_V2 and swapped.arch_id == DARTS_V2.arch_id
    # node 3 does not read node 2, so exchanging their labels gives the same network
    a = [("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("skip_connect", 0), ("dil_conv_3x3", 1)]
    a += [("sep_conv_5x5", 2), ("max_pool_3x3", 3), ("avg_pool_3x3", 2), ("skip_connect", 4)]
    b = [("skip_connect", 0), ("dil_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1)]
    b += [("sep_conv_5x5", 3), ("max_pool_3x3", 2), ("avg_pool_3x3", 3), ("skip_connect", 4)]
    c = b[:4] + [("sep_conv_5x5", 2), ("max_pool_3x3", 3), ("avg_pool_3x3", 3), ("skip_connect", 4)]
    red = DARTS_V2.encoding[1]
    ida, idb, idc = (space.from_encoding([x, red]).arch_id for x in (a, b, c))
    assert ida == idb != idc
    # the variants share ids with DARTS for the same genotype
    s2 = get_space("darts-s2")
    g = s2.sample(np.random.default_rng(0))
    assert g.arch_id == space.from_encoding(g.encoding).arch_id
    assert len({space.sample(np.random.default_rng(s)).arch_id for s in range(50)}) == 50


# --- bad input -----------------------------------------------------------------------------------------------------
def test_bad_input_raises_value_error_naming_it() -> None:
    space = get_space("darts")
    normal, reduce = (list(c) for c in DARTS_V2.encoding)
    cases = [
        (DARTS_V2_GENOTYPE.replace("dil_conv_3x3", "conv_7x7"), "conv_7x7"),
        (DARTS_V2_GENOTYPE[:-30], "malformed"),
        (DARTS_V2_GENOTYPE.replace("Genotype", "Gen0type"), "malformed"),
        (DARTS_V2_GENOTYPE + " extra", "trailing text 'extra'"),
        ("Genotype(normal=[], reduce=[]; )", r"unexpected character ';'"),
        (DARTS_V2_GENOTYPE.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=[2, 3, 4]"), "normal_concat"),
        (DARTS_V2_GENOTYPE.replace("reduce_concat", "output_concat"), "output_concat"),
    ]
    for text, message in cases:
        with pytest.raises(ValueError, match=message):
            space.parse(text)
    encodings = [
        ([normal[:7], reduce], "needs 8 .op, input. pairs.*got 7"),
        ([[("none", 0), *normal[1:]], reduce], "'none'"),
        ([normal[:2] + [("sep_conv_3x3", 3)] + normal[3:], reduce], "input 3 of normal node 3"),
        ([normal, reduce[:3] + [("max_pool_3x3", 2)] + reduce[4:]], "reduce node 3 takes input 2 twice"),
        ([normal, reduce[:7] + [("max_pool_3x3", -1)]], "input -1"),
        ([normal, [(op, True) for op, _ in reduce]], "input True"),
        ([normal], "normal_pairs, reduce_pairs"),
    ]
    for enc, message in encodings:
        with pytest.raises(ValueError, match=message):
            space.from_encoding(enc)
    with pytest.raises(ValueError, match=r"'dil_conv_3x3' is not allowed on normal edge 11 \(2 -> 5\).*'darts-s2'"):
        get_space("darts-s2").parse(DARTS_V2_GENOTYPE)
    with pytest.raises(ValueError, match="'noise'"):
        space.from_encoding([[("noise", j) for _ in NODES for j in (0, 1)], reduce])
    with pytest.raises(ValueError, match="'conv'"):
        space.edge_ops("conv", 0)
    with pytest.raises(ValueError, match="14"):
        space.edge_ops("normal", 14)
    with pytest.raises(ValueError, match="darts-s2"):
        get_space("darts-s2").mutate(DARTS_V2, np.random.default_rng(0))


# --- sampling, mutation and predictor encodings --------------------------------------------------------------------
@pytest.mark.parametrize("name", ["darts", "darts-s1", "darts-s4"])
def test_mutate_changes_exactly_one_pair(name: str) -> None:
    space = get_space(name)
    kinds = set()
    for seed in range(100):
        rng = np.random.default_rng(seed)
        arch = space.sample(rng)
        child = space.mutate(arch, rng)
        assert space.from_encoding(child.encoding) == child
        diffs = [
            (a, b) for ca, cb in zip(arch.encoding, child.encoding, strict=True) for a, b in zip(ca, cb, strict=True)
        ]
        changed = [(a, b) for a, b in diffs if a != b]
        assert len(changed) == 1
        (op_a, j_a), (op_b, j_b) = changed[0]
        kinds.add("input" if j_a != j_b else "op")
    assert kinds == {"input", "op"}


def test_tokens_graph_features() -> None:
    space = get_space("darts")
    swapped = space.from_encoding(_swap_pairs(DARTS_V2))
    tokens = space.tokens(DARTS_V2)
    assert len(tokens) == 32 and max(tokens) < space.vocab_size == 5 + len(OP_VOCAB)
    assert tokens[:4] == [0, 5 + OP_VOCAB.index("sep_conv_3x3"), 1, 5 + OP_VOCAB.index("sep_conv_3x3")]
    assert tokens == space.tokens(swapped)
    adj, types = space.graph(DARTS_V2)
    assert adj.shape == (22, 22) and len(types) == 22
    assert [GRAPH_NODE_TYPES[t] for t in (types[0], types[1], types[10], types[21])] == [
        "input_0",
        "input_1",
        "output",
        "output",
    ]
    assert not np.tril(adj).any()  # topologically ordered DAG
    assert adj[:, 10].sum() == 8 and adj[:, 21].sum() == 8 and adj[10, [11, 12]].tolist() == [1, 1]
    # node 5's pairs sorted: dil_conv_3x3 from node 2 (graph node 8) is fed by both op nodes of node 2 (2, 3)
    assert types[8] == OP_VOCAB.index("dil_conv_3x3") and adj[[2, 3], 8].tolist() == [1, 1]
    assert np.array_equal(adj, space.graph(swapped)[0]) and types == space.graph(swapped)[1]
    feats = space.features(DARTS_V2)
    assert feats.shape == (2 * 14 * len(OP_VOCAB),)
    rows = feats.reshape(2, 14, len(OP_VOCAB))
    assert (rows.sum(-1) == 1).all() and (rows[:, :, 0] == 0).sum() == 16
    assert rows[0, edge_index(5, 2), OP_VOCAB.index("dil_conv_3x3")] == 1
    assert np.array_equal(feats, space.features(swapped))
    s4 = get_space("darts-s4")
    assert s4.features(s4.sample(np.random.default_rng(0))).shape == feats.shape


# --- networks ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 28, 28)])
def test_tiny_network_forward(shape: tuple[int, int, int]) -> None:
    torch.manual_seed(0)
    model = get_space("darts").build(DARTS_V2, 10, input_shape=shape, C=8, layers=5)
    x = torch.randn(2, *shape)
    model.train()
    logits = model(x)
    assert logits.shape == (2, 10) and model.last_aux_logits.shape == (2, 10)
    assert model.auxiliary_weight == 0.4
    model.eval()
    assert model(x).shape == (2, 10) and model.last_aux_logits is None
    side = math.ceil(math.ceil(shape[1] / 2) / 2)
    assert model.forward_features(x).shape == (2, 4 * 4 * 8, side, side)


def test_auxiliary_head_needs_a_2x2_map() -> None:
    space = get_space("darts")
    with pytest.raises(ValueError, match="1x1 map.*auxiliary=False"):
        space.build(DARTS_V2, 10, input_shape=(3, 4, 4), C=4, layers=3)
    model = space.build(DARTS_V2, 10, input_shape=(3, 4, 4), C=4, layers=3, auxiliary=False).train()
    assert model(torch.randn(2, 3, 4, 4)).shape == (2, 10) and model.last_aux_logits is None


def test_drop_path_changes_outputs_only_in_training() -> None:
    torch.manual_seed(0)
    model = get_space("darts").build(DARTS_V2, 10, input_shape=(3, 16, 16), C=8, layers=5, drop_path_prob=0.5)
    x = torch.randn(2, 3, 16, 16)

    def run(seed: int) -> torch.Tensor:
        torch.manual_seed(seed)
        with torch.no_grad():
            return model(x)

    model.train()
    assert not torch.allclose(run(0), run(1))
    model.drop_path_prob = 0.0  # settable after build, as trainers schedule it
    assert torch.equal(run(0), run(1))
    model.eval()
    no_drop = run(0)
    model.drop_path_prob = 0.5
    assert torch.equal(run(1), no_drop)
    with pytest.raises(ValueError, match="1.0"):
        model.drop_path_prob = 1.0
    y = drop_path(torch.ones(1000, 2, 1, 1), 0.25)
    values = y.unique().tolist()
    assert len(values) == 2 and values[0] == 0.0 and values[1] == pytest.approx(4 / 3)
    assert torch.equal(y[:, 0], y[:, 1])  # whole samples are dropped


def test_space_objects() -> None:
    for name in FAMILY:
        space = get_space(name)
        assert isinstance(space, DartsSpace) and space.name == name and space.name_for_id == "darts"
    assert get_space("darts").ops == DARTS_PRIMITIVES
    assert set(get_space("darts-s4").ops) == {"noise", "sep_conv_3x3"}
