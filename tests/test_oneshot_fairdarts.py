"""FairDARTS: the zero-one loss, sigmoid op weights, threshold discretisation with at most 2 inputs per node."""

from __future__ import annotations

import math

import pytest
import torch
from oneshot_toys import toy_task as _task
from torch.nn import functional as F

from nasmeta.oneshot import oneshot_search
from nasmeta.oneshot.fairdarts import FairDarts, threshold_edges, zero_one_loss
from nasmeta.oneshot.loop import SearchData
from nasmeta.oneshot.supernet_darts import DartsSupernet
from nasmeta.oneshot.supernet_nb201 import NB201Supernet
from nasmeta.spaces.nb201 import OPS


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def test_zero_one_loss_on_known_alphas() -> None:
    # sigmoid = 0.5, 0.75, 0.9, 0.1 -> squared distances 0, 0.0625, 0.16, 0.16
    a = torch.tensor([[0.0, _logit(0.75)], [_logit(0.9), _logit(0.1)]])
    assert float(zero_one_loss([a])) == pytest.approx(-(0 + 0.0625 + 0.16 + 0.16) / 4)
    # the mean runs over every entry of every tensor, not per tensor
    assert float(zero_one_loss([a[:1], a[1:]])) == pytest.approx(float(zero_one_loss([a])))
    # its gradient pushes sigmoids away from 0.5: d/dalpha = -2 (s - 0.5) s (1 - s) / n
    x = torch.tensor([_logit(0.75)], requires_grad=True)
    (g,) = torch.autograd.grad(zero_one_loss([x]), [x])
    assert float(g) == pytest.approx(-2 * 0.25 * 0.75 * 0.25)
    with pytest.raises(ValueError, match="at least one"):
        zero_one_loss([])


def test_threshold_discretisation_keeps_at_most_two_inputs() -> None:
    net = NB201Supernet(10, (3, 8, 8), C=4, N=1)
    w = torch.full((6, 5), 0.2)
    # edges (dst<-src): 0: 1<-0, 1: 2<-0, 2: 2<-1, 3: 3<-0, 4: 3<-1, 5: 3<-2
    w[0, OPS.index("nor_conv_3x3")] = 0.9
    w[1, OPS.index("skip_connect")] = 0.84  # below 0.85: dropped
    w[2, OPS.index("avg_pool_3x3")] = 0.86
    w[3, OPS.index("nor_conv_1x1")] = 0.95
    w[4, OPS.index("nor_conv_3x3")] = 0.97
    w[5, OPS.index("skip_connect")] = 0.90  # third input of node 3 above threshold: the weakest one goes
    w[:, OPS.index("none")] = 0.99  # none is never a kept op
    picks = threshold_edges(w, net.edge_ops["cell"], net.node_edges["cell"], 0.85, 2)
    assert [None if k is None else OPS[k] for k in picks] == [
        "nor_conv_3x3",
        None,
        "avg_pool_3x3",
        "nor_conv_1x1",
        "nor_conv_3x3",
        None,
    ]
    strategy = FairDarts(net, SearchData(*(torch.zeros(2, 3, 8, 8), torch.zeros(2, dtype=torch.long)) * 2, 10), 2, 0)
    with torch.no_grad():
        net.alpha_cell.copy_(torch.logit(w))
    assert (
        str(strategy.current_arch())
        == "|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|nor_conv_1x1~0|nor_conv_3x3~1|none~2|"
    )
    assert torch.allclose(strategy.op_weights()["cell"], w)  # sigmoid(alpha), rows need not sum to 1


def test_darts_space_keeps_two_edges_by_sigmoid_weight() -> None:
    torch.manual_seed(0)
    net = DartsSupernet(10, (3, 8, 8), C=4, layers=2, space="darts-s2")
    strategy = FairDarts(net, SearchData(*(torch.zeros(2, 3, 8, 8), torch.zeros(2, dtype=torch.long)) * 2, 10), 2, 0)
    with torch.no_grad():
        net.alpha_normal.fill_(-3.0)
        net.alpha_normal[0, 1] = 3.0  # 2<-0 sep_conv_3x3
        net.alpha_normal[1, 0] = 2.0  # 2<-1 skip
        net.alpha_normal[3, 1] = 1.0  # 3<-1 sep
        net.alpha_normal[4, 0] = 0.5  # 3<-2 skip
    normal = strategy.current_arch().encoding[0]
    assert normal[:4] == (("sep_conv_3x3", 0), ("skip_connect", 1), ("sep_conv_3x3", 1), ("skip_connect", 2))
    assert len(normal) == 8  # the genotype keeps exactly 2 inputs per node


def test_arch_step_adds_the_weighted_zero_one_loss() -> None:
    torch.manual_seed(0)
    net = NB201Supernet(10, (3, 8, 8), C=4, N=1, alpha_init_std=0.5).double()
    x, y = torch.randn(8, 3, 8, 8, dtype=torch.float64), torch.randint(0, 10, (8,))
    strategy = FairDarts(net, SearchData(x, y, x, y, 10), 8, 0, arch_lr=0.1)
    before = net.alpha_cell.detach().clone()
    ce = F.cross_entropy(net(x, strategy.choices()), y)
    (expected,) = torch.autograd.grad(ce + 10 * zero_one_loss([net.alpha_cell]), [net.alpha_cell])
    strategy.arch_step((x, y), (x, y), 0.025)
    # Adam's first step moves every entry by lr * sign(grad) (up to eps)
    step = net.alpha_cell.detach() - before
    assert torch.allclose(step, -0.1 * expected.sign(), atol=1e-6)


@pytest.mark.parametrize(("space", "size"), [("nb201", {"C": 4, "N": 1}), ("darts-s2", {"C": 4, "layers": 2})])
def test_runs_through_oneshot_search_seeded(space: str, size: dict[str, int]) -> None:
    task = _task()
    runs = [oneshot_search("fairdarts", space, task, 2, 8, seed=1, supernet_size=size, device="cpu") for _ in range(2)]
    assert str(runs[0].best_arch) == str(runs[1].best_arch)
    assert runs[0].extra["alphas"] == runs[1].extra["alphas"]
    row = runs[0].trace[-1]
    assert {"zero_one_loss", "share_above_threshold", "skip_share"} <= set(row)
    with pytest.raises(ValueError, match="threshold"):
        oneshot_search("fairdarts", space, task, 1, 8, supernet_size=size, device="cpu", threshold=1.5)
