"""MAML over the parameters of a network, with the inner loop as a pure function of the parameters.

Finn, Abbeel & Levine, "Model-Agnostic Meta-Learning for Fast Adaptation of Deep Networks", ICML 2017: for each
task of a meta-batch, ``steps`` SGD steps on the support loss from the meta-parameters theta give theta'; the
outer update moves theta along the mean query-loss gradient at theta' (Adam).  Second order differentiates
through the inner steps (``create_graph=True``); first order (FOMAML) treats the inner gradients as constants, so
the outer gradient is the query gradient at theta' applied to theta.

The inner loop runs the network through ``torch.func.functional_call`` with a dict of (adapted) tensors, so the
same module serves every task.  It updates *groups* of parameters in turn, each with its own learning rate:
MAML has one group (all weights); T-NAS (:mod:`nasmeta.transfer.tnas`) has two, the architecture parameters
alpha and the weights w, updated alternately in every step.

Published Omniglot settings (METHODS.md): inner lr 0.4, 1 inner step at meta-training and 3 at meta-test,
meta-batch 32, Adam 1e-3.  Deviations: BN always uses batch statistics (as MAML's code at test time); the
meta-batch, iterations and network width are whatever the caller sets (see the few-shot CLI for the sizes run).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch.func import functional_call

from nasmeta.fewshot.episodes import Episode, EpisodeSampler

Params = dict[str, torch.Tensor]
#: one inner-loop group: (parameter names, learning rate)
Group = tuple[Sequence[str], float]


class MAMLConfig(BaseModel):
    """Meta-learning hyperparameters (published Omniglot MAML values as defaults)."""

    model_config = ConfigDict(frozen=True)

    inner_lr: float = Field(0.4, gt=0)
    inner_steps: int = Field(1, ge=1)
    test_steps: int = Field(3, ge=1)
    meta_batch: int = Field(32, ge=1)
    meta_lr: float = Field(1e-3, gt=0)
    first_order: bool = False
    iterations: int = Field(1000, ge=0)


def clone_params(model: nn.Module, names: Sequence[str] | None = None) -> Params:
    """Detached copies of ``model``'s parameters that require grad (a fresh starting point for adaptation)."""
    named = dict(model.named_parameters())
    keys = list(named) if names is None else list(names)
    return {k: named[k].detach().clone().requires_grad_(True) for k in keys}


def inner_loop(
    model: nn.Module,
    params: Params,
    x: torch.Tensor,
    y: torch.Tensor,
    groups: Sequence[Group],
    steps: int,
    first_order: bool,
    forward_kwargs: dict[str, Any] | None = None,
) -> Params:
    """``steps`` rounds of SGD on the cross-entropy of ``(x, y)``; each round updates every group in turn.

    With ``first_order=False`` the returned tensors keep the graph of the updates (second-order MAML); with
    ``True`` each gradient is detached, so d theta'/d theta is the identity.  Parameters not in any group are
    carried unchanged.
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps!r}")
    kwargs = forward_kwargs or {}
    current = dict(params)
    for _ in range(steps):
        for names, lr in groups:
            # fresh graph nodes for this group: the gradient then stops at them and is the partial derivative at
            # the other groups' current values (in second order, alpha' depends on w through its own gradient)
            tensors = [current[n].view_as(current[n]) for n in names]
            current = {**current, **dict(zip(names, tensors, strict=True))}
            loss = F.cross_entropy(functional_call(model, current, (x,), kwargs), y)
            grads = torch.autograd.grad(loss, tensors, create_graph=not first_order, allow_unused=True)
            updated = dict(current)
            for n, p, g in zip(names, tensors, grads, strict=True):
                if g is None:
                    continue
                updated[n] = p - lr * (g.detach() if first_order else g)
            current = updated
    return current


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    return float((logits.argmax(dim=1) == y).float().mean())


def query_loss(
    model: nn.Module,
    params: Params,
    episode: Episode,
    groups: Sequence[Group],
    steps: int,
    first_order: bool,
) -> tuple[torch.Tensor, float]:
    """Adapt on the support set and return (query loss with its graph to ``params``, query accuracy)."""
    adapted = inner_loop(model, params, episode.support_x, episode.support_y, groups, steps, first_order)
    logits = functional_call(model, adapted, (episode.query_x,))
    return F.cross_entropy(logits, episode.query_y), accuracy(logits.detach(), episode.query_y)


def meta_gradient(
    model: nn.Module,
    params: Params,
    episodes: Sequence[Episode],
    groups: Sequence[Group],
    steps: int,
    first_order: bool,
) -> tuple[dict[str, torch.Tensor], float, float]:
    """Mean over ``episodes`` of d(query loss after adaptation)/d params; also mean loss and accuracy."""
    names = list(params)
    total = {n: torch.zeros_like(params[n]) for n in names}
    losses, accs = [], []
    for ep in episodes:
        loss, acc = query_loss(model, params, ep, groups, steps, first_order)
        grads = torch.autograd.grad(loss, [params[n] for n in names], allow_unused=True)
        for n, g in zip(names, grads, strict=True):
            if g is not None:
                total[n] += g / len(episodes)
        losses.append(float(loss.detach()))
        accs.append(acc)
    return total, float(np.mean(losses)), float(np.mean(accs))


class MetaLearner:
    """MAML on ``model``: the meta-parameters are the module's parameters, updated in place by the outer Adam.

    ``groups`` are the inner-loop groups (default: one group of all parameters at ``config.inner_lr``, i.e. MAML);
    T-NAS passes two, alpha and w.  Adaptation at meta-test is always first order (no outer step follows it).
    """

    def __init__(self, model: nn.Module, config: MAMLConfig, groups: Sequence[Group] | None = None) -> None:
        self.model = model.train()
        self.config = config
        self.groups: list[Group] = (
            [(tuple(n for n, _ in model.named_parameters()), config.inner_lr)] if groups is None else list(groups)
        )
        self.history: list[dict[str, float]] = []

    def meta_train(
        self,
        sampler: EpisodeSampler,
        iterations: int | None = None,
        seed: int = 0,
        log: Callable[[dict[str, float]], None] | None = None,
        log_every: int = 50,
    ) -> list[dict[str, float]]:
        """``iterations`` outer Adam steps on meta-batches of ``sampler`` episodes (``episode`` indices from
        ``seed``); returns the per-iteration history."""
        cfg = self.config
        iterations = cfg.iterations if iterations is None else iterations
        torch.manual_seed(seed)
        params = dict(self.model.named_parameters())
        optim = torch.optim.Adam(params.values(), lr=cfg.meta_lr)
        start = time.perf_counter()
        for it in range(iterations):
            episodes = sampler.batch(seed * 10_000_019 + it * cfg.meta_batch, cfg.meta_batch)
            grads, loss, acc = meta_gradient(
                self.model, params, episodes, self.groups, cfg.inner_steps, cfg.first_order
            )
            optim.zero_grad(set_to_none=False)
            for n, p in params.items():
                p.grad = grads[n]
            optim.step()
            record = {"iteration": it + 1, "query_loss": loss, "query_acc": acc, "seconds": time.perf_counter() - start}
            self.history.append(record)
            if log is not None and ((it + 1) % log_every == 0 or it + 1 == iterations):
                log(record)
        return self.history

    def adapt(self, x: torch.Tensor, y: torch.Tensor, steps: int | None = None) -> Params:
        """Parameters adapted to a support set (``test_steps`` by default), detached from the meta-parameters."""
        steps = self.config.test_steps if steps is None else steps
        adapted = inner_loop(self.model, clone_params(self.model), x, y, self.groups, steps, first_order=True)
        return {k: v.detach() for k, v in adapted.items()}

    def evaluate(self, episode: Episode, steps: int | None = None) -> float:
        """Query accuracy after adapting on the support set."""
        adapted = self.adapt(episode.support_x, episode.support_y, steps)
        with torch.no_grad():
            return accuracy(functional_call(self.model, adapted, (episode.query_x,)), episode.query_y)


def mean_ci95(values: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95 % t-interval (``scipy.stats.t``), as MAML's +- over 600 episodes."""
    from scipy import stats

    v = np.asarray(values, dtype=float)
    if v.size == 0:
        raise ValueError("need at least one value for a confidence interval")
    if v.size == 1:
        return float(v[0]), float("nan")
    half = stats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size)
    return float(v.mean()), float(half)
