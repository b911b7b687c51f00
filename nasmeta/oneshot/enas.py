"""ENAS: an LSTM controller samples architectures; the sampled paths share the supernet's weights.

Pham, Guan, Zoph, Le & Dean, "Efficient Neural Architecture Search via Parameter Sharing", ICML 2018 (micro
search).  Each weight step trains the path the controller samples; after each epoch the controller takes
``controller_steps`` Adam steps (lr 3.5e-3), each averaging ``num_aggregate`` REINFORCE gradients
``-(R - b) * grad log p(arch)``.  The reward ``R`` is the sampled architecture's accuracy (a fraction) on one
arch-validation batch plus ``1e-4`` times the sample's entropy (ENAS adds the entropy bonus to the reward); the
baseline ``b`` is an exponential moving average of the rewards with decay 0.99 (starting at 0), updated before
each gradient.  The final architecture is the best of ``n_final`` controller samples, each scored on the same
validation batch (ENAS: "sample several models from the trained policy ... take only the model with the highest
reward").

Controller (ENAS micro controller): a one-layer LSTM with ``hidden`` units (64 in ENAS' micro search); every
decision feeds the embedding of its outcome to the next step.  Op logits come from a linear head and are squashed
to ``(1.1 / 2.5) * tanh(logits)``; input logits (DARTS cells: which two earlier nodes a node reads) come from
ENAS' attention over the hidden states of earlier nodes (``v^T tanh(W1 h_j + W2 h)``) and are squashed to
``1.1 * tanh(logits)``.  Parameters start uniform in [-0.1, 0.1].  On NB201 every edge is present, so the
controller makes one op decision per edge (``none`` included, as the NB201 ENAS baseline does); in DARTS cells it
picks two inputs per node and an op for each (``none`` excluded, as in the DARTS genotype).

Deviations: the two inputs of a node are drawn without replacement (ENAS may draw the same input twice; the DARTS
genotype this space uses keeps two distinct edges per node).  ENAS' fixed op-logit bias (``b_soft_no_learn``)
and its child-model recipe are not used (see :mod:`nasmeta.oneshot.loop` for the shared weight optimiser).
The controller runs on the CPU: it is tiny and its samples are plain Python indices.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch.nn import functional as F

from nasmeta.evaluators import Evaluation
from nasmeta.oneshot.loop import Batch, SearchData, Strategy, epoch_batches, evaluate_path, register_strategy
from nasmeta.oneshot.supernet import Path, Supernet
from nasmeta.spaces.base import Architecture


class EnasConfig(BaseModel):
    """ENAS controller settings (micro-search defaults)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hidden: int = Field(64, ge=1)
    tanh_constant: float | None = Field(1.1, gt=0)
    op_tanh_reduce: float = Field(2.5, gt=0)
    temperature: float | None = Field(None, gt=0)
    entropy_weight: float = Field(1e-4, ge=0)
    baseline_decay: float = Field(0.99, ge=0, lt=1)
    controller_lr: float = Field(3.5e-3, gt=0)
    #: controller Adam steps after each epoch of weight training
    controller_steps: int = Field(30, ge=0)
    #: REINFORCE samples averaged per controller step
    num_aggregate: int = Field(10, ge=1)
    #: controller samples scored to pick the final architecture
    n_final: int = Field(10, ge=1)
    #: samples used each epoch to estimate the op marginals and the policy entropy for the trace
    trace_samples: int = Field(100, ge=1)


@dataclass
class ControllerSample:
    """One sampled path with its summed log-probability and summed per-decision entropy (graph kept)."""

    path: Path
    log_prob: torch.Tensor
    entropy: torch.Tensor


class Controller(nn.Module):
    """ENAS micro controller over a supernet's decisions (module docstring)."""

    def __init__(self, supernet: Supernet, config: EnasConfig | None = None) -> None:
        super().__init__()
        self.config = config or EnasConfig()
        self.cell_types = supernet.cell_types
        self.node_edges = supernet.node_edges
        self.inputs_per_node = supernet.inputs_per_node
        self.vocab: tuple[str, ...] = tuple(
            dict.fromkeys(op for t in self.cell_types for ops in supernet.edge_ops[t] for op in ops)
        )
        # per cell type and edge: the vocabulary ids the controller may pick and their index among the candidates
        self._allowed: dict[str, list[dict[int, int]]] = {}
        for t in self.cell_types:
            rows = []
            for ops in supernet.edge_ops[t]:
                keep = {
                    self.vocab.index(op): k
                    for k, op in enumerate(ops)
                    if not (self.inputs_per_node is not None and op == "none")
                }
                rows.append(keep)
            self._allowed[t] = rows
        h = self.config.hidden
        self.lstm = nn.LSTMCell(h, h)
        self.g_emb = nn.Parameter(torch.empty(1, h))
        self.op_emb = nn.Embedding(len(self.vocab), h)
        self.op_head = nn.Linear(h, len(self.vocab))
        if self.inputs_per_node is not None:
            self.attn_anchor = nn.Linear(h, h, bias=False)
            self.attn_query = nn.Linear(h, h, bias=False)
            self.attn_v = nn.Linear(h, 1, bias=False)
        for p in self.parameters():
            nn.init.uniform_(p, -0.1, 0.1)

    def _squash(self, logits: torch.Tensor, constant: float | None) -> torch.Tensor:
        if self.config.temperature is not None:
            logits = logits / self.config.temperature
        if constant is not None:
            logits = constant * torch.tanh(logits)
        return logits

    @staticmethod
    def _decide(
        logits: torch.Tensor, allowed: list[int], generator: torch.Generator | None, greedy: bool
    ) -> tuple[int, torch.Tensor, torch.Tensor]:
        """(chosen position in ``allowed``, its log-probability, the entropy of the decision)."""
        logp = F.log_softmax(logits[allowed], dim=-1)
        p = logp.exp()
        if greedy:
            k = int(p.argmax())
        else:
            k = int(torch.multinomial(p.detach(), 1, generator=generator))
        return k, logp[k], -(p * logp).sum()

    def sample(self, generator: torch.Generator | None = None, greedy: bool = False) -> ControllerSample:
        """Sample (or, with ``greedy``, take the most likely choice at every decision of) one path."""
        c_op = None if self.config.tanh_constant is None else self.config.tanh_constant / self.config.op_tanh_reduce
        c_in = self.config.tanh_constant
        h = c = torch.zeros_like(self.g_emb)
        inp = self.g_emb
        log_prob = torch.zeros(())
        entropy = torch.zeros(())
        path: Path = {}
        for t in self.cell_types:
            choice: list[int | None] = [None] * len(self._allowed[t])
            anchors: list[torch.Tensor] = []
            anchor_keys: list[torch.Tensor] = []
            if self.inputs_per_node is not None:
                for _ in range(len(self.node_edges[t][0])):  # the cell's input nodes
                    h, c = self.lstm(inp, (h, c))
                    anchors.append(torch.zeros_like(h))
                    anchor_keys.append(self.attn_anchor(h))
            for edges in self.node_edges[t]:
                if self.inputs_per_node is None:
                    chosen = list(edges)
                else:
                    chosen = []
                    for _ in range(min(self.inputs_per_node, len(edges))):
                        h, c = self.lstm(inp, (h, c))
                        keys = torch.cat(anchor_keys[: len(edges)], dim=0)
                        logits = self._squash(self.attn_v(torch.tanh(keys + self.attn_query(h))).squeeze(1), c_in)
                        allowed = [j for j in range(len(edges)) if edges[j] not in chosen]
                        k, lp, ent = self._decide(logits, allowed, generator, greedy)
                        chosen.append(edges[allowed[k]])
                        log_prob, entropy = log_prob + lp, entropy + ent
                        inp = anchors[allowed[k]]
                for e in chosen:
                    h, c = self.lstm(inp, (h, c))
                    logits = self._squash(self.op_head(h).squeeze(0), c_op)
                    allowed = list(self._allowed[t][e])
                    k, lp, ent = self._decide(logits, allowed, generator, greedy)
                    choice[e] = self._allowed[t][e][allowed[k]]
                    log_prob, entropy = log_prob + lp, entropy + ent
                    inp = self.op_emb.weight[allowed[k]].unsqueeze(0)
                if self.inputs_per_node is not None:
                    h, c = self.lstm(inp, (h, c))
                    anchors.append(h)
                    anchor_keys.append(self.attn_anchor(h))
                    inp = self.g_emb
            path[t] = tuple(choice)
        return ControllerSample(path, log_prob, entropy)


@register_strategy("enas")
class Enas(Strategy):
    """ENAS: controller-sampled paths train the shared weights; REINFORCE trains the controller."""

    def __init__(self, supernet: Supernet, data: SearchData, batch_size: int, seed: int, **kwargs: Any) -> None:
        super().__init__(supernet, data, batch_size, seed)
        self.config = EnasConfig(**kwargs)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.controller = Controller(supernet, self.config)
        self.optimizer = torch.optim.Adam(self.controller.parameters(), lr=self.config.controller_lr)
        self.generator = torch.Generator().manual_seed(seed)
        self._data_generator = torch.Generator().manual_seed(seed + 1)
        self.baseline = 0.0
        self._val_batches: list[Batch] = []
        self._stats: tuple[dict[str, torch.Tensor], dict[str, float]] | None = None

    # -- the loop's hooks ---------------------------------------------------------------------------------------
    def arch_step(self, train_batch: Batch, val_batch: Batch, lr: float) -> None:
        return None  # ENAS trains its controller after each epoch (end_epoch), not per weight step

    @torch.no_grad()
    def weight_path(self) -> Path:
        return self.controller.sample(self.generator).path

    @torch.no_grad()
    def eval_path(self) -> Path:
        return self.controller.sample(greedy=True).path

    def _next_val_batch(self) -> Batch:
        if not self._val_batches:
            self._val_batches = epoch_batches(self.data.x_val, self.data.y_val, self.batch_size, self._data_generator)
        return self._val_batches.pop()

    def end_epoch(self, epoch: int) -> dict[str, float]:
        cfg = self.config
        accs, entropies = [], []
        for _ in range(cfg.controller_steps):
            self.optimizer.zero_grad(set_to_none=True)
            for _ in range(cfg.num_aggregate):
                sample = self.controller.sample(self.generator)
                xb, yb = self._next_val_batch()
                _, acc = evaluate_path(self.supernet, xb, yb, sample.path, len(xb))
                reward = acc / 100.0 + cfg.entropy_weight * float(sample.entropy.detach())
                self.baseline -= (1.0 - cfg.baseline_decay) * (self.baseline - reward)
                loss = -sample.log_prob * (reward - self.baseline) / cfg.num_aggregate
                loss.backward()
                accs.append(acc / 100.0)
                entropies.append(float(sample.entropy.detach()))
            self.optimizer.step()
        self._stats = None
        if not accs:
            return {"baseline": self.baseline}
        return {
            "reward_mean": float(np.mean(accs)),
            "sample_entropy_mean": float(np.mean(entropies)),
            "baseline": self.baseline,
        }

    @torch.no_grad()
    def _policy_stats(self) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """Op frequencies per edge and mean policy entropy over ``trace_samples`` samples.

        The samples reuse one seed every epoch (common random numbers), so epoch-to-epoch changes reflect the
        policy, not the draw.
        """
        if self._stats is None:
            generator = torch.Generator().manual_seed(self.seed + 2)
            counts = {t: torch.zeros(len(ops), len(ops[0])) for t, ops in self.supernet.edge_ops.items()}
            entropies = []
            for _ in range(self.config.trace_samples):
                sample = self.controller.sample(generator)
                entropies.append(float(sample.entropy.detach()))
                for t, choice in sample.path.items():
                    for e, k in enumerate(choice):
                        if k is not None:
                            counts[t][e, k] += 1
            n = self.config.trace_samples
            self._stats = ({t: v / n for t, v in counts.items()}, {"entropy": float(np.mean(entropies))})
        return self._stats

    def op_weights(self) -> dict[str, torch.Tensor]:
        return self._policy_stats()[0]

    def summary(self) -> dict[str, float]:
        return self._policy_stats()[1]

    @torch.no_grad()
    def current_arch(self) -> Architecture:
        return self.supernet.path_to_arch(self.controller.sample(greedy=True).path)

    @torch.no_grad()
    def finish(self) -> tuple[Architecture, list[Evaluation], dict[str, Any]]:
        xb, yb = self.data.x_val[: self.batch_size], self.data.y_val[: self.batch_size]
        history = []
        for _ in range(self.config.n_final):
            start = time.perf_counter()
            sample = self.controller.sample(self.generator)
            loss, acc = evaluate_path(self.supernet, xb, yb, sample.path, len(xb))
            history.append(
                Evaluation(
                    arch=self.supernet.path_to_arch(sample.path),
                    val_acc=acc,
                    test_acc=math.nan,
                    cost_seconds=time.perf_counter() - start,
                    epochs=0,
                    extra={"estimator": "supernet", "val_loss": loss, "log_prob": float(sample.log_prob)},
                )
            )
        best = max(history, key=lambda e: e.val_acc)
        return best.arch, history, {"greedy_arch": str(self.current_arch()), "baseline": self.baseline}

    def state(self) -> dict[str, Any]:
        return self.config.model_dump()
