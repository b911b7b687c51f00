"""PC-DARTS: channel split and shuffle invariants, edge normalisation, warm-up, memory, derived cells, seeding."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from nasmeta.data.types import TaskData
from nasmeta.oneshot import oneshot_search
from nasmeta.oneshot.loop import SearchData
from nasmeta.oneshot.pcdarts import PartialMixedOp, PcDarts, channel_shuffle
from nasmeta.oneshot.supernet_darts import DartsSupernet
from nasmeta.oneshot.supernet_nb201 import NB201Supernet


def _task(n: int = 32, res: int = 8) -> TaskData:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, res, res, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    return TaskData("toy", "toy", x, y, x[:8], y[:8], x[:8], y[:8], 10)


def test_channel_shuffle_is_the_shufflenet_permutation() -> None:
    x = torch.arange(16.0).view(1, 16, 1, 1).expand(2, 16, 3, 3)
    out = channel_shuffle(x, 4)
    assert sorted(out[0, :, 0, 0].tolist()) == list(range(16))  # a permutation
    assert out[0, :, 0, 0].tolist()[:8] == [0, 4, 8, 12, 1, 5, 9, 13]
    assert torch.equal(out[:, ::4], x[:, :4])  # the op's quarter is spread to every 4th channel
    assert torch.equal(channel_shuffle(out, 16 // 4), x)  # shuffling with C/K groups undoes it
    with pytest.raises(ValueError, match="divisible"):
        channel_shuffle(torch.zeros(1, 6, 2, 2), 4)


@pytest.mark.parametrize("stride", [1, 2])
def test_only_a_quarter_of_the_channels_reaches_the_ops(stride: int) -> None:
    torch.manual_seed(0)
    net = DartsSupernet(10, (3, 8, 8), C=8, layers=3)
    template = next(m for _, _, m in net.edge_modules() if m.stride == stride)
    op = PartialMixedOp(template, 4)
    seen = []
    for o in op.ops:
        o.register_forward_pre_hook(lambda m, a: seen.append(a[0].shape[1]))
    c = template.c_in
    x = torch.randn(2, c, 8, 8)
    weights = torch.zeros(len(op.names))
    out = op(x, weights)  # zero op weights: only the bypass channels survive
    assert set(seen) == {c // 4} and out.shape == (2, c, 8 // stride, 8 // stride)
    bypass = x[:, c // 4 :] if stride == 1 else F.max_pool2d(x[:, c // 4 :], 2, 2)
    unshuffled = channel_shuffle(out, c // 4)
    assert torch.equal(unshuffled[:, c // 4 :], bypass) and torch.all(unshuffled[:, : c // 4] == 0)
    with pytest.raises(ValueError, match="divide"):
        PartialMixedOp(template, 3)


def test_edge_normalisation_and_warm_up() -> None:
    torch.manual_seed(0)
    net = DartsSupernet(10, (3, 8, 8), C=8, layers=3)
    task = _task()
    data = SearchData.from_task(task)
    strategy = PcDarts(net, data, 8, seed=0)  # warmup_epochs=None: 30 % of the epochs
    w = strategy.edge_weights()["normal"]
    for edges in net.node_edges["normal"]:
        assert float(w[list(edges)].sum().detach()) == pytest.approx(1.0)
    assert {n for n, _ in net.named_weights()}.isdisjoint({"beta_normal", "beta_reduce"})
    assert len(net.arch_parameters()) == 4
    before = [p.detach().clone() for p in net.arch_parameters()]
    strategy.begin_epoch(3, 10)  # warm-up: 3 of 10 epochs
    batch = (data.x_val[:8], data.y_val[:8])
    strategy.arch_step(batch, batch, 0.025)
    assert all(torch.equal(a, b) for a, b in zip(before, net.arch_parameters(), strict=True))
    strategy.begin_epoch(4, 10)
    strategy.arch_step(batch, batch, 0.025)
    assert all(not torch.equal(a, b) for a, b in zip(before, net.arch_parameters(), strict=True))


def test_derivation_ranks_edges_by_alpha_times_beta() -> None:
    torch.manual_seed(0)
    net = DartsSupernet(10, (3, 8, 8), C=8, layers=3)
    strategy = PcDarts(net, SearchData.from_task(_task()), 8, seed=0)
    with torch.no_grad():
        net.beta_normal.zero_()
        net.beta_normal[5] = 10.0  # node 4's edge from node 2 (edges of node 4: 5, 6, 7, 8)
        net.beta_normal[6] = 10.0
    genotype = strategy.current_arch()
    normal = genotype.encoding[0]
    assert sorted(j for _, j in normal[4:6]) == [0, 1]  # node 4 keeps inputs 0 and 1 = edges 5 and 6


def test_memory_of_the_partial_mixture_is_a_fraction_of_darts() -> None:
    """Saved activations of one mixture forward pass on the DARTS network (C=16, 5 cells, 16 px)."""
    x, y = torch.randn(8, 3, 16, 16), torch.randint(0, 10, (8,))

    def saved_bytes(method: str) -> int:
        torch.manual_seed(0)
        net = DartsSupernet(10, (3, 16, 16), C=16, layers=5)
        path = None
        if method == "pcdarts":
            path = PcDarts(net, SearchData(x, y, x, y, 10), 8, seed=0).choices()
        total = [0]

        def pack(t: torch.Tensor) -> torch.Tensor:
            total[0] += t.numel() * t.element_size()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            F.cross_entropy(net(x, path), y)
        return total[0]

    darts, pc = saved_bytes("darts"), saved_bytes("pcdarts")
    print(f"\nsaved activations: DARTS {darts / 2**20:.1f} MB, PC-DARTS {pc / 2**20:.1f} MB ({pc / darts:.2f}x)")
    assert pc < 0.4 * darts


def test_search_is_seeded_and_derives_valid_cells() -> None:
    task = _task()
    kwargs = {"supernet_size": {"C": 4, "N": 1}, "device": "cpu", "warmup_epochs": 1}
    a = oneshot_search("pcdarts", "nb201", task, 3, 8, seed=2, **kwargs)
    b = oneshot_search("pcdarts", "nb201", task, 3, 8, seed=2, **kwargs)
    assert (
        a.best_arch == b.best_arch and a.extra["alphas"] == b.extra["alphas"] and a.extra["betas"] == b.extra["betas"]
    )
    assert "none" not in a.best_arch.encoding and [r["arch_updates"] for r in a.trace[1:]] == [0.0, 1.0, 1.0]
    c = oneshot_search("pcdarts", "darts-s1", task, 1, 8, seed=2, supernet_size={"C": 8, "layers": 3},
                       device="cpu", warmup_epochs=0)  # fmt: skip
    assert c.best_arch.space == "darts-s1"
    with pytest.raises(ValueError, match="divide"):
        oneshot_search("pcdarts", "nb201", task, 1, 8, supernet_size={"C": 6, "N": 1}, device="cpu")
    assert isinstance(NB201Supernet(10, (3, 8, 8), C=4, N=1), NB201Supernet)
