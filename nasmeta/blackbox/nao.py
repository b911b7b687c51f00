"""Neural Architecture Optimization (NAO; Luo, Tian, Qin, Chen & Liu, "Neural Architecture Optimization",
NeurIPS 2018), written anew from the paper and METHODS.md, as a searcher of the one search loop.

Model (:class:`NAOModel`): the space's token sequence (``space.tokens``) -> embedding -> LSTM encoder; the encoder
outputs are L2-normalised per position and their mean is the architecture embedding ``h``; an MLP predictor
``f(h)``; an LSTM decoder whose initial state is ``h`` and which attends (``nn.MultiheadAttention``, one head) over
the encoder outputs reconstructs the tokens.  Loss ``L = a * L_pred + (1 - a) * L_rec`` (``a = 0.8``; MSE on the
predictor, cross-entropy on the tokens, teacher forcing).

Search (:class:`NAOSearcher`): ``n_initial`` distinct random architectures are evaluated; then, repeatedly, the
model is trained on every evaluation so far, the ``top_k`` best evaluated architectures are encoded, their encoder
outputs moved along the predictor's gradient ``e' = e + eta * df/de`` (re-normalised, as the official code does),
and decoded greedily; ``eta`` is multiplied by ``eta_growth`` (at most ``max_raises`` times) until the decoded
architecture is valid and new.  The new architectures are evaluated, added to the data, and the model refitted.

Deviations, chosen for small CPU budgets and said here:

- sizes are parameters with small defaults (embedding / hidden 32, one LSTM layer, ``epochs`` passes per refit);
  the paper's NASNet-space setting is 32-token sequences, hidden 96, 1,000 epochs per iteration;
- labels are the percentile rank of each evaluation among the evaluations so far (0 = worst, 1 = best), where
  NAO min-max scales accuracies; ranks keep tasks with different accuracy ranges comparable (XferNAS pools tasks);
- the decoder masks, per position, the tokens the space cannot have there (``space.token_choices()``), as NAO's
  decoder restricts node indices and ops to their ranges; with ``constrained`` (default) it also applies the
  space's constraints across positions (``space.next_token_choices(prefix)``; DARTS: two distinct inputs per node,
  an op allowed on the chosen edge), so every decode is a valid architecture -- NAO's NASNet space has no such
  constraints, the DARTS genotype does; ``constrained=False`` measures how often the free decoder breaks them;
- the model is kept between iterations and trained ``epochs`` more passes at each refit (the official code also
  keeps the controller), starting from ``seed``'s initialisation; one optimizer per refit;
- a top architecture whose ladder of ``eta`` gives nothing valid and new is replaced by the next best evaluated
  one (so a round yields up to ``top_k`` new architectures); when no evaluated architecture gives one, a random
  new architecture is evaluated instead (counted in ``stats["random_fallback"]``);
- on a finite pool (``pool``: stored cells of a collection), a decoded architecture is mapped to the nearest pool
  cell not yet evaluated (token Hamming distance, ties broken by the seeded generator), since only stored cells
  can be "evaluated" without training.

XferNAS (``nasmeta.transfer.xfernas``) reuses this model and searcher with a universal predictor fitted on source
tasks plus a task residual (:meth:`NAOModel.add_residual`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from scipy.stats import rankdata
from torch import nn

from nasmeta.evaluators import Evaluation
from nasmeta.search.searchers import Searcher
from nasmeta.spaces.base import Architecture, SearchSpace

__all__ = ["NAOConfig", "NAOModel", "NAOSearcher", "ascend", "percentile_labels", "predict", "reconstruct", "train_nao"]


class NAOConfig(BaseModel):
    """Sizes and schedule of NAO (defaults: small, see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    embedding: int = Field(32, ge=2)
    hidden: int = Field(32, ge=2)
    layers: int = Field(1, ge=1)
    mlp_hidden: int = Field(64, ge=1)
    #: weight of the prediction loss (1 - alpha: reconstruction)
    alpha: float = Field(0.8, ge=0.0, le=1.0)
    lr: float = Field(5e-3, gt=0.0)
    weight_decay: float = Field(1e-4, ge=0.0)
    batch_size: int = Field(32, ge=1)
    #: passes over the data at each refit
    epochs: int = Field(30, ge=1)
    n_initial: int = Field(10, ge=1)
    top_k: int = Field(10, ge=1)
    eta: float = Field(1.0, gt=0.0)
    eta_growth: float = Field(2.0, gt=1.0)
    max_raises: int = Field(10, ge=0)
    #: decode with the space's prefix-dependent constraints (``next_token_choices``), so every decode is valid
    constrained: bool = True
    seed: int = 0


def percentile_labels(values: Sequence[float]) -> np.ndarray:
    """Percentile rank of each value among ``values``: 0 = worst, 1 = best, ties averaged; one value -> 0.5."""
    values = np.asarray(values, dtype=float)
    if values.ndim != 1 or not np.all(np.isfinite(values)):
        raise ValueError(f"labels need a 1-D array of finite values, got {values!r}")
    if len(values) < 2:
        return np.full(len(values), 0.5)
    return (rankdata(values) - 1.0) / (len(values) - 1.0)


class NAOModel(nn.Module):
    """Encoder, predictor (plus an optional task residual) and attention decoder over one space's tokens."""

    def __init__(self, choices: Sequence[Sequence[int]], vocab_size: int, config: NAOConfig) -> None:
        super().__init__()
        if not choices or any(len(c) == 0 for c in choices):
            raise ValueError(f"every token position needs at least one choice, got {choices!r}")
        self.config = config
        self.length, self.vocab_size = len(choices), int(vocab_size)
        mask = torch.full((self.length, self.vocab_size), float("-inf"))
        for position, allowed in enumerate(choices):
            mask[position, list(allowed)] = 0.0
        self.register_buffer("mask", mask)
        E, H = config.embedding, config.hidden
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.enc_embed = nn.Embedding(self.vocab_size, E)
            self.encoder = nn.LSTM(E, H, config.layers, batch_first=True)
            self.predictor = nn.Sequential(nn.Linear(H, config.mlp_hidden), nn.ReLU(), nn.Linear(config.mlp_hidden, 1))
            self.dec_embed = nn.Embedding(self.vocab_size + 1, E)  # the extra id is the start token
            self.decoder = nn.LSTM(E, H, config.layers, batch_first=True)
            self.attention = nn.MultiheadAttention(H, 1, batch_first=True)
            self.out = nn.Linear(2 * H, self.vocab_size)
        self.residual: nn.Module | None = None

    # -- parts ----------------------------------------------------------------------------------------------------
    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, L) token ids -> (B, L, H) L2-normalised encoder outputs."""
        outputs, _ = self.encoder(self.enc_embed(tokens))
        return F.normalize(outputs, dim=-1)

    def score(self, outputs: torch.Tensor) -> torch.Tensor:
        """Surrogate score of encoder outputs: f(h) (+ the residual r(h) when one is attached), h = mean."""
        h = outputs.mean(dim=1)
        value = self.predictor(h).squeeze(-1)
        if self.residual is not None:
            value = value + self.residual(h).squeeze(-1)
        return value

    def universal_score(self, outputs: torch.Tensor) -> torch.Tensor:
        return self.predictor(outputs.mean(dim=1)).squeeze(-1)

    def _initial_state(self, outputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = outputs.mean(dim=1).unsqueeze(0).repeat(self.config.layers, 1, 1).contiguous()
        return h, h

    def _step_logits(self, dec_out: torch.Tensor, outputs: torch.Tensor, positions: slice) -> torch.Tensor:
        context, _ = self.attention(dec_out, outputs, outputs, need_weights=False)
        return self.out(torch.cat([dec_out, context], dim=-1)) + self.mask[positions]

    def reconstruction_logits(self, outputs: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Teacher-forced (B, L, V) logits of ``tokens`` given encoder outputs."""
        start = torch.full((tokens.shape[0], 1), self.vocab_size, dtype=torch.long)
        inputs = torch.cat([start, tokens[:, :-1]], dim=1)
        dec_out, _ = self.decoder(self.dec_embed(inputs), self._initial_state(outputs))
        return self._step_logits(dec_out, outputs, slice(0, self.length))

    @torch.no_grad()
    def decode(self, outputs: torch.Tensor, next_choices: Any = None) -> torch.Tensor:
        """Greedy decoding of (B, L, H) encoder outputs -> (B, L) token ids, each within its position's choices;
        ``next_choices(prefix) -> allowed ids`` (a space's ``next_token_choices``) narrows each step further."""
        state = self._initial_state(outputs)
        token = torch.full((outputs.shape[0], 1), self.vocab_size, dtype=torch.long)
        found: list[torch.Tensor] = []
        for position in range(self.length):
            dec_out, state = self.decoder(self.dec_embed(token), state)
            logits = self._step_logits(dec_out, outputs, slice(position, position + 1))
            if next_choices is not None:
                prefixes = torch.cat(found, dim=1).tolist() if found else [[] for _ in range(len(logits))]
                allowed = torch.full_like(logits, float("-inf"))
                for row, prefix in enumerate(prefixes):
                    allowed[row, 0, list(next_choices(prefix))] = 0.0
                logits = logits + allowed
            token = logits.argmax(dim=-1)
            found.append(token)
        return torch.cat(found, dim=1)

    def add_residual(self, hidden: int | None = None, seed: int = 0) -> None:
        """Attach a task residual r(h) (an MLP whose last layer starts at zero, so the surrogate starts equal to the
        universal predictor) and freeze everything else."""
        H = self.config.hidden
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            residual = nn.Sequential(nn.Linear(H, hidden or self.config.mlp_hidden), nn.ReLU())
            last = nn.Linear(hidden or self.config.mlp_hidden, 1)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        self.residual = nn.Sequential(*residual, last)


def as_tokens(space: SearchSpace, archs: Sequence[Architecture]) -> torch.Tensor:
    return torch.tensor([space.tokens(a) for a in archs], dtype=torch.long)


def train_nao(
    model: NAOModel,
    tokens: torch.Tensor,
    labels: np.ndarray,
    config: NAOConfig,
    epochs: int,
    seed: int,
    weights: np.ndarray | None = None,
) -> list[float]:
    """Train the model's trainable parameters for ``epochs`` passes of ``a * L_pred + (1 - a) * L_rec`` (``config``:
    alpha, learning rate, weight decay, batch size); returns the mean loss of each pass.  With a residual attached
    only the residual trains, on ``L_pred`` (the encoder and decoder are frozen, so ``L_rec`` has no gradient).
    ``weights``: per-example weights of ``L_pred``."""
    cfg = config
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    if len(tokens) != len(labels) or len(tokens) == 0:
        raise ValueError(f"need as many labels as token rows (> 0), got {len(labels)} labels for {len(tokens)} rows")
    y = torch.tensor(np.asarray(labels, dtype=np.float32))
    w = torch.ones(len(y)) if weights is None else torch.tensor(np.asarray(weights, dtype=np.float32))
    optimizer = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(seed)
    reconstruct = model.residual is None and cfg.alpha < 1.0
    history = []
    model.train()
    for _ in range(epochs):
        order = rng.permutation(len(y))
        total = 0.0
        for begin in range(0, len(order), cfg.batch_size):
            batch = torch.as_tensor(order[begin : begin + cfg.batch_size])
            outputs = model.encode(tokens[batch])
            pred = (w[batch] * (model.score(outputs) - y[batch]) ** 2).sum() / w[batch].sum()
            loss = cfg.alpha * pred if reconstruct else pred
            if reconstruct:
                logits = model.reconstruction_logits(outputs, tokens[batch])
                rec = F.cross_entropy(logits.reshape(-1, model.vocab_size), tokens[batch].reshape(-1))
                loss = loss + (1.0 - cfg.alpha) * rec
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(batch)
        history.append(total / len(y))
    model.eval()
    return history


def predict(model: NAOModel, space: SearchSpace, archs: Sequence[Architecture], universal: bool = False) -> np.ndarray:
    """Surrogate scores of ``archs`` (``universal``: the universal predictor alone, without the residual)."""
    if not archs:
        return np.zeros(0)
    with torch.no_grad():
        outputs = model.encode(as_tokens(space, archs))
        scores = model.universal_score(outputs) if universal else model.score(outputs)
    return scores.numpy().astype(float)


def reconstruct(
    model: NAOModel, space: SearchSpace, archs: Sequence[Architecture], constrained: bool = True
) -> dict[str, float]:
    """Encode and decode ``archs``: share of tokens and of whole sequences reproduced, share of decodes that are
    valid architectures (``constrained``: decoding with ``space.next_token_choices``)."""
    tokens = as_tokens(space, archs)
    with torch.no_grad():
        decoded = model.decode(model.encode(tokens), space.next_token_choices if constrained else None)
    valid = 0
    for row in decoded.tolist():
        try:
            space.from_tokens(row)
            valid += 1
        except ValueError:
            pass
    return {
        "token_accuracy": float((decoded == tokens).float().mean()),
        "sequence_accuracy": float((decoded == tokens).all(dim=1).float().mean()),
        "valid_share": valid / len(archs),
    }


def ascend(
    model: NAOModel,
    space: SearchSpace,
    parents: Sequence[Architecture],
    is_new: Any,
    config: NAOConfig,
    stats: dict[str, int] | None = None,
) -> list[Architecture | None]:
    """For each parent: move its encoder outputs along the surrogate's gradient, ``eta`` raised until the decoded
    architecture is valid and ``is_new(arch)``; None where no raise up to ``max_raises`` gave one.  ``stats``
    counts ``decoded`` and ``valid`` decodes."""
    stats = stats if stats is not None else {}
    found: list[Architecture | None] = []
    tokens = as_tokens(space, parents)
    outputs = model.encode(tokens).detach().requires_grad_(True)
    model.score(outputs).sum().backward()
    grads = outputs.grad.detach()
    outputs = outputs.detach()
    etas = torch.tensor([config.eta * config.eta_growth**r for r in range(config.max_raises + 1)])
    with torch.no_grad():
        for i in range(len(parents)):
            # every eta of the ladder decoded in one batch; the first valid new one (smallest eta) is taken, and
            # the counts cover the decodes up to it, as raising eta one step at a time would have made
            moved = F.normalize(outputs[i : i + 1] + etas[:, None, None] * grads[i : i + 1], dim=-1)
            chosen = None
            for row in model.decode(moved, space.next_token_choices if config.constrained else None).tolist():
                stats["decoded"] = stats.get("decoded", 0) + 1
                try:
                    arch = space.from_tokens(row)
                except ValueError:
                    continue
                stats["valid"] = stats.get("valid", 0) + 1
                if is_new(arch):
                    chosen = arch
                    break
            found.append(chosen)
    return found


class NAOSearcher(Searcher):
    """NAO's search loop as a searcher (module docstring).  ``model``: a ready model to start from (XferNAS passes
    its universal model with a residual attached); ``initial``: the first architectures to evaluate (default:
    ``n_initial`` distinct random ones); ``pool``: the finite set of cells that can be evaluated (decodes are
    mapped to the nearest unevaluated one)."""

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        config: NAOConfig | None = None,
        *,
        model: NAOModel | None = None,
        initial: Sequence[Architecture] | None = None,
        pool: Sequence[Architecture] | None = None,
        **params: Any,
    ) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        self.config = (config or NAOConfig()).model_copy(update={"seed": int(seed), **params})
        NAOConfig(**self.config.model_dump())  # validates the overrides
        self.space = space
        self.rng = np.random.default_rng(int(seed))
        self.model = copy.deepcopy(model) if model is not None else self._new_model()
        self.pool = None
        if pool is not None:
            unique = {a.arch_id: a for a in pool}
            if len(unique) < 2:
                raise ValueError(f"a pool needs at least 2 distinct architectures, got {len(unique)}")
            self.pool = sorted(unique.values(), key=lambda a: a.arch_id)
            self._pool_tokens = np.array([space.tokens(a) for a in self.pool])
        self.queue: list[Architecture] = list(initial or [])
        self._initial_given = initial is not None
        self.seen: set[str] = set()
        self.evaluations: list[Evaluation] = []
        self.stats: dict[str, int] = {"refits": 0, "decoded": 0, "valid": 0, "proposed": 0, "random_fallback": 0}
        self.losses: list[float] = []

    def _new_model(self) -> NAOModel:
        return NAOModel(self.space.token_choices(), self.space.vocab_size, self.config)

    # -- the searcher contract -----------------------------------------------------------------------------------
    def suggest(self) -> Architecture | None:
        arch = self._from_queue()
        if arch is not None:
            return arch
        completed = [e for e in self.evaluations if e.status == "completed"]
        initial_done = self._initial_given or self.stats["proposed"] >= self.config.n_initial
        if initial_done and len(completed) >= 2:
            self.queue = self._next_batch(completed)
            arch = self._from_queue()
            if arch is not None:
                return arch
            self.stats["random_fallback"] += 1
        return self._random_new()

    def observe(self, evaluation: Evaluation) -> None:
        self.evaluations.append(evaluation)

    # -- helpers ---------------------------------------------------------------------------------------------------
    def _from_queue(self) -> Architecture | None:
        while self.queue:
            arch = self._available(self.queue.pop(0))
            if arch is not None:
                return self._propose(arch)
        return None

    def _propose(self, arch: Architecture) -> Architecture:
        self.seen.add(arch.arch_id)
        self.stats["proposed"] += 1
        return arch

    def _available(self, arch: Architecture) -> Architecture | None:
        """``arch`` itself, or on a pool the nearest unevaluated pool cell; None when nothing new is left."""
        if self.pool is None:
            return None if arch.arch_id in self.seen else arch
        distance = (self._pool_tokens != np.array(self.space.tokens(arch))).sum(axis=1).astype(float)
        for i, cell in enumerate(self.pool):
            if cell.arch_id in self.seen:
                distance[i] = np.inf
        if not np.isfinite(distance).any():
            return None
        nearest = np.flatnonzero(distance == distance.min())
        return self.pool[int(self.rng.choice(nearest))]

    def _random_new(self) -> Architecture | None:
        if self.pool is not None:
            left = [a for a in self.pool if a.arch_id not in self.seen]
            return self._propose(left[int(self.rng.integers(len(left)))]) if left else None
        for _ in range(1000):
            arch = self.space.sample(self.rng)
            if arch.arch_id not in self.seen:
                return self._propose(arch)
        return None

    def fit(self, completed: Sequence[Evaluation]) -> None:
        """Train the model on ``completed`` (percentile labels of their validation accuracy)."""
        archs = [e.arch for e in completed]
        labels = percentile_labels([e.val_acc for e in completed])
        seed = self.config.seed * 1000 + self.stats["refits"]
        self.losses = train_nao(self.model, as_tokens(self.space, archs), labels, self.config, self.config.epochs, seed)
        self.stats["refits"] += 1

    def _next_batch(self, completed: Sequence[Evaluation]) -> list[Architecture]:
        self.fit(completed)
        ranked, ids = [], set()
        for e in sorted(completed, key=lambda e: -e.val_acc):
            if e.arch.arch_id not in ids:
                ids.add(e.arch.arch_id)
                ranked.append(e.arch)
        batch_ids: set[str] = set()

        def is_new(arch: Architecture) -> bool:
            return arch.arch_id not in self.seen and arch.arch_id not in batch_ids

        out: list[Architecture] = []
        stats: dict[str, int] = {}
        k = self.config.top_k
        # the top_k best first; when some of them decode to nothing new, the next best ones are moved too
        for begin in range(0, len(ranked), k):
            for arch in ascend(self.model, self.space, ranked[begin : begin + k], is_new, self.config, stats):
                if arch is not None and len(out) < k:
                    batch_ids.add(arch.arch_id)
                    out.append(arch)
            if len(out) >= k:
                break
        self.stats["decoded"] += stats.get("decoded", 0)
        self.stats["valid"] += stats.get("valid", 0)
        return out

    @property
    def valid_share(self) -> float:
        """Share of the decodes made during the search that were valid architectures (NaN before any)."""
        return self.stats["valid"] / self.stats["decoded"] if self.stats["decoded"] else math.nan
