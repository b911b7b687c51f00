"""RobustDARTS: power-iteration eigenvalue vs the explicit Hessian, smoothing, early stop with roll-back, DARTS-ADA."""

from __future__ import annotations

import pytest
import torch
from oneshot_toys import toy_task as _task
from torch.nn import functional as F

from nasmeta.oneshot import oneshot_search
from nasmeta.oneshot.loop import SearchData
from nasmeta.oneshot.robust_darts import RobustDarts, dominant_eigenvalue, smoothed
from nasmeta.oneshot.supernet import Choices
from nasmeta.oneshot.supernet_nb201 import NB201Supernet


def test_power_iteration_on_a_quadratic() -> None:
    a = torch.tensor([[2.0, 1.0, 0.0], [1.0, 3.0, 0.5], [0.0, 0.5, -1.0]], dtype=torch.float64)
    x = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    value = dominant_eigenvalue(lambda: 0.5 * x @ a @ x + x.sum(), [x], 200, 1e-12, torch.Generator().manual_seed(0))
    assert value == pytest.approx(float(torch.linalg.eigvalsh(a).abs().max()), rel=1e-8)
    with pytest.raises(ValueError, match="does not depend"):
        dominant_eigenvalue(lambda: (x * 0).sum() + torch.ones(()), [torch.zeros(2, requires_grad=True)])


def test_power_iteration_matches_the_explicit_hessian_of_the_supernet_loss() -> None:
    torch.manual_seed(0)
    net = NB201Supernet(10, (3, 8, 8), C=4, N=1, alpha_init_std=1.0).double()
    x, y = torch.randn(16, 3, 8, 8, dtype=torch.float64), torch.randint(0, 10, (16,))
    strategy = RobustDarts(net, SearchData(x, y, x, y, 10), 16, 0, power_iters=500, power_tol=1e-10, hessian_samples=16)
    ours = strategy.hessian_eigenvalue()

    def loss(flat: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(net(x, Choices({"cell": tuple(flat.view(6, 5).softmax(-1).unbind(0))})), y)

    hessian = torch.autograd.functional.hessian(loss, net.alpha_cell.detach().reshape(-1))
    eigs = torch.linalg.eigvalsh(hessian)
    assert ours == pytest.approx(float(eigs[eigs.abs().argmax()]), rel=1e-4)


def test_smoothing_window() -> None:
    assert smoothed([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 5) == pytest.approx(4.0)
    assert smoothed([3.0], 5) == 3.0
    with pytest.raises(ValueError):
        smoothed([], 5)


def _scripted(monkeypatch: pytest.MonkeyPatch, values: list[float]) -> None:
    it = iter(values)
    monkeypatch.setattr(RobustDarts, "hessian_eigenvalue", lambda self: next(it))


def test_early_stop_rolls_back_to_epoch_i_minus_k(monkeypatch: pytest.MonkeyPatch) -> None:
    # 5-epoch means: 1, 1, 1, 1, 1, then (1+1+1+1+10)/5 = 2.8 at epoch 6: 1 / 2.8 < 0.75 -> stop, back to epoch 1
    _scripted(monkeypatch, [1.0] * 5 + [10.0] + [1.0] * 10)
    size = {"C": 4, "N": 1}
    result = oneshot_search("robust-darts", "nb201", _task(), 8, 8, seed=0, supernet_size=size, device="cpu")
    assert len(result.trace) - 1 == 6 and result.trace[-1]["stopped"] == 1.0
    assert result.trace[-1]["eig_ratio"] == pytest.approx(1 / 2.8)
    assert result.trace[-1]["rolled_back_to"] == 1.0
    assert result.trace[-1]["op_weights"] == result.trace[1]["op_weights"] != result.trace[5]["op_weights"]
    assert result.trace[-1]["arch"] == result.trace[1]["arch"] == str(result.best_arch)
    assert result.extra["triggers"] == [{"epoch": 6.0, "rolled_back_to": 1.0, "ratio": pytest.approx(1 / 2.8)}]
    # ratio 0.75 exactly does not fire (strictly below)
    _scripted(monkeypatch, [3.0] * 5 + [3.0 + 5 * (4.0 - 3.0)] + [100.0] * 10)  # mean at epoch 6: 4 -> ratio 0.75
    calm = oneshot_search("robust-darts", "nb201", _task(), 6, 8, seed=0, supernet_size=size, device="cpu")
    assert len(calm.trace) == 7 and "stopped" not in calm.trace[-1]
    assert calm.trace[-1]["eig_ratio"] == pytest.approx(0.75)


def test_darts_ada_raises_weight_decay_and_continues(monkeypatch: pytest.MonkeyPatch) -> None:
    _scripted(monkeypatch, [1.0] * 5 + [10.0] + [1.0] * 10)
    size = {"C": 4, "N": 1}
    seen: list[float] = []
    original = torch.optim.SGD.step

    def spy(self, closure=None):  # noqa: ANN001, ANN202
        seen.append(self.param_groups[0]["weight_decay"])
        return original(self, closure)

    monkeypatch.setattr(torch.optim.SGD, "step", spy)
    result = oneshot_search("darts-ada", "nb201", _task(), 8, 8, seed=0, supernet_size=size, device="cpu")
    assert len(result.trace) - 1 == 8 and "stopped" not in result.trace[-1]
    assert result.trace[6]["rolled_back_to"] == 1.0
    assert result.trace[6]["op_weights"] == result.trace[1]["op_weights"]
    assert [r["weight_decay_scale"] for r in result.trace[1:]] == [1.0] * 6 + [3.0, 3.0]
    steps = len(seen) // 8
    assert seen[: 6 * steps] == pytest.approx([3e-4] * 6 * steps) and seen[6 * steps :] == pytest.approx(
        [9e-4] * 2 * steps
    )
    assert result.extra["weight_decay_scale"] == 3.0 and not result.extra["stopped_early"]


def test_darts_ada_fires_again_after_a_restart_and_rolls_back_to_the_restart_epoch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # fires at epoch 6 (back to 1, wd x3); after the restart the history is [1, 7, 8, ...]: the rule compares epoch
    # 11 with epoch 1 again (2.8 / 1), fires, and rolls back to 1 a second time (wd x9). Longer searches used to
    # fail here: the snapshot of the restart epoch had been dropped by loop epoch.
    _scripted(monkeypatch, [1.0] * 5 + [10.0] + [1.0] * 4 + [10.0] + [1.0] * 10)
    size = {"C": 4, "N": 1}
    result = oneshot_search("darts-ada", "nb201", _task(), 12, 8, seed=0, supernet_size=size, device="cpu")
    assert len(result.trace) - 1 == 12 and "stopped" not in result.trace[-1]
    assert [r.get("rolled_back_to") for r in result.trace[1:]] == [None] * 5 + [1.0] + [None] * 4 + [1.0, None]
    assert result.trace[11]["op_weights"] == result.trace[1]["op_weights"] != result.trace[10]["op_weights"]
    assert [r["weight_decay_scale"] for r in result.trace[1:]] == [1.0] * 6 + [3.0] * 5 + [9.0]
    assert [t["epoch"] for t in result.extra["triggers"]] == [6.0, 11.0]


@pytest.mark.parametrize(("space", "size"), [("nb201", {"C": 4, "N": 1}), ("darts-s2", {"C": 4, "layers": 2})])
def test_runs_through_oneshot_search_with_the_real_eigenvalue(space: str, size: dict[str, int]) -> None:
    task = _task()
    kw = {"power_iters": 5, "hessian_samples": 8}
    runs = [oneshot_search("robust-darts", space, task, 2, 8, seed=0, supernet_size=size, device="cpu", **kw)]
    runs.append(oneshot_search("robust-darts", space, task, 2, 8, seed=0, supernet_size=size, device="cpu", **kw))
    eigs = [r["hessian_eig"] for r in runs[0].trace[1:]]
    assert eigs == [r["hessian_eig"] for r in runs[1].trace[1:]] and all(e == e for e in eigs)
    assert runs[0].trace[-1]["hessian_eig_smooth"] == pytest.approx(sum(eigs) / 2)
    plain = oneshot_search("darts", space, task, 2, 8, seed=0, supernet_size=size, device="cpu")
    assert str(plain.best_arch) == str(runs[0].best_arch)  # tracking lambda does not change the DARTS search
