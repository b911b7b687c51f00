"""Dataset landmarkers: the TAPAS difficulty measure (DCN) plus cheap meta-features of a task.

DCN follows TAPAS (Istrate et al., 2019, "TAPAS: Train-less Accuracy Predictor for Architecture Search"): the
validation accuracy of one fixed small probe network trained with one fixed recipe, so tasks can be ranked by
difficulty and a predictor can condition on it.  TAPAS's probe was trained on the full dataset; to stay cheap on a
CPU ours sees a capped, class-balanced sample at a fixed 16x16 input.  The recipe (fixed, never tuned per task):

- input: the task's normalised images resized to 16x16 (bilinear, antialiased), channels unchanged;
- training set: up to ``DCN_TRAIN_PER_CLASS`` (100) images per class of the task's train split, drawn by the seed;
- validation set: up to ``VAL_PER_CLASS`` (100) images per class of the task's val split, drawn once (seed 0);
- probe: [Conv3x3 -> BN -> ReLU -> MaxPool2] with 8 and 16 channels, Conv3x3 (32) -> BN -> ReLU, global
  average pooling, Linear;
- training: ``nasmeta.training.train``, Adam lr 5e-3 cosine to 0, no weight decay, batch 64, no augmentation,
  ``ceil(150 / ceil(n_train / 64))`` epochs (at least 150 optimisation steps, less than one epoch more, whatever
  the task's size, so a 2-class task is not under-trained), on the CPU with one thread;
- DCN = validation accuracy (percent) after the last epoch, averaged over seeds (0, 1, 2 by default); ``dcn_std``
  is the spread over seeds.

Meta-features: ``n_classes``, ``n_train`` / ``n_val`` / ``n_test``, ``resolution`` (height), ``channels``,
``class_entropy`` (bits, of the train labels), ``pixel_mean`` / ``pixel_std`` (train split on the ``[0, 1]`` scale,
before normalisation), ``pixel_entropy`` (bits, 32-bin histogram of the raw pixels of up to 200 train images per
class) and ``linear_probe_acc`` (percent: scikit-learn ``LogisticRegression(C=1, max_iter=500)`` on the normalised
pixels average-pooled to 8x8, fitted on up to 200 train images per class, scored on the DCN validation sample).

Reproducibility: the same seed gives the same DCN to the last digit on one machine and torch build (CPU, one
thread); other CPUs may differ in the last digits because their convolution kernels differ.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from nasmeta.data.tasks import TaskSpec, get_task, spec_of
from nasmeta.data.types import TaskData

__all__ = ["compute_landmarkers", "dcn", "dcn_config", "dcn_single", "describe", "meta_features", "probe_network"]

PROBE_RESOLUTION = 16
DCN_TRAIN_PER_CLASS = 100
LINEAR_TRAIN_PER_CLASS = 200
VAL_PER_CLASS = 100
LINEAR_RESOLUTION = 8


DCN_STEPS = 150
DCN_BATCH = 64
DCN_LR = 5e-3


def dcn_config(seed: int, n_train: int):
    """The fixed DCN recipe; epochs = ceil(150 / steps per epoch), so every task gets 150 to 150 + one epoch steps."""
    from nasmeta.training import TrainConfig

    return TrainConfig(
        epochs=math.ceil(DCN_STEPS / math.ceil(n_train / DCN_BATCH)),
        batch_size=DCN_BATCH,
        optimizer="adam",
        lr=DCN_LR,
        weight_decay=0.0,
        schedule="cosine",
        augment=False,
        seed=seed,
        device="cpu",
        num_threads=1,
    )


def probe_network(channels: int, num_classes: int) -> nn.Module:
    """The fixed probe CNN of the DCN landmarker."""

    def block(c_in: int, c_out: int) -> list[nn.Module]:
        return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]

    return nn.Sequential(
        *block(channels, 8),
        nn.MaxPool2d(2),
        *block(8, 16),
        nn.MaxPool2d(2),
        *block(16, 32),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, num_classes),
    )


def _resolve(task: str | TaskSpec | TaskData) -> tuple[TaskSpec, TaskData]:
    if isinstance(task, str):
        task = get_task(task)
    if isinstance(task, TaskData):
        spec = spec_of(task)
        if spec is None:
            raise ValueError(f"TaskData {task.name!r} was not loaded from a TaskSpec; pass the spec instead")
        return spec, task
    if not isinstance(task, TaskSpec):
        raise TypeError(f"expected a task name, TaskSpec or TaskData, got {type(task).__name__}")
    return task, task.load()


def _per_class(y: torch.Tensor, cap: int, seed: int) -> torch.Tensor:
    """Sorted indices of up to ``cap`` images per class, drawn by ``seed``."""
    rng = np.random.default_rng(seed)
    labels = y.numpy()
    keep = [rng.permutation(np.flatnonzero(labels == c))[:cap] for c in np.unique(labels)]
    return torch.from_numpy(np.sort(np.concatenate(keep)))


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.shape[-2:] == (size, size):
        return x
    return nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True)


def dcn_single(task: str | TaskSpec | TaskData, seed: int = 0) -> float:
    """Validation accuracy (percent) of the probe network for one seed (see the module docstring)."""
    from nasmeta.training import seed_everything, train

    spec, data = _resolve(task)
    train_idx = _per_class(data.y_train, DCN_TRAIN_PER_CLASS, seed)
    val_idx = _per_class(data.y_val, VAL_PER_CLASS, 0)
    x_val = _resize(data.x_val[val_idx], PROBE_RESOLUTION)
    probe_data = TaskData(
        task_id=f"{spec.task_id}-dcn",
        name=f"{spec.name}-dcn",
        x_train=_resize(data.x_train[train_idx], PROBE_RESOLUTION),
        y_train=data.y_train[train_idx],
        x_val=x_val,
        y_val=data.y_val[val_idx],
        x_test=x_val[:0],  # only validation accuracy is used
        y_test=data.y_val[:0],
        num_classes=data.num_classes,
    )
    seed_everything(seed)
    probe = probe_network(data.input_shape[0], data.num_classes)
    result = train(probe, probe_data, dcn_config(seed, len(probe_data.x_train)))
    if result.status != "completed":
        raise RuntimeError(f"DCN probe on {spec.name!r} {result.status}: {result.error}")
    return float(result.final_val_acc)


def dcn(task: str | TaskSpec | TaskData, seeds: Sequence[int] = (0, 1, 2)) -> tuple[float, float]:
    """(mean, standard deviation) of the probe's validation accuracy over ``seeds``."""
    if not seeds:
        raise ValueError("dcn needs at least one seed")
    values = [dcn_single(task, seed) for seed in seeds]
    return float(np.mean(values)), float(np.std(values))


def _entropy_bits(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def linear_probe_accuracy(task: str | TaskSpec | TaskData) -> float:
    """Logistic regression on 8x8 average-pooled pixels: validation accuracy in percent."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    _, data = _resolve(task)
    train_idx = _per_class(data.y_train, LINEAR_TRAIN_PER_CLASS, 0)
    val_idx = _per_class(data.y_val, VAL_PER_CLASS, 0)

    def features(x: torch.Tensor) -> np.ndarray:
        pooled = nn.functional.adaptive_avg_pool2d(x, LINEAR_RESOLUTION) if x.shape[-1] > LINEAR_RESOLUTION else x
        return pooled.flatten(1).double().numpy()

    model = LogisticRegression(max_iter=500)
    # one BLAS / OpenMP thread: deterministic, and on a busy machine spinning thread pools cost 30x
    with warnings.catch_warnings(), threadpool_limits(limits=1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(features(data.x_train[train_idx]), data.y_train[train_idx].numpy())
    return 100.0 * float(model.score(features(data.x_val[val_idx]), data.y_val[val_idx].numpy()))


def meta_features(task: str | TaskSpec | TaskData) -> dict[str, float]:
    """Everything but the DCN (milliseconds to a second)."""
    spec, data = _resolve(task)
    mean, std = spec.normalisation()
    mean_t, std_t = torch.tensor(mean), torch.tensor(std)
    # overall std from per-channel moments: E[x^2] = mean over channels of (std_c^2 + mean_c^2)
    overall_mean = float(mean_t.mean())
    overall_std = math.sqrt(max(float((std_t**2 + mean_t**2).mean()) - overall_mean**2, 0.0))
    sample = data.x_train[_per_class(data.y_train, 200, 0)]
    raw = sample * std_t.view(1, -1, 1, 1).float() + mean_t.view(1, -1, 1, 1).float()
    hist = torch.histc(raw.clamp(0, 1), bins=32, min=0.0, max=1.0).numpy()
    _, height, _ = data.input_shape
    return {
        "n_classes": float(data.num_classes),
        "n_train": float(len(data.x_train)),
        "n_val": float(len(data.x_val)),
        "n_test": float(len(data.x_test)),
        "resolution": float(height),
        "channels": float(data.input_shape[0]),
        "class_entropy": _entropy_bits(np.bincount(data.y_train.numpy(), minlength=data.num_classes)),
        "pixel_mean": overall_mean,
        "pixel_std": overall_std,
        "pixel_entropy": _entropy_bits(hist),
        "linear_probe_acc": linear_probe_accuracy(data),
    }


def compute_landmarkers(
    task: str | TaskSpec | TaskData, seeds: Sequence[int] = (0, 1, 2), with_dcn: bool = True
) -> dict[str, float]:
    """Meta-features plus ``dcn`` and ``dcn_std`` (seed-averaged probe accuracy) of a task."""
    result = meta_features(task)
    if with_dcn:
        result["dcn"], result["dcn_std"] = dcn(task, seeds)
    return result


def describe(name: str | TaskSpec, seeds: Sequence[int] = (0, 1, 2), with_dcn: bool = True) -> dict[str, object]:
    """A task's spec (with ``task_id``) and landmarkers, for ``nasmeta tasks describe``."""
    spec = get_task(name) if isinstance(name, str) else name
    return {
        "task_id": spec.task_id,
        "spec": spec.model_dump(mode="json"),
        "landmarkers": compute_landmarkers(spec, seeds, with_dcn),
    }
