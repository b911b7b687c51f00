"""DARTS-PT: the decision schedule, perturbation-based op and edge selection, fixed uniform alpha, full runs."""

from __future__ import annotations

import pytest
import torch
from oneshot_toys import toy_search_data as _data
from oneshot_toys import toy_task as _task

from nasmeta.oneshot import oneshot_search
from nasmeta.oneshot.darts_pt import DartsPt, decision_epochs
from nasmeta.oneshot.loop import SearchData
from nasmeta.oneshot.supernet import Choices
from nasmeta.oneshot.supernet_darts import DartsSupernet
from nasmeta.oneshot.supernet_nb201 import NB201Supernet
from nasmeta.spaces.nb201 import OPS


def test_decision_schedule() -> None:
    # published NB201: 50 supernet epochs, then 6 edges with 5 tuning epochs between decisions
    assert decision_epochs(75, 6, 5) == [50, 55, 60, 65, 70, 75]
    # too short for that: the first half trains, the decisions are spread over the rest
    assert decision_epochs(8, 6, 5) == [4, 5, 6, 6, 7, 8]
    assert decision_epochs(1, 3, 5) == [1, 1, 1]
    assert decision_epochs(4, 2, 0) == [4, 4]
    with pytest.raises(ValueError):
        decision_epochs(0, 3, 5)


def test_picks_the_op_whose_removal_hurts_most() -> None:
    torch.manual_seed(0)
    net = NB201Supernet(10, (3, 8, 8), C=4, N=1, alpha_init_std=0.3)
    strategy = DartsPt(net, _data(), 4, 0)
    mixture = net.op_weights()["cell"].detach()
    # constructed supernet accuracies: removing nor_conv_1x1 on edge 2 costs the most, none is never a candidate
    acc_without = {"skip_connect": 60.0, "nor_conv_1x1": 20.0, "nor_conv_3x3": 40.0, "avg_pool_3x3": 55.0}
    seen: list[str] = []

    def accuracy(choices: Choices) -> float:
        row = choices.per_cell["cell"]
        w = row[2]
        assert all(torch.equal(row[e], mixture[e]) for e in range(6) if e != 2)  # the other edges untouched
        zeroed = [k for k in range(5) if float(w[k]) == 0.0 and float(mixture[2, k]) != 0.0]
        assert len(zeroed) == 1 and torch.equal(w[[k for k in range(5) if k != zeroed[0]]],
                                                mixture[2, [k for k in range(5) if k != zeroed[0]]])  # fmt: skip
        seen.append(OPS[zeroed[0]])
        return acc_without[OPS[zeroed[0]]]

    strategy.accuracy = accuracy  # type: ignore[method-assign]
    assert OPS[strategy.select_op("cell", 2)] == "nor_conv_1x1"
    assert sorted(seen) == sorted(acc_without) and strategy.decided["cell"][2] == OPS.index("nor_conv_1x1")
    # the decided edge now runs its op alone in every later evaluation
    assert strategy.choices().per_cell["cell"][2] == OPS.index("nor_conv_1x1")


def test_topology_keeps_the_two_edges_whose_removal_hurts_most() -> None:
    torch.manual_seed(0)
    net = DartsSupernet(10, (3, 8, 8), C=4, layers=2, space="darts-s2")
    strategy = DartsPt(net, _data(), 4, 0)
    node = 3  # node 5 of the cell: edges 9..13 from inputs 0..4
    incoming = net.node_edges["normal"][node]
    hurt = dict(zip(incoming, [50.0, 10.0, 45.0, 30.0, 60.0], strict=True))

    def accuracy(choices: Choices) -> float:
        missing = [e for e in incoming if choices.per_cell["normal"][e] is None]
        assert len(missing) == 1
        return hurt[missing[0]]

    strategy.accuracy = accuracy  # type: ignore[method-assign]
    assert sorted(strategy.select_edges("normal", node)) == [incoming[1], incoming[3]]
    assert strategy.removed["normal"] == {incoming[0], incoming[2], incoming[4]}


def test_a_real_supernet_picks_the_op_that_carries_the_signal() -> None:
    # every edge but 0 (1<-0) is fixed to none except the path 1 -> 3 (skip); on edge 0 only nor_conv_3x3 can
    # pass the input (the other candidates are zero or near-constant after BN of a constant input)
    torch.manual_seed(0)
    net = NB201Supernet(4, (3, 8, 8), C=4, N=1)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, 8, 8, generator=g)
    y = (x[:, 0].mean(dim=(1, 2)) > 0).long() * 2  # a label the input decides
    strategy = DartsPt(net, SearchData(x, y, x, y, 4), 64, 0)
    strategy.decided["cell"] = [None, 0, 0, 0, 1, 0]  # 2<-0, 2<-1, 3<-0 none; 3<-1 skip; 3<-2 none
    opt = torch.optim.SGD(net.weights(), lr=0.05, momentum=0.9)
    for _ in range(60):  # train the supernet through the mixture on edge 0
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x, strategy.choices()), y).backward()
        opt.step()
    pick = strategy.select_op("cell", 0)
    scores = strategy.log[-1]["acc_without"]
    assert min(scores, key=scores.get) == OPS[pick]
    assert scores[OPS[pick]] < max(scores.values())


@pytest.mark.parametrize(("space", "size"), [("nb201", {"C": 4, "N": 1}), ("darts-s2", {"C": 4, "layers": 2})])
def test_runs_through_oneshot_search(space: str, size: dict[str, int]) -> None:
    task = _task()
    trained = oneshot_search("darts-pt", space, task, 3, 8, seed=0, supernet_size=size, device="cpu", tune_epochs=1)
    fixed = oneshot_search("darts-pt-fixed", space, task, 3, 8, seed=0, supernet_size=size, device="cpu", tune_epochs=1)
    n = 6 if space == "nb201" else 28 + 6
    for result in (trained, fixed):
        assert result.trace[-1]["decisions_done"] == n and len(result.extra["selections"]) == n
    assert all(v == 0.0 for row in fixed.extra["alphas"]["cell" if space == "nb201" else "normal"] for v in row)
    assert any(v != 0.0 for row in trained.extra["alphas"]["cell" if space == "nb201" else "normal"] for v in row)
    again = oneshot_search("darts-pt", space, task, 3, 8, seed=0, supernet_size=size, device="cpu", tune_epochs=1)
    assert str(again.best_arch) == str(trained.best_arch)
