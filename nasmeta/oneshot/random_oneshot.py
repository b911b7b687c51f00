"""Random-sampling one-shot NAS: train the supernet on uniformly sampled single paths, then rank architectures
by their accuracy through the shared weights.

Bender et al., "Understanding and Simplifying One-Shot Architecture Search", ICML 2018; Li & Talwalkar,
"Random Search and Reproducibility for NAS" (RSPS), UAI 2019; Guo et al., "Single Path One-Shot NAS" (SPOS),
ECCV 2020.  Each weight step trains one path drawn uniformly from the space (``space.sample``; in DARTS cells
two inputs per node and one op per kept edge, never ``none``).  After training, ``n_candidates`` distinct
architectures drawn uniformly are scored by their accuracy on the same arch-validation samples through the
supernet, and the best is returned; every score is in the result's history, so the ranking can be compared with
a benchmark table (:func:`ranking_correlation`; Yu et al., "Evaluating the Search Phase of NAS", ICLR 2020,
report Kendall tau 0.20-0.44 between weight-sharing and stand-alone rankings).

Deviations: no path dropout (Bender et al.'s scheduled dropout of whole paths, which SPOS replaced by single-path
sampling); RSPS's second stage (re-scoring the top candidates on the full validation set) is folded into one
stage that scores every candidate on the same ``eval_samples`` samples (default: the whole arch-validation half).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from scipy import stats

from nasmeta.evaluators import Evaluation
from nasmeta.oneshot.loop import Batch, SearchData, Strategy, evaluate_architecture, register_strategy
from nasmeta.oneshot.supernet import Path, Supernet
from nasmeta.spaces.base import Architecture


class RandomConfig(BaseModel):
    """Random one-shot settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_candidates: int = Field(100, ge=1)
    #: how many arch-validation samples score each candidate (None: all of them)
    eval_samples: int | None = Field(None, ge=1)


@register_strategy("random")
class RandomOneShot(Strategy):
    """Uniform single-path supernet training, then ranking of sampled architectures (module docstring)."""

    def __init__(self, supernet: Supernet, data: SearchData, batch_size: int, seed: int, **kwargs: Any) -> None:
        super().__init__(supernet, data, batch_size, seed)
        self.config = RandomConfig(**kwargs)

    def arch_step(self, train_batch: Batch, val_batch: Batch, lr: float) -> None:
        return None  # nothing is learned about the architecture while the weights train

    def weight_path(self) -> Path:
        return self.supernet.sample_path(self.rng)

    def eval_path(self) -> Path:
        return self.supernet.sample_path(self.rng)

    def end_epoch(self, epoch: int) -> dict[str, float]:
        return {}

    def op_weights(self) -> None:
        return None  # the sampling distribution is uniform and never changes

    def summary(self) -> dict[str, float]:
        return {}  # a fixed uniform distribution has nothing to report

    def current_arch(self) -> None:
        return None  # known only after ranking the candidates

    def candidates(self) -> list[Architecture]:
        """``n_candidates`` distinct architectures (by ``arch_id``) drawn uniformly, in draw order."""
        seen: set[str] = set()
        out: list[Architecture] = []
        attempts = 0
        while len(out) < self.config.n_candidates:
            attempts += 1
            if attempts > 100 * self.config.n_candidates:
                raise ValueError(
                    f"could not draw {self.config.n_candidates} distinct architectures from {self.supernet.space.name}"
                )
            arch = self.supernet.space.sample(self.rng)
            if arch.arch_id not in seen:
                seen.add(arch.arch_id)
                out.append(arch)
        return out

    def finish(self) -> tuple[Architecture, list[Evaluation], dict[str, Any]]:
        n = self.config.eval_samples or len(self.data.x_val)
        x, y = self.data.x_val[:n], self.data.y_val[:n]
        history = []
        for arch in self.candidates():
            start = time.perf_counter()
            loss, acc = evaluate_architecture(self.supernet, arch, x, y, self.batch_size)
            history.append(
                Evaluation(
                    arch=arch,
                    val_acc=acc,
                    test_acc=math.nan,
                    cost_seconds=time.perf_counter() - start,
                    epochs=0,
                    extra={"estimator": "supernet", "val_loss": loss},
                )
            )
        best = max(history, key=lambda e: e.val_acc)
        return best.arch, history, {"eval_samples": n}

    def state(self) -> dict[str, Any]:
        return self.config.model_dump()


def ranking_correlation(history: Sequence[Evaluation], truth: Callable[[Architecture], float]) -> dict[str, float]:
    """Kendall tau and Spearman rho between the supernet scores in ``history`` and ``truth(arch)``."""
    if len(history) < 2:
        raise ValueError(f"a ranking correlation needs at least 2 architectures, got {len(history)}")
    scores = [e.val_acc for e in history]
    reference = [truth(e.arch) for e in history]
    tau = stats.kendalltau(scores, reference)
    rho = stats.spearmanr(scores, reference)
    return {
        "kendall_tau": float(tau.statistic),
        "kendall_p": float(tau.pvalue),
        "spearman_rho": float(rho.statistic),
        "n": float(len(history)),
    }
