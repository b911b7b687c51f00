"""OFA's latency lookup table: per-block latencies measured on the target device, summed to predict a
sub-network's latency (Cai et al. 2020, "Once-for-All", Sec. 3.3: "latency lookup table"; reference code
``LatencyEstimator``).

A sub-network is the stem (resize + conv + first block, keyed by input shape and resolution), one entry per
active block (keyed by input channels and size, output channels, kernel, middle channels, stride, activation)
and the head (keyed by its input and the number of classes).  :meth:`OFALatencyPredictor.fill` measures every
entry the space can need (for the small space 168 entries; the paper space about 2,300) with
:func:`nasmeta.cost.measure_latency`; :meth:`predict` sums them.  Per-module timings include the Python call
overhead of each module, but not the overhead of one call into the whole network, so the sum is compared with
measured whole-network latencies (``benchmarks/ofa_report.py``) rather than assumed equal.  :meth:`calibrate`
maps the sum onto measured whole-network latencies with a robust line (Siegel's repeated medians,
``scipy.stats.siegelslopes``: a few measurements inflated by other processes on a shared machine do not move it);
uncalibrated, ``predict`` is the plain sum as in OFA.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from nasmeta.cost import measure_latency
from nasmeta.latency import LatencyTable
from nasmeta.spaces.base import Architecture
from nasmeta.spaces.ofa import Head, MBBlock, OFASpace, Stem, feature_size

Part = tuple[str, Callable[[], nn.Module], tuple[int, int, int]]


def _stem(space: OFASpace, input_shape: tuple[int, int, int], resolution: int) -> Part:
    c, h, w = input_shape
    key = f"stem:{c}x{h}x{w}:r{resolution}"
    return key, lambda: Stem(c, space.config, resolution), (c, h, w)


def _block(space: OFASpace, stage: int, first: bool, size: int, c_in: int, kernel: int, expand: int) -> Part:
    cfg = space.config
    stride = cfg.strides[stage] if first else 1
    c_out, mid, act = cfg.widths[stage], cfg.mid_channels(c_in, expand), cfg.activations[stage]
    key = f"mb:{c_in}x{size}x{size}:o{c_out}:k{kernel}:m{mid}:s{stride}:{act}"
    return key, lambda: MBBlock(c_in, c_out, kernel, mid, stride, act), (c_in, size, size)


def _head(space: OFASpace, size: int, num_classes: int) -> Part:
    c_in = space.config.widths[-1]
    key = f"head:{c_in}x{size}x{size}:n{num_classes}"
    return key, lambda: Head(c_in, space.config, num_classes), (c_in, size, size)


def arch_parts(space: OFASpace, arch: Architecture, input_shape: tuple[int, int, int], num_classes: int) -> list[Part]:
    """The lookup-table entries that make up ``arch``."""
    cfg = space.config
    resolution = space.decode(arch)[0]
    sizes = feature_size(cfg, resolution)
    parts = [_stem(space, input_shape, resolution)]
    c_in = cfg.stem_channels
    for s, stage in enumerate(space.active_blocks(arch)):
        for j, (kernel, expand) in enumerate(stage):
            parts.append(_block(space, s, j == 0, sizes[s] if j == 0 else sizes[s + 1], c_in, kernel, expand))
            c_in = cfg.widths[s]
    parts.append(_head(space, sizes[-1], num_classes))
    return parts


def all_parts(space: OFASpace, input_shape: tuple[int, int, int], num_classes: int) -> dict[str, Part]:
    """Every entry any sub-network of ``space`` needs (key -> part)."""
    cfg = space.config
    out: dict[str, Part] = {}
    for resolution in cfg.resolutions:
        sizes = feature_size(cfg, resolution)
        candidates = [_stem(space, input_shape, resolution), _head(space, sizes[-1], num_classes)]
        c_in = cfg.stem_channels
        for s in range(cfg.n_stages):
            for kernel in cfg.kernels:
                for expand in cfg.expands:
                    candidates.append(_block(space, s, True, sizes[s], c_in, kernel, expand))
                    if cfg.max_depth > 1:
                        candidates.append(_block(space, s, False, sizes[s + 1], cfg.widths[s], kernel, expand))
            c_in = cfg.widths[s]
        out.update({part[0]: part for part in candidates})
    return out


class OFALatencyPredictor:
    """Predicted latency (ms) of an OFA sub-network: the sum of its lookup-table entries in ``table``.

    Usable as a :data:`nasmeta.latency.LatencySource` (the built network is not needed)."""

    def __init__(
        self, space: OFASpace, table: LatencyTable, num_classes: int, input_shape: tuple[int, int, int]
    ) -> None:
        if table.space != space.name:
            raise ValueError(f"latency table of space {table.space!r} given for space {space.name!r}")
        self.space, self.table = space, table
        self.num_classes, self.input_shape = int(num_classes), tuple(int(v) for v in input_shape)
        self.scale, self.offset = 1.0, 0.0

    def missing(self) -> list[str]:
        return [k for k in all_parts(self.space, self.input_shape, self.num_classes) if k not in self.table]

    def fill(self, device: torch.device | str = "cpu", repeats: int = 50, warmup: int = 5) -> int:
        """Measure every entry not yet in the table (random weights: latency does not depend on their values);
        returns how many were measured."""
        device = torch.device(device)
        parts = all_parts(self.space, self.input_shape, self.num_classes)
        todo = [k for k in parts if k not in self.table]
        for key in todo:
            _, factory, shape = parts[key]
            module = factory().to(device)
            seconds = measure_latency(module, shape, (self.table.batch_size,), repeats, warmup, self.table.statistic)
            self.table.add(key, 1000.0 * seconds[f"latency_b{self.table.batch_size}"], "block", repeats)
        return len(todo)

    def lookup_sum(self, arch: Architecture) -> float:
        """The plain sum of ``arch``'s lookup-table entries (ms)."""
        parts = arch_parts(self.space, arch, self.input_shape, self.num_classes)
        return sum(self.table.get(key) for key, _, _ in parts)

    def predict(self, arch: Architecture) -> float:
        """Predicted latency (ms): the lookup sum, through the calibration line when :meth:`calibrate` was called."""
        return self.scale * self.lookup_sum(arch) + self.offset

    def calibrate(self, archs: list[Architecture], measured_ms: list[float]) -> tuple[float, float]:
        """Fit ``measured ~ scale * lookup_sum + offset`` (Siegel repeated medians) on whole networks measured on
        the same device; returns (scale, offset)."""
        from scipy.stats import siegelslopes

        if len(archs) != len(measured_ms) or len(archs) < 3:
            raise ValueError(
                f"calibration needs >= 3 (architecture, latency) pairs, got {len(archs)}, {len(measured_ms)}"
            )
        sums = [self.lookup_sum(a) for a in archs]
        fit = siegelslopes(measured_ms, sums)
        self.scale, self.offset = float(fit.slope), float(fit.intercept)
        if not self.scale > 0:
            raise ValueError(f"calibration gave a non-positive slope {self.scale:.3g}; measure more networks")
        return self.scale, self.offset

    def __call__(self, arch: Architecture, model: nn.Module | None = None, input_shape: tuple | None = None) -> float:
        if input_shape is not None and tuple(input_shape) != self.input_shape:
            raise ValueError(f"predictor built for input {self.input_shape}, asked for {tuple(input_shape)}")
        return self.predict(arch)
