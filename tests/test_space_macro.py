"""NAS-Bench-Macro space: text form, identity, sampling, encodings, and the exact network (METHODS.md; Su et al.
2021, "Prioritized Architecture Sampling with Monte-Carlo Tree Search", benchmark xiusu/NAS-Bench-Macro)."""

from __future__ import annotations

import itertools
import json
from collections import defaultdict

import numpy as np
import pytest
import torch

from nasmeta.spaces import Architecture, get_space

SPACE = get_space("macro")

# METHODS.md (NAS-Bench-Macro): exact parameter counts of the benchmark network, CIFAR-10 (10 classes)
PUBLISHED_PARAMS = {
    "02012100": 890_666,
    "11111221": 2_181_386,
    "00011110": 1_118_378,
    "00000000": 387_882,
    "22222222": 2_932_586,
}


def n_params(arch: Architecture, **kwargs) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in SPACE.build(arch, 10, **kwargs).parameters())


def test_parse_round_trips_every_encoding_and_enumeration_is_lexicographic() -> None:
    archs = list(SPACE.enumerate())
    assert SPACE.size == len(archs) == 3**8 == 6561
    strings = [str(a) for a in archs]
    assert strings == sorted(strings) == ["".join(p) for p in itertools.product("012", repeat=8)]
    assert all(SPACE.parse(s) == a for s, a in zip(strings, archs, strict=True))
    assert Architecture.from_json(json.dumps(archs[123].to_json())) == archs[123]


@pytest.mark.parametrize(
    ("text", "named"),
    [("0201210x", "'x'"), ("02a1b100", "'a', 'b'"), ("0201", "4 layers"), ("020121000", "9 layers"), ("", "0 layers")],
)
def test_malformed_strings_raise_naming_the_problem(text: str, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        SPACE.parse(text)


@pytest.mark.parametrize(("encoding", "named"), [((0, 1, 2), "length 3"), ((0, 1, 2, 3, 0, 0, 0, 0), "choice 3")])
def test_bad_encodings_raise_naming_the_value(encoding: tuple, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        SPACE.from_encoding(encoding)


def test_foreign_architecture_is_rejected() -> None:
    with pytest.raises(ValueError, match="nb201"):
        SPACE.to_str(Architecture("nb201", ("none",) * 6))


def test_stride1_identities_are_moved_within_their_stage_only() -> None:
    # stage 2 = layers 3..5: '1', '0', '2' and '1', '2', '0' are the same network (the middle identity is a no-op)
    assert SPACE.arch_id(SPACE.parse("00102000")) == SPACE.arch_id(SPACE.parse("00120000"))
    assert SPACE.canonical(SPACE.parse("00102000")) == [0, 0, 1, 2, 0, 0, 0, 0]
    # the order of the non-identity layers matters
    assert SPACE.arch_id(SPACE.parse("00120000")) != SPACE.arch_id(SPACE.parse("00210000"))
    # a stage's first layer is a stride-2 projection when it is "identity": never moved
    assert SPACE.arch_id(SPACE.parse("00012000")) != SPACE.arch_id(SPACE.parse("00120000"))
    # moving across a stage boundary changes the network
    assert SPACE.arch_id(SPACE.parse("01000000")) != SPACE.arch_id(SPACE.parse("00000100"))


def test_3969_distinct_networks_and_the_table_agrees_with_the_identity(data_dir) -> None:
    """The benchmark trained one network per canonical form; every encoding of it carries identical results."""
    table = json.loads((data_dir / "benchmarks" / "nas-bench-macro_cifar10.json").read_text())
    groups: dict[str, list[str]] = defaultdict(list)
    for arch in SPACE.enumerate():
        groups[arch.arch_id].append(str(arch))
    assert len(groups) == 3969 == 9 * 21 * 21  # stage of 2 layers: 3*3; of 3 layers: 3 * (1 + 2 + 4)
    assert set(table) == {str(a) for a in SPACE.enumerate()}
    for members in groups.values():
        assert len({json.dumps(table[m], sort_keys=True) for m in members}) == 1, members


def test_sample_is_seeded_uniform_and_mutate_changes_exactly_one_layer() -> None:
    draws = [SPACE.sample(np.random.default_rng(7)) for _ in range(2)]
    assert draws[0] == draws[1]
    rng = np.random.default_rng(0)
    samples = np.array([SPACE.sample(rng).encoding for _ in range(3000)])
    assert np.allclose(np.bincount(samples.ravel(), minlength=3) / samples.size, 1 / 3, atol=0.02)
    for _ in range(200):
        arch = SPACE.sample(rng)
        child = SPACE.mutate(arch, rng)
        assert sum(a != b for a, b in zip(arch.encoding, child.encoding, strict=True)) == 1


def test_tokens_graph_features() -> None:
    arch = SPACE.parse("02012100")
    assert SPACE.tokens(arch) == [0, 2, 0, 1, 2, 1, 0, 0]
    assert SPACE.vocab_size == 3
    adjacency, labels = SPACE.graph(arch)
    assert adjacency.shape == (10, 10) and adjacency.sum() == 9
    assert np.array_equal(np.nonzero(adjacency)[1], np.arange(1, 10))  # a chain
    assert labels == [3, 0, 2, 0, 1, 2, 1, 0, 0, 4]
    features = SPACE.features(arch)
    assert features.shape == (24,) and features.sum() == 8
    assert features.reshape(8, 3).argmax(1).tolist() == SPACE.tokens(arch)


@pytest.mark.parametrize(("text", "expected"), sorted(PUBLISHED_PARAMS.items()))
def test_published_parameter_counts(text: str, expected: int) -> None:
    assert n_params(SPACE.parse(text)) == expected


@pytest.mark.slow
def test_parameter_count_equals_the_table_for_every_architecture(data_dir) -> None:
    """6,561 builds on the meta device (no weights): about 30 s on one idle core."""
    table = json.loads((data_dir / "benchmarks" / "nas-bench-macro_cifar10.json").read_text())
    mismatches = [str(a) for a in SPACE.enumerate() if n_params(a) != table[str(a)]["params"]]
    assert mismatches == []


def test_forward_shapes_on_a_shrunk_network_with_mnist_input() -> None:
    torch.manual_seed(0)
    model = SPACE.build(SPACE.parse("12012201"), 7, (1, 28, 28), stem_channels=4, head_channels=16)
    x = torch.randn(2, 1, 28, 28)
    assert model(x).shape == (2, 7)
    assert model.forward_features(x).shape == (2, 16, 4, 4)  # 28 -> 14 -> 7 -> 4, head channels
    # stem 4 channels doubled per stage: 8, 16, 32 into the head
    assert model.head[0].in_channels == 32


def test_identity_layers_are_true_identities_or_projections() -> None:
    model = SPACE.build(SPACE.parse("00000000"), 10, stem_channels=4, head_channels=8)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["ConvBN", "Identity", "ConvBN", "Identity", "Identity", "ConvBN", "Identity", "Identity"]


def test_bad_size_arguments_raise() -> None:
    with pytest.raises(ValueError, match="width"):
        SPACE.build(SPACE.parse("00000000"), 10, width=2)
    with pytest.raises(ValueError, match="stem_channels"):
        SPACE.build(SPACE.parse("00000000"), 10, stem_channels=0)
