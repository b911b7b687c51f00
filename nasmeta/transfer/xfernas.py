"""XferNAS (Wistuba, "XferNAS: Transfer Neural Architecture Search", ECML-PKDD 2020) on NAO (Luo et al., NeurIPS
2018; ``nasmeta.blackbox.nao``): the surrogate of task ``t`` is a universal part ``g_u`` plus a task residual
``r_t``.

- **Universal part** (:meth:`XferNAS.fit` / :meth:`XferNAS.fit_tasks`): a NAO model (LSTM encoder -> ``h``,
  predictor ``g_u(h)``, attention decoder) trained with ``a * L_pred + (1 - a) * L_rec`` (``a = 0.8``) on every
  source task's evaluated architectures at once, each task's accuracies turned into percentile ranks (so tasks
  with different accuracy ranges share one scale) and each task weighted equally in ``L_pred``.
- **Task residual** (:meth:`XferNAS.searcher`): for the target, a copy of the universal model gets a residual MLP
  ``r_t(h)`` whose last layer starts at zero, so the surrogate starts *equal* to ``g_u`` (warm start) and moves
  away only as far as the target's own evaluations ask (weight decay ``residual_weight_decay`` keeps ``r_t``
  small); encoder, decoder and ``g_u`` stay frozen, so the embedding and decoder learnt on the sources are kept.
- **Search**: NAO's loop (``NAOSearcher``) with surrogate ``g_u + r_t``: the first ``n_initial`` architectures are
  the candidates ``g_u`` ranks highest (the sources' architectures, or the pool when one is given), then rounds of
  refit ``r_t`` on all target evaluations -> gradient ascent on the encoder outputs of the ``top_k`` best ->
  decode -> evaluate the valid new ones.

Roles: :class:`XferNAS` is a ``Predictor`` (``predict(archs, task)`` = ``g_u``; the task is not an input of the
universal part, so it is ignored) and a ``Generator`` (``propose(task, n)``: the ``n`` source architectures
``g_u`` ranks highest).

Deviations from the paper: Wistuba trains the universal part and the source residuals jointly on the source
tasks and fine-tunes for the target; here the sources are pooled into one universal fit (no source residuals,
each source's labels are its percentile ranks) and only the target residual is trained afterwards, with the
encoder frozen.  Sizes are small defaults (embedding / hidden 32, one layer); the published setting uses NAO's
NASNet-space sizes.  The published result is a cost one: 200 -> 6 GPU-days for NAO on CIFAR-10.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from nasmeta.blackbox.nao import NAOConfig, NAOModel, NAOSearcher, as_tokens, percentile_labels, predict, train_nao
from nasmeta.spaces.base import Architecture
from nasmeta.transfer.base import Generator, MissingMetadataError, Predictor

__all__ = ["XferNAS", "XferNASConfig"]

_CONFIG_FILE = "xfernas.json"
_WEIGHTS_FILE = "universal.pt"


class XferNASConfig(BaseModel):
    """Settings of the universal fit and of the residual search (defaults: small, seconds on one CPU core)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: the NAO model and search loop (top_k, eta, ...); its ``epochs`` are the residual's passes per refit
    nao: NAOConfig = NAOConfig(batch_size=128, epochs=60)
    #: passes of the universal fit over the pooled source data
    universal_epochs: int = Field(40, ge=1)
    residual_hidden: int = Field(32, ge=1)
    residual_weight_decay: float = Field(1e-2, ge=0.0)
    #: architectures evaluated first: the ones ``g_u`` ranks highest
    n_initial: int = Field(5, ge=1)
    #: the runs column that labels source architectures
    label: str = Field("final_val_acc", pattern="^final_(val|test)_acc$")
    #: only runs of this space (None: the space of the most runs)
    space: str | None = None
    seed: int = 0


class XferNAS(Predictor, Generator):
    """Universal NAO surrogate fitted on source tasks, searched with a target residual; see the module docstring."""

    name: ClassVar[str] = "xfernas"
    data_requirements: ClassVar[frozenset[str]] = frozenset({"runs", "architectures"})

    def __init__(self, config: XferNASConfig | None = None, **params: Any) -> None:
        if config is not None and params:
            raise ValueError(f"give either a config or parameters, got both (parameters {sorted(params)})")
        if "nao" in params and isinstance(params["nao"], Mapping):
            params = {**params, "nao": NAOConfig(**{**XferNASConfig().nao.model_dump(), **params["nao"]})}
        self.config = config or XferNASConfig(**params)
        self.model: NAOModel | None = None
        self.space: str | None = None
        self.source_tasks: list[str] = []
        self.source_archs: list[Architecture] = []
        self.losses: list[float] = []

    # -- fitting ---------------------------------------------------------------------------------------------------
    def fit(self, meta: Any) -> Self:
        """The universal part on every completed run of the store view (one space; percentile labels per task)."""
        cfg = self.config
        rows = [r for r in meta.runs_with_archs(status="completed").to_pylist() if r["encoding"] is not None]
        rows = [r for r in rows if r[cfg.label] is not None and math.isfinite(r[cfg.label])]
        if not rows:
            raise MissingMetadataError("xfernas needs completed runs with stored architectures; found none")
        spaces = sorted({r["space"] for r in rows}, key=lambda s: (-sum(r["space"] == s for r in rows), s))
        space = cfg.space or spaces[0]
        rows = [r for r in rows if r["space"] == space]
        if not rows:
            raise MissingMetadataError(f"xfernas: no completed runs of space {space!r} (stored: {spaces})")
        data: dict[str, tuple[list[Architecture], list[float]]] = {}
        values: dict[tuple[str, str], list[float]] = {}
        archs: dict[str, Architecture] = {}
        for r in sorted(rows, key=lambda r: r["run_id"]):
            arch = Architecture.from_json({"space": r["space"], "encoding": json.loads(r["encoding"])})
            archs[arch.arch_id] = arch
            values.setdefault((r["task_id"], arch.arch_id), []).append(float(r[cfg.label]))
        for (task, arch_id), vals in sorted(values.items()):
            entry = data.setdefault(task, ([], []))
            entry[0].append(archs[arch_id])
            entry[1].append(float(np.mean(vals)))  # one label per (task, cell): the mean over its seeds
        return self.fit_tasks(data)

    def fit_tasks(self, data: Mapping[str, tuple[Sequence[Architecture], Sequence[float]]]) -> Self:
        """The universal part on ``{task: (architectures, accuracies)}`` (one space; at least 2 cells per task)."""
        from nasmeta.spaces import get_space

        if not data:
            raise ValueError("xfernas needs at least one source task, got none")
        archs: list[Architecture] = []
        labels: list[np.ndarray] = []
        weights: list[np.ndarray] = []
        for task, (task_archs, accuracies) in sorted(data.items()):
            if len(task_archs) != len(accuracies) or len(task_archs) < 2:
                raise ValueError(
                    f"source task {task!r} needs >= 2 architectures with one accuracy each, got "
                    f"{len(task_archs)} architectures and {len(accuracies)} accuracies"
                )
            archs += list(task_archs)
            labels.append(percentile_labels(accuracies))
            weights.append(np.full(len(task_archs), 1.0 / len(task_archs)))
        spaces = sorted({a.space for a in archs})
        if len(spaces) != 1:
            raise ValueError(f"xfernas fits one space at a time, got architectures of {spaces}")
        space = get_space(spaces[0])
        cfg = self.config
        nao = cfg.nao.model_copy(update={"seed": cfg.seed})
        self.model = NAOModel(space.token_choices(), space.vocab_size, nao)
        self.losses = train_nao(
            self.model,
            as_tokens(space, archs),
            np.concatenate(labels),
            nao,
            cfg.universal_epochs,
            cfg.seed,
            weights=np.concatenate(weights) * len(archs) / len(data),
        )
        self.space = space.name
        self.source_tasks = sorted(data)
        self.source_archs = list({a.arch_id: a for a in archs}.values())
        return self

    # -- roles -----------------------------------------------------------------------------------------------------
    def _fitted(self) -> NAOModel:
        if self.model is None:
            raise RuntimeError("xfernas is not fitted: call fit(meta) first")
        return self.model

    def _space(self, archs: Sequence[Architecture]) -> Any:
        from nasmeta.spaces import get_space

        space = get_space(self.space)
        for arch in archs:
            if not isinstance(arch, Architecture) or arch.space != self.space:
                raise ValueError(f"xfernas was fitted on space {self.space!r}, got {arch!r}")
        return space

    def predict(self, archs: Sequence[Architecture], task: Any = None) -> np.ndarray:
        """The universal surrogate ``g_u`` (percentile scale; the task is not an input of the universal part)."""
        model = self._fitted()
        return predict(model, self._space(archs), list(archs), universal=True)

    def propose(self, task: Any, n: int) -> list[Architecture]:
        """The ``n`` source architectures ``g_u`` ranks highest (the same for every ``task``)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        return self.rank(self.source_archs)[:n]

    def rank(self, archs: Sequence[Architecture]) -> list[Architecture]:
        """``archs`` ordered by ``g_u``, best first (ties by arch id)."""
        ordered = sorted(archs, key=lambda a: a.arch_id)
        scores = self.predict(ordered)
        return [ordered[i] for i in np.argsort(-scores, kind="stable")]

    def searcher(
        self,
        seed: int = 0,
        pool: Sequence[Architecture] | None = None,
        n_initial: int | None = None,
        **params: Any,
    ) -> NAOSearcher:
        """NAO's search with surrogate ``g_u + r_t`` (a fresh residual per call); ``pool``: only these cells can be
        evaluated (decodes map to the nearest unevaluated one); ``n_initial``: how many of ``g_u``'s top cells come
        first (default: the config's); ``params``: ``NAOConfig`` overrides (``top_k``, ``eta``, ...)."""
        from nasmeta.spaces import get_space

        model = self._fitted()
        cfg = self.config
        space = get_space(self.space)
        candidates = list(pool) if pool is not None else self.source_archs
        n_initial = cfg.n_initial if n_initial is None else n_initial
        if isinstance(n_initial, bool) or not isinstance(n_initial, int) or n_initial < 1:
            raise ValueError(f"n_initial must be a positive integer, got {n_initial!r}")
        initial = self.rank(candidates)[:n_initial]
        search = cfg.nao.model_copy(update={"weight_decay": cfg.residual_weight_decay})
        searcher = NAOSearcher(space, seed, search, model=model, initial=initial, pool=pool, **params)
        searcher.model.add_residual(cfg.residual_hidden, seed=int(seed))
        return searcher

    # -- persistence -----------------------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        model = self._fitted()
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), path / _WEIGHTS_FILE)
        payload = {
            "config": self.config.model_dump(),
            "space": self.space,
            "source_tasks": self.source_tasks,
            "source_archs": [a.to_json() for a in self.source_archs],
            "losses": self.losses,
        }
        (path / _CONFIG_FILE).write_text(json.dumps(payload))
        return path

    @classmethod
    def load(cls, directory: str | Path) -> Self:
        from nasmeta.spaces import get_space

        path = Path(directory)
        payload = json.loads((path / _CONFIG_FILE).read_text())
        component = cls(XferNASConfig(**payload["config"]))
        space = get_space(payload["space"])
        nao = component.config.nao.model_copy(update={"seed": component.config.seed})
        model = NAOModel(space.token_choices(), space.vocab_size, nao)
        model.load_state_dict(torch.load(path / _WEIGHTS_FILE, weights_only=True))
        model.eval()
        component.model = model
        component.space = space.name
        component.source_tasks = payload["source_tasks"]
        component.source_archs = [Architecture.from_json(a) for a in payload["source_archs"]]
        component.losses = payload["losses"]
        return component
