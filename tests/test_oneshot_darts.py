"""DARTS: the second-order hypergradient against exact autograd, the skip-connection collapse on NB201, runs."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

from nasmeta.data.types import TaskData
from nasmeta.oneshot import oneshot_search
from nasmeta.oneshot.darts import unrolled_hypergradient
from nasmeta.oneshot.supernet_nb201 import NB201Supernet


def _relu_to_softplus(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.ReLU):
            setattr(module, name, nn.Softplus())
        else:
            _relu_to_softplus(child)


def _tiny_problem(smooth: bool):
    torch.manual_seed(0)
    # alphas away from uniform so that the second-order term is a sizeable part of the gradient
    net = NB201Supernet(10, (3, 8, 8), C=4, N=1, alpha_init_std=0.5).double()
    if smooth:
        _relu_to_softplus(net)
    g = torch.Generator().manual_seed(1)
    train = (torch.randn(16, 3, 8, 8, generator=g, dtype=torch.float64), torch.randint(0, 10, (16,), generator=g))
    val = (torch.randn(16, 3, 8, 8, generator=g, dtype=torch.float64), torch.randint(0, 10, (16,), generator=g))
    return net, train, val


def _exact_unrolled_gradient(net: NB201Supernet, train, val, xi: float) -> tuple[torch.Tensor, torch.Tensor]:
    """d/d alpha of L_val(w - xi * grad_w L_train(w, alpha), alpha), differentiated through the inner gradient;
    also the first-order part (alpha-gradient at fixed unrolled weights)."""
    weights = {n: p.detach().clone().requires_grad_(True) for n, p in net.named_weights()}
    (alpha,) = net.arch_parameters()
    loss_train = F.cross_entropy(functional_call(net, weights, (train[0],)), train[1])
    grads = torch.autograd.grad(loss_train, list(weights.values()), create_graph=True, allow_unused=True)
    unrolled = {n: w if g is None else w - xi * g for (n, w), g in zip(weights.items(), grads, strict=True)}
    loss_val = F.cross_entropy(functional_call(net, unrolled, (val[0],)), val[1])
    (exact,) = torch.autograd.grad(loss_val, [alpha])
    fixed = {n: w.detach() for n, w in unrolled.items()}
    (first,) = torch.autograd.grad(F.cross_entropy(functional_call(net, fixed, (val[0],)), val[1]), [alpha])
    return exact, first


def test_second_order_hypergradient_matches_exact_autograd() -> None:
    """Published eps = 0.01 / ||grad||, on a smooth (softplus) tiny supernet in float64: relative error < 1e-3;
    shrinking eps shrinks the error quadratically, so the finite difference is the only approximation."""
    net, train, val = _tiny_problem(smooth=True)
    xi = 0.025
    exact, first = _exact_unrolled_gradient(net, train, val, xi)
    second = exact - first
    assert second.norm() > 0.1 * exact.norm()  # the second-order term matters here

    def rel_error(eps_scale: float) -> float:
        (ours,) = unrolled_hypergradient(net, train, val, xi, eps_scale=eps_scale)
        return float((ours - exact).norm() / exact.norm())

    published, smaller, tiny = rel_error(0.01), rel_error(0.001), rel_error(1e-4)
    print(
        f"\nsecond-order hypergradient vs exact: relative error {published:.2e} at eps=0.01/||g|| "
        f"({smaller:.2e} at 0.001, {tiny:.2e} at 1e-4); second-order term {second.norm() / exact.norm():.1%}"
    )
    assert published < 1e-3
    assert smaller < published / 50 and tiny < 1e-6


def test_finite_difference_converges_on_the_relu_supernet() -> None:
    """With ReLUs the alpha-gradient is piecewise smooth in w: a small eps stays on one piece and the
    finite-difference Hessian-vector product equals the exact one."""
    net, train, val = _tiny_problem(smooth=False)
    xi = 0.025
    exact, first = _exact_unrolled_gradient(net, train, val, xi)
    (ours,) = unrolled_hypergradient(net, train, val, xi, eps_scale=1e-5)
    assert float(((ours - first) - (exact - first)).norm() / (exact - first).norm()) < 1e-4
    with pytest.raises(ValueError, match="eps_scale"):
        unrolled_hypergradient(net, train, val, xi, eps_scale=0.0)


def test_first_order_darts_collapses_towards_skip_connections_on_nb201(data_dir) -> None:
    """NB201 + CIFAR-10 subset (1,000 images at 8x8, C=4, N=1, 12 epochs of 15 steps): the skip share of
    softmax(alpha) rises epoch after epoch once the weights have trained a few epochs.  At this scale the rise is
    small (alphas move ~3e-4 per Adam step) and seed-dependent (seeds 0-2 rise, seed 3 stays flat).  Larger
    (2,000 images at 16x16, C=8, 40 epochs, ``nasmeta search oneshot ... --samples-per-class 200 --resolution 16
    --size C=8 --size N=1 --epochs 40``) the share climbs 0.200 -> 0.230 and the derived cell is the all-skip
    cell, 54.30 % in the NB201 table: the published DARTS collapse."""
    from nasmeta.data.benchmarks import nb201_accuracy
    from nasmeta.data.tasks import get_task

    task = get_task("cifar10").with_(samples_per_class=100, test_per_class=10, resolution=8).load()
    result = oneshot_search(
        "darts", "nb201", task, epochs=12, batch_size=32, seed=0, supernet_size={"C": 4, "N": 1}, device="cpu"
    )
    share = [row["skip_share"] for row in result.trace]
    table = nb201_accuracy(result.best_arch, "cifar10", 200, "test")
    print(f"\nskip share per epoch: {[round(s, 4) for s in share]}")
    print(f"derived cell {result.best_arch}: NB201 cifar10 test accuracy {table:.2f} %")
    assert share[-1] > share[0] + 1e-3
    assert all(b > a for a, b in zip(share[-6:], share[-5:], strict=False))  # rising over the last 5 epochs
    assert result.extra["alphas"]["cell"] and len(result.trace) == 13
    assert 0.0 < table <= 94.37


def _toy_task(n: int = 32) -> TaskData:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, 8, 8, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    return TaskData("toy", "toy", x, y, x[:8], y[:8], x[:8], y[:8], 10)


def test_second_order_search_runs_on_a_darts_space_and_is_deterministic() -> None:
    task = _toy_task()
    kwargs = {"supernet_size": {"C": 4, "layers": 2}, "device": "cpu", "order": 2}
    a = oneshot_search("darts", "darts-s2", task, epochs=1, batch_size=8, seed=5, **kwargs)
    b = oneshot_search("darts", "darts-s2", task, epochs=1, batch_size=8, seed=5, **kwargs)
    assert a.best_arch.space == "darts-s2" and a.best_arch == b.best_arch
    assert a.extra["alphas"] == b.extra["alphas"]
    assert a.extra["method_config"]["order"] == 2
    # the architecture moved away from its 1e-3 * randn start
    torch.manual_seed(5)
    from nasmeta.oneshot import build_supernet

    start = build_supernet("darts-s2", 10, (3, 8, 8), C=4, layers=2)
    assert not torch.allclose(start.alpha_normal, torch.tensor(a.extra["alphas"]["normal"]))
    rows = [{k: v for k, v in r.items() if "seconds" not in k} for r in a.trace]
    assert rows == [{k: v for k, v in r.items() if "seconds" not in k} for r in b.trace]
