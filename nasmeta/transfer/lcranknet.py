"""LCRankNet: learning to rank learning curves for early termination (Wistuba & Pedapati, "Learning to Rank
Learning Curves", ICML 2020; arXiv:2006.03361).

The model scores a (possibly partial) training run, ``f(x)``, with a small MLP over the concatenation of

(a) an architecture encoding: an embedding of the space's tokens (``get_space(space).tokens(arch)``) read by an
    LSTM, whose last hidden state is the code;
(b) a partial learning-curve encoding: 1-D convolutions of several kernel sizes (default 2, 3, 4, 5) over the
    validation-accuracy curve, each followed by a ReLU and a global max over time (a text-CNN);
(c) a learned dataset embedding, one vector per source dataset;
(d) further run features: ``log10`` parameter count and FLOPs (z-scored on the training runs) and the epochs
    observed, as a fraction of the run's budget and of the longest training curve.

Ranking, not regression: ``p(m_i > m_j) = sigmoid(f(x_i) - f(x_j))`` for the final accuracies ``m``, trained
with the pairwise cross-entropy on pairs of runs of the *same* dataset (ties are skipped).  As in the paper,
every training pair sees partial curves of random length: each member's length is drawn uniformly from
``1..T`` independently, so the model learns to compare a short curve with a long or complete one.

Early termination (the ``Stopper`` role): after epoch ``t`` of a run (``min_epochs <= t < T``) the run is
stopped when its predicted probability of beating the best completed run so far,
``p = sigmoid(f(current partial curve) - f(best run's complete curve))``, is ``<= delta``.  The same
``decide(curve, context)`` serves the replay of stored curves (``nasmeta.evaluation.replay``) and live training
(the search loop asks it through a ``StoppingScheduler``, live and in replay alike).

Choices and deviations, stated:

- **Unseen target dataset.**  A held-out dataset has no learned embedding.  Its embedding starts as the mean of
  the source embeddings; with ``adapt_steps > 0`` (the default), once two or more runs of the target have
  completed, the target's embedding alone (the network stays fixed) is fitted by ``adapt_steps`` Adam steps of
  the same pairwise loss on the completed target runs (random partial lengths), recomputed from the mean
  whenever the set of completed runs changes -- the dataset component learns from the target's curves as the
  search observes them, costs milliseconds, and cannot make the network forget the sources.  ``adapt_steps=0``
  keeps the mean embedding throughout.
- **Short curves.**  Convolutions are causal, padded on the left with accuracy 0 (the value "before epoch 1"),
  and the max runs only over windows that end at an observed epoch, so a 1-epoch curve is encoded too and no
  value after the last observed epoch is ever read.
- **Run features of the best run.**  The stop context names the best run's architecture but not its parameter
  count or FLOPs; they are taken from ``context.best_n_params`` / ``best_flops`` when present, else from
  the values this stopper was shown for that (task, architecture) earlier in the search, else the training mean.
- **Curves** are read in the store's unit (percent), divided by 100 and standardised by the mean and standard
  deviation of all training curve values (stored with the weights).
- **Threshold.**  ``delta = 0.05`` and ``min_epochs = 1`` by default: the same threshold on
  ``P(beats the best so far)`` as the Domhan and Baker stoppers here.  ``delta`` is the knob between regret and
  training time; on the synthetic meta-dataset (5 tasks x 50 runs x 12 epochs) a larger ``delta`` or a smaller
  ``min_epochs`` stops more and earlier.
- **Sizes** (embedding 16, LSTM 32, 16 filters per kernel, dataset embedding 8, MLP 64) and the training budget
  are small defaults for CPU; the paper does not fix them for our spaces.  All are fields of
  :class:`LCRankNetConfig`; the network itself is in :mod:`nasmeta.transfer.lcranknet_model`.
- **Runs without architectures** (``use_architecture=False``): for collections that hold curves but no
  architectures (an external curve file), part (a) is left out and a run is ranked from its curve, its dataset and
  the run features (d).  Hyper-parameters of the runs are not features: every collection here trains one recipe,
  so there is nothing to learn from them.
- Parameters are initialised from a private ``torch.Generator`` (never the global RNG), so fits are
  reproducible even when several folds fit in parallel threads.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Self

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from nasmeta.blackbox.stopping import _curve
from nasmeta.scheduling import Decision
from nasmeta.search.context import StopContext
from nasmeta.threads import torch_threads
from nasmeta.transfer.base import Stopper
from nasmeta.transfer.lcranknet_model import LCRankNetModel, RunItems, init_parameters

__all__ = ["LCRankNet", "LCRankNetConfig", "LCRankNetModel", "RunItems", "init_parameters"]

_WEIGHTS = "weights.pt"
_ADAPTED_CACHE = 1024
_CONFIG = "config.json"


def _positive_int(name: str, value: Any, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


class LCRankNetConfig(BaseModel):
    """Stopper threshold, network sizes, training recipe and target adaptation of :class:`LCRankNet` (see the
    module docstring for what each choice means).  Bad values raise a ``ValueError`` naming the field."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: stop when ``p(beats the best so far) <= delta``
    delta: float = Field(0.05, gt=0.0, lt=1.0)
    #: never stop before this many epochs
    min_epochs: int = Field(1, ge=1, strict=True)
    #: pairwise training: Adam steps, pairs per step, learning rate, weight decay
    steps: int = Field(1000, ge=1, strict=True)
    batch_size: int = Field(64, ge=1, strict=True)
    lr: float = Field(1e-3, gt=0.0, allow_inf_nan=False)
    weight_decay: float = Field(1e-4, ge=0.0, allow_inf_nan=False)
    #: network sizes: token embedding, LSTM, filters per kernel, kernel sizes, dataset embedding, MLP
    embed_dim: int = Field(16, ge=1, strict=True)
    lstm_hidden: int = Field(32, ge=1, strict=True)
    n_filters: int = Field(16, ge=1, strict=True)
    kernel_sizes: tuple[Annotated[int, Field(ge=1, strict=True)], ...] = Field((2, 3, 4, 5), min_length=1)
    dataset_dim: int = Field(8, ge=1, strict=True)
    hidden: int = Field(64, ge=1, strict=True)
    #: Adam steps fitting an unseen target dataset's embedding on its completed runs (0: the mean embedding)
    adapt_steps: int = Field(30, ge=0, strict=True)
    adapt_lr: float = Field(0.05, gt=0.0, allow_inf_nan=False)
    #: read the architecture (a); False: curves, dataset and run features only, for runs without architectures
    use_architecture: bool = True
    #: torch threads while training / scoring (restored afterwards); None: leave as is
    num_threads: int | None = Field(1, ge=1, strict=True)
    seed: int = Field(0, strict=True)


class LCRankNet(Stopper):
    """LCRankNet early-termination stopper: ``fit(meta)`` on source datasets, ``decide(curve, context)`` per epoch.

    Built from an :class:`LCRankNetConfig` or its fields as keywords (``LCRankNet(delta=0.1, steps=200)``), like
    ``TAPAS``.  ``delta``: stop when ``p(beats the best so far) <= delta``; ``min_epochs``: never stop before this
    many epochs; ``adapt_steps``: Adam steps fitting the target dataset's embedding on its completed runs (0: the
    mean source embedding throughout); ``steps`` / ``batch_size`` / ``lr`` / ``weight_decay``: pairwise training.
    The fields read as attributes (``ranker.delta``); the network is
    :class:`~nasmeta.transfer.lcranknet_model.LCRankNetModel`.
    """

    name = "lcranknet"
    data_requirements = frozenset({"runs", "curves", "architectures"})

    def __init__(self, config: LCRankNetConfig | None = None, **params: Any) -> None:
        if config is not None and params:
            raise ValueError(f"pass either an LCRankNetConfig or keyword parameters, not both (got {sorted(params)})")
        self.config = config if config is not None else LCRankNetConfig(**params)
        # fitted state
        self.model: LCRankNetModel | None = None
        self.space: str | None = None
        self.task_ids: list[str] = []
        self.t_ref = 1
        self.size_mean = [0.0, 0.0]
        self.size_std = [1.0, 1.0]
        self.train_loss: list[float] = []
        # search state: sizes shown per (task, arch id), and the target embedding per task with its evidence key
        self._seen: dict[tuple[Any, str], tuple[Any, Any]] = {}
        # fitted target embeddings by (task, completed set): a pure function of the set, so replays of one search
        # under several thresholds (the policy choice) reuse the fits of the sets they share
        self._adapted: OrderedDict[tuple[Any, str], torch.Tensor] = OrderedDict()

    # -- configuration -----------------------------------------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        # the configuration reads as attributes (``ranker.delta``); set a new one with ``ranker.config = ...``
        config = self.__dict__.get("config")
        if config is not None and name in LCRankNetConfig.model_fields:
            return getattr(config, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name in LCRankNetConfig.model_fields:  # an attribute here would be silently ignored by the methods
            raise AttributeError(
                f"{name} is part of the config: set ranker.config = ranker.config.model_copy(update={{{name!r}: ...}})"
            )
        super().__setattr__(name, value)

    def _new_model(self, vocab_size: int) -> LCRankNetModel:
        return LCRankNetModel(
            vocab_size,
            len(self.task_ids),
            n_features=4,
            embed_dim=self.config.embed_dim,
            lstm_hidden=self.config.lstm_hidden,
            n_filters=self.config.n_filters,
            kernel_sizes=self.config.kernel_sizes,
            dataset_dim=self.config.dataset_dim,
            hidden=self.config.hidden,
            use_architecture=self.config.use_architecture,
        )

    def _threads(self) -> contextlib.AbstractContextManager[None]:
        """Run torch on ``num_threads`` threads (``nasmeta.threads``): the network is so small that more threads
        only add synchronisation on a shared machine."""
        return torch_threads(self.config.num_threads)

    def _check_fitted(self) -> LCRankNetModel:
        if self.model is None:
            raise ValueError("lcranknet is not fitted; call fit(meta) first")
        return self.model

    def _vocab_size(self) -> int:
        from nasmeta.spaces import get_space

        return get_space(self.space).vocab_size if self.config.use_architecture else 1

    # -- inputs ------------------------------------------------------------------------------------------------------
    def _tokens(self, arch: Any, what: str = "the run") -> list[int]:
        from nasmeta.spaces import get_space

        if not self.config.use_architecture:
            return [0]  # a placeholder the network never reads
        if arch is None:
            raise ValueError(f"lcranknet needs the architecture of {what}; got arch=None")
        if arch.space != self.space:
            raise ValueError(f"lcranknet was fitted on space {self.space!r}, got an architecture of {arch.space!r}")
        tokens = list(get_space(self.space).tokens(arch))
        if not tokens:
            raise ValueError(f"architecture {arch} has no tokens")
        return tokens

    def _sizes(self, n_params: Any, flops: Any) -> list[float]:
        out = []
        for k, value in enumerate((n_params, flops)):
            # unknown -> 0, the training mean after z-scoring
            out.append(0.0 if not value or value <= 0 else (math.log10(value) - self.size_mean[k]) / self.size_std[k])
        return out

    def _scores(
        self, items: RunItems, idx: torch.Tensor, lengths: torch.Tensor, vectors: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``f`` for rows ``idx`` of ``items`` observed for ``lengths`` epochs (dataset rows unless ``vectors``)."""
        model = self._check_fitted()
        t = lengths.to(torch.float32)
        features = torch.cat([items.static[idx], (t / items.budgets[idx])[:, None], (t / self.t_ref)[:, None]], dim=1)
        if vectors is None:
            vectors = model.dataset_embedding(items.datasets[idx])
        return model(items.tokens[idx], items.token_lengths[idx], items.curves[idx], lengths, vectors, features)

    # -- training ----------------------------------------------------------------------------------------------------
    def fit(self, meta: Any) -> Self:
        """Train on a ``MetaDataset`` view (or a list of ``nasmeta.evaluation.runs.ReplayRun``): every completed run
        with a curve and an architecture; pairs are drawn within each dataset."""
        from nasmeta.evaluation.runs import ReplayRun, runs_from_meta

        runs = list(meta) if isinstance(meta, list | tuple) else runs_from_meta(meta)
        if not runs or not all(isinstance(r, ReplayRun) for r in runs):
            raise ValueError("lcranknet needs completed runs with curves to fit on; got none")
        missing = [r.run_id for r in runs if r.arch is None]
        if missing and self.config.use_architecture:
            raise ValueError(
                f"lcranknet needs architectures; run(s) {missing[:5]} have none in the store "
                "(use_architecture=False ranks curves without them)"
            )
        spaces = sorted({r.arch.space for r in runs if r.arch is not None})
        if len(spaces) > 1 or (self.config.use_architecture and not spaces):
            raise ValueError(f"lcranknet fits one search space at a time, the runs use {spaces}")
        by_task: dict[str, list[int]] = {}
        for i, r in enumerate(runs):
            by_task.setdefault(r.task_id, []).append(i)
        usable = sorted(t for t, ix in by_task.items() if len({runs[i].final_val_acc for i in ix}) >= 2)
        if not usable:
            raise ValueError(
                "lcranknet needs a dataset with at least two runs of different final accuracy to form pairs; "
                f"got {', '.join(f'{t}: {len(ix)} run(s)' for t, ix in sorted(by_task.items()))}"
            )
        self.space = spaces[0] if spaces else None
        self.task_ids = sorted(by_task)
        self.t_ref = max(r.max_epochs for r in runs)
        self._seen, self._adapted = {}, OrderedDict()
        for k, attr in enumerate(("n_params", "flops")):
            logs = [math.log10(getattr(r, attr)) for r in runs if getattr(r, attr)]
            self.size_mean[k] = float(np.mean(logs)) if logs else 0.0
            self.size_std[k] = float(max(np.std(logs), 1e-6)) if logs else 1.0

        self.model = self._new_model(self._vocab_size())
        init_parameters(self.model, torch.Generator().manual_seed(self.config.seed))
        values = np.concatenate([r.curve for r in runs]) / 100.0
        self.model.curve_shift.fill_(float(values.mean()))
        self.model.curve_scale.fill_(float(max(values.std(), 1e-3)))
        rng = np.random.default_rng(self.config.seed)
        items = RunItems(
            [self._tokens(r.arch, f"run {r.run_id!r}") for r in runs],
            [r.curve for r in runs],
            [r.max_epochs for r in runs],
            [self._sizes(r.n_params, r.flops) for r in runs],
            [self.task_ids.index(r.task_id) for r in runs],
        )
        finals = torch.tensor([r.final_val_acc for r in runs], dtype=torch.float32)
        members = [np.array(by_task[t]) for t in usable]
        sizes = np.array([len(m) for m in members], dtype=float)
        task_p = sizes * (sizes - 1) / np.sum(sizes * (sizes - 1))  # every within-dataset pair equally likely
        optimizer = torch.optim.Adam(self.model.parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay)
        self.model.train()
        self.train_loss = []
        with self._threads():
            for _ in range(self.config.steps):
                i, j = self._sample_pairs(rng, members, task_p, self.config.batch_size)
                loss = self._pair_loss(items, finals, i, j, rng)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                self.train_loss.append(float(loss.detach()))
        self.model.eval()
        return self

    @staticmethod
    def _sample_pairs(
        rng: np.random.Generator, members: list[np.ndarray], task_p: np.ndarray, n: int
    ) -> tuple[np.ndarray, np.ndarray]:
        which = rng.choice(len(members), size=n, p=task_p)
        sizes = np.array([len(m) for m in members])[which]
        a = rng.integers(0, sizes)
        b = (a + rng.integers(1, sizes)) % sizes  # a different member of the same dataset, uniformly
        return (
            np.array([members[t][k] for t, k in zip(which, a, strict=True)]),
            np.array([members[t][k] for t, k in zip(which, b, strict=True)]),
        )

    def _pair_loss(
        self,
        items: RunItems,
        finals: torch.Tensor,
        i: np.ndarray,
        j: np.ndarray,
        rng: np.random.Generator,
        vectors: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Pairwise cross-entropy of ``sigmoid(f_i - f_j)`` against ``1[m_i > m_j]``, each member truncated to a
        uniform random length in ``1..T``; tied pairs carry no weight."""
        idx = torch.as_tensor(np.concatenate([i, j]))
        lengths = torch.as_tensor(rng.integers(1, items.lengths[idx].numpy() + 1))
        scores = self._scores(items, idx, lengths, None if vectors is None else vectors.expand(len(idx), -1))
        diff = scores[: len(i)] - scores[len(i) :]
        target = (finals[i] > finals[j]).to(torch.float32)
        weight = (finals[i] != finals[j]).to(torch.float32)
        return F.binary_cross_entropy_with_logits(diff, target, weight=weight, reduction="sum") / weight.sum().clamp(
            min=1.0
        )

    # -- the target dataset ------------------------------------------------------------------------------------------
    def dataset_vector(self, task_id: Any = None) -> torch.Tensor:
        """The embedding of a source dataset, or the mean source embedding for any other task."""
        model = self._check_fitted()
        if task_id in self.task_ids:
            return model.dataset_embedding.weight[self.task_ids.index(task_id)].detach()
        return model.dataset_embedding.weight.detach().mean(dim=0)

    def target_vector(self, context: StopContext) -> torch.Tensor:
        """The embedding for ``context``'s task during a search: a source dataset's own; for any other task the
        mean source embedding, fitted to the completed runs of the context when there are two or more of
        different final accuracy and ``adapt_steps > 0`` (see the module docstring).  A pure function of the
        context: the fit is cached by the completed set, never carried from one search to the next."""
        task = context.task_id
        curves = np.asarray(context.completed_curves, dtype=float)
        archs = list(context.completed_archs or [])
        if (
            self.config.adapt_steps == 0
            or task in self.task_ids
            or len(curves) < 2
            or (self.config.use_architecture and any(a is None for a in archs))
            or len(set(curves[:, -1].tolist())) < 2
        ):
            return self.dataset_vector(task)
        names = "|".join(a.arch_id if a is not None else "-" for a in archs)
        key = hashlib.sha1(curves.tobytes() + names.encode()).hexdigest()
        if (task, key) in self._adapted:
            self._adapted.move_to_end((task, key))
        else:
            self._adapted[(task, key)] = self._fit_target_vector(task, curves, archs)
            while len(self._adapted) > _ADAPTED_CACHE:
                self._adapted.popitem(last=False)
        return self._adapted[(task, key)]

    def _fit_target_vector(self, task: Any, curves: np.ndarray, archs: list[Any]) -> torch.Tensor:
        model = self._check_fitted()
        items = RunItems(
            [self._tokens(a, "a completed run") for a in archs],
            list(curves),
            [curves.shape[1]] * len(curves),
            [self._sizes(*self._seen.get((task, getattr(a, "arch_id", None)), (None, None))) for a in archs],
        )
        finals = torch.tensor(curves[:, -1], dtype=torch.float32)
        rng = np.random.default_rng([self.config.seed, len(curves)])
        vector = self.dataset_vector(None).clone().requires_grad_(True)
        optimizer = torch.optim.Adam([vector], lr=self.config.adapt_lr)
        members, p = [np.arange(len(curves))], np.array([1.0])
        flags = [q.requires_grad for q in model.parameters()]
        for q in model.parameters():  # the network stays fixed; only the embedding moves
            q.requires_grad_(False)
        try:
            with self._threads():
                for _ in range(self.config.adapt_steps):
                    i, j = self._sample_pairs(rng, members, p, self.config.batch_size)
                    loss = self._pair_loss(items, finals, i, j, rng, vector[None])
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
        finally:
            for q, flag in zip(model.parameters(), flags, strict=True):
                q.requires_grad_(flag)
        return vector.detach().clone()

    # -- scoring -----------------------------------------------------------------------------------------------------
    def _remember(self, context: StopContext) -> None:
        arch = context.arch
        if arch is not None and (context.n_params or context.flops):
            self._seen[(context.task_id, arch.arch_id)] = (context.n_params, context.flops)

    def _score_contexts(
        self, curves: Sequence[Sequence[float]], contexts: Sequence[StopContext], vectors: torch.Tensor
    ) -> np.ndarray:
        values = [_curve(c) for c in curves]
        budgets = []
        for v, ctx in zip(values, contexts, strict=True):
            budget = ctx.max_epochs or len(v)
            if len(v) > budget:
                raise ValueError(f"a curve of {len(v)} epochs exceeds its max_epochs={budget}")
            budgets.append(budget)
        items = RunItems(
            [self._tokens(ctx.arch) for ctx in contexts],
            values,
            budgets,
            [self._sizes(ctx.n_params, ctx.flops) for ctx in contexts],
        )
        with torch.no_grad(), self._threads():
            out = self._scores(items, torch.arange(len(values)), items.lengths, vectors)
        return out.numpy().astype(float)

    def scores(self, curves: Sequence[Sequence[float]], contexts: Sequence[StopContext]) -> np.ndarray:
        """``f(x)`` of each partial curve with its context (``arch``, ``max_epochs``, ``task_id``, ``n_params``,
        ``flops``); higher = more likely to end better.  Only differences within one dataset are meaningful.  An
        unseen task uses the mean source embedding."""
        self._check_fitted()
        if len(curves) != len(contexts):
            raise ValueError(f"got {len(curves)} curves but {len(contexts)} contexts")
        if not len(curves):
            return np.zeros(0)
        vectors = torch.stack([self.dataset_vector(ctx.task_id) for ctx in contexts])
        return self._score_contexts(curves, contexts, vectors)

    def score(self, curve: Sequence[float], context: StopContext) -> float:
        """``f(x)`` of one partial curve (see :meth:`scores`)."""
        return float(self.scores([curve], [context])[0])

    def predict_final(self, curve: Sequence[float], context: StopContext) -> float:
        """The ranking score ``f(x)`` -- not an accuracy, only its order within a dataset means something; named so
        that ``nasmeta.evaluation.lodo.partial_curve_evaluator`` can rank runs with it."""
        return self.score(curve, context)

    def probability_better(self, curve: Sequence[float], context: StopContext) -> float | None:
        """``p = sigmoid(f(curve) - f(best run's complete curve))`` on the search's dataset embedding
        (:meth:`target_vector`); None when no run has completed yet."""
        self._check_fitted()
        self._remember(context)
        best_curve = context.best_curve
        if best_curve is None or context.best_so_far is None:
            return None
        task, best_arch = context.task_id, context.best_arch
        if best_arch is None and self.config.use_architecture:
            raise ValueError("lcranknet needs the architecture of the best run; the context has best_arch=None")
        seen = self._seen.get((task, getattr(best_arch, "arch_id", None)), (None, None))
        best_context = StopContext(
            epoch=len(best_curve),
            max_epochs=len(best_curve),
            task_id=task,
            arch=best_arch,
            n_params=context.best_n_params if context.best_n_params is not None else seen[0],
            flops=context.best_flops if context.best_flops is not None else seen[1],
        )
        vector = self.target_vector(context)
        f_now, f_best = self._score_contexts([curve, best_curve], [context, best_context], vector.expand(2, -1))
        return float(1.0 / (1.0 + math.exp(-(f_now - f_best))))

    # -- the stopper role --------------------------------------------------------------------------------------------
    def decide(self, curve: Sequence[float], context: StopContext) -> Decision:
        """``STOP`` when ``p(beats the best so far) <= delta`` after at least ``min_epochs`` epochs, before the last."""
        values = _curve(curve)
        self._check_fitted()
        self._remember(context)  # the sizes of a run that may become the best
        t, T = len(values), context.max_epochs
        if t < self.config.min_epochs or (T is not None and t >= T):
            return Decision.CONTINUE
        p = self.probability_better(values, context)
        if p is None:
            return Decision.CONTINUE
        return Decision.STOP if p <= self.config.delta else Decision.CONTINUE

    # -- persistence -------------------------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        model = self._check_fitted()
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        state = {
            "space": self.space,
            "vocab_size": self._vocab_size(),
            "task_ids": self.task_ids,
            "t_ref": self.t_ref,
            "size_mean": self.size_mean,
            "size_std": self.size_std,
        }
        (path / _CONFIG).write_text(
            json.dumps({"name": self.name, "config": self.config.model_dump(mode="json"), "state": state})
        )
        torch.save(model.state_dict(), path / _WEIGHTS)
        return path

    @classmethod
    def load(cls, directory: str | Path) -> Self:
        path = Path(directory)
        if not (path / _CONFIG).is_file() or not (path / _WEIGHTS).is_file():
            raise ValueError(f"{path} does not hold a saved lcranknet ({_CONFIG} and {_WEIGHTS})")
        data = json.loads((path / _CONFIG).read_text())
        if data.get("name") != cls.name:
            raise ValueError(f"{path} holds a {data.get('name')!r} component, not {cls.name!r}")
        obj = cls(LCRankNetConfig(**data["config"]))
        state = data["state"]
        obj.space = state["space"]
        obj.task_ids = list(state["task_ids"])
        obj.t_ref = int(state["t_ref"])
        obj.size_mean = [float(v) for v in state["size_mean"]]
        obj.size_std = [float(v) for v in state["size_std"]]
        obj.model = obj._new_model(int(state["vocab_size"]))
        obj.model.load_state_dict(torch.load(path / _WEIGHTS, weights_only=True))
        obj.model.eval()
        return obj

    def __repr__(self) -> str:
        fitted = f"{len(self.task_ids)} source dataset(s) of {self.space}" if self.model is not None else "not fitted"
        return f"LCRankNet(delta={self.config.delta}, min_epochs={self.config.min_epochs}, {fitted})"
