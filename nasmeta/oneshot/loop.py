"""The one loop every one-shot strategy runs in (DARTS, ENAS, random one-shot): the only owner of the epochs.

Liu et al., "DARTS", ICLR 2019, Algorithm 1: the task's train split is shuffled and halved; the first half
trains the supernet weights, the second half is the validation data the architecture is chosen on.  Every
step draws one batch of each half; the strategy may update its architecture on the validation batch
(:meth:`Strategy.arch_step`, DARTS), then the weights take one SGD step on the train batch through the path the
strategy names (:meth:`Strategy.weight_path`: ``None`` mixes all ops as DARTS does, a path trains one sampled
sub-network as ENAS and random one-shot do).  After each epoch the strategy may train itself further
(:meth:`Strategy.end_epoch`: ENAS trains its controller there) and the loop records a trace row and reports it.
Before each epoch :meth:`Strategy.begin_epoch` tells the strategy where the search is (GDAS' temperature,
PC-DARTS' and ProxylessNAS' warm-up).  A weight path may also be :class:`~nasmeta.oneshot.supernet.Choices`,
the strategy's own per-edge choices (sampled gates, partial channels).  The architecture parameters are frozen
during the weight step, which then neither computes their gradients nor stores what only those need.

Weight optimiser of the DARTS search (METHODS.md), shared by all strategies so that their costs and results
compare on equal terms: SGD lr 0.025, cosine to 0.001 over the search, momentum 0.9, weight decay 3e-4,
gradient-norm clip 5.  Deviations: ENAS's own child optimiser (lr 0.05 with warm restarts) is not used; the
search uses no data augmentation (DARTS' search pads, crops and flips), so one code path serves every task.

Supernet evaluations (per-epoch validation accuracy, ENAS rewards, the random one-shot ranking) use BN batch
statistics, as ENAS and the NAS-Bench-201 one-shot code do: running statistics accumulated over many
different paths describe none of them.
"""

from __future__ import annotations

import abc
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch.nn import functional as F

from nasmeta.data.types import TaskData
from nasmeta.evaluators import Evaluation
from nasmeta.oneshot.supernet import Choices, Path, Supernet
from nasmeta.reporting import NullReporter, Reporter, ShouldStop
from nasmeta.spaces.base import Architecture

Batch = tuple[torch.Tensor, torch.Tensor]


class WeightConfig(BaseModel):
    """Optimiser of the supernet weights (DARTS search defaults)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lr: float = Field(0.025, gt=0)
    lr_min: float = Field(0.001, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(3e-4, ge=0)
    grad_clip: float = Field(5.0, gt=0)


@dataclass
class SearchData:
    """The two halves of a task's train split: ``x_train``/``y_train`` train the weights, ``x_val``/``y_val``
    choose the architecture.  The task's own validation and test splits stay untouched for retraining."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    num_classes: int

    @classmethod
    def from_task(cls, task: TaskData, seed: int = 0, train_portion: float = 0.5) -> SearchData:
        """Shuffle the task's train split with ``seed`` and cut it at ``train_portion`` (DARTS: half)."""
        if not 0.0 < train_portion < 1.0:
            raise ValueError(f"train_portion must be in (0, 1), got {train_portion!r}")
        n = len(task.x_train)
        cut = int(math.floor(n * train_portion))
        if cut < 1 or cut >= n:
            raise ValueError(f"the train split has {n} samples: too few to halve into weight and arch data")
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        first, second = order[:cut], order[cut:]
        return cls(
            task.x_train[first], task.y_train[first], task.x_train[second], task.y_train[second], task.num_classes
        )

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.x_train.shape[1:]
        return int(c), int(h), int(w)

    def to(self, device: torch.device | str) -> SearchData:
        return SearchData(
            self.x_train.to(device),
            self.y_train.to(device),
            self.x_val.to(device),
            self.y_val.to(device),
            self.num_classes,
        )


class EpochBatches(Sequence[Batch]):
    """One shuffled pass in full batches (a split smaller than a batch is one batch; BN needs >1 sample).

    Batches are gathered when indexed, so an epoch holds one batch per split rather than a shuffled copy of it."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, generator: torch.Generator) -> None:
        n = len(x)
        self.x, self.y = x, y
        self.order = torch.randperm(n, generator=generator).to(x.device)
        self.size = min(batch_size, n)
        self.count = (n - self.size) // self.size + 1

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int) -> Batch:  # type: ignore[override]
        if not -self.count <= i < self.count:
            raise IndexError(i)
        index = self.order[(i % self.count) * self.size : (i % self.count + 1) * self.size]
        return self.x[index], self.y[index]


def epoch_batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, generator: torch.Generator) -> list[Batch]:
    """One shuffled pass in full batches, as a list (the loop itself gathers lazily with :class:`EpochBatches`)."""
    return list(EpochBatches(x, y, batch_size, generator))


def arch_gradients(loss: torch.Tensor, params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """``d loss / d params`` with zeros for parameters the loss does not use (e.g. ``alpha_normal`` of a network
    whose cells all reduce)."""
    grads = torch.autograd.grad(loss, list(params), allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads, strict=True)]


def arch_optimizer(params: Any, config: Any) -> torch.optim.Adam:
    """The architecture optimiser of the DARTS family: Adam with the strategy config's ``arch_lr``, ``arch_betas``,
    ``arch_weight_decay`` (and ``arch_eps`` where the config has one, as ProxylessNAS's)."""
    return torch.optim.Adam(
        params,
        lr=config.arch_lr,
        betas=config.arch_betas,
        eps=getattr(config, "arch_eps", 1e-8),
        weight_decay=config.arch_weight_decay,
    )


def apply_gradients(
    optimizer: torch.optim.Optimizer, params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor]
) -> None:
    """One ``optimizer`` step with ``grads`` as the gradients of ``params`` (architecture gradients come from
    :func:`arch_gradients` or a hypergradient, not from ``backward()``, so the weights' ``.grad`` stay untouched)."""
    optimizer.zero_grad(set_to_none=True)
    for p, g in zip(params, grads, strict=True):
        p.grad = g
    optimizer.step()


@contextmanager
def frozen(params: Sequence[torch.nn.Parameter]) -> Iterator[None]:
    """Turn off ``requires_grad`` of ``params`` for the block: the weight step then neither computes architecture
    gradients nor keeps the op outputs that only those gradients need (DARTS' ``w_o * o(x)`` products)."""
    before = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, before, strict=True):
            p.requires_grad_(flag)


@torch.no_grad()
def evaluate_path(
    supernet: Supernet, x: torch.Tensor, y: torch.Tensor, path: Path | Choices | None, batch_size: int = 256
) -> tuple[float, float]:
    """(mean cross-entropy, accuracy in %) of the supernet through ``path`` (None: the softmax mixture); per target
    element, so dense targets ``(N, H, W)`` (UnNAS colorization) average over pixels."""
    was_training = supernet.training
    supernet.train()  # batch statistics: see the module docstring
    loss_sum, correct = 0.0, 0
    for i in range(0, len(x), batch_size):
        xb, yb = x[i : i + batch_size], y[i : i + batch_size]
        logits = supernet(xb, path)
        loss_sum += float(F.cross_entropy(logits, yb, reduction="sum"))
        correct += int((logits.argmax(1) == yb).sum())
    supernet.train(was_training)
    return loss_sum / y.numel(), 100.0 * correct / y.numel()


def evaluate_architecture(
    supernet: Supernet, arch: Architecture, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256
) -> tuple[float, float]:
    """(mean cross-entropy, accuracy in %) of a discrete architecture run through the supernet's shared weights."""
    return evaluate_path(supernet, x, y, supernet.arch_to_path(arch), batch_size)


class Strategy(abc.ABC):
    """What a one-shot method decides inside :func:`run_search`; the loop owns epochs, data and weights."""

    #: registry name
    name: str

    def __init__(self, supernet: Supernet, data: SearchData, batch_size: int, seed: int) -> None:
        self.supernet = supernet
        self.data = data
        self.batch_size = batch_size
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    def begin_epoch(self, epoch: int, epochs: int) -> None:  # noqa: B027 - an optional hook, not a forgotten one
        """Called before epoch ``epoch`` (1-based) of ``epochs``: schedules (GDAS' temperature, PC-DARTS' warm-up)
        read the search length here.  Strategies without a schedule keep this default, which records nothing."""
        self.epoch, self.epochs = epoch, epochs

    def stop_requested(self, trace: Sequence[dict[str, Any]]) -> bool:
        """After each epoch's trace row (``trace``: rows 1..epoch): True ends the search there (DARTS+'s skip
        limit, RobustDARTS' eigenvalue rule).  A strategy that stops may first restore an earlier state (roll-back);
        :meth:`finish` then reports that state.  Default: never, unless :attr:`skip_stop` is set (see there)."""
        if self.skip_stop is None:
            return False
        arch = self.current_arch()
        return arch is not None and normal_cell_skips(arch) >= self.skip_stop

    #: DARTS+ (Liang et al. 2019) as an option of any strategy: stop once the derived normal cell holds this many
    #: ``skip_connect`` ops (``None``: off); ``oneshot_search(..., skip_stop=2)`` sets it
    skip_stop: int | None = None

    def weight_decay_scale(self) -> float:
        """Factor on the weight optimiser's weight decay for the coming epoch (DARTS-ADA raises it); default 1."""
        return 1.0

    @abc.abstractmethod
    def arch_step(self, train_batch: Batch, val_batch: Batch, lr: float) -> None:
        """Update the architecture on a validation batch, before the weight step (``lr``: current weight lr)."""

    @abc.abstractmethod
    def weight_path(self) -> Path | Choices | None:
        """The path the next weight step trains (``None``: the softmax mixture of every op; :class:`Choices`: the
        strategy's own per-edge choices).  The architecture parameters are frozen during the weight step."""

    @abc.abstractmethod
    def eval_path(self) -> Path | Choices | None:
        """The path the per-epoch validation accuracy is measured on."""

    @abc.abstractmethod
    def end_epoch(self, epoch: int) -> dict[str, float]:
        """Work after an epoch of weight steps; returns scalar metrics for the trace."""

    @abc.abstractmethod
    def op_weights(self) -> dict[str, torch.Tensor] | None:
        """Per cell type ``(edges, candidates)`` weights of the current architecture distribution, if any."""

    @abc.abstractmethod
    def summary(self) -> dict[str, float]:
        """Scalar state of the architecture distribution (e.g. its entropy) for the trace, at any epoch."""

    @abc.abstractmethod
    def current_arch(self) -> Architecture | None:
        """The architecture the strategy would return now, when that is cheap to know."""

    @abc.abstractmethod
    def finish(self) -> tuple[Architecture, list[Evaluation], dict[str, Any]]:
        """The final architecture, the supernet evaluations made to choose it, and method-specific extras."""

    @abc.abstractmethod
    def state(self) -> dict[str, Any]:
        """Method-specific settings for ``SearchResult.extra``."""


def normal_cell_skips(arch: Architecture) -> int:
    """Number of ``skip_connect`` ops in the normal cell of a DARTS genotype, or in the one NB201 cell."""
    encoding = arch.encoding
    cell = encoding[0] if encoding and isinstance(encoding[0], list | tuple) else encoding
    return sum(1 for item in cell if (item[0] if isinstance(item, list | tuple) else item) == "skip_connect")


class AlphaStrategy(Strategy):
    """What the strategies that keep architecture parameters alpha (DARTS, PC-DARTS, ProxylessNAS, GDAS) share:
    op weights = softmax(alpha), the trace's alpha entropy, the derived architecture, the final alphas."""

    def op_weights(self) -> dict[str, torch.Tensor]:
        return {t: w.detach() for t, w in self.supernet.op_weights().items()}

    def alpha_entropy(self) -> float:
        rows = torch.cat([w.detach() for w in self.supernet.op_weights().values()])
        return float(-(rows * rows.clamp_min(1e-30).log()).sum(dim=1).mean())

    def summary(self) -> dict[str, float]:
        """Mean entropy of softmax(alpha) over the edges of all cell types."""
        return {"alpha_entropy": self.alpha_entropy()}

    def current_arch(self) -> Architecture:
        return self.supernet.derive()

    def first_order_step(
        self,
        val_batch: Batch,
        path: Path | Choices | None,
        regulariser: Callable[[list[torch.nn.Parameter]], torch.Tensor] | None = None,
    ) -> None:
        """One first-order architecture step with ``self.optimizer``: descend the validation cross-entropy through
        ``path`` (plus ``regulariser(arch parameters)``, e.g. FairDARTS' zero-one loss)."""
        xv, yv = val_batch
        params = self.supernet.arch_parameters()
        loss = F.cross_entropy(self.supernet(xv, path), yv)
        if regulariser is not None:
            loss = loss + regulariser(params)
        apply_gradients(self.optimizer, params, arch_gradients(loss, params))

    def finish_extra(self) -> dict[str, Any]:
        """Method-specific extras of :meth:`finish` besides the final alphas."""
        return {}

    def finish(self) -> tuple[Architecture, list[Evaluation], dict[str, Any]]:
        alphas = {t: a.detach().cpu().tolist() for t, a in self.supernet.alphas().items()}
        return self.current_arch(), [], {"alphas": alphas, **self.finish_extra()}


_REGISTRY: dict[str, type[Strategy]] = {}


def register_strategy(name: str) -> Callable[[type[Strategy]], type[Strategy]]:
    """Class decorator: ``@register_strategy("darts")``."""

    def deco(cls: type[Strategy]) -> type[Strategy]:
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def registered_strategies() -> list[str]:
    return sorted(_REGISTRY)


def strategy_class(name: str) -> type[Strategy]:
    if name not in _REGISTRY:
        raise ValueError(f"unknown one-shot method {name!r}; known: {sorted(_REGISTRY)}")
    return _REGISTRY[name]


def metric_name(*parts: str) -> str:
    """MLflow-safe metric key (``1<-0`` becomes ``1_from_0``)."""
    return "/".join(p.replace("<-", "_from_") for p in parts)


def _record(strategy: Strategy, epoch: int) -> dict[str, Any]:
    row: dict[str, Any] = {"epoch": epoch}
    weights = strategy.op_weights()
    if weights is not None:
        row.update(strategy.supernet.skip_share(weights))
        row["op_weights"] = strategy.supernet.weights_table(weights)
    row.update(strategy.summary())
    arch = strategy.current_arch()
    if arch is not None:
        row["arch"] = str(arch)
    return row


def _report(reporter: Reporter, row: dict[str, Any]) -> None:
    metrics: dict[str, float] = {k: float(v) for k, v in row.items() if isinstance(v, int | float) and k != "epoch"}
    for cell, edges in row.get("op_weights", {}).items():
        for edge, ops in edges.items():
            for op, w in ops.items():
                metrics[metric_name("op_weight", cell, edge, op)] = w
    reporter.report(row["epoch"], **metrics)


def run_search(
    strategy: Strategy,
    epochs: int,
    weight_config: WeightConfig | None = None,
    reporter: Reporter | None = None,
    should_stop: ShouldStop | None = None,
) -> tuple[list[dict[str, Any]], float]:
    """Run ``epochs`` epochs of the bi-level loop; returns the trace (row 0: before training) and the seconds.

    Each trace row holds ``epoch``, ``lr``, ``train_loss``, ``train_acc``, ``val_loss``, ``val_acc`` (% on the
    arch-validation half through ``strategy.eval_path()``), ``epoch_seconds``, ``seconds`` (cumulative), the
    strategy's metrics, and, where the strategy has them, ``skip_share*``, ``op_weights``
    (``{cell: {edge: {op: weight}}}``) and ``arch``.  Each row is also reported with ``step = epoch``.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    config = weight_config or WeightConfig()
    reporter = reporter or NullReporter()
    supernet, data = strategy.supernet, strategy.data
    weights = supernet.weights()
    arch_params = supernet.arch_parameters()
    optimizer = torch.optim.SGD(weights, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, float(epochs), eta_min=config.lr_min)
    generator = torch.Generator().manual_seed(strategy.seed)
    trace = [_record(strategy, 0)]
    _report(reporter, trace[0])
    elapsed = 0.0
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        lr = scheduler.get_last_lr()[0]
        strategy.begin_epoch(epoch, epochs)
        for group in optimizer.param_groups:
            group["weight_decay"] = config.weight_decay * strategy.weight_decay_scale()
        supernet.train()
        train_batches = EpochBatches(data.x_train, data.y_train, strategy.batch_size, generator)
        val_batches = EpochBatches(data.x_val, data.y_val, strategy.batch_size, generator)
        # summed on the device: a per-step float() would wait for the GPU every step
        loss_sum = torch.zeros((), device=data.x_train.device)
        correct = torch.zeros((), dtype=torch.long, device=data.x_train.device)
        seen = 0
        for step, (xt, yt) in enumerate(train_batches):
            strategy.arch_step((xt, yt), val_batches[step % len(val_batches)], lr)
            optimizer.zero_grad(set_to_none=True)
            with frozen(arch_params):
                path = strategy.weight_path()
                logits = supernet(xt, path)
                loss = F.cross_entropy(logits, yt)
                loss.backward()
            torch.nn.utils.clip_grad_norm_(weights, config.grad_clip)
            optimizer.step()
            loss_sum += loss.detach() * yt.numel()
            correct += (logits.detach().argmax(1) == yt).sum()
            seen += yt.numel()  # per target element: pixels for dense (colorization) targets
        scheduler.step()
        extra = strategy.end_epoch(epoch)
        val_loss, val_acc = evaluate_path(supernet, data.x_val, data.y_val, strategy.eval_path())
        epoch_seconds = time.perf_counter() - start
        elapsed += epoch_seconds
        row = {
            **_record(strategy, epoch),
            "lr": lr,
            "train_loss": float(loss_sum) / seen,
            "train_acc": 100.0 * int(correct) / seen,
            "val_loss": val_loss,
            "val_acc": val_acc,
            "epoch_seconds": epoch_seconds,
            "seconds": elapsed,
            **extra,
        }
        trace.append(row)
        _report(reporter, row)
        if strategy.stop_requested(trace[1:]):
            row["stopped"] = 1.0
            break
        if should_stop is not None and should_stop(trace[1:]):
            break
    return trace, elapsed
