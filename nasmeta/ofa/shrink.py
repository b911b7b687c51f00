"""Progressive shrinking (Cai et al. 2020, "Once-for-All", ICLR, Sec. 3.2; code mit-han-lab/once-for-all).

Phases, in order, each starting from the previous phase's weights:

1. ``largest``: train the largest network (max kernel, depth, expansion);
2. ``kernel``: sample per block a kernel from {7, 5, 3} (depth and expansion at their maximum);
3. ``depth``: additionally sample each stage's depth;
4. ``expand``: additionally sample each block's expansion ratio, after sorting middle channels by importance.

From phase 2 on the loss is cross-entropy (label smoothing) + ``kd_ratio`` x the soft-target cross-entropy to the
largest network of phase 1 (a frozen copy, run in train mode without gradients as OFA's ``train_one_epoch``
does), and each step accumulates the gradients of ``subnets_per_step`` sampled sub-networks (OFA's dynamic batch
size: 1 / 2 / 4 for kernel / depth / expand).  The input resolution is sampled per step in every phase (with
``largest_elastic_resolution=False`` from the kernel phase on: the reference code starts the kernel phase from a
separately trained full network; at small budgets this matters, see ``benchmarks/results/issue18``).
Defaults are the paper's ImageNet recipe (SGD Nesterov 0.9, weight decay 3e-5, label smoothing 0.1, cosine
schedule, batch 2048; largest 180 epochs at lr 2.6; kernel 120 epochs at 0.96; depth and expand 120 epochs at
0.24 -- the reference scripts' per-GPU rates x 32 GPUs); small runs pass their own :class:`PhaseConfig`.

Each phase ends by writing a checkpoint atomically (temporary file + ``os.replace``), so an interrupted run
resumes at the first phase without one; a phase is seeded from ``seed`` and its index only, so a resumed run
gives the same weights as an uninterrupted one.

Deviations: OFA splits the depth and expand phases into two steps (first only the two largest choices for 25
epochs, then all); here each phase samples all choices of its dimension from the start.  Augmentation is random
crop + flip (``nasmeta.training.random_crop_flip``) instead of random-resized crop.
"""

from __future__ import annotations

import copy
import os
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch.nn import functional as F

from nasmeta.data.types import TaskData
from nasmeta.ofa.elastic import ElasticOFANet, extract_subnet, recalibrate_bn, sort_channels
from nasmeta.reporting import NullReporter, Reporter
from nasmeta.spaces import get_space
from nasmeta.spaces.base import Architecture, stable_hash
from nasmeta.spaces.ofa import OFASpace
from nasmeta.threads import torch_threads

PHASES: tuple[str, ...] = ("largest", "kernel", "depth", "expand")
PhaseName = Literal["largest", "kernel", "depth", "expand"]
FORMAT = "nasmeta-ofa-checkpoint/1"


class PhaseConfig(BaseModel):
    """One phase: epochs, peak learning rate (cosine to 0 over the phase), sub-networks per step."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    epochs: int = Field(ge=1)
    lr: float = Field(gt=0.0)
    subnets_per_step: int = Field(1, ge=1)


class ShrinkConfig(BaseModel):
    """The progressive-shrinking recipe (defaults: the paper's, see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    largest: PhaseConfig = PhaseConfig(epochs=180, lr=2.6)
    kernel: PhaseConfig = PhaseConfig(epochs=120, lr=0.96)
    depth: PhaseConfig = PhaseConfig(epochs=120, lr=0.24, subnets_per_step=2)
    expand: PhaseConfig = PhaseConfig(epochs=120, lr=0.24, subnets_per_step=4)
    batch_size: int = Field(2048, ge=2)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    weight_decay: float = Field(3e-5, ge=0.0)
    label_smoothing: float = Field(0.1, ge=0.0, lt=1.0)
    kd_ratio: float = Field(1.0, ge=0.0)
    augment: bool = True
    #: sample the input resolution per step already while training the largest network (False: the largest
    #: network trains at the maximum resolution, elastic resolution starts with the kernel phase)
    largest_elastic_resolution: bool = True
    #: training images whose forward passes re-estimate BN statistics before a sub-network is evaluated
    bn_images: int = Field(500, ge=2)
    seed: int = 0
    num_threads: int | None = Field(None, ge=1)

    def phase(self, name: str) -> PhaseConfig:
        if name not in PHASES:
            raise ValueError(f"unknown progressive-shrinking phase {name!r}; phases: {', '.join(PHASES)}")
        return getattr(self, name)

    def fingerprint(self) -> str:
        """What a checkpoint must match to be resumed from (threads excluded: they change speed only)."""
        return stable_hash("ofa-shrink", self.model_dump(mode="json", exclude={"num_threads"}), length=12)


def sample_for_phase(
    space: OFASpace, phase: str, rng: np.random.Generator, elastic_resolution: bool = True
) -> Architecture:
    """A sub-network drawn for one training step of ``phase`` (dimensions not yet elastic at their maximum;
    the resolution too in the ``largest`` phase unless ``elastic_resolution``)."""
    if phase not in PHASES:
        raise ValueError(f"unknown progressive-shrinking phase {phase!r}; phases: {', '.join(PHASES)}")
    c = space.config
    resolution, depths, kernels, expands = space.decode(space.sample(rng))
    n = c.n_slots
    if phase == "largest":
        kernels = (max(c.kernels),) * n
        if not elastic_resolution:
            resolution = max(c.resolutions)
    if phase in ("largest", "kernel"):
        depths = (c.max_depth,) * c.n_stages
    if phase != "expand":
        expands = (max(c.expands),) * n
    return space.encode(resolution, depths, kernels, expands)


# -- checkpoints ----------------------------------------------------------------------------------------------------
def checkpoint_path(directory: str | Path, phase: str) -> Path:
    return Path(directory) / f"{PHASES.index(phase) + 1}-{phase}.pt"


def _save_atomic(payload: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(payload, tmp)
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _fingerprint(space: OFASpace, task: TaskData, config: ShrinkConfig) -> dict[str, Any]:
    return {
        "space": space.name,
        "space_config": space.config.model_dump(mode="json"),
        "task_id": task.task_id,
        "shrink": config.fingerprint(),
    }


def load_checkpoint(path: str | Path) -> tuple[ElasticOFANet, dict[str, Any]]:
    """The elastic network of a checkpoint and its metadata (phase, metrics, fingerprint)."""
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not an OFA progressive-shrinking checkpoint ({FORMAT!r})")
    space = get_space(payload["space"])
    if not isinstance(space, OFASpace) or space.config.model_dump(mode="json") != payload["space_config"]:
        raise ValueError(f"{path} was written for OFA space {payload['space']!r} of another size")
    net = ElasticOFANet(space, int(payload["num_classes"]), tuple(payload["input_shape"]))
    net.load_state_dict(payload["state_dict"])
    return net, {k: v for k, v in payload.items() if k != "state_dict"}


def finished_phases(directory: str | Path, space: OFASpace, task: TaskData, config: ShrinkConfig) -> list[str]:
    """Phases whose checkpoint exists in ``directory``; a checkpoint of another run there raises ``ValueError``."""
    expected = _fingerprint(space, task, config)
    done = []
    for phase in PHASES:
        path = checkpoint_path(directory, phase)
        if not path.exists():
            continue
        meta = torch.load(path, map_location="cpu", weights_only=True)
        got = {k: meta.get(k) for k in expected}
        if got != expected:
            diff = sorted(k for k in expected if got[k] != expected[k])
            raise ValueError(f"checkpoint {path} belongs to another run (differs in {diff}); use another directory")
        done.append(phase)
    return done


# -- training ------------------------------------------------------------------------------------------------------
def _soft_ce(logits: torch.Tensor, target_logits: torch.Tensor) -> torch.Tensor:
    return -(F.softmax(target_logits, dim=1) * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def _augmenter(task: TaskData, generator: torch.Generator) -> Any:
    from nasmeta.data.tasks import spec_of
    from nasmeta.training import random_crop_flip

    spec = spec_of(task)
    channels, height, _ = task.input_shape
    hflip = bool(spec is not None and spec.hflip)
    fill = torch.zeros(channels)
    if spec is not None:
        mean, std = spec.normalisation()
        fill = -torch.tensor(mean) / torch.tensor(std)
    padding = max(1, round(height / 8))
    return lambda x: random_crop_flip(x, padding, hflip, generator, fill.float())


@torch.no_grad()
def evaluate_subnet(
    net: ElasticOFANet, arch: Architecture, task: TaskData, bn_images: int = 500, split: str = "val"
) -> float:
    """Accuracy (percent) on ``split`` of ``arch`` extracted from ``net``, BN statistics re-estimated on the first
    ``bn_images`` training images."""
    if split not in ("val", "test"):
        raise ValueError(f"split must be 'val' or 'test', got {split!r}")
    model = recalibrate_bn(extract_subnet(net, arch), task.x_train[:bn_images])
    x, y = getattr(task, f"x_{split}"), getattr(task, f"y_{split}")
    correct = sum(int((model(x[i : i + 512]).argmax(1) == y[i : i + 512]).sum()) for i in range(0, len(x), 512))
    return 100.0 * correct / max(1, len(x))


def _initial_net(
    space: OFASpace, task: TaskData, config: ShrinkConfig, directory: Path, phase: str
) -> tuple[ElasticOFANet, ElasticOFANet | None]:
    index = PHASES.index(phase)
    if index == 0:
        torch.manual_seed(config.seed)
        return ElasticOFANet(space, task.num_classes, task.input_shape), None
    previous = checkpoint_path(directory, PHASES[index - 1])
    if not previous.exists():
        raise ValueError(f"phase {phase!r} needs the checkpoint of phase {PHASES[index - 1]!r} at {previous}")
    net, _ = load_checkpoint(previous)
    teacher, _ = load_checkpoint(checkpoint_path(directory, "largest"))
    for p in teacher.parameters():
        p.requires_grad_(False)
    return net, teacher


def train_phase(
    space: OFASpace | str,
    task: TaskData,
    phase: str,
    config: ShrinkConfig,
    directory: str | Path,
    reporter: Reporter | None = None,
) -> dict[str, Any]:
    """Run one phase from the previous phase's checkpoint and write this phase's checkpoint; returns its metrics
    (``train_loss`` of the last epoch, ``val_acc_largest`` / ``val_acc_smallest`` with recalibrated BN, seconds)."""
    space = get_space(space) if isinstance(space, str) else space
    if not isinstance(space, OFASpace):
        raise ValueError(f"progressive shrinking needs an OFA space, got {space.name!r}")
    recipe = config.phase(phase)
    directory = Path(directory)
    reporter = reporter or NullReporter()
    start = time.perf_counter()
    with torch_threads(config.num_threads):
        net, teacher = _initial_net(space, task, config, directory, phase)
        index = PHASES.index(phase)
        seed = config.seed * 100 + index
        rng = np.random.default_rng(seed)
        generator = torch.Generator().manual_seed(seed)
        if phase == "expand":
            sort_channels(net)
        augment = _augmenter(task, generator) if config.augment else (lambda x: x)
        optimizer = torch.optim.SGD(
            [p for p in net.parameters() if p.requires_grad],
            lr=recipe.lr,
            momentum=config.momentum,
            nesterov=config.momentum > 0,
            weight_decay=config.weight_decay,
        )
        n = len(task.x_train)
        steps_per_epoch = max(1, n // config.batch_size)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, recipe.epochs * steps_per_epoch)
        train_loss = float("nan")
        for epoch in range(recipe.epochs):
            net.train()
            order = torch.randperm(n, generator=generator)
            total, count = 0.0, 0
            for step in range(steps_per_epoch):
                rows = order[step * config.batch_size : (step + 1) * config.batch_size]
                x, y = augment(task.x_train[rows]), task.y_train[rows]
                optimizer.zero_grad(set_to_none=True)
                for _ in range(recipe.subnets_per_step):
                    arch = sample_for_phase(space, phase, rng, config.largest_elastic_resolution)
                    net.set_active(arch)
                    logits = net(x)
                    loss = F.cross_entropy(logits, y, label_smoothing=config.label_smoothing)
                    if teacher is not None and config.kd_ratio > 0:
                        resolution = space.decode(arch)[0]
                        teacher.set_active(_at_resolution(space, space.largest(), resolution))
                        teacher.train()
                        with torch.no_grad():
                            soft = teacher(x)
                        loss = loss + config.kd_ratio * _soft_ce(logits, soft)
                    loss.backward()
                    total += float(loss.detach())
                    count += 1
                optimizer.step()
                scheduler.step()
            train_loss = total / max(1, count)
            if not np.isfinite(train_loss):
                raise RuntimeError(f"phase {phase!r} diverged at epoch {epoch + 1}: loss {train_loss}")
            reporter.report(epoch + 1, phase=phase, train_loss=train_loss, lr=scheduler.get_last_lr()[0])
        net.set_active(space.largest())
        metrics = {
            "phase": phase,
            "train_loss": train_loss,
            "val_acc_largest": evaluate_subnet(net, space.largest(), task, config.bn_images),
            "val_acc_smallest": evaluate_subnet(net, space.smallest(), task, config.bn_images),
            "seconds": time.perf_counter() - start,
        }
    payload = {
        "format": FORMAT,
        "phase": phase,
        **_fingerprint(space, task, config),
        "num_classes": task.num_classes,
        "input_shape": list(task.input_shape),
        "metrics": metrics,
        "state_dict": copy.deepcopy(net.state_dict()),
    }
    _save_atomic(payload, checkpoint_path(directory, phase))
    return metrics


def _at_resolution(space: OFASpace, arch: Architecture, resolution: int) -> Architecture:
    values = list(arch.encoding)
    values[0] = int(resolution)
    return space.from_encoding(values)


def progressive_shrinking(
    space: OFASpace | str,
    task: TaskData,
    config: ShrinkConfig,
    directory: str | Path,
    reporter: Reporter | None = None,
) -> dict[str, Any]:
    """Every phase not yet checkpointed in ``directory``, in order; returns ``{"skipped": [...], "ran": [...],
    "metrics": {phase: metrics}}``.  The final elastic network is ``load_checkpoint(checkpoint_path(directory,
    "expand"))``."""
    space = get_space(space) if isinstance(space, str) else space
    if not isinstance(space, OFASpace):
        raise ValueError(f"progressive shrinking needs an OFA space, got {space.name!r}")
    done = finished_phases(directory, space, task, config)
    out: dict[str, Any] = {"skipped": list(done), "ran": [], "metrics": {}}
    for phase in PHASES:
        if phase in done:
            continue
        out["metrics"][phase] = train_phase(space, task, phase, config, directory, reporter)
        out["ran"].append(phase)
    return out
