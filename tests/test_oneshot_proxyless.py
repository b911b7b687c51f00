"""ProxylessNAS: the gate gradient (eq. 4) against autograd and finite differences, only active paths held in
memory, 'two'-mode rescaling, the measured latency table and loss, derived cells, seeded runs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from nasmeta.data.types import TaskData
from nasmeta.oneshot import oneshot_search
from nasmeta.oneshot.latency import measure_latency_table
from nasmeta.oneshot.loop import SearchData
from nasmeta.oneshot.mixed_ops import EdgeChoice, MixedOp
from nasmeta.oneshot.proxyless import BinaryGate, ProxylessNas, gate_gradient
from nasmeta.oneshot.supernet import Choices
from nasmeta.oneshot.supernet_darts import DartsSupernet
from nasmeta.oneshot.supernet_nb201 import NB201Supernet


def _task(n: int = 32, res: int = 8) -> TaskData:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, res, res, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    return TaskData("toy", "toy", x, y, x[:8], y[:8], x[:8], y[:8], 10)


def _net() -> tuple[NB201Supernet, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    net = NB201Supernet(10, (3, 8, 8), C=4, N=1, alpha_init_std=0.7).double()
    with torch.no_grad():
        # a sampled none on a node's only input zeroes it and the next BN divides 0 by sqrt(eps): keep it unlikely
        net.alpha_cell[:, 0] -= 8.0
    g = torch.Generator().manual_seed(1)
    return net, torch.randn(8, 3, 8, 8, generator=g, dtype=torch.float64), torch.randint(0, 10, (8,), generator=g)


class _ExplicitGates(EdgeChoice):
    """``sum_j g_j o_j(x)`` over every candidate with leaf gates: the definition eq. 4 differentiates."""

    def __init__(self, gates: torch.Tensor) -> None:
        self.gates = gates

    def __call__(self, op: MixedOp, x: torch.Tensor) -> torch.Tensor:
        return sum(g * op.run(k, x) for k, g in enumerate(self.gates.unbind(0)))


def _strategy(net: NB201Supernet, mode: str) -> ProxylessNas:
    task = _task()
    data = SearchData(task.x_train.double(), task.y_train, task.x_train.double(), task.y_train, 10)
    return ProxylessNas(net, data, 8, seed=3, mode=mode, warmup_epochs=0, arch_every=1)


@pytest.mark.parametrize("mode", ["full", "two"])
def test_alpha_gradient_is_eq4_of_the_gate_gradients(mode: str) -> None:
    """Our alpha gradient (active op only in the forward, _GateGrad in the backward) equals eq. 4 applied to
    dL/dg_j of the explicit all-ops formulation, whose dL/dg_j also match central finite differences."""
    net, x, y = _net()
    strategy = _strategy(net, mode)
    (alpha,) = net.arch_parameters()
    choices = strategy.sample_gates(with_grad=True)
    ours = torch.autograd.grad(F.cross_entropy(net(x, choices), y), [alpha])[0]

    gates = [b for b in choices.per_cell["cell"]]
    n_ops = alpha.shape[1]
    leaves = [F.one_hot(torch.tensor(b.active), n_ops).double().requires_grad_(True) for b in gates]

    def loss_at(values: list[torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(net(x, Choices({"cell": tuple(_ExplicitGates(v) for v in values)})), y)

    dl_dg = torch.autograd.grad(loss_at(leaves), leaves)
    h = 1e-6
    for e in (0, 3):
        for j in range(n_ops):
            up = [v.detach().clone() for v in leaves]
            down = [v.detach().clone() for v in leaves]
            up[e][j] += h
            down[e][j] -= h
            fd = (loss_at(up) - loss_at(down)) / (2 * h)
            assert float(fd.detach()) == pytest.approx(float(dl_dg[e][j]), rel=1e-5, abs=1e-9)

    expected = torch.zeros_like(alpha)
    for e, b in enumerate(gates):
        cand = list(b.candidates)
        p = alpha[e, cand].detach().softmax(0)
        expected[e, cand] = gate_gradient(dl_dg[e][cand], p)
    assert torch.allclose(ours, expected, rtol=1e-9, atol=1e-12)
    if mode == "two":
        for e, b in enumerate(gates):
            others = [k for k in range(n_ops) if k not in b.candidates]
            assert torch.all(ours[e, others] == 0)


def test_gate_gradient_formula_is_the_softmax_jacobian() -> None:
    alpha = torch.randn(5, dtype=torch.float64, requires_grad=True)
    v = torch.randn(5, dtype=torch.float64)
    (auto,) = torch.autograd.grad((alpha.softmax(0) * v).sum(), [alpha])
    assert torch.allclose(gate_gradient(v, alpha.detach().softmax(0)), auto)


def test_only_the_active_path_is_run_with_autograd_and_held_in_memory() -> None:
    """Forward: exactly one op per edge and cell runs (with autograd); 'two' mode's backward reruns the sampled
    pair of each edge without autograd.  Saved activations: far below the DARTS mixture's."""
    torch.manual_seed(0)
    net = NB201Supernet(10, (3, 16, 16), C=8, N=1)
    x, y = torch.randn(16, 3, 16, 16), torch.randint(0, 10, (16,))
    strategy = _strategy(net, "two")
    calls: list[tuple[int, int, bool]] = []
    hooks = []
    for i, (_, _, mixed) in enumerate(net.edge_modules()):
        for k, op in enumerate(mixed.ops):
            hooks.append(
                op.register_forward_hook(lambda m, a, o, i=i, k=k: calls.append((i, k, torch.is_grad_enabled())))
            )

    saved = [0]

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[0] += t.numel() * t.element_size()
        return t

    choices = strategy.sample_gates(with_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = F.cross_entropy(net(x, choices), y)
    forward_calls = list(calls)
    n_edges = len(net.edge_modules())
    assert len(forward_calls) == n_edges and all(grad for _, _, grad in forward_calls)
    for i, k, _ in forward_calls:
        assert k == choices.per_cell["cell"][i % 6].active
    calls.clear()
    loss.backward()
    # the backward reruns both ops of each sampled pair, without autograd
    assert len(calls) == 2 * n_edges and not any(grad for _, _, grad in calls)
    for i, gate in enumerate(choices.per_cell["cell"] * (n_edges // 6)):
        assert sorted(k for j, k, _ in calls if j == i) == sorted(gate.candidates)
    proxyless_bytes = saved[0]

    saved[0] = 0
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        F.cross_entropy(net(x), y)
    for h in hooks:
        h.remove()
    print(f"\nsaved activations: proxyless {proxyless_bytes / 2**20:.2f} MB, DARTS {saved[0] / 2**20:.2f} MB")
    assert proxyless_bytes < 0.5 * saved[0]


def test_two_mode_keeps_the_probability_of_unsampled_ops() -> None:
    net, x, y = _net()
    strategy = _strategy(net, "two")
    strategy.begin_epoch(1, 1)
    for _ in range(3):
        before = net.op_weights()["cell"].detach().clone()
        rng_state = strategy.rng.bit_generator.state
        pairs = [b.candidates for b in strategy.sample_gates().per_cell["cell"]]
        strategy.rng.bit_generator.state = rng_state  # arch_step draws the same pairs
        strategy.arch_step((x, y), (x, y), 0.025)
        after = net.op_weights()["cell"].detach()
        for e, pair in enumerate(pairs):
            others = [k for k in range(5) if k not in pair]
            assert torch.allclose(after[e, others], before[e, others], atol=1e-12)
            assert not torch.allclose(after[e, list(pair)], before[e, list(pair)])


def test_latency_table_is_measured_and_the_loss_pushes_towards_cheap_ops() -> None:
    torch.manual_seed(0)
    net = NB201Supernet(10, (3, 16, 16), C=8, N=1)
    table = measure_latency_table(net, 10, (3, 16, 16), "cpu", batch_size=8, min_run_time=0.01, n_reference=1)
    ops = net.edge_ops["cell"][0]
    lat = table.per_edge["cell"][0]
    assert lat[ops.index("nor_conv_3x3")] > lat[ops.index("skip_connect")] >= 0
    assert table.base_ms > 0 and table.reference[0]["measured_ms"] > table.reference[0]["ops_ms"]
    # the expected latency of a one-hot distribution is the architecture's table latency
    arch = net.space.sample(np.random.default_rng(0))
    path = net.arch_to_path(arch)["cell"]
    onehot = F.one_hot(torch.tensor(path), 5).double()
    assert float(table.expected_ms({"cell": onehot})) == pytest.approx(table.arch_ms(net, arch))

    task = _task(32, 16)
    data = SearchData.from_task(task)
    target = max(1.5, float(table.expected_ms(net.op_weights()).detach()) / 2)
    strategy = ProxylessNas(net, data, 8, seed=0, latency_table=table, latency_target_ms=target, warmup_epochs=0)
    logits = net(data.x_val[:8], strategy.sample_gates(with_grad=False))
    loss = strategy.arch_loss(logits, data.y_val[:8])
    (grad,) = torch.autograd.grad(loss, [net.alpha_cell])
    factor = 0.2 * (math.log(float(table.expected_ms(net.op_weights()).detach())) / math.log(target)) ** 0.3
    assert float(loss.detach()) == pytest.approx(strategy.last_ce * factor, rel=1e-6)
    # a gradient step lowers the probability of the slowest op on every edge
    k = ops.index("nor_conv_3x3")
    assert all(float(grad[e, k]) > 0 for e in range(6))
    with pytest.raises(ValueError, match="latency_target_ms"):
        ProxylessNas(net, data, 8, seed=0, latency_table=table, latency_target_ms=1.0)


def test_search_is_seeded_and_derives_valid_cells_on_nb201_and_darts() -> None:
    task = _task()
    a = oneshot_search("proxyless", "nb201", task, 2, 8, seed=4, supernet_size={"C": 4, "N": 1}, device="cpu",
                       warmup_epochs=0, arch_every=1)  # fmt: skip
    b = oneshot_search("proxyless", "nb201", task, 2, 8, seed=4, supernet_size={"C": 4, "N": 1}, device="cpu",
                       warmup_epochs=0, arch_every=1)  # fmt: skip
    assert a.best_arch == b.best_arch and a.extra["alphas"] == b.extra["alphas"]
    assert a.best_arch.space == "nb201" and "none" not in a.best_arch.encoding
    c = oneshot_search("proxyless", "darts-s3", task, 1, 8, seed=4, supernet_size={"C": 4, "layers": 3},
                       device="cpu", warmup_epochs=0, arch_every=1, mode="full")  # fmt: skip
    assert c.best_arch.space == "darts-s3"
    DartsSupernet(10, (3, 8, 8), C=4, layers=3, space="darts-s3").arch_to_path(c.best_arch)  # expressible
    with pytest.raises(ValueError, match="mode"):
        oneshot_search("proxyless", "nb201", task, 1, 8, supernet_size={"C": 4, "N": 1}, mode="three")


def test_binary_gate_without_grad_runs_the_op_only() -> None:
    torch.manual_seed(0)
    net = NB201Supernet(10, (3, 8, 8), C=4, N=1)
    mixed = net.edge_modules()[0][2]
    x = torch.randn(2, 4, 8, 8)
    gate = BinaryGate([1, 3], 1, torch.tensor([0.0, 1.0]))
    assert torch.equal(gate(mixed, x), mixed.run(3, x))


def test_weight_step_draws_the_active_op_from_softmax_alpha_in_two_mode() -> None:
    """The reference trains the weights on one op drawn from softmax(alpha) over all candidates (its binary 'two'
    mode is on only in the arch step); drawing a pair first and then one of the pair sharpens the distribution
    (here op 0 would be trained 84 % of the time instead of 71 %)."""
    net, _, _ = _net()
    with torch.no_grad():
        net.alpha_cell.copy_(torch.tensor([[3.0, 1.0, 1.0, 0.5, 0.0]]).repeat(6, 1))
    p = net.alpha_cell[0].softmax(0)
    strategy = _strategy(net, "two")
    counts = np.zeros(5)
    for _ in range(400):
        path = strategy.weight_path().per_cell["cell"]
        assert all(isinstance(k, int) for k in path)
        counts += np.bincount(path, minlength=5)
    freq = counts / counts.sum()
    assert np.abs(freq - p.detach().numpy()).max() < 0.03  # 2,400 draws: sd of a frequency <= 0.01
