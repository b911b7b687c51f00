"""NAS-Bench-201 space: published facts (Dong & Yang, ICLR 2020; METHODS.md), round trips and failure paths."""

from __future__ import annotations

import csv
import re

import numpy as np
import pytest
import torch

from nasmeta.spaces import Architecture, get_space
from nasmeta.spaces.nb201 import EDGES, GRAPH_INPUT_ID, GRAPH_OUTPUT_ID, OPS, NB201Cell, NB201Space


@pytest.fixture(scope="module")
def space() -> NB201Space:
    return get_space("nb201")


@pytest.fixture(scope="module")
def archs(space: NB201Space) -> list[Architecture]:
    return list(space.enumerate())


def _cell(space: NB201Space, op: str) -> Architecture:
    return space.from_encoding([op] * len(EDGES))


def test_enumerates_all_15625_distinct_cells(space: NB201Space, archs: list[Architecture]) -> None:
    # 5 ops on 6 edges: 5**6 = 15,625 cells (Dong & Yang 2020)
    assert space.size == 15_625
    assert len(archs) == 15_625
    assert len({a.encoding for a in archs}) == 15_625
    assert set(OPS) == {op for a in archs for op in a.encoding}


def test_exactly_6466_unique_cells(archs: list[Architecture]) -> None:
    # Dong & Yang 2020 (NAS-Bench-201) and METHODS.md: 6,466 cells are unique up to isomorphism
    # (dropping zero nodes differently gives 5,390 or 12,751, both wrong for NB201)
    assert len({a.arch_id for a in archs}) == 6_466


@pytest.mark.parametrize(
    ("op", "classes", "expected"),
    [
        # exact counts for C=16, N=5 from METHODS.md (NB201 benchmark networks)
        ("nor_conv_3x3", 10, 1_531_546),
        ("nor_conv_3x3", 100, 1_537_396),
        ("nor_conv_3x3", 120, 1_538_696),
        ("none", 10, 73_306),
    ],
)
def test_published_parameter_counts(space: NB201Space, op: str, classes: int, expected: int) -> None:
    with torch.device("meta"):
        net = space.build(_cell(space, op), classes)
    assert sum(p.numel() for p in net.parameters()) == expected


def test_text_encoding_and_index_round_trips(space: NB201Space, archs: list[Architecture]) -> None:
    for i, arch in enumerate(archs):
        text = str(arch)
        assert space.parse(text) == arch
        assert space.from_encoding(list(arch.encoding)) == arch
        assert space.index(arch) == i
        assert space.from_index(i) == arch
        assert Architecture.from_json(arch.to_json()) == arch
    first = space.parse("|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|")
    assert first.encoding == ("nor_conv_3x3", "none", "skip_connect", "avg_pool_3x3", "nor_conv_1x1", "none")


@pytest.mark.parametrize(
    ("index", "text"),
    [
        # entries 0, 9 and 123 of the benchmark's own index (NAS-Bench-201 release, Dong & Yang 2020)
        (0, "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"),
        (9, "|avg_pool_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"),
        (123, "|avg_pool_3x3~0|+|avg_pool_3x3~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|"),
    ],
)
def test_known_benchmark_indices(space: NB201Space, index: int, text: str) -> None:
    assert str(space.from_index(index)) == text
    assert space.index(space.parse(text)) == index


def test_enumeration_order_equals_benchmark_table(data_dir, archs: list[Architecture]) -> None:
    with open(data_dir / "benchmarks" / "nb201_accuracy.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(archs)
    assert [int(r["index"]) for r in rows] == list(range(len(rows)))
    assert [r["arch_str"] for r in rows] == [str(a) for a in archs]


@pytest.mark.parametrize(
    ("left", "right"),
    [
        # node 1 feeds nothing (its out-edges are none), so its op does not matter
        (
            "|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|none~1|avg_pool_3x3~2|",
            "|avg_pool_3x3~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|none~1|avg_pool_3x3~2|",
        ),
        # node 1 = x via skip: conv on x directly or on node 1 is the same term (inputs as a multiset)
        (
            "|skip_connect~0|+|nor_conv_3x3~0|none~1|+|nor_conv_1x1~0|none~1|skip_connect~2|",
            "|skip_connect~0|+|none~0|nor_conv_3x3~1|+|nor_conv_1x1~0|none~1|skip_connect~2|",
        ),
        # node 1 is zero, so an op reading it contributes nothing
        (
            "|none~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|avg_pool_3x3~1|nor_conv_3x3~2|",
            "|none~0|+|nor_conv_3x3~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|",
        ),
    ],
)
def test_isomorphic_cells_share_an_id(space: NB201Space, left: str, right: str) -> None:
    a, b = space.parse(left), space.parse(right)
    assert a != b
    assert a.arch_id == b.arch_id


@pytest.mark.parametrize(
    ("left", "right"),
    [
        # node 1's op differs and node 1 reaches the output through node 2
        (
            "|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|skip_connect~0|none~1|skip_connect~2|",
            "|nor_conv_1x1~0|+|nor_conv_3x3~0|skip_connect~1|+|skip_connect~0|none~1|skip_connect~2|",
        ),
        # the benchmark rule treats only a single-input zero node as zero: node 2 = none + none reads '#+#',
        # so a conv reading it still counts (this is what separates 6,466 from the 5,390 of full propagation)
        (
            "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|",
            "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|",
        ),
    ],
)
def test_non_isomorphic_cells_differ(space: NB201Space, left: str, right: str) -> None:
    assert space.parse(left).arch_id != space.parse(right).arch_id


def test_mutate_changes_exactly_one_edge(space: NB201Space) -> None:
    rng = np.random.default_rng(0)
    changed_edges = set()
    for _ in range(300):
        arch = space.sample(rng)
        child = space.mutate(arch, rng)
        diff = [k for k, (a, b) in enumerate(zip(arch.encoding, child.encoding, strict=True)) if a != b]
        assert len(diff) == 1
        assert child.encoding[diff[0]] in OPS
        changed_edges.add(diff[0])
    assert changed_edges == set(range(len(EDGES)))


def test_sampling_is_seeded_and_uniform(space: NB201Space) -> None:
    first = [space.sample(np.random.default_rng(7)) for _ in range(3)]
    again = [space.sample(np.random.default_rng(7)) for _ in range(3)]
    assert first == again
    rng_a, rng_b = np.random.default_rng(7), np.random.default_rng(8)
    assert [space.sample(rng_a) for _ in range(20)] != [space.sample(rng_b) for _ in range(20)]
    rng = np.random.default_rng(1)
    tokens = np.array([space.tokens(space.sample(rng)) for _ in range(5000)])
    freq = np.stack([(tokens == op).mean(axis=0) for op in range(len(OPS))])
    # 5000 draws: the standard error of each frequency is ~0.006, so 0.03 is a 5-sigma band around 1/5
    assert np.abs(freq - 0.2).max() < 0.03


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("|conv_7x7~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown op 'conv_7x7'"),
        ("|none~0|+|none~0|none~1|", "found 2"),
        ("|none~0|+|none~0|+|none~0|none~1|none~2|", "node 2 part '|none~0|'"),
        ("none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "node 1 part 'none~0|'"),
        ("|none~0|+|none~0|none-1|+|none~0|none~1|none~2|", "edge 'none-1'"),
        ("|none~0|+|none~1|none~0|+|none~0|none~1|none~2|", "input index '1'"),
        ("|none~0|+|none~0|none~1|+|none~0|none~1|none~3|", "input index '3'"),
        ("", "3 nodes"),
    ],
)
def test_bad_strings_raise_naming_the_part(space: NB201Space, text: str, named: str) -> None:
    with pytest.raises(ValueError, match=re.escape(named)):
        space.parse(text)


def test_bad_encodings_and_indices_raise(space: NB201Space) -> None:
    with pytest.raises(ValueError, match="unknown op 'conv_7x7'"):
        space.from_encoding(["none", "conv_7x7", "none", "none", "none", "none"])
    with pytest.raises(ValueError, match="got 5"):
        space.from_encoding(["none"] * 5)
    with pytest.raises(ValueError, match="parse"):
        space.from_encoding("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    for bad in (-1, 15_625, 2.0):
        with pytest.raises(ValueError, match=str(bad)):
            space.from_index(bad)
    with pytest.raises(ValueError, match="space 'macro'"):
        space.arch_id(Architecture("macro", ("none",) * 6))
    with pytest.raises(ValueError, match="unknown op 'bogus'"):
        space.tokens(Architecture("nb201", ("bogus",) * 6))


def test_tokens_features_and_graph(space: NB201Space) -> None:
    arch = space.parse("|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|")
    assert space.vocab_size == 5
    assert space.tokens(arch) == [3, 0, 1, 4, 2, 0]
    features = space.features(arch)
    assert features.shape == (30,)
    assert features.sum() == 6
    assert features.reshape(6, 5).argmax(axis=1).tolist() == space.tokens(arch)
    adj, node_ops = space.graph(arch)
    assert node_ops == [GRAPH_INPUT_ID, 3, 0, 1, 4, 2, 0, GRAPH_OUTPUT_ID]
    expected = {(0, 1), (0, 2), (0, 4), (1, 3), (1, 5), (2, 6), (3, 6), (4, 7), (5, 7), (6, 7)}
    assert {(int(i), int(j)) for i, j in zip(*np.nonzero(adj), strict=True)} == expected
    assert adj.shape == (8, 8)


def test_reduced_network_on_mnist_shape(space: NB201Space) -> None:
    torch.manual_seed(0)
    arch = space.parse("|nor_conv_3x3~0|+|skip_connect~0|avg_pool_3x3~1|+|nor_conv_1x1~0|none~1|skip_connect~2|")
    net = space.build(arch, num_classes=10, input_shape=(1, 28, 28), C=8, N=1)
    x = torch.randn(4, 1, 28, 28)
    assert net(x).shape == (4, 10)
    features = net.forward_features(x)
    assert features.dim() == 4
    assert features.shape[:2] == (4, 32)
    # 3 stages of N=1 cells plus 2 residual reduction blocks
    assert len(net.cells) == 5 and net.cell_indices == [0, 2, 4]


def test_cell_wires_the_edges_as_the_dag(space: NB201Space) -> None:
    x = torch.randn(2, 4, 5, 5)
    # identity everywhere: node1 = x, node2 = x + x, node3 = x + node1 + node2 = 4x
    assert torch.allclose(NB201Cell(4, [torch.nn.Identity() for _ in EDGES])(x), 4 * x)
    only_direct = ["none", "none", "none", "skip_connect", "none", "none"]
    assert torch.equal(NB201Cell(4, only_direct)(x), x)
    with pytest.raises(ValueError, match="got 5"):
        NB201Cell(4, ["none"] * 5)
