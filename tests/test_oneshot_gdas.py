"""GDAS / SNAS: temperature schedule, one-hot forward through one op per edge, soft straight-through backward,
SNAS' relaxed mixture, derived cells and seeded runs."""

from __future__ import annotations

import pytest
import torch
from oneshot_toys import toy_task as _task
from torch.nn import functional as F

from nasmeta.oneshot import oneshot_search
from nasmeta.oneshot.gdas import Gdas, gumbel_softmax_sample, temperature
from nasmeta.oneshot.loop import SearchData
from nasmeta.oneshot.mixed_ops import WeightedOp
from nasmeta.oneshot.supernet import Choices
from nasmeta.oneshot.supernet_nb201 import NB201Supernet


def test_temperature_schedule_endpoints() -> None:
    assert temperature(1, 50) == 10.0 and temperature(50, 50) == pytest.approx(0.1)
    steps = [temperature(e, 5) for e in range(1, 6)]
    assert steps == pytest.approx([10.0, 7.525, 5.05, 2.575, 0.1])
    assert temperature(1, 1) == 10.0
    with pytest.raises(ValueError, match="epoch"):
        temperature(0, 5)
    task = _task()
    result = oneshot_search("gdas", "nb201", task, 3, 8, seed=0, supernet_size={"C": 4, "N": 1}, device="cpu")
    assert [row["tau"] for row in result.trace[1:]] == pytest.approx([10.0, 5.05, 0.1])
    with pytest.raises(ValueError, match="tau_min"):
        oneshot_search("gdas", "nb201", task, 1, 8, supernet_size={"C": 4, "N": 1}, tau_min=20.0)


def test_gumbel_sample_is_one_hot_forward_and_soft_backward() -> None:
    alpha = torch.randn(6, 5, requires_grad=True)
    soft, index, hard = gumbel_softmax_sample(alpha, 1.0, torch.Generator().manual_seed(0))
    assert torch.allclose(hard.detach(), F.one_hot(index, 5).float(), atol=1e-6)
    v = torch.randn(6, 5)
    (g_hard,) = torch.autograd.grad((hard * v).sum(), [alpha], retain_graph=True)
    (g_soft,) = torch.autograd.grad((soft * v).sum(), [alpha])
    assert torch.allclose(g_hard, g_soft)
    # low temperature: samples concentrate on argmax alpha
    sharp = torch.zeros(1, 5)
    sharp[0, 2] = 3.0
    gen = torch.Generator().manual_seed(1)
    picks = [int(gumbel_softmax_sample(sharp, 0.1, gen)[1]) for _ in range(200)]
    assert 0.8 < picks.count(2) / 200 < 0.95  # Gumbel-max: P = softmax(alpha)_2 = 0.834 at any temperature


def test_forward_runs_one_op_per_edge_and_alpha_gradient_is_soft() -> None:
    torch.manual_seed(0)
    net = NB201Supernet(10, (3, 8, 8), C=4, N=1, alpha_init_std=0.5).double()
    with torch.no_grad():
        net.alpha_cell[:, 0] -= 8.0  # avoid a sampled none on node 1's only input (BN of zeros)
    x, y = torch.randn(8, 3, 8, 8, dtype=torch.float64), torch.randint(0, 10, (8,))
    strategy = Gdas(net, SearchData(x, y, x, y, 10), 8, seed=0)
    strategy.begin_epoch(2, 4)
    calls: list[tuple[int, int]] = []
    for i, (_, _, mixed) in enumerate(net.edge_modules()):
        for k, op in enumerate(mixed.ops):
            op.register_forward_hook(lambda m, a, o, i=i, k=k: calls.append((i, k)))
    state = strategy.generator.get_state()
    choices = strategy.sample()
    out = net(x, choices)
    index = [c.index for c in choices.per_cell["cell"]]
    assert sorted(calls) == sorted((i, index[i % 6]) for i in range(len(net.edge_modules())))
    assert torch.allclose(out, net(x, {"cell": tuple(index)}), atol=1e-10)  # value of the hard path
    (ours,) = torch.autograd.grad(F.cross_entropy(out, y), [net.alpha_cell])

    # expected: dL/dh_k (through a leaf weight on the sampled op) times d soft_k / d alpha
    strategy.generator.set_state(state)
    soft, idx, _ = gumbel_softmax_sample(net.alpha_cell, strategy.tau, strategy.generator)
    assert idx.tolist() == index
    leaves = [torch.ones((), dtype=torch.float64, requires_grad=True) for _ in index]
    loss = F.cross_entropy(
        net(x, Choices({"cell": tuple(WeightedOp(k, w) for k, w in zip(index, leaves, strict=True))})), y
    )
    dl_dh = torch.autograd.grad(loss, leaves)
    picked = torch.stack([soft[e, k] for e, k in enumerate(index)])
    (expected,) = torch.autograd.grad((picked * torch.stack(dl_dh)).sum(), [net.alpha_cell])
    assert torch.allclose(ours, expected, rtol=1e-8, atol=1e-12)
    assert torch.all(ours != 0)  # the soft backward reaches the ops that did not run


def test_snas_mixes_every_op_by_the_relaxed_sample() -> None:
    torch.manual_seed(0)
    net = NB201Supernet(10, (3, 8, 8), C=4, N=1)
    x, y = torch.randn(8, 3, 8, 8), torch.randint(0, 10, (8,))
    strategy = Gdas(net, SearchData(x, y, x, y, 10), 8, seed=0, variant="snas")
    strategy.begin_epoch(1, 2)
    state = strategy.generator.get_state()
    choices = strategy.sample()
    strategy.generator.set_state(state)
    soft, _, _ = gumbel_softmax_sample(net.alpha_cell, 10.0, strategy.generator)
    assert torch.allclose(torch.stack(choices.per_cell["cell"]), soft)


def test_search_is_seeded_and_derives_valid_cells_on_both_spaces() -> None:
    task = _task()
    a = oneshot_search("gdas", "nb201", task, 2, 8, seed=3, supernet_size={"C": 4, "N": 1}, device="cpu")
    b = oneshot_search("gdas", "nb201", task, 2, 8, seed=3, supernet_size={"C": 4, "N": 1}, device="cpu")
    assert a.best_arch == b.best_arch and a.extra["alphas"] == b.extra["alphas"]
    assert "none" not in a.best_arch.encoding
    c = oneshot_search("gdas", "darts-s4", task, 1, 8, seed=3, supernet_size={"C": 4, "layers": 3}, device="cpu")
    assert c.best_arch.space == "darts-s4" and len(c.best_arch.encoding[0]) == 8
    d = oneshot_search("gdas", "darts", task, 1, 8, seed=3, supernet_size={"C": 4, "layers": 3}, device="cpu",
                       variant="snas")  # fmt: skip
    assert all(op != "none" for op, _ in d.best_arch.encoding[0])


def test_the_reference_unsampled_term_keeps_the_forward_value_and_adds_gradient() -> None:
    torch.manual_seed(0)
    net = NB201Supernet(10, (3, 8, 8), C=4, N=1, alpha_init_std=0.5).double()
    x, y = torch.randn(8, 3, 8, 8, dtype=torch.float64), torch.randint(0, 10, (8,))
    grads, outs = [], []
    for term in (False, True):
        strategy = Gdas(net, SearchData(x, y, x, y, 10), 8, seed=0, unsampled_term=term)
        strategy.begin_epoch(2, 4)
        out = net(x, strategy.sample())  # the same Gumbel draw both times (same seed)
        outs.append(out)
        grads.append(torch.autograd.grad(F.cross_entropy(out, y), [net.alpha_cell])[0])
    assert torch.allclose(outs[0], outs[1], atol=1e-12)  # the added weights are zero-valued
    assert not torch.allclose(grads[0], grads[1])  # but they pass gradient to the ops not run
