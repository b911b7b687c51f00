"""Supernets: parameters kept apart, paths equal the standalone networks, S1-S4 op sets, derivation, bad input."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

from nasmeta.data.types import TaskData
from nasmeta.oneshot import build_supernet, oneshot_search
from nasmeta.oneshot.loop import SearchData
from nasmeta.oneshot.supernet_darts import DartsSupernet
from nasmeta.oneshot.supernet_nb201 import NB201Supernet
from nasmeta.spaces import get_space


def _nb201(seed: int = 0) -> NB201Supernet:
    torch.manual_seed(seed)
    return NB201Supernet(10, (3, 8, 8), C=4, N=1)


def test_arch_parameters_are_apart_from_weights() -> None:
    net = _nb201()
    arch = {id(p) for p in net.arch_parameters()}
    weights = {id(p) for p in net.weights()}
    assert arch and weights and not arch & weights
    assert arch | weights == {id(p) for p in net.parameters()}
    (alpha,) = net.arch_parameters()
    assert alpha.shape == (6, 5)
    # DARTS initialisation 1e-3 * randn: tiny but not all equal
    assert alpha.abs().max() < 0.01 and alpha.std() > 1e-4


def test_darts_supernet_published_layout_and_sizes_are_parameters() -> None:
    defaults = inspect.signature(DartsSupernet).parameters
    assert (defaults["C"].default, defaults["layers"].default) == (16, 8)  # the published search network
    torch.manual_seed(0)
    net = DartsSupernet(10, C=2)
    assert len(net.cells) == 8
    assert [c.reduction for c in net.cells] == [False, False, True, False, False, True, False, False]
    assert net.stem[0].out_channels == 3 * 2
    assert [a.shape for a in net.arch_parameters()] == [(14, 8), (14, 8)]
    small = DartsSupernet(10, (1, 12, 12), C=4, layers=3)
    assert len(small.cells) == 3 and small.stem[0].in_channels == 1
    assert small(torch.randn(2, 1, 12, 12)).shape == (2, 10)


def test_mixed_ops_follow_the_search_convention() -> None:
    torch.manual_seed(0)
    net = DartsSupernet(10, (3, 8, 8), C=4, layers=3)
    edge = net.cells[0].edges[0]
    assert edge.names == get_space("darts").edge_ops("normal", 0)
    bns = [m for m in net.cells.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(not bn.affine for bn in bns)
    pool = edge.ops[edge.names.index("max_pool_3x3")]
    assert isinstance(pool, torch.nn.Sequential) and isinstance(pool[1], torch.nn.BatchNorm2d)


@pytest.mark.parametrize(
    ("space", "normal_edge0", "width"),
    [
        ("darts-s1", ("skip_connect", "dil_conv_3x3"), 2),
        ("darts-s2", ("skip_connect", "sep_conv_3x3"), 2),
        ("darts-s3", ("none", "skip_connect", "sep_conv_3x3"), 3),
        ("darts-s4", ("noise", "sep_conv_3x3"), 2),
    ],
)
def test_robust_darts_spaces_restrict_the_mixed_ops(space: str, normal_edge0: tuple, width: int) -> None:
    torch.manual_seed(0)
    net = DartsSupernet(10, (3, 8, 8), C=4, layers=3, space=space)
    assert net.cells[0].edges[0].names == normal_edge0
    assert [a.shape for a in net.arch_parameters()] == [(14, width), (14, width)]
    assert net(torch.randn(2, 3, 8, 8)).shape == (2, 10)
    path = net.sample_path(np.random.default_rng(1))
    assert net.arch_to_path(net.path_to_arch(path)) == path


def _copy_edge_weights(standalone_edge: torch.nn.Module, mixed_op_choice: torch.nn.Module) -> None:
    result = standalone_edge.load_state_dict(mixed_op_choice.state_dict(), strict=False)
    # only BN affine parameters may be missing: the supernet's BN has none; the standalone's start at (1, 0)
    bn_affine = {
        f"{name}.{p}"
        for name, m in standalone_edge.named_modules()
        if isinstance(m, torch.nn.BatchNorm2d)
        for p in ("weight", "bias")
    }
    assert not result.unexpected_keys and set(result.missing_keys) <= bn_affine


def test_nb201_path_computes_the_standalone_network() -> None:
    space = get_space("nb201")
    net = _nb201()
    arch = space.parse("|nor_conv_3x3~0|+|skip_connect~0|avg_pool_3x3~1|+|none~0|nor_conv_1x1~1|nor_conv_3x3~2|")
    path = net.arch_to_path(arch)
    standalone = space.build(arch, 10, (3, 8, 8), C=4, N=1)
    ours = net.net
    for name in ("stem", "lastact", "classifier"):
        getattr(standalone, name).load_state_dict(getattr(ours, name).state_dict())
    for i, (a, b) in enumerate(zip(standalone.cells, ours.cells, strict=True)):
        if i in ours.cell_indices:
            for k, edge in enumerate(a.edges):
                _copy_edge_weights(edge, b.edges[k].ops[path["cell"][k]])
        else:
            a.load_state_dict(b.state_dict())
    x = torch.randn(4, 3, 8, 8)
    torch.testing.assert_close(net(x, path), standalone(x))


def test_darts_path_computes_the_standalone_network() -> None:
    space = get_space("darts")
    torch.manual_seed(0)
    net = DartsSupernet(10, (3, 8, 8), C=4, layers=3)
    # no pooling ops: in the supernet they carry the extra BN of the search convention
    arch = space.from_encoding(
        [
            [("sep_conv_3x3", 0), ("skip_connect", 1), ("dil_conv_3x3", 0), ("sep_conv_5x5", 2)]
            + [("skip_connect", 3), ("dil_conv_5x5", 1), ("sep_conv_3x3", 4), ("skip_connect", 0)],
            [("sep_conv_5x5", 1), ("skip_connect", 0), ("dil_conv_3x3", 2), ("sep_conv_3x3", 1)]
            + [("dil_conv_5x5", 3), ("skip_connect", 2), ("sep_conv_3x3", 0), ("sep_conv_3x3", 4)],
        ]
    )
    path = net.arch_to_path(arch)
    standalone = space.build(arch, 10, (3, 8, 8), C=4, layers=3, auxiliary=False, drop_path_prob=0.0)
    standalone.stem.load_state_dict(net.stem.state_dict())
    standalone.classifier.load_state_dict(net.classifier.state_dict())
    from nasmeta.spaces.darts import edge_index

    for cell_a, cell_b in zip(standalone.cells, net.cells, strict=True):
        t = "reduce" if cell_b.reduction else "normal"
        _copy_edge_weights(cell_a.preprocess0, cell_b.preprocess0)
        _copy_edge_weights(cell_a.preprocess1, cell_b.preprocess1)
        for k, (_, j) in enumerate(arch.encoding[0 if t == "normal" else 1]):
            e = edge_index(2 + k // 2, j)
            _copy_edge_weights(cell_a.ops[k], cell_b.edges[e].ops[path[t][e]])
    x = torch.randn(4, 3, 8, 8)
    torch.testing.assert_close(net(x, path), standalone(x))


def test_one_hot_mixture_equals_the_single_path() -> None:
    net = _nb201()
    path = {"cell": (3, 1, 2, 0, 4, 3)}
    with torch.no_grad():
        net.alpha_cell.copy_(1e4 * torch.nn.functional.one_hot(torch.tensor(path["cell"]), 5).float())
    x = torch.randn(4, 3, 8, 8)
    torch.testing.assert_close(net(x), net(x, path))


def test_derivation_rules() -> None:
    net = _nb201()
    with torch.no_grad():
        net.alpha_cell.zero_()
        net.alpha_cell[:, 0] = 5.0  # `none` strongest everywhere: never chosen
        net.alpha_cell[:, 1] = 1.0
        net.alpha_cell[5, 3] = 2.0
    assert str(net.derive()) == (
        "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|nor_conv_3x3~2|"
    )
    torch.manual_seed(0)
    darts = DartsSupernet(10, (3, 8, 8), C=4, layers=3)
    with torch.no_grad():
        for alpha in darts.arch_parameters():
            alpha.zero_()
            alpha[:, 0] = 10.0  # none
            alpha[:, 4] = 1.0 + torch.arange(14, dtype=torch.float32) / 10  # sep_conv_3x3, stronger on later edges
    normal = darts.derive().encoding[0]
    assert all(op == "sep_conv_3x3" for op, _ in normal)
    # top-2 incoming edges per node = the two highest inputs
    assert [j for _, j in normal] == [1, 0, 2, 1, 3, 2, 4, 3]


def test_bad_paths_and_names_raise_value_error() -> None:
    net = _nb201()
    with pytest.raises(ValueError, match="needs 6 entries"):
        net(torch.randn(2, 3, 8, 8), {"cell": (0, 1)})
    with pytest.raises(ValueError, match="op index 7"):
        net.check_path({"cell": (0, 1, 2, 3, 4, 7)})
    with pytest.raises(ValueError, match="cell types"):
        net.check_path({"normal": (0,) * 6})
    torch.manual_seed(0)
    darts = DartsSupernet(10, (3, 8, 8), C=4, layers=3)
    one_input = {t: (0, None) + (0, 0, None) + (0, 0, None, None) + (0, 0, None, None, None) for t in darts.cell_types}
    with pytest.raises(ValueError, match="node 0 of cell 'normal' must use 2 incoming edges"):
        darts.check_path(one_input)
    with pytest.raises(ValueError, match="no one-shot supernet for space 'macro'"):
        build_supernet("macro", 10, (3, 8, 8))
    with pytest.raises(ValueError, match="DARTS-family space"):
        DartsSupernet(10, space="nb201")


def _toy_task(n: int = 40) -> TaskData:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, 8, 8, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    return TaskData("toy", "toy", x, y, x[:8], y[:8], x[:8], y[:8], 10)


def test_search_data_halves_the_train_split() -> None:
    task = _toy_task(41)
    a, b = SearchData.from_task(task, seed=3), SearchData.from_task(task, seed=3)
    assert len(a.x_train) == 20 and len(a.x_val) == 21
    assert torch.equal(a.x_train, b.x_train)
    rows = {tuple(r.flatten()[:6].tolist()) for r in torch.cat([a.x_train, a.x_val])}
    assert len(rows) == 41  # disjoint halves covering the split
    with pytest.raises(ValueError, match="train_portion"):
        SearchData.from_task(task, train_portion=1.0)


def test_oneshot_search_rejects_bad_input() -> None:
    task = _toy_task()
    with pytest.raises(ValueError, match="unknown one-shot method 'fbnet'"):
        oneshot_search("fbnet", "nb201", task, epochs=1)
    with pytest.raises(ValueError, match="arch_lrr"):
        oneshot_search("darts", "nb201", task, epochs=1, supernet_size={"C": 2, "N": 1}, device="cpu", arch_lrr=1.0)
    with pytest.raises(ValueError, match="epochs"):
        oneshot_search("darts", "nb201", task, epochs=0, supernet_size={"C": 2, "N": 1}, device="cpu")


def test_a_discrete_architecture_is_evaluated_through_the_shared_weights() -> None:
    from nasmeta.oneshot.loop import evaluate_architecture

    net = _nb201()
    task = _toy_task()
    arch = get_space("nb201").parse("|nor_conv_3x3~0|+|skip_connect~0|none~1|+|none~0|none~1|avg_pool_3x3~2|")
    loss, acc = evaluate_architecture(net, arch, task.x_train, task.y_train, batch_size=40)
    with torch.no_grad():
        logits = net.train()(task.x_train, net.arch_to_path(arch))  # batch statistics, as the evaluation uses
    assert loss == pytest.approx(float(torch.nn.functional.cross_entropy(logits, task.y_train)), rel=1e-5)
    assert acc == pytest.approx(100.0 * float((logits.argmax(1) == task.y_train).float().mean()))
