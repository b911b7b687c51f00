"""One trainer for every architecture: learning curve per epoch, seeds, device, early-stop hook.

``train(model, task, config, reporter)`` trains in place and returns a :class:`TrainResult`; the only way results
leave is ``reporter.report(epoch, **row)`` (Syne Tune's ``report()``), so MLflow and the metadata store plug in
from above.  :class:`TrainingSession` is the same run advanced epoch by epoch, paused and resumed by a search's
scheduler; :func:`train_architecture` is the one "build, seed, train, wrap as a result" path that collection,
evaluators and retraining share.  The default recipe is NAS-Bench-201's (SGD, Nesterov
momentum 0.9, lr 0.1 cosine-annealed to 0 per step, weight decay 5e-4, batch 256) at a short budget.

Choices worth knowing:

- Data stay as whole tensors on the device; each epoch draws one permutation and the loop slices it, so there is
  no DataLoader, no worker processes and no per-sample Python.  A final batch of one image is skipped (BN
  cannot train on it).
- Augmentation (``augment=True``) = random crop with zero padding of ``max(1, round(H / 8))`` pixels (4 for
  32x32, as in NB201 / DARTS) + random horizontal flip only where the task's source allows it (not for digits
  or characters).  torchvision's v2 transforms draw one set of parameters per call, so on a batch every image
  would get the same crop; we draw per-image offsets and gather once, which equals ``v2.functional.pad`` +
  ``v2.functional.crop`` / ``horizontal_flip`` per image (the test checks it).  Padding is black, i.e. the value
  that normalises pixel 0.
- The loss is checked once per epoch (one host sync): a NaN / inf training or validation loss, or a mean training
  loss above ``divergence_factor`` (100) x ln(num_classes) (a uniform guess scores ln(num_classes); a loss of
  1e34 at chance accuracy is finite but diverged), ends the run as ``failed`` with the reason; CUDA
  out-of-memory also fails the run instead of raising.
- CUDA: bf16 autocast and channels_last; CPU: float32.  Everything is seeded from ``config.seed`` (model
  initialisation happens in the caller; :class:`TrainingEvaluator` seeds it too).
- ``seconds`` in the curve is cumulative wall time since the first epoch started (training + per-epoch evaluation
  of val and test); the FLOP count before training is not included.
"""

from __future__ import annotations

import contextlib
import math
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from nasmeta.cost import count_flops, count_params
from nasmeta.data.types import TaskData
from nasmeta.evaluators import Evaluation, Evaluator, Session
from nasmeta.reporting import Reporter
from nasmeta.spaces.base import Architecture, SearchSpace, stable_hash
from nasmeta.threads import torch_threads

__all__ = [
    "TrainConfig",
    "TrainResult",
    "TrainedArchitecture",
    "TrainingEvaluator",
    "TrainingSession",
    "build_model",
    "random_crop_flip",
    "resolve_device",
    "train",
    "train_architecture",
]

# fields that do not change what is learned: left out of ``config_hash`` (the seed is a separate key of a run)
_NOT_HASHED = {"seed", "device", "num_threads", "eval_batch_size", "progress"}


class TrainConfig(BaseModel):
    """A training recipe (defaults: NAS-Bench-201's recipe at 12 epochs)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    epochs: int = Field(12, ge=1)
    batch_size: int = Field(256, ge=2)
    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: float = Field(0.1, gt=0.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    nesterov: bool = True
    weight_decay: float = Field(5e-4, ge=0.0)
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    #: "cosine": annealed per step from ``lr`` to ``lr_min`` over all epochs; "constant": ``lr`` throughout
    schedule: Literal["cosine", "constant"] = "cosine"
    lr_min: float = Field(0.0, ge=0.0)
    augment: bool = False
    grad_clip: float | None = Field(None, gt=0.0)
    #: the run fails as diverged when an epoch's mean training loss exceeds this many times ln(num_classes)
    #: (the loss of a uniform guess) or is not finite
    divergence_factor: float = Field(100.0, gt=1.0)
    #: for models with a ``drop_path_prob`` attribute (DARTS): raised linearly from 0 to this over the epochs
    drop_path_prob: float = Field(0.0, ge=0.0, lt=1.0)
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    num_threads: int | None = Field(None, ge=1)
    eval_batch_size: int = Field(1024, ge=1)
    #: a rich progress bar over epochs (off by default, e.g. in tests)
    progress: bool = False

    def config_hash(self) -> str:
        """Short stable hash of the recipe (seed, device, threads, eval batch and progress excluded)."""
        return stable_hash("train", self.model_dump(mode="json", exclude=_NOT_HASHED), length=12)

    def with_(self, **changes: Any) -> TrainConfig:
        return TrainConfig.model_validate({**self.model_dump(), **changes})


@dataclass
class TrainResult:
    """The outcome of one training run; accuracies in percent (NaN when no epoch completed)."""

    status: Literal["completed", "failed", "stopped"]
    error: str | None
    curve: list[dict[str, float]]
    final_val_acc: float
    final_test_acc: float
    epochs_done: int
    seconds: float
    n_params: int
    flops: int
    device: str
    config_hash: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU; asking for CUDA without one raises ``ValueError``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but torch.cuda.is_available() is False")
    if device not in {"cpu", "cuda"}:
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    return torch.device(device)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def random_crop_flip(
    x: torch.Tensor,
    padding: int,
    hflip: bool,
    generator: torch.Generator,
    fill: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-image random crop (pad by ``padding`` with ``fill`` per channel) and, if ``hflip``, flip with p=0.5."""
    n, c, h, w = x.shape
    padded = x.new_empty(n, c, h + 2 * padding, w + 2 * padding)
    padded.copy_((fill if fill is not None else x.new_zeros(c)).view(1, c, 1, 1).expand_as(padded))
    padded[:, :, padding : padding + h, padding : padding + w] = x
    top = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=x.device)
    left = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=x.device)
    rows = (top[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (left[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chans = torch.arange(c, device=x.device)[None, :, None, None]
    out = padded[batch, chans, rows, cols]
    if hflip:
        flip = torch.rand(n, generator=generator, device=x.device) < 0.5
        out = torch.where(flip[:, None, None, None], out.flip(-1), out)
    return out


class _Augment:
    """The per-task augmentation: crop always, flip where the source allows; black padding."""

    def __init__(self, task: TaskData, device: torch.device, generator: torch.Generator) -> None:
        from nasmeta.data.tasks import spec_of

        spec = spec_of(task)
        channels, height, _ = task.input_shape
        self.padding = max(1, round(height / 8))
        self.hflip = bool(spec is not None and spec.hflip)
        fill = torch.zeros(channels)
        if spec is not None:
            mean, std = spec.normalisation()
            fill = -torch.tensor(mean) / torch.tensor(std)
        self.fill = fill.float().to(device)
        self.generator = generator

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return random_crop_flip(x, self.padding, self.hflip, self.generator, self.fill)


def _make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        nesterov = config.nesterov and config.momentum > 0
        return torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, nesterov=nesterov, weight_decay=config.weight_decay
        )
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


def _evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int, device: torch.device, channels_last: bool
) -> tuple[float, float]:
    """(mean cross-entropy, accuracy in percent); NaN for an empty split."""
    if len(x) == 0:
        return math.nan, math.nan
    model.eval()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        for start in range(0, len(x), batch_size):
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            logits = model(xb).float()
            loss_sum += nn.functional.cross_entropy(logits, yb, reduction="sum")
            correct += (logits.argmax(dim=1) == yb).sum()
    return loss_sum.item() / len(x), 100.0 * correct.item() / len(x)


def train(
    model: nn.Module,
    task: TaskData,
    config: TrainConfig | None = None,
    reporter: Reporter | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``task`` for ``config.epochs``; never raises for a diverging run (``failed``).

    Early stopping is not the trainer's business: a search drives a :class:`TrainingSession` epoch by epoch and
    asks its scheduler after each report (``nasmeta.search.loop``)."""
    config = config or TrainConfig()
    session = TrainingSession(model, task, config, reporter)
    session.advance(config.epochs)
    return session.result()


class _EpochRunner:
    """Everything one epoch of training needs, set up once per run so the per-batch loop stays lean."""

    def __init__(self, model: nn.Module, task: TaskData, config: TrainConfig, device: torch.device) -> None:
        self.model, self.config, self.device = model, config, device
        self.cuda = device.type == "cuda"
        self.x, self.y = task.x_train.to(device), task.y_train.to(device)
        self.n = len(self.x)
        if self.n < 2:
            raise ValueError(f"task {task.name!r} has {self.n} training images; need at least 2")
        self.batch_size = min(config.batch_size, self.n)
        # a last batch of one image is skipped: BN cannot normalise a single sample
        self.n_seen = self.n - (1 if self.n % self.batch_size == 1 else 0)
        steps_per_epoch = sum(1 for start in range(0, self.n, self.batch_size) if self.n - start >= 2)
        self.total_steps = steps_per_epoch * config.epochs
        self.step = 0
        self.order_gen = torch.Generator().manual_seed(config.seed)
        aug_gen = torch.Generator(device=device).manual_seed(config.seed + 1)
        self.augment = _Augment(task, device, aug_gen) if config.augment else None
        self.optimizer = _make_optimizer(model, config)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
        # DARTS evaluation networks keep the auxiliary head's logits of the last training forward
        self.has_aux = hasattr(model, "last_aux_logits") and hasattr(model, "auxiliary_weight")
        self.schedule_drop_path = config.drop_path_prob > 0 and hasattr(model, "drop_path_prob")

    def lr_at(self, step: int) -> float:
        config = self.config
        if config.schedule == "constant":
            return config.lr
        return config.lr_min + 0.5 * (config.lr - config.lr_min) * (1 + math.cos(math.pi * step / self.total_steps))

    def run(self, epoch: int) -> float:
        """Train one epoch (1-based); returns the mean training loss (one host sync)."""
        model, config, optimizer, criterion = self.model, self.config, self.optimizer, self.criterion
        if self.schedule_drop_path:
            model.drop_path_prob = config.drop_path_prob * (epoch - 1) / config.epochs
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if self.cuda else contextlib.nullcontext()
        cosine = config.schedule == "cosine"
        model.train()
        loss_sum = torch.zeros((), device=self.device)
        for idx in torch.randperm(self.n, generator=self.order_gen).to(self.device).split(self.batch_size):
            if len(idx) < 2:
                continue
            xb, yb = self.x[idx], self.y[idx]
            if self.augment is not None:
                xb = self.augment(xb)
            if self.cuda:
                xb = xb.contiguous(memory_format=torch.channels_last)
            if cosine:
                lr = self.lr_at(self.step)
                for group in optimizer.param_groups:
                    group["lr"] = lr
            with autocast:
                loss = criterion(model(xb).float(), yb)
                if self.has_aux and model.last_aux_logits is not None:
                    loss = loss + model.auxiliary_weight * criterion(model.last_aux_logits.float(), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            loss_sum += loss.detach() * len(idx)
            self.step += 1
        return loss_sum.item() / self.n_seen


def _divergence(train_loss: float, epoch: int, task: TaskData, config: TrainConfig) -> str | None:
    """The reason a run counts as diverged after this epoch, or None."""
    if not math.isfinite(train_loss):
        return f"training loss is {train_loss} at epoch {epoch} (diverged; lr={config.lr:g})"
    limit = config.divergence_factor * math.log(max(task.num_classes, 2))
    if train_loss > limit:
        return (
            f"training loss is {train_loss:.4g} at epoch {epoch}, above the divergence limit {limit:.4g} = "
            f"{config.divergence_factor:g} x ln({task.num_classes}) (lr={config.lr:g})"
        )
    return None


class TrainingSession:
    """One training run that advances epoch by epoch and can pause between calls (its state stays in memory:
    model, optimiser, data-order generator, learning-rate position and torch's global RNG state), so a scheduler
    can pause a run at a rung and promote it later: a run paused at epoch 3 and resumed to 12 equals an
    uninterrupted 12-epoch run, because the learning-rate schedule always spans ``config.epochs``.

    ``seconds`` in the curve is cumulative training + evaluation time of this run only (time paused not counted).
    """

    def __init__(
        self, model: nn.Module, task: TaskData, config: TrainConfig | None = None, reporter: Reporter | None = None
    ) -> None:
        self.config = config = config or TrainConfig()
        self.device = device = resolve_device(config.device)
        self.model, self.task, self.reporter = model, task, reporter
        with torch_threads(config.num_threads):
            seed_everything(config.seed)
            self.cuda = device.type == "cuda"
            model.to(device)
            if self.cuda:
                model.to(memory_format=torch.channels_last)
            self.n_params, self.flops = count_params(model), count_flops(model, task.input_shape)
            self.runner = _EpochRunner(model, task, config, device)
        self.x_val, self.y_val = task.x_val.to(device), task.y_val.to(device)
        self.x_test, self.y_test = task.x_test.to(device), task.y_test.to(device)
        self.curve: list[dict[str, float]] = []
        self.status: Literal["running", "failed"] = "running"
        self.error: str | None = None
        self.seconds = 0.0
        # other runs train while this one is paused: keep its own stream of global random numbers (drop-path)
        self._rng_state = torch.get_rng_state()

    @property
    def epochs_done(self) -> int:
        return len(self.curve)

    def advance(self, to_epoch: int) -> list[dict[str, float]]:
        """Train epochs ``epochs_done + 1 .. min(to_epoch, config.epochs)``; returns their rows."""
        config, task = self.config, self.task
        last = min(int(to_epoch), config.epochs)
        if self.status != "running" or last <= self.epochs_done:
            return []
        new: list[dict[str, float]] = []
        progress = _progress_bar(config, task) if config.progress else None
        torch.set_rng_state(self._rng_state)
        start = time.perf_counter()
        try:
            with torch_threads(config.num_threads):
                for epoch in range(self.epochs_done + 1, last + 1):
                    row = self._epoch(epoch, start)
                    if row is None:
                        break
                    new.append(row)
                    if progress is not None:
                        label = f"{task.name} val {row['val_acc']:.1f}%"
                        progress[0].update(progress[1], completed=epoch, description=label)
        except torch.OutOfMemoryError as exc:
            self.status, self.error = "failed", f"out of memory: {exc}"
        finally:
            self.seconds += time.perf_counter() - start
            self._rng_state = torch.get_rng_state()
            if progress is not None:
                progress[0].stop()
        return new

    def _epoch(self, epoch: int, start: float) -> dict[str, float] | None:
        config, task, cuda = self.config, self.task, self.cuda
        train_loss = self.runner.run(epoch)
        error = _divergence(train_loss, epoch, task, config)
        if error is not None:
            self.status, self.error = "failed", error
            return None
        val_loss, val_acc = _evaluate(self.model, self.x_val, self.y_val, config.eval_batch_size, self.device, cuda)
        if len(self.x_val) and not math.isfinite(val_loss):
            self.status = "failed"
            self.error = f"validation loss is {val_loss} at epoch {epoch} (diverged; lr={config.lr:g})"
            return None
        _, test_acc = _evaluate(self.model, self.x_test, self.y_test, config.eval_batch_size, self.device, cuda)
        row = {
            "epoch": epoch,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "val_acc": val_acc,
            "test_acc": test_acc,
            "seconds": self.seconds + time.perf_counter() - start,
        }
        self.curve.append(row)
        if self.reporter is not None:
            self.reporter.report(epoch, **row)
        return row

    def result(self, stopped: bool = False) -> TrainResult:
        """The run as it stands: ``failed`` if it failed, else ``stopped`` when asked (or short of its epochs
        without being asked: a paused run never resumed), else ``completed``."""
        if self.status == "failed":
            status: Literal["completed", "failed", "stopped"] = "failed"
        elif stopped or self.epochs_done < self.config.epochs:
            status = "stopped"
        else:
            status = "completed"
        last = self.curve[-1] if self.curve else {}
        return TrainResult(
            status=status,
            error=self.error,
            curve=list(self.curve),
            final_val_acc=last.get("val_acc", math.nan),
            final_test_acc=last.get("test_acc", math.nan),
            epochs_done=self.epochs_done,
            seconds=self.seconds,
            n_params=self.n_params,
            flops=self.flops,
            device=str(self.device),
            config_hash=self.config.config_hash(),
        )


def _progress_bar(config: TrainConfig, task: TaskData) -> tuple[Any, Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    progress.start()
    return progress, progress.add_task(task.name, total=config.epochs)


# model initialisation draws from torch's global RNG; threads building at once would interleave their draws
_BUILD_LOCK = threading.Lock()


def build_model(arch: Architecture, task: TaskData, size: Mapping[str, Any], seed: int) -> nn.Module:
    """``space.build`` for ``task``'s classes and input shape, initialised from ``seed`` (thread-safe)."""
    from nasmeta.spaces import get_space

    with _BUILD_LOCK:
        seed_everything(seed)
        return get_space(arch.space).build(arch, task.num_classes, task.input_shape, **dict(size))


@dataclass
class TrainedArchitecture:
    """A trained architecture: the model (None when building failed), the trainer's result and the
    ``Evaluation`` searches see."""

    model: nn.Module | None
    result: TrainResult
    evaluation: Evaluation


def failed_result(error: BaseException, config: TrainConfig, seconds: float) -> TrainResult:
    """The result of a run that could not be built or trained (a corrupt task, an unbuildable architecture)."""
    return TrainResult(
        status="failed",
        error=f"{type(error).__name__}: {error}",
        curve=[],
        final_val_acc=math.nan,
        final_test_acc=math.nan,
        epochs_done=0,
        seconds=seconds,
        n_params=0,
        flops=0,
        device="unknown",
        config_hash=config.config_hash(),
    )


def evaluation_of(arch: Architecture, result: TrainResult, **extra: Any) -> Evaluation:
    """The ``Evaluation`` of a training result: accuracies 0.0 when it failed (a maximising search never picks
    it), the curve it has, its sizes and recipe hash in ``extra``."""
    bad = result.status == "failed" or not result.curve
    return Evaluation(
        arch=arch,
        val_acc=0.0 if bad else result.final_val_acc,
        test_acc=0.0 if bad else result.final_test_acc,
        cost_seconds=result.seconds,
        epochs=result.epochs_done,
        status=result.status,
        error=(result.error or "failed") if result.status == "failed" else None,
        curve=result.curve,
        extra={
            "n_params": result.n_params,
            "flops": result.flops,
            "device": result.device,
            "config_hash": result.config_hash,
            **extra,
        },
    )


def train_architecture(
    arch: Architecture,
    task: Any,
    config: TrainConfig | None = None,
    *,
    size: Mapping[str, Any] | None = None,
    seed: int | None = None,
    reporter: Reporter | None = None,
) -> TrainedArchitecture:
    """Build ``arch`` for ``task`` (a name, ``TaskSpec`` or ``TaskData``) with ``size``, seeded, and train it with
    ``config`` (its seed replaced by ``seed`` when given); never raises for a bad run or a task that cannot load.

    The one "train this architecture" path: collection, the training evaluator and retraining all call it."""
    config = config or TrainConfig()
    if seed is not None:
        config = config.with_(seed=seed)
    start = time.perf_counter()
    try:
        data = load_task(task)
        model = build_model(arch, data, size or {}, config.seed)
        result = train(model, data, config, reporter)
    except Exception as exc:  # a bad run is returned as failed, never raised
        result = failed_result(exc, config, time.perf_counter() - start)
        return TrainedArchitecture(None, result, evaluation_of(arch, result))
    return TrainedArchitecture(model, result, evaluation_of(arch, result))


def load_task(task: Any) -> TaskData:
    """A task given by name, ``TaskSpec`` or already-loaded ``TaskData``, as ``TaskData``."""
    from nasmeta.data.tasks import TaskSpec, resolve_task

    if isinstance(task, TaskData):
        return task
    if isinstance(task, str | TaskSpec):
        return resolve_task(task)
    raise TypeError(f"task must be a task name, TaskSpec or TaskData, got {type(task).__name__}")


class TrainingEvaluator(Evaluator):
    """Evaluate an architecture by building it and really training it (``Evaluator`` contract).

    ``size`` (a mapping and / or keyword arguments) goes to ``space.build`` (the network size of a budget, see
    ``nasmeta.budget``).  The network is initialised under ``torch.manual_seed(seed)``; any exception while
    building or training becomes a ``failed`` evaluation with the reason.  ``start`` gives a resumable
    :class:`TrainingSession` whose learning-rate schedule spans ``max_epochs``, for schedulers that pause runs.
    """

    def __init__(
        self,
        space: SearchSpace | str,
        task: Any,
        config: TrainConfig | None = None,
        reporter: Reporter | None = None,
        size: Mapping[str, Any] | None = None,
        **size_kwargs: Any,
    ) -> None:
        from nasmeta.data.tasks import TaskSpec
        from nasmeta.spaces import get_space

        self.space = get_space(space) if isinstance(space, str) else space
        self._task_arg = task
        if not isinstance(task, str | TaskSpec | TaskData):
            raise TypeError(f"task must be a task name, TaskSpec or TaskData, got {type(task).__name__}")
        self._task: TaskData | None = task if isinstance(task, TaskData) else None
        self.config = config or TrainConfig()
        self.reporter = reporter
        self.size = {**(size or {}), **size_kwargs}
        self.max_epochs = self.config.epochs

    @property
    def task(self) -> TaskData:
        if self._task is None:
            self._task = load_task(self._task_arg)
        return self._task

    def evaluate(self, arch: Architecture, epochs: int | None = None, seed: int = 0) -> Evaluation:
        epochs = self.max_epochs if epochs is None else epochs
        if epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {epochs}")
        config = self.config.with_(epochs=epochs, seed=seed)
        return train_architecture(arch, self.task, config, size=self.size, reporter=self.reporter).evaluation

    def start(self, arch: Architecture, seed: int = 0, max_epochs: int | None = None) -> Session:
        """A resumable run whose learning-rate schedule spans ``max_epochs`` (default ``self.max_epochs``)."""
        return _TrainingRun(self, arch, seed, max_epochs or self.max_epochs)


class _TrainingRun(Session):
    """A :class:`TrainingSession` behind the ``Session`` contract; a build failure is a failed session."""

    def __init__(self, evaluator: TrainingEvaluator, arch: Architecture, seed: int, max_epochs: int) -> None:
        self.arch, self.max_epochs = arch, max_epochs
        self.config = evaluator.config.with_(seed=seed, epochs=max_epochs)
        self._session: TrainingSession | None = None
        self._final: TrainResult | None = None  # set by ``finish``, when the model and optimiser are released
        start = time.perf_counter()
        try:
            task = evaluator.task
            model = build_model(arch, task, evaluator.size, seed)
            self._session = TrainingSession(model, task, self.config, evaluator.reporter)
            self.n_params, self.flops = self._session.n_params, self._session.flops
        except Exception as exc:  # the Evaluator contract: a bad run is failed, never raised
            self._final = failed_result(exc, self.config, time.perf_counter() - start)

    @property
    def curve(self) -> list[dict[str, Any]]:
        return self._final.curve if self._final is not None else self._session.curve  # type: ignore[union-attr]

    @property
    def failed(self) -> str | None:
        if self._final is not None:
            return self._final.error if self._final.status == "failed" else None
        return self._session.error if self._session.status == "failed" else None  # type: ignore[union-attr]

    @property
    def cost_seconds(self) -> float:
        return self._final.seconds if self._final is not None else self._session.seconds  # type: ignore[union-attr]

    def advance(self, to_epoch: int) -> list[dict[str, Any]]:
        return [] if self._session is None or self._final is not None else self._session.advance(to_epoch)

    def finish(self, status: str) -> Evaluation:
        if self._final is None:
            self._final = self._session.result(stopped=status == "stopped")  # type: ignore[union-attr]
            self._session = None  # frees the model and optimiser; the result keeps the curve
        return evaluation_of(self.arch, self._final)
