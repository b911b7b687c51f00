"""ENAS: the controller's decisions and squashing, and a search whose entropy falls while its reward rises."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nasmeta.oneshot import oneshot_search
from nasmeta.oneshot.enas import Controller, EnasConfig
from nasmeta.oneshot.supernet_darts import DartsSupernet
from nasmeta.oneshot.supernet_nb201 import NB201Supernet


def _entropy(c: float, k: int, high: int = 1) -> float:
    """Entropy of softmax over k logits, ``high`` of them at +c and the rest at -c."""
    logits = torch.tensor([c] * high + [-c] * (k - high))
    p = logits.softmax(0)
    return float(-(p * p.log()).sum())


def _entropy_floor(c: float, k: int) -> float:
    """The least entropy logits squashed into [-c, c] allow: a vertex of the box (for c=0.44, k=5: two high)."""
    return min(_entropy(c, k, high) for high in range(1, k))


def test_op_logits_are_squashed_by_tanh_constant_over_op_reduce() -> None:
    torch.manual_seed(0)
    net = NB201Supernet(10, (3, 8, 8), C=4, N=1)
    controller = Controller(net)
    with torch.no_grad():  # saturate the op head: tanh pins the logits at +-(1.1 / 2.5)
        controller.op_head.weight.zero_()
        controller.op_head.bias.copy_(torch.tensor([100.0, -100.0, -100.0, -100.0, -100.0]))
    sample = controller.sample(torch.Generator().manual_seed(0))
    assert float(sample.entropy.detach()) == pytest.approx(6 * _entropy(1.1 / 2.5, 5), rel=1e-6)
    greedy = controller.sample(greedy=True)
    assert greedy.path == {"cell": (0,) * 6}
    p_max = math.exp(0.44) / (math.exp(0.44) + 4 * math.exp(-0.44))
    assert float(greedy.log_prob.detach()) == pytest.approx(6 * math.log(p_max), rel=1e-6)


def test_controller_samples_valid_darts_cells_without_none() -> None:
    torch.manual_seed(0)
    net = DartsSupernet(10, (3, 8, 8), C=4, layers=3)
    controller = Controller(net, EnasConfig(hidden=16))
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        sample = controller.sample(g)
        arch = net.path_to_arch(sample.path)  # validates two distinct inputs per node
        assert all(op != "none" for cell in arch.encoding for op, _ in cell)
        # 2 cells x 4 nodes x (2 inputs + 2 ops) decisions, each contributing a finite log-probability
        assert torch.isfinite(sample.log_prob) and float(sample.log_prob.detach()) < 0
    # input decisions use the full tanh constant: the attention logits saturate at +-1.1
    with torch.no_grad():
        controller.attn_v.weight.fill_(100.0)
    assert torch.isfinite(controller.sample(g).entropy)


def test_enas_entropy_falls_and_reward_rises_over_the_search() -> None:
    """NB201 supernet (C=4, N=1) on scikit-learn's digits (500 images, 8x8): 6 epochs, 10 controller steps of 5
    samples each per epoch."""
    from nasmeta.data.tasks import get_task

    task = get_task("digits").with_(samples_per_class=50, test_per_class=10).load()
    result = oneshot_search(
        "enas",
        "nb201",
        task,
        epochs=6,
        batch_size=32,
        seed=0,
        supernet_size={"C": 4, "N": 1},
        device="cpu",
        controller_steps=10,
        num_aggregate=5,
        trace_samples=50,
    )
    entropy = [row["entropy"] for row in result.trace]
    reward = [row["reward_mean"] for row in result.trace[1:]]
    print(f"\nENAS policy entropy per epoch: {[round(h, 3) for h in entropy]}")
    print(f"ENAS mean reward per epoch: {[round(r, 3) for r in reward]}; found {result.best_arch}")
    # uniform policy at the start (6 decisions over 5 ops), never below the floor of the tanh squash
    assert entropy[0] == pytest.approx(6 * math.log(5), abs=0.01)
    assert min(entropy) >= 6 * _entropy_floor(0.44, 5) - 1e-6
    assert entropy[-1] < entropy[0] - 0.1
    assert np.mean(reward[-2:]) > np.mean(reward[:2]) + 0.02
    # the final pick is the best of the scored controller samples
    assert len(result.history) == 10 and result.best_arch == max(result.history, key=lambda e: e.val_acc).arch
    # op frequencies of the policy per edge sum to one on NB201 (every edge is present)
    for ops in result.trace[-1]["op_weights"]["cell"].values():
        assert sum(ops.values()) == pytest.approx(1.0)
