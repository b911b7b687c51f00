"""Cost measures of a built network: parameters, FLOPs and latency.

FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` on one forward pass of a single sample in eval mode.
That counter charges a multiply-accumulate as 2 FLOPs and counts only matrix-like ops (convolutions, linear
layers, matmuls, attention); element-wise ops (ReLU, BN, pooling, additions) are not counted.  Tables that
publish "FLOPs" as multiply-accumulates (NAS-Bench-201, NAS-Bench-Macro) compare with :func:`count_macs`
(= ``count_flops // 2``).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _device_of(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def _check_shape(input_shape: Sequence[int]) -> tuple[int, int, int]:
    if len(input_shape) != 3 or any(int(s) < 1 for s in input_shape):
        raise ValueError(f"input_shape must be (C, H, W) with positive sizes, got {tuple(input_shape)}")
    return int(input_shape[0]), int(input_shape[1]), int(input_shape[2])


def count_flops(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Forward FLOPs of one sample (2 per multiply-accumulate, as ``FlopCounterMode`` reports)."""
    shape = _check_shape(input_shape)
    was_training = model.training
    model.eval()
    try:
        x = torch.zeros(1, *shape, device=_device_of(model))
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(x)
        return int(counter.get_total_flops())
    finally:
        model.train(was_training)


def count_macs(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Forward multiply-accumulates of one sample (the unit of NB201's and NAS-Bench-Macro's "FLOPs")."""
    return count_flops(model, input_shape) // 2


def measure_latency(
    model: nn.Module,
    input_shape: Sequence[int],
    batch_sizes: Sequence[int] = (1, 64),
    repeats: int = 20,
    warmup: int = 3,
    statistic: str = "median",
) -> dict[str, float]:
    """Median (or minimum) forward time in seconds per batch size on the model's device: ``{"latency_b1": ...}``.

    Eval mode, no autograd; CUDA is synchronised around every timed call.  ``statistic="min"`` estimates the
    latency of an otherwise idle device when other processes share it (their interference only adds time).
    """
    if statistic not in ("median", "min"):
        raise ValueError(f"statistic must be 'median' or 'min', got {statistic!r}")
    shape = _check_shape(input_shape)
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    device = _device_of(model)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    was_training = model.training
    model.eval()
    result: dict[str, float] = {}
    try:
        with torch.no_grad():
            for batch in batch_sizes:
                if int(batch) < 1:
                    raise ValueError(f"batch sizes must be positive, got {batch}")
                x = torch.randn(int(batch), *shape, device=device)
                times = []
                for i in range(warmup + repeats):
                    sync()
                    start = time.perf_counter()
                    model(x)
                    sync()
                    if i >= warmup:
                        times.append(time.perf_counter() - start)
                result[f"latency_b{int(batch)}"] = statistics.median(times) if statistic == "median" else min(times)
    finally:
        model.train(was_training)
    return result
