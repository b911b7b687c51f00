"""RobustDARTS: the dominant Hessian eigenvalue of the validation loss w.r.t. alpha, early stop with roll-back, and
DARTS-ADA.

Zela et al., "Understanding and Robustifying Differentiable Architecture Search", ICLR 2020.  DARTS' derived cells
degrade (skip connections, parameter-free cells) as the search converges to sharp regions of the validation loss
in alpha; the dominant eigenvalue ``lambda`` of ``grad^2_alpha L_val`` tracks it.  After every epoch ``lambda`` is
computed by power iteration on Hessian-vector products (double backward through ``torch.autograd``; the Rayleigh
quotient ``v^T H v`` of the normalised iterate, until it changes by less than ``power_tol`` relatively), on the first
``hessian_samples`` images of the arch-validation half, and smoothed over a window of 5 epochs (mean of the last
5).  Early stop (R-DARTS "DARTS-ES"): at epoch ``i`` with ``lambda_bar(i - k) / lambda_bar(i) < 0.75`` (``k = 5``)
the search stops and the alphas roll back to those of epoch ``i - k``, whose derived cell is the result.
DARTS-ADA (``darts-ada``): at the trigger the search instead rolls back alphas *and* weights to epoch ``i - k``,
raises the weight optimiser's L2 regularisation by ``ada_factor`` (METHODS.md: x3) and continues; once it has been
raised ``ada_max_raises`` times, the next trigger stops as DARTS-ES does.  The search itself is DARTS (first order
by default, ``order=2`` for the unrolled gradient) with DARTS' arch optimiser.

``early_stop=False`` only tracks ``lambda`` (the trace then shows plain DARTS with its eigenvalue).

Deviations: the paper computes ``lambda`` on the full validation set; here ``hessian_samples`` images (a parameter)
keep the per-epoch cost bounded.  DARTS-ADA continues inside the loop's epoch budget (the epochs lost by a
roll-back are not added back) and keeps the weight optimiser's momentum and learning-rate schedule.  R-DARTS' other
remedies (ScheduledDropPath, cutout, L2 ablations) are not part of this strategy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from pydantic import Field
from torch.nn import functional as F

from nasmeta.oneshot.darts import Darts, DartsConfig
from nasmeta.oneshot.loop import SearchData, register_strategy
from nasmeta.oneshot.supernet import Supernet


class RobustDartsConfig(DartsConfig):
    """RobustDARTS settings (published defaults, plus the cost knobs of the eigenvalue)."""

    early_stop: bool = True
    window: int = Field(5, ge=1)
    k: int = Field(5, ge=1)
    ratio: float = Field(0.75, gt=0)
    power_iters: int = Field(20, ge=1)
    power_tol: float = Field(1e-3, ge=0)
    hessian_samples: int = Field(64, ge=2)
    ada: bool = False
    ada_factor: float = Field(3.0, gt=1)
    ada_max_raises: int = Field(3, ge=0)


def dominant_eigenvalue(
    loss_fn: Callable[[], torch.Tensor],
    params: Sequence[torch.Tensor],
    iters: int = 20,
    tol: float = 1e-3,
    generator: torch.Generator | None = None,
) -> float:
    """The largest-magnitude eigenvalue of the Hessian of ``loss_fn()`` w.r.t. ``params`` by power iteration on
    Hessian-vector products (the gradient graph is built once and differentiated again per product)."""
    params = list(params)
    loss = loss_fn()
    grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
    pairs = [(p, g) for p, g in zip(params, grads, strict=True) if g is not None]
    if not pairs:
        raise ValueError("the loss does not depend on the parameters")
    used, flat = [p for p, _ in pairs], [g for _, g in pairs]
    v = [torch.randn(p.shape, generator=generator, dtype=p.dtype).to(p.device) for p in used]
    norm = torch.sqrt(sum((x * x).sum() for x in v))
    v = [x / norm for x in v]
    value: float | None = None
    for _ in range(iters):
        hv = torch.autograd.grad(flat, used, grad_outputs=v, retain_graph=True)
        rayleigh = float(sum((a * b).sum() for a, b in zip(v, hv, strict=True)))
        norm = torch.sqrt(sum((x * x).sum() for x in hv))
        if norm == 0:
            return 0.0
        v = [x.detach() / norm for x in hv]
        if value is not None and abs(rayleigh - value) <= tol * abs(value):
            return rayleigh
        value = rayleigh
    return float(value)


def smoothed(values: Sequence[float], window: int) -> float:
    """Mean of the last ``window`` values (fewer at the start)."""
    if not values:
        raise ValueError("no values to smooth")
    return float(np.mean(values[-window:]))


@register_strategy("robust-darts")
class RobustDarts(Darts):
    """DARTS with the Hessian eigenvalue tracked and R-DARTS' early stop (or DARTS-ADA with ``ada=True``)."""

    def __init__(self, supernet: Supernet, data: SearchData, batch_size: int, seed: int, **kwargs: Any) -> None:
        config = RobustDartsConfig(**kwargs)
        super().__init__(supernet, data, batch_size, seed, **config.model_dump(include=set(DartsConfig.model_fields)))
        self.config = config
        self.generator = torch.Generator().manual_seed(seed)
        n = min(config.hessian_samples, len(data.x_val))
        self.hessian_x, self.hessian_y = data.x_val[:n], data.y_val[:n]
        #: per epoch since the last restart: (epoch, lambda, smoothed lambda)
        self.history: list[tuple[int, float, float]] = []
        self.eigenvalues: list[tuple[int, float]] = []
        self.snapshots: dict[int, dict[str, torch.Tensor]] = {}
        #: index in ``history`` of the epoch the search last restarted from (DARTS-ADA); the rule compares epochs
        #: after it only, so a roll-back never goes behind a restart
        self.restart = 0
        self.wd_scale = 1.0
        self.raises = 0
        self.triggers: list[dict[str, float]] = []
        self._stop = False

    def hessian_eigenvalue(self) -> float:
        """Dominant eigenvalue of ``grad^2_alpha L_val`` on the fixed validation images (module docstring)."""
        alphas = self.supernet.arch_parameters()
        return dominant_eigenvalue(
            lambda: F.cross_entropy(self.supernet(self.hessian_x), self.hessian_y),
            alphas,
            self.config.power_iters,
            self.config.power_tol,
            self.generator,
        )

    def _snapshot(self) -> dict[str, torch.Tensor]:
        if self.config.ada:  # DARTS-ADA restarts from the weights of epoch i - k as well
            return {n: t.detach().clone() for n, t in self.supernet.state_dict().items()}
        return {f"alpha_{t}": a.detach().clone() for t, a in self.supernet.alphas().items()}

    def _restore(self, snapshot: dict[str, torch.Tensor]) -> None:
        self.supernet.load_state_dict(snapshot, strict=self.config.ada)

    def end_epoch(self, epoch: int) -> dict[str, float]:
        lam = self.hessian_eigenvalue()
        self.eigenvalues.append((epoch, lam))
        values = [v for _, v, _ in self.history] + [lam]
        self.history.append((epoch, lam, smoothed(values, self.config.window)))
        self.snapshots[epoch] = self._snapshot()
        # the only snapshots the rule can roll back to are those of the last k + 1 entries of the history (entry
        # epochs, not loop epochs: after a DARTS-ADA restart the history resumes from the rolled-back epoch)
        keep = {e for e, _, _ in self.history[-1 - self.config.k :]}
        for old in [e for e in self.snapshots if e not in keep]:
            del self.snapshots[old]
        out = {"hessian_eig": lam, "hessian_eig_smooth": self.history[-1][2], "weight_decay_scale": self.wd_scale}
        if len(self.history) - 1 - self.restart < self.config.k:
            return out
        before, now = self.history[-1 - self.config.k][2], self.history[-1][2]
        ratio = before / now if now != 0 else float("inf")
        out["eig_ratio"] = ratio
        if ratio < self.config.ratio and self.config.early_stop:
            back = self.history[-1 - self.config.k][0]
            self._restore(self.snapshots[back])
            self.triggers.append({"epoch": float(epoch), "rolled_back_to": float(back), "ratio": ratio})
            out["rolled_back_to"] = float(back)
            if self.config.ada and self.raises < self.config.ada_max_raises:
                self.raises += 1
                self.wd_scale *= self.config.ada_factor
                self.history = [h for h in self.history if h[0] <= back]  # the search restarts from epoch i - k
                self.restart = len(self.history) - 1
            else:
                self._stop = True
        return out

    def weight_decay_scale(self) -> float:
        return self.wd_scale

    def stop_requested(self, trace: Sequence[dict[str, Any]]) -> bool:
        return self._stop or super().stop_requested(trace)

    def finish_extra(self) -> dict[str, Any]:
        return {
            "hessian_eigenvalues": [list(p) for p in self.eigenvalues],
            "triggers": self.triggers,
            "weight_decay_scale": self.wd_scale,
            "stopped_early": self._stop,
        }

    def state(self) -> dict[str, Any]:
        return self.config.model_dump()


@register_strategy("darts-ada")
class DartsAda(RobustDarts):
    """DARTS-ADA: RobustDARTS that raises the weights' L2 regularisation at each trigger (module docstring)."""

    def __init__(self, supernet: Supernet, data: SearchData, batch_size: int, seed: int, **kwargs: Any) -> None:
        super().__init__(supernet, data, batch_size, seed, **{"ada": True, **kwargs})
