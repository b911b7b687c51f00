"""ASAP: annealing schedule, annealed weights, pruning below the threshold, pruned ops not run, derived cells."""

from __future__ import annotations

import pytest
import torch
from oneshot_toys import toy_task as _task

from nasmeta.oneshot import oneshot_search
from nasmeta.oneshot.asap import Asap, asap_temperature, prune_below
from nasmeta.oneshot.loop import SearchData
from nasmeta.oneshot.supernet_nb201 import NB201Supernet
from nasmeta.spaces.nb201 import OPS


def test_temperature_schedule() -> None:
    assert [asap_temperature(e) for e in (1, 2, 3)] == pytest.approx([1.6, 1.52, 1.444])
    assert asap_temperature(50) == pytest.approx(1.6 * 0.95**49)
    with pytest.raises(ValueError, match="epoch"):
        asap_temperature(0)


def test_pruning_removes_ops_below_threshold() -> None:
    ops = [OPS] * 2
    # threshold 0.4 / 5 = 0.08
    w = torch.tensor([[0.05, 0.30, 0.079, 0.081, 0.49], [0.9, 0.01, 0.02, 0.03, 0.04]])
    mask = torch.ones(2, 5, dtype=torch.bool)
    new = prune_below(w, mask, ops, 0.4)
    assert new[0].tolist() == [False, True, False, True, True]  # 0.05 and 0.079 fall, 0.081 stays
    # edge 1: every non-none op is below; the strongest of them (avg_pool, 0.04) is kept all the same (a cell edge
    # needs a real op to derive), none (0.9) stays on its weight
    assert new[1].tolist() == [True, False, False, False, True]
    again = prune_below(w, new, ops, 0.4)
    assert torch.equal(again, new)  # idempotent, pruned ops stay pruned


def test_annealed_weights_pruned_ops_not_run_and_derivation() -> None:
    torch.manual_seed(0)
    net = NB201Supernet(10, (3, 8, 8), C=4, N=1)
    x, y = torch.randn(8, 3, 8, 8), torch.randint(0, 10, (8,))
    strategy = Asap(net, SearchData(x, y, x, y, 10), 8, 0, grace_epochs=1)
    with torch.no_grad():
        net.alpha_cell.copy_(torch.tensor([[0.0, 0.0, 0.0, 3.0, -3.0]] * 6))
    strategy.begin_epoch(3, 5)
    assert strategy.T == pytest.approx(1.444)
    assert torch.allclose(strategy.op_weights()["cell"], (net.alpha_cell / 1.444).softmax(-1))
    strategy.end_epoch(1)  # within the grace period: no pruning
    assert bool(strategy.masks["cell"].all())
    strategy.end_epoch(2)
    # weights at T=1.444: exp(-3/1.444) / Z = 0.0018 < 0.08: avg_pool is pruned on every edge, the rest stays
    assert strategy.masks["cell"].sum().item() == 6 * 4 and not bool(strategy.masks["cell"][:, 4].any())
    assert float(strategy.op_weights()["cell"][:, 4].abs().max()) == 0.0
    calls: list[int] = []
    for _, _, mixed in net.edge_modules():
        for k, op in enumerate(mixed.ops):
            op.register_forward_hook(lambda m, a, o, k=k: calls.append(k))
    net(x, strategy.choices())
    assert 4 not in calls and 0 not in calls  # pruned avg_pool and the zero op are never computed
    assert (
        str(strategy.current_arch())
        == "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    )


@pytest.mark.parametrize(("space", "size"), [("nb201", {"C": 4, "N": 1}), ("darts-s2", {"C": 4, "layers": 2})])
def test_runs_through_oneshot_search_seeded(space: str, size: dict[str, int]) -> None:
    task = _task()
    runs = [oneshot_search("asap", space, task, 3, 8, seed=3, supernet_size=size, device="cpu") for _ in range(2)]
    assert str(runs[0].best_arch) == str(runs[1].best_arch)
    assert runs[0].extra["alphas"] == runs[1].extra["alphas"]
    assert [r["temperature"] for r in runs[0].trace[1:]] == pytest.approx([1.6, 1.52, 1.444])
