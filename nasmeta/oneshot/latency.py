"""Latency tables measured on this machine: the per-op latency model ProxylessNAS' latency loss differentiates.

Cai, Zhu & Han, "ProxylessNAS", ICLR 2019, sec. 3.3: a network's latency is modelled as a constant plus the sum
of its ops' latencies, each op timed alone at the input shape it sees in the network, on the target device; the
expected latency of an edge is ``sum_o p_o * LAT(o)``, which is differentiable in alpha.

:func:`measure_latency_table` times every candidate op of every supernet edge on ``device`` (CPU, or CUDA
where present) with ``torch.utils.benchmark`` (median of adaptive runs; on CPU of the process CPU time, see
:func:`time_ms`; eval mode, no autograd), built as the standalone network builds it (BN ``affine=True``, no
search-only BN after pooling); ops of the same shape are timed once.  The constant (stem, reduction blocks, cell
preprocessing, head, node sums) is the median over ``n_reference`` sampled architectures of ``measured network -
sum of its ops``.  In DARTS cells a discrete architecture keeps 2 of a node's incoming edges; the expected latency
counts each edge with weight ``2 / incoming edges`` (a uniform choice of the kept edges).
"""

from __future__ import annotations

import time
import timeit
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from nasmeta.oneshot.supernet import Choices, Supernet
from nasmeta.spaces.base import Architecture
from nasmeta.spaces.ops import make_op


@dataclass
class LatencyTable:
    """Per cell type ``(edges, candidates)`` latencies in ms (summed over the cells of the type) plus ``base_ms``."""

    device: str
    batch_size: int
    threads: int
    base_ms: float
    per_edge: dict[str, np.ndarray]
    edge_share: dict[str, np.ndarray]
    reference: list[dict[str, float]] = field(default_factory=list)

    def expected_ms(self, probs: dict[str, torch.Tensor]) -> torch.Tensor:
        """``base + sum_edges share_e * sum_o p[e, o] * LAT[e, o]``: differentiable in ``probs``."""
        total: torch.Tensor | float = self.base_ms
        for t, p in probs.items():
            lat = torch.as_tensor(self.per_edge[t], dtype=p.dtype, device=p.device)
            share = torch.as_tensor(self.edge_share[t], dtype=p.dtype, device=p.device)
            total = total + (share[:, None] * p * lat).sum()
        return total  # type: ignore[return-value]

    def arch_ms(self, supernet: Supernet, arch: Architecture) -> float:
        """Predicted latency of a discrete architecture: base + the table entries of the edges it uses."""
        path = supernet.arch_to_path(arch)
        total = self.base_ms
        for t, choice in path.items():
            total += sum(float(self.per_edge[t][e, k]) for e, k in enumerate(choice) if k is not None)
        return total

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "batch_size": self.batch_size,
            "threads": self.threads,
            "base_ms": self.base_ms,
            "per_edge": {t: v.tolist() for t, v in self.per_edge.items()},
            "reference": self.reference,
        }


def time_ms(fn: Any, device: torch.device, min_run_time: float = 0.05) -> float:
    """Milliseconds of ``fn()``: the median block of ``torch.utils.benchmark``'s adaptive repeats (warm-up, CUDA
    sync).  On CPU the clock is the process's CPU time, not the wall clock: on a machine shared with other
    processes the wall clock counts their time slices too, the CPU time does not; with one intra-op thread it is
    the latency of an otherwise idle core (with more threads it is their summed time, an upper bound)."""
    from torch.utils import benchmark  # imported here: it probes for a CUDA toolchain and warns on import

    clock = time.process_time if device.type == "cpu" else timeit.default_timer
    timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads(), timer=clock)
    with torch.no_grad():
        fn()  # warm-up (lazy init, allocator)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return float(timer.blocked_autorange(min_run_time=min_run_time).median * 1000.0)


def network_ms(
    model: torch.nn.Module,
    input_shape: tuple[int, int, int],
    device: str | torch.device = "cpu",
    batch_size: int = 1,
    min_run_time: float = 0.2,
) -> float:
    """Measured forward latency (ms, eval mode, no autograd) of a whole network at ``batch_size``."""
    dev = torch.device(device)
    model = model.to(dev).eval()
    x = torch.randn(batch_size, *input_shape, device=dev)
    return time_ms(lambda: model(x), dev, min_run_time)


def build_arch(supernet: Supernet, arch: Architecture, num_classes: int, input_shape: tuple[int, int, int]) -> Any:
    """The standalone network of ``arch`` at the supernet's size (DARTS: no auxiliary head, no drop-path)."""
    size = dict(supernet.size)
    if arch.space != "nb201":
        size.update(auxiliary=False, drop_path_prob=0.0)
    return supernet.space.build(arch, num_classes, input_shape, **size)


def _edge_input_shapes(supernet: Supernet, input_shape: tuple[int, int, int]) -> list[tuple[str, int, Any, tuple]]:
    edges = supernet.edge_modules()
    shapes: dict[int, tuple[int, ...]] = {}
    hooks = [
        op.register_forward_pre_hook(lambda m, args, i=i: shapes.__setitem__(i, tuple(args[0].shape)))
        for i, (_, _, op) in enumerate(edges)
    ]
    try:
        was_training = supernet.training
        supernet.train()
        device = supernet.alphas()[supernet.cell_types[0]].device
        with torch.no_grad():
            supernet(
                torch.zeros(2, *input_shape, device=device),
                Choices({t: (0,) * len(supernet.edge_ops[t]) for t in supernet.cell_types}),
            )
        supernet.train(was_training)
    finally:
        for h in hooks:
            h.remove()
    return [(t, e, op, shapes[i][1:]) for i, (t, e, op) in enumerate(edges)]


def measure_latency_table(
    supernet: Supernet,
    num_classes: int,
    input_shape: tuple[int, int, int],
    device: str | torch.device = "cpu",
    batch_size: int = 1,
    min_run_time: float = 0.05,
    n_reference: int = 3,
    seed: int = 0,
) -> LatencyTable:
    """Time every candidate op of every edge of ``supernet`` on ``device`` (module docstring)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    if n_reference < 1:
        raise ValueError(f"n_reference must be >= 1, got {n_reference!r}")
    dev = torch.device(device)
    cache: dict[tuple, float] = {}
    per_edge = {t: np.zeros((len(supernet.edge_ops[t]), len(supernet.edge_ops[t][0]))) for t in supernet.cell_types}
    for t, e, mixed, shape in _edge_input_shapes(supernet, input_shape):
        for k, name in enumerate(mixed.names):
            key = (name, mixed.c_in, mixed.c_out, mixed.stride, shape, id(mixed.family))
            if key not in cache:
                op = make_op(mixed.family, name, mixed.c_in, mixed.c_out, mixed.stride, affine=True).to(dev).eval()
                x = torch.randn(batch_size, *shape, device=dev)
                cache[key] = time_ms(lambda op=op, x=x: op(x), dev, min_run_time)
            per_edge[t][e, k] += cache[key]
    share = {}
    for t in supernet.cell_types:
        s = np.ones(len(supernet.edge_ops[t]))
        for edges in supernet.node_edges[t]:
            kept = len(edges) if supernet.inputs_per_node is None else min(supernet.inputs_per_node, len(edges))
            s[list(edges)] = kept / len(edges)
        share[t] = s
    table = LatencyTable(str(dev), batch_size, torch.get_num_threads(), 0.0, per_edge, share)
    rng = np.random.default_rng(seed)
    gaps, reference = [], []
    for _ in range(n_reference):
        arch = supernet.space.sample(rng)
        measured = network_ms(build_arch(supernet, arch, num_classes, input_shape), input_shape, dev, batch_size)
        ops = table.arch_ms(supernet, arch)
        gaps.append(measured - ops)
        reference.append({"arch": str(arch), "measured_ms": measured, "ops_ms": ops})
    table.base_ms = float(np.median(gaps))
    table.reference = reference
    return table
