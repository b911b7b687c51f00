"""Measured latency on the target device, kept in the metadata store's ``latencies`` table.

A :class:`LatencyTable` holds measured latencies in milliseconds (by default the minimum over the timed repeats,
which on a machine shared with other processes estimates the idle-device latency better than the median; eval
mode, no autograd, CUDA synchronised; see :func:`nasmeta.cost.measure_latency`) for one device label, one space
and one batch size, keyed by what was timed:

- ``net:<arch_id>:<C>x<H>x<W>:n<classes>`` -- a whole network as ``space.build`` gives it for that input and
  number of classes (``kind="network"``);
- per-block keys of a lookup-table predictor (``kind="block"``, e.g. OFA's, :mod:`nasmeta.ofa.latency`).

The device label (:func:`device_label`) names the processor and the thread count on CPU (latency depends on
both) or the GPU model, so tables of different machines never mix.  :class:`MeasuredLatency` is the latency
source that hardware-aware searches share (zero-shot constraints and objective, OFA's evolution): it answers from
the table and measures (then records) what is missing.  A table's ``statistic`` (``min`` or ``median``) is the one
every entry of it is measured with; it is part of the stored ``spec``.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from nasmeta.cost import measure_latency
from nasmeta.spaces.base import Architecture

#: a latency source: (architecture, its built network, input shape) -> milliseconds
LatencySource = Callable[[Architecture, nn.Module, tuple[int, int, int]], float]


def device_label(device: torch.device | str | None = None) -> str:
    """``cpu:<processor>:t<threads>`` or ``cuda:<GPU name>``: which machine a latency belongs to."""
    device = torch.device(device or "cpu")
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    if device.type != "cpu":
        raise ValueError(f"latency is measured on 'cpu' or 'cuda' devices, got {str(device)!r}")
    processor = platform.processor() or platform.machine() or "unknown"
    return f"cpu:{processor}:t{torch.get_num_threads()}"


def network_key(arch: Architecture, input_shape: tuple[int, int, int], num_classes: int) -> str:
    c, h, w = (int(v) for v in input_shape)
    return f"net:{arch.arch_id}:{c}x{h}x{w}:n{int(num_classes)}"


@dataclass
class LatencyTable:
    """Measured latencies (ms) of one device, space and batch size; ``new_keys`` are those not yet stored."""

    device: str
    space: str
    batch_size: int = 1
    entries: dict[str, float] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    arch_ids: dict[str, str | None] = field(default_factory=dict)
    repeats: dict[str, int] = field(default_factory=dict)
    new_keys: list[str] = field(default_factory=list)
    statistic: str = "min"

    def __post_init__(self) -> None:
        if self.statistic not in ("median", "min"):
            raise ValueError(f"statistic must be 'median' or 'min', got {self.statistic!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {self.batch_size!r}")
        if not self.device or not self.space:
            raise ValueError(f"a latency table needs a device and a space, got {self.device!r}, {self.space!r}")

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, key: str) -> float:
        try:
            return self.entries[key]
        except KeyError:
            raise ValueError(f"latency table of {self.device} / {self.space} has no entry {key!r}") from None

    def add(self, key: str, ms: float, kind: str, repeats: int, arch_id: str | None = None) -> None:
        if kind not in ("block", "network"):
            raise ValueError(f"latency kind must be 'block' or 'network', got {kind!r}")
        if not ms > 0:
            raise ValueError(f"latency of {key!r} must be positive, got {ms!r}")
        self.entries[key] = float(ms)
        self.kinds[key] = kind
        self.arch_ids[key] = arch_id
        self.repeats[key] = int(repeats)
        if key not in self.new_keys:
            self.new_keys.append(key)

    def rows(self, keys: list[str] | None = None) -> list[dict[str, Any]]:
        """``latencies`` rows of ``keys`` (default: all)."""
        spec = json.dumps({"torch": torch.__version__, "statistic": self.statistic})
        return [
            {
                "device": self.device,
                "space": self.space,
                "key": key,
                "batch_size": self.batch_size,
                "kind": self.kinds[key],
                "arch_id": self.arch_ids.get(key),
                "latency_ms": self.entries[key],
                "repeats": self.repeats.get(key),
                "spec": spec,
            }
            for key in (self.entries if keys is None else keys)
        ]

    def to_store(self, store: Any, only_new: bool = True) -> int:
        """Append the new (or all) entries to the store's ``latencies`` table; returns rows written."""
        rows = self.rows(self.new_keys if only_new else None)
        written = store.append("latencies", rows) if rows else 0
        self.new_keys = []
        return written

    @classmethod
    def from_store(
        cls, store: Any, device: str, space: str, batch_size: int = 1, statistic: str = "min"
    ) -> LatencyTable:
        """The stored latencies of ``device`` / ``space`` / ``batch_size`` measured with ``statistic`` (empty when
        none)."""
        table = cls(device, space, batch_size, statistic=statistic)
        rows = store.read("latencies", device=device, space=space, batch_size=batch_size)
        for row in rows.to_pylist():
            if json.loads(row["spec"] or "{}").get("statistic", "min") != statistic:
                continue
            table.entries[row["key"]] = float(row["latency_ms"])
            table.kinds[row["key"]] = row["kind"]
            table.arch_ids[row["key"]] = row["arch_id"]
            table.repeats[row["key"]] = row["repeats"]
        return table


class MeasuredLatency:
    """Whole-network latency from ``table``; a network not in it is measured on ``device`` and added (the
    caller stores ``table.new_keys`` with :meth:`LatencyTable.to_store`)."""

    def __init__(
        self,
        table: LatencyTable,
        num_classes: int,
        device: torch.device | str = "cpu",
        repeats: int = 30,
        warmup: int = 5,
    ) -> None:
        if repeats < 1 or warmup < 0:
            raise ValueError(f"repeats must be >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
        self.table = table
        self.num_classes = int(num_classes)
        self.device = torch.device(device)
        self.repeats, self.warmup = repeats, warmup
        self.measured = 0

    def __call__(self, arch: Architecture, model: nn.Module, input_shape: tuple[int, int, int]) -> float:
        key = network_key(arch, input_shape, self.num_classes)
        if key not in self.table:
            self.table.add(key, self.measure(model, input_shape), "network", self.repeats, arch.arch_id)
            self.measured += 1
        return self.table.get(key)

    def measure(self, model: nn.Module, input_shape: tuple[int, int, int]) -> float:
        model = model.to(self.device)
        times = measure_latency(
            model, input_shape, (self.table.batch_size,), self.repeats, self.warmup, self.table.statistic
        )
        return 1000.0 * times[f"latency_b{self.table.batch_size}"]
