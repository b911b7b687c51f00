"""DARTS-PT: perturbation-based architecture selection after supernet training, with trained or fixed uniform alpha.

Wang et al., "Rethinking Architecture Selection in Differentiable NAS", ICLR 2021.  The magnitude of alpha does not
say how much an op contributes to the supernet; DARTS-PT measures it: after the supernet is trained, edges are
taken in random order, and on each the op is chosen whose *removal* (its weight set to 0 in the mixture, the
others unchanged) lowers the supernet's validation accuracy the most; the edge is then fixed to that op
(discretised), and the supernet is fine-tuned for a few epochs (published 5) before the next edge.  In the DARTS
spaces the topology is chosen the same way afterwards: for each node with more than 2 incoming edges, the 2 edges
whose removal hurts most stay.  ``darts-pt`` trains the supernet with first-order DARTS (DARTS' arch optimiser);
``darts-pt-fixed`` keeps alpha fixed at the uniform mixture (no architecture updates at all), which the paper finds
better (NB201 CIFAR-10 error 11.89 with DARTS' alpha, 6.20 with fixed alpha, vs DARTS 45.7).

Schedule inside the loop's epochs (the loop owns the epochs): with ``D`` decisions and ``tune_epochs`` per decision,
decision ``j`` (0-based) is made at the end of epoch ``E - tune_epochs * (D - 1 - j)``; the epochs before the first
decision train the supernet (published: 50 DARTS epochs, then 5 tuning epochs per edge).  When ``E`` is too short for
that, the first half of the epochs trains the supernet and the decisions are spread evenly over the rest (several
per epoch if need be) -- see :func:`decision_epochs`.  After the first decision the architecture is frozen and
only the weights are tuned, through the partly discretised supernet (decided edges run their op alone).

Accuracy is measured on the arch-validation half with BN batch statistics (the loop's supernet evaluation).
Deviations: ``none`` is not a candidate of the op selection (the spaces' derivation never picks it either); the
tuning uses the loop's weight optimiser and its cosine schedule rather than a separate one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from nasmeta.oneshot.loop import (
    AlphaStrategy,
    Batch,
    SearchData,
    arch_optimizer,
    evaluate_path,
    register_strategy,
)
from nasmeta.oneshot.supernet import Choices, Supernet
from nasmeta.spaces.base import Architecture


class DartsPtConfig(BaseModel):
    """DARTS-PT settings (published defaults)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fixed_alpha: bool = False
    tune_epochs: int = Field(5, ge=0)
    arch_lr: float = Field(3e-4, gt=0)
    arch_betas: tuple[float, float] = (0.5, 0.999)
    arch_weight_decay: float = Field(1e-3, ge=0)


def decision_epochs(epochs: int, decisions: int, tune_epochs: int) -> list[int]:
    """At the end of which (1-based) epoch each of ``decisions`` selections is made (module docstring)."""
    if epochs < 1 or decisions < 1:
        raise ValueError(f"need epochs >= 1 and decisions >= 1, got {epochs!r}, {decisions!r}")
    first = epochs - tune_epochs * (decisions - 1)
    if first >= 1:
        return [first + tune_epochs * j for j in range(decisions)]
    start = max(1, epochs // 2)
    return [int(round(v)) for v in np.linspace(start, epochs, decisions)]


@register_strategy("darts-pt")
class DartsPt(AlphaStrategy):
    """DARTS-PT over a supernet (module docstring); ``fixed_alpha=True`` is ``darts-pt-fixed``."""

    def __init__(self, supernet: Supernet, data: SearchData, batch_size: int, seed: int, **kwargs: Any) -> None:
        super().__init__(supernet, data, batch_size, seed)
        self.config = DartsPtConfig(**kwargs)
        if self.config.fixed_alpha:
            with torch.no_grad():
                for a in supernet.alphas().values():
                    a.zero_()  # the uniform mixture
        self.optimizer = arch_optimizer(supernet.arch_parameters(), self.config)
        self.decided: dict[str, list[int | None]] = {t: [None] * len(supernet.edge_ops[t]) for t in supernet.cell_types}
        self.removed: dict[str, set[int]] = {t: set() for t in supernet.cell_types}
        edges = [("op", t, e) for t in supernet.cell_types for e in range(len(supernet.edge_ops[t]))]
        nodes = []
        if supernet.inputs_per_node is not None:
            nodes = [
                ("edge", t, n)
                for t in supernet.cell_types
                for n, incoming in enumerate(supernet.node_edges[t])
                if len(incoming) > supernet.inputs_per_node
            ]
        order = self.rng.permutation(len(edges))
        node_order = self.rng.permutation(len(nodes)) if nodes else []
        self.pending: list[tuple[str, str, int]] = [edges[i] for i in order] + [nodes[i] for i in node_order]
        self.n_decisions = len(self.pending)
        self.schedule: list[int] = []
        self.log: list[dict[str, Any]] = []

    # -- weights and choices ----------------------------------------------------------------------------------
    def mixture(self) -> dict[str, torch.Tensor]:
        """The undecided edges' weights: softmax(alpha) (uniform when alpha is fixed at 0)."""
        return self.supernet.op_weights()

    def choices(self, override: tuple[str, int, Any] | None = None) -> Choices:
        """Decided edges run their op alone, removed edges are absent, the others mix; ``override`` = (cell type,
        edge, choice) replaces one edge's entry (a removal being measured)."""
        weights = self.mixture()
        out = {}
        for t in self.supernet.cell_types:
            row: list[Any] = []
            for e in range(len(self.supernet.edge_ops[t])):
                if e in self.removed[t]:
                    row.append(None)
                elif self.decided[t][e] is not None:
                    row.append(self.decided[t][e])
                else:
                    row.append(weights[t][e])
            if override is not None and override[0] == t:
                row[override[1]] = override[2]
            out[t] = tuple(row)
        return Choices(out)

    def accuracy(self, choices: Choices) -> float:
        """Supernet validation accuracy (%) on the arch-validation half through ``choices``."""
        return evaluate_path(self.supernet, self.data.x_val, self.data.y_val, choices, self.batch_size)[1]

    # -- decisions ---------------------------------------------------------------------------------------------
    def select_op(self, cell: str, edge: int) -> int:
        """Fix ``edge`` to the non-``none`` op whose removal (weight set to 0) lowers the accuracy most."""
        ops = self.supernet.edge_ops[cell][edge]
        with torch.no_grad():
            weights = self.mixture()[cell][edge]
            scores = {}
            for k, op in enumerate(ops):
                if op == "none":
                    continue
                removed = weights.clone()
                removed[k] = 0.0
                scores[k] = self.accuracy(self.choices((cell, edge, removed)))
        pick = min(scores, key=lambda k: (scores[k], k))
        self.decided[cell][edge] = pick
        self.log.append(
            {"cell": cell, "edge": edge, "op": ops[pick], "acc_without": {ops[k]: v for k, v in scores.items()}}
        )
        return pick

    def select_edges(self, cell: str, node: int) -> list[int]:
        """Keep the ``inputs_per_node`` incoming edges of ``node`` whose removal lowers the accuracy most."""
        incoming = self.supernet.node_edges[cell][node]
        keep_n = int(self.supernet.inputs_per_node or len(incoming))
        with torch.no_grad():
            scores = {e: self.accuracy(self.choices((cell, e, None))) for e in incoming}
        keep = sorted(incoming, key=lambda e: (scores[e], e))[:keep_n]
        self.removed[cell].update(e for e in incoming if e not in keep)
        self.log.append({"cell": cell, "node": node, "kept": keep, "acc_without": scores})
        return keep

    def _decide(self) -> None:
        kind, cell, index = self.pending.pop(0)
        if kind == "op":
            self.select_op(cell, index)
        else:
            self.select_edges(cell, index)

    # -- loop hooks --------------------------------------------------------------------------------------------
    def begin_epoch(self, epoch: int, epochs: int) -> None:
        super().begin_epoch(epoch, epochs)
        if not self.schedule:
            self.schedule = decision_epochs(epochs, self.n_decisions, self.config.tune_epochs)

    def projecting(self) -> bool:
        return len(self.pending) < self.n_decisions

    def arch_step(self, train_batch: Batch, val_batch: Batch, lr: float) -> None:
        if self.config.fixed_alpha or self.projecting():
            return
        self.first_order_step(val_batch, None)

    def weight_path(self) -> Choices:
        return self.choices()

    def eval_path(self) -> Choices:
        return self.choices()

    def end_epoch(self, epoch: int) -> dict[str, float]:
        due = sum(1 for e in self.schedule[self.n_decisions - len(self.pending) :] if e <= epoch)
        for _ in range(due):
            self._decide()
        return {"decisions_done": float(self.n_decisions - len(self.pending))}

    def op_weights(self) -> dict[str, torch.Tensor]:
        weights = {t: w.detach().clone() for t, w in self.mixture().items()}
        for t in self.supernet.cell_types:
            for e, k in enumerate(self.decided[t]):
                if k is not None:
                    weights[t][e] = 0.0
                    weights[t][e, k] = 1.0
                if e in self.removed[t]:
                    weights[t][e] = 0.0
        return weights

    def current_arch(self) -> Architecture:
        return self.supernet.derive(self.op_weights())

    def final_arch(self) -> Architecture:
        path = {
            t: tuple(None if e in self.removed[t] else k for e, k in enumerate(self.decided[t]))
            for t in self.supernet.cell_types
        }
        return self.supernet.path_to_arch(path)

    def finish(self) -> tuple[Architecture, list[Any], dict[str, Any]]:
        while self.pending:  # a search stopped early decides the rest without tuning
            self._decide()
        arch = self.final_arch()
        alphas = {t: a.detach().cpu().tolist() for t, a in self.supernet.alphas().items()}
        return arch, [], {"alphas": alphas, "selections": self.log, "decision_epochs": self.schedule}

    def state(self) -> dict[str, Any]:
        return self.config.model_dump()


@register_strategy("darts-pt-fixed")
class DartsPtFixed(DartsPt):
    """DARTS-PT with alpha fixed at the uniform mixture (module docstring)."""

    def __init__(self, supernet: Supernet, data: SearchData, batch_size: int, seed: int, **kwargs: Any) -> None:
        super().__init__(supernet, data, batch_size, seed, **{"fixed_alpha": True, **kwargs})
