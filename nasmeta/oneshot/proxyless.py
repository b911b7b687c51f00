"""ProxylessNAS: binarised paths (only the active op of each edge is computed and kept in memory), gradient of the
architecture through the binary gates, and the latency loss on a latency table measured on this machine.

Cai, Zhu & Han, "ProxylessNAS: Direct Neural Architecture Search on Target Task and Hardware", ICLR 2019.

* Binary gates: each edge samples gates ``g`` (one-hot) from ``p = softmax(alpha)``; the edge output is
  ``sum_j g_j o_j(x) = o_active(x)``, so only the active op runs forward and only its activations are stored.
* Gate gradient (paper eq. 4): ``dL/dalpha_i = sum_j dL/dg_j * p_j * (delta_ij - p_i)`` with ``dL/dg_j =
  <dL/dout, o_j(x)>``, computed in the backward pass by running each candidate once without autograd
  (:class:`_GateGrad`; the active op's output is recomputed rather than kept), so no inactive op ever holds a
  graph and the edge keeps nothing beyond the active op's own activations; the sum over ``j`` is the softmax's
  Jacobian, which autograd applies through the straight-through gates ``onehot - p.detach() + p``.
* ``mode="two"`` (the paper's memory saving): two candidates are drawn from ``p`` without replacement, the active
  one of them from ``softmax(alpha)`` over the pair, gates and gradient live on the pair only, and after the Adam
  step the pair's alphas are shifted by a common offset so that ``sum exp(alpha)`` over the pair, hence the
  probability of every unsampled op, is what it was.  ``mode="full"``: one active op from ``p``, the gradient
  over all candidates (the inactive ones run once each in the backward, without autograd).
* Latency loss (``latency_target_ms`` = T): ``CE * a * (log E[LAT] / log T) ** b`` with ``a = 0.2``, ``b = 0.3``
  and ``E[LAT]`` the expected latency under ``p`` from a :class:`~nasmeta.oneshot.latency.LatencyTable` measured
  on ``latency_device`` (default the supernet's: CPU here, CUDA where present) at ``latency_batch`` images, or
  passed in as ``latency_table``; milliseconds, so T > 1 ms.

Published search settings (the reference ``imagenet_arch_search.py``): arch Adam lr 1e-3, betas (0, 0.999), eps
1e-8, no weight decay, an arch update every 5 weight steps, 40 warm-up epochs of weight training (before 120
search epochs: ``warmup_epochs=None`` takes that 1/4 share of the search length).  The weight steps train one path
sampled from ``p`` over all candidates in both modes (the reference switches its binary mode on only for the
architecture step; before this was matched, 'two' mode trained the weights on a pair-then-pick draw, which
sharpens ``p``); the weight optimiser is the loop's shared DARTS setting.

Deviations: the supernets are the NB201 and DARTS cell spaces, not the paper's MobileNetV2 chain; all cells of a
type share their alphas, so they share one gate sample per forward pass.  The published default binary mode
``full_v2`` (a memory-saving rewrite of ``full``) gives the same gradients as ``full`` here.  Derivation is the
space's rule on softmax(alpha).  The reference gives an edge no architecture gradient when its active op is the zero
layer (there the whole MobileNet block is skipped, so the mixed op never runs); NB201's ``none`` is an ordinary
candidate here and its edge gets eq. 4's gradient like any other.

On NB201 at short budgets (e.g. 8 epochs, C=8 N=1, 16 px, 800+800 CIFAR images) the found cells are parameter-free
(skip / avg-pool) or mostly so; ``benchmarks/oneshot_sampled_diagnostics.py`` shows why: the sampled-path supernet
then rates parameter-free ops better than convs (``E[L_val | op on edge e]`` and the validation loss of fixed cells
through it), so descending ``E[L_val]`` -- which the gate gradient does (its mean has cosine 0.84-0.89 with the exact
``dE[L_val]/dalpha``) -- moves towards them; given weights that favour convs (trained through conv paths only) the
arch steps alone derive a conv cell (92.34 % in the table).  ~70 Adam steps of 1e-3 leave softmax(alpha) within
0.01 of uniform, so the derived cell is the argmax of a small, noisy drift.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch.nn import functional as F

from nasmeta.oneshot.latency import LatencyTable, measure_latency_table
from nasmeta.oneshot.loop import (
    AlphaStrategy,
    Batch,
    SearchData,
    apply_gradients,
    arch_gradients,
    arch_optimizer,
    register_strategy,
)
from nasmeta.oneshot.mixed_ops import EdgeChoice, MixedOp
from nasmeta.oneshot.supernet import Choices, Path, Supernet
from nasmeta.spaces.ops import Noise

#: published share of warm-up in the whole search (40 warm-up + 120 search epochs)
WARMUP_SHARE = 40 / 160


class ProxylessConfig(BaseModel):
    """ProxylessNAS settings (published defaults)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["two", "full"] = "two"
    arch_lr: float = Field(1e-3, gt=0)
    arch_betas: tuple[float, float] = (0.0, 0.999)
    arch_eps: float = Field(1e-8, gt=0)
    arch_weight_decay: float = Field(0.0, ge=0)
    arch_every: int = Field(5, ge=1)
    warmup_epochs: int | None = Field(None, ge=0)
    latency_target_ms: float | None = Field(None, gt=1.0)
    latency_a: float = Field(0.2, gt=0)
    latency_b: float = Field(0.3, gt=0)
    latency_batch: int = Field(1, ge=1)
    #: device whose latency the table measures (None: the supernet's device), e.g. "cuda" from a CPU search
    latency_device: str | None = None


class _GateGrad(torch.autograd.Function):
    """Identity on the active op's output; its backward gives each gate ``dL/dg_j = <grad, o_j(x)>``, running the
    inactive candidates ``o_j`` once without autograd."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, out: torch.Tensor, gates: torch.Tensor, x: torch.Tensor, op: MixedOp, candidates: Sequence[int],
        active_pos: int,
    ) -> torch.Tensor:  # fmt: skip
        # the active output is kept only when a rerun would not reproduce it (S4's noise op); otherwise the
        # backward reruns the active op too, so that the edge holds nothing beyond the active op's own graph
        ctx.keep_out = isinstance(op.ops[candidates[active_pos]], Noise)
        ctx.save_for_backward(x, out if ctx.keep_out else None)
        ctx.op, ctx.candidates, ctx.active_pos = op, tuple(candidates), active_pos
        return out.view_as(out)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        gate_grad = None
        if ctx.needs_input_grad[1]:
            x, out = ctx.saved_tensors
            flat = grad.reshape(-1)
            values = []
            with torch.no_grad():
                for pos, k in enumerate(ctx.candidates):
                    o = out if pos == ctx.active_pos and ctx.keep_out else ctx.op.run(k, x)
                    values.append(torch.dot(flat, o.reshape(-1)))
                    del o
            gate_grad = torch.stack(values)
        return grad, gate_grad, None, None, None, None


class BinaryGate(EdgeChoice):
    """The active op of ``candidates`` runs; ``gates`` (straight-through one-hot over the candidates) receive
    ``dL/dg_j`` through :class:`_GateGrad`."""

    def __init__(self, candidates: Sequence[int], active_pos: int, gates: torch.Tensor) -> None:
        self.candidates = tuple(int(c) for c in candidates)
        self.active_pos = int(active_pos)
        self.gates = gates

    @property
    def active(self) -> int:
        return self.candidates[self.active_pos]

    def __call__(self, op: MixedOp, x: torch.Tensor) -> torch.Tensor:
        out = op.run(self.active, x)
        if not self.gates.requires_grad:
            return out
        return _GateGrad.apply(out, self.gates, x, op, self.candidates, self.active_pos)


@register_strategy("proxyless")
class ProxylessNas(AlphaStrategy):
    """ProxylessNAS over a supernet's edges (module docstring).  ``latency_table``: a table measured before (by
    :func:`~nasmeta.oneshot.latency.measure_latency_table`) to reuse instead of measuring one."""

    def __init__(
        self,
        supernet: Supernet,
        data: SearchData,
        batch_size: int,
        seed: int,
        latency_table: LatencyTable | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(supernet, data, batch_size, seed)
        self.config = ProxylessConfig(**kwargs)
        self.optimizer = arch_optimizer(supernet.alphas().values(), self.config)
        self.table = latency_table
        if self.table is None and self.config.latency_target_ms is not None:
            device = self.config.latency_device or supernet.alphas()[supernet.cell_types[0]].device
            self.table = measure_latency_table(
                supernet, data.num_classes, data.input_shape, device, self.config.latency_batch, seed=seed
            )
        if self.table is not None and self.config.latency_target_ms is not None:
            with torch.no_grad():
                start = float(self.expected_latency())  # type: ignore[arg-type]
            if start <= 1.0:
                raise ValueError(
                    f"expected latency {start:.3f} ms <= 1 ms: the log-latency loss needs latencies above 1 ms "
                    "(raise latency_batch)"
                )
        self.warmup = self.config.warmup_epochs or 0
        self.epoch, self.steps = 0, 0
        self.last_ce, self.last_factor = math.nan, math.nan

    def begin_epoch(self, epoch: int, epochs: int) -> None:
        super().begin_epoch(epoch, epochs)
        if self.config.warmup_epochs is None:
            self.warmup = round(WARMUP_SHARE * epochs)

    # -- sampling -------------------------------------------------------------------------------------------------
    def _draw(self, alpha_row: torch.Tensor, mode: str) -> tuple[list[int], int]:
        """(candidates, position of the active one) for one edge, by ``mode``."""
        p = alpha_row.detach().double().softmax(dim=0).cpu().numpy()
        p = p / p.sum()
        n = len(p)
        if mode == "full" or n < 2:
            return list(range(n)), int(self.rng.choice(n, p=p))
        pair = [int(i) for i in self.rng.choice(n, size=2, replace=False, p=p)]
        q = alpha_row.detach().double()[pair].softmax(dim=0).cpu().numpy()
        return pair, int(self.rng.choice(2, p=q / q.sum()))

    def sample_gates(self, with_grad: bool = True) -> Choices:
        """One gate sample per edge (shared by the cells of a type).  Without gradient (the weight step) the active
        op is drawn from softmax(alpha) over every candidate in both modes, as the reference's weight step does
        (its binary mode is only switched on for the architecture step); 'two' mode's pair is an arch-step device."""
        mode = self.config.mode if with_grad else "full"
        per_cell: dict[str, tuple[Any, ...]] = {}
        for t, alpha in self.supernet.alphas().items():
            edges = []
            for e in range(alpha.shape[0]):
                candidates, active = self._draw(alpha[e], mode)
                if not with_grad:
                    edges.append(candidates[active])
                    continue
                p = alpha[e, candidates].softmax(dim=0)
                onehot = F.one_hot(torch.tensor(active, device=alpha.device), len(candidates)).to(p.dtype)
                edges.append(BinaryGate(candidates, active, onehot - p.detach() + p))
            per_cell[t] = tuple(edges)
        return Choices(per_cell)

    # -- losses ---------------------------------------------------------------------------------------------------
    def expected_latency(self) -> torch.Tensor | None:
        if self.table is None:
            return None
        return self.table.expected_ms(self.supernet.op_weights())

    def arch_loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """CE, times ``a * (log E[LAT] / log T) ** b`` when a latency target is set."""
        ce = F.cross_entropy(logits, y)
        self.last_ce = float(ce.detach())
        target = self.config.latency_target_ms
        if target is None:
            return ce
        lat = self.expected_latency()
        assert lat is not None  # a target always comes with a table (__init__)
        factor = self.config.latency_a * (torch.log(lat) / math.log(target)) ** self.config.latency_b
        self.last_factor = float(factor.detach())
        return ce * factor

    # -- strategy ---------------------------------------------------------------------------------------------------
    def arch_step(self, train_batch: Batch, val_batch: Batch, lr: float) -> None:
        if self.epoch <= self.warmup:
            return
        self.steps += 1
        if self.steps % self.config.arch_every:
            return
        xv, yv = val_batch
        choices = self.sample_gates(with_grad=True)
        alphas = list(self.supernet.alphas().values())
        before = [a.detach().clone() for a in alphas]
        loss = self.arch_loss(self.supernet(xv, choices), yv)
        grads = arch_gradients(loss, alphas)
        apply_gradients(self.optimizer, alphas, grads)
        if self.config.mode == "two":
            self._rescale(choices, before)

    @torch.no_grad()
    def _rescale(self, choices: Choices, before: list[torch.Tensor]) -> None:
        """Shift each sampled pair so that its ``logsumexp`` (hence every unsampled probability) is unchanged."""
        for (t, alpha), old in zip(self.supernet.alphas().items(), before, strict=True):
            for e, gate in enumerate(choices.per_cell[t]):
                pair = list(gate.candidates)
                offset = torch.logsumexp(alpha[e, pair], 0) - torch.logsumexp(old[e, pair], 0)
                alpha[e, pair] -= offset

    def weight_path(self) -> Choices:
        return self.sample_gates(with_grad=False)

    def eval_path(self) -> Path:
        return self.supernet.arch_to_path(self.supernet.derive())

    def end_epoch(self, epoch: int) -> dict[str, float]:
        return {"arch_ce": self.last_ce, "latency_factor": self.last_factor}

    def summary(self) -> dict[str, float]:
        """Entropy of softmax(alpha); with a latency table, the expected and the derived cell's predicted latency."""
        out = {"alpha_entropy": self.alpha_entropy()}
        if self.table is not None:
            with torch.no_grad():
                out["expected_latency_ms"] = float(self.expected_latency())  # type: ignore[arg-type]
            out["arch_latency_ms"] = self.table.arch_ms(self.supernet, self.supernet.derive())
        return out

    def finish_extra(self) -> dict[str, Any]:
        if self.table is None:
            return {}
        arch = self.supernet.derive()
        return {"latency_table": self.table.to_dict(), "predicted_latency_ms": self.table.arch_ms(self.supernet, arch)}

    def state(self) -> dict[str, Any]:
        return self.config.model_dump()


def gate_gradient(dl_dg: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """The paper's eq. 4: ``dL/dalpha_i = sum_j dL/dg_j * p_j * (delta_ij - p_i)`` (for tests and reading)."""
    eye = torch.eye(len(p), dtype=p.dtype, device=p.device)
    return (dl_dg[None, :] * p[None, :] * (eye - p[:, None])).sum(dim=1)
