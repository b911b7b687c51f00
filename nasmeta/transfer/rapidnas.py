"""RapidNAS: MetaD2A (Lee, Hyung & Hwang, "Rapid Neural Architecture Search by Learning to Generate Graphs from
Datasets", ICLR 2021) as a transfer component — a dataset encoder, a dataset-conditioned cell generator and a
meta-predictor, meta-trained on a collection of source tasks and used on a new task without training anything.

The method, as METHODS.md states it, and how it is realised here:

1. **Dataset encoder** (:mod:`nasmeta.transfer.rapidnas_encoder`): ``n_per_class`` (20) training images per class
   -> a fixed image embedding -> intra-class SAB + PMA (class prototypes) -> inter-class SAB + PMA -> the task's
   vector.  The generator and the predictor each have their own set encoder (as in MetaD2A), trained with them.
2. **Generator** (:mod:`nasmeta.transfer.rapidnas_graph`): a set-to-graph VAE: the posterior ``q(z | D) =
   N(mu(D), sigma(D))`` comes from the dataset encoding, the D-VAE decoder ``p(G | z)`` emits the cell node by
   node; trained with the ELBO ``-log p(G | z) + kl_weight * KL(q(z | D) || N(0, I))``, ``kl_weight`` = 0.005,
   only on each source task's good cells: the top ``good_fraction`` (25 %) of the task's cells by validation
   accuracy (the cut-off MetaD2A leaves to the meta-training set; stated here as a parameter).
3. **Meta-predictor**: ``MLP([dataset encoding, D-VAE graph encoding])`` -> accuracy, squared error, trained on
   every source run (one record per task and cell: the mean over its seeds).
4. **Search** (:func:`rapidnas_search`, ``propose``): sample ``n_candidates`` (500) graphs from ``z ~ q(z | D)`` of
   the target, keep the valid, distinct cells (up to isomorphism), rank them by the meta-predictor, evaluate the
   top ``k`` with any evaluator.

Generator quality (validity, uniqueness, novelty over decoded samples, MetaD2A's measures) comes from
:meth:`RapidNAS.generation_quality`.

Deviations (stated so they can be judged):

- Image embedding: a frozen randomly initialised conv net (fixed seed), not MetaD2A's ImageNet-pretrained
  ResNet18, because no pretrained weights are available offline (see :mod:`nasmeta.transfer.rapidnas_encoder`).
- Label: by default (``target="task_zscore"``) the predictor regresses each source task's accuracies standardised
  within the task (mean 0, std 1), so its scores rank cells of the target rather than guess the level of a task it
  never saw; MetaD2A regresses raw accuracies over thousands of ImageNet subsets of similar level, while the
  collection's 12 tasks range from about 35 % to 90 %.  ``target="accuracy"`` is the paper's form (scores in %).
- Sizes: defaults are small (embedding 128, set / graph hidden 32, latent 32, 1,500 steps each) so meta-training
  on the 12 collection tasks takes about 1.5 CPU-minutes (86 CPU-seconds measured, image embedding included);
  MetaD2A's sizes (``embed_dim=512``, ``set_hidden=56``, ``latent_dim=56``, ``graph_hidden=56``) are parameters.
- The generator is meta-trained on the collection's cells (12 tasks x 128 cells trained for 12 epochs at C=8, N=1),
  not on NB201's 200-epoch accuracies of ImageNet subsets.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from nasmeta.evaluators import Evaluator
from nasmeta.reporting import Reporter
from nasmeta.search_result import SearchResult
from nasmeta.spaces.base import Architecture, SearchSpace
from nasmeta.threads import torch_threads
from nasmeta.transfer.base import Generator, MissingMetadataError, Predictor
from nasmeta.transfer.rapidnas_encoder import FrozenImageEmbedding, SetEncoder, sample_class_sets
from nasmeta.transfer.rapidnas_graph import DAGDecoder, DAGEncoder, arch_graphs, decoded_to_arch, generation_metrics

__all__ = ["RapidNAS", "RapidNASConfig", "rapidnas_search"]

_CONFIG_FILE = "rapidnas.json"
_WEIGHTS_FILE = "rapidnas.pt"
#: distinct NB201 cells up to isomorphism (the most distinct candidates there can be)
_NB201_DISTINCT = 6466


class RapidNASConfig(BaseModel):
    """Sizes, training recipe and search settings (defaults: small, for CPU; see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: images per class in a sampled set (MetaD2A: 20)
    n_per_class: int = Field(20, ge=1)
    image_size: int = Field(32, ge=8)
    embed_dim: int = Field(128, ge=2)
    embed_seed: int = 0
    set_hidden: int = Field(32, ge=1)
    heads: int = Field(4, ge=1)
    latent_dim: int = Field(32, ge=1)
    graph_hidden: int = Field(32, ge=1)
    predictor_hidden: int = Field(64, ge=1)
    kl_weight: float = Field(0.005, ge=0.0)
    #: give z to every decoding decision, not only the start node (D-VAE / MetaD2A: False)
    z_every_step: bool = False
    #: a source task's good cells: the top share of its cells by validation accuracy
    good_fraction: float = Field(0.25, gt=0.0, le=1.0)
    gen_steps: int = Field(1500, ge=0)
    gen_batch: int = Field(32, ge=1)
    gen_lr: float = Field(3e-3, gt=0.0)
    pred_steps: int = Field(1500, ge=0)
    pred_batch: int = Field(64, ge=1)
    pred_lr: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(1e-5, ge=0.0)
    target: Literal["task_zscore", "accuracy"] = "task_zscore"
    label: Literal["final_val_acc", "final_test_acc"] = "final_val_acc"
    #: graphs sampled per search (MetaD2A: 500)
    n_candidates: int = Field(500, ge=1)
    #: further rounds of ``n_candidates`` samples when fewer than the asked-for distinct valid cells came out
    max_rounds: int = Field(20, ge=1)
    seed: int = 0
    num_threads: int | None = Field(1, ge=1)


class _GeneratorNet(nn.Module):
    def __init__(self, cfg: RapidNASConfig) -> None:
        super().__init__()
        self.set_encoder = SetEncoder(cfg.embed_dim, cfg.set_hidden, 2 * cfg.latent_dim, cfg.heads)
        self.decoder = DAGDecoder(cfg.latent_dim, cfg.graph_hidden, cfg.z_every_step)
        self.latent_dim = cfg.latent_dim

    def posterior(self, sets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.set_encoder(sets)
        return out[..., : self.latent_dim], out[..., self.latent_dim :]


class _PredictorNet(nn.Module):
    def __init__(self, cfg: RapidNASConfig) -> None:
        super().__init__()
        self.set_encoder = SetEncoder(cfg.embed_dim, cfg.set_hidden, cfg.set_hidden, cfg.heads)
        self.graph_encoder = DAGEncoder(cfg.graph_hidden, bidirectional=True)
        width = cfg.set_hidden + self.graph_encoder.out_dim
        self.head = nn.Sequential(nn.Linear(width, cfg.predictor_hidden), nn.ReLU(), nn.Linear(cfg.predictor_hidden, 1))

    def forward(self, z: torch.Tensor, types: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([z, self.graph_encoder(types, adj)], dim=1)).squeeze(1)


class _TaskBank:
    """One task's embedded training images (standardised features) and labels."""

    def __init__(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        self.features = features
        self.labels = labels

    def sample(self, n_per_class: int, rng: np.random.Generator) -> torch.Tensor:
        return sample_class_sets(self.features, self.labels, n_per_class, rng)


class RapidNAS(Predictor, Generator):
    """MetaD2A (module docstring): ``propose(task, n)`` generates cells for ``task``, ``predict(archs, task)``
    scores them.  ``task`` is a ``TaskSpec``, a loaded ``TaskData``, a registered task name, the id of a source
    task, or a mapping with the task's ``spec`` (JSON, as in the store's tasks table) or a source ``task_id``."""

    name: ClassVar[str] = "rapidnas"
    spaces: ClassVar[tuple[str, ...] | None] = ("nb201",)
    # the images come from the task specs in the tasks table (loaded from NASMETA_DATA_DIR when not bundled)
    data_requirements: ClassVar[frozenset[str]] = frozenset({"tasks", "runs", "architectures"})

    def __init__(self, config: RapidNASConfig | None = None, **params: Any) -> None:
        if config is not None and params:
            raise ValueError(f"pass either a RapidNASConfig or keyword parameters, not both (got {sorted(params)})")
        self.config = config if config is not None else RapidNASConfig(**params)
        self._build()
        self.feature_mean: torch.Tensor | None = None
        self.feature_std: torch.Tensor | None = None
        #: source task id -> its spec JSON
        self.sources: dict[str, str] = {}
        #: the good cells the generator was trained on (novelty is measured against them)
        self.training_cells: list[Architecture] = []
        self.label_mean = 0.0
        self.label_std = 1.0
        self.fit_info: dict[str, Any] = {}
        self._banks: dict[str, _TaskBank] = {}

    def _build(self) -> None:
        cfg = self.config
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            self.embedding = FrozenImageEmbedding(cfg.embed_dim, cfg.image_size, cfg.embed_seed)
            self.generator = _GeneratorNet(cfg)
            self.predictor = _PredictorNet(cfg)

    @property
    def fitted(self) -> bool:
        return self.feature_mean is not None

    def _check_fitted(self) -> None:
        if not self.fitted:
            raise RuntimeError("RapidNAS is not fitted: call fit(meta) first")

    # -- tasks -------------------------------------------------------------------------------------------------
    def _resolve(self, task: Any) -> tuple[str, Any]:
        """(cache key, loader of the task's ``TaskData``) for anything ``predict`` / ``propose`` accept."""
        from nasmeta.data.tasks import TaskSpec, get_task
        from nasmeta.data.types import TaskData

        if isinstance(task, TaskData):
            return task.task_id, lambda: task
        if isinstance(task, TaskSpec):
            return task.task_id, task.load
        if isinstance(task, Mapping):
            if task.get("spec"):
                spec = TaskSpec.from_json(task["spec"])
                return spec.task_id, spec.load
            if task.get("task_id") in self.sources:
                return self._resolve(task["task_id"])
            raise ValueError(
                f"RapidNAS needs the task's images: give its 'spec' or a source task id, got keys {sorted(task)}"
            )
        if isinstance(task, str):
            if task in self.sources:
                spec = TaskSpec.from_json(self.sources[task])
                return task, spec.load
            try:
                spec = get_task(task)
            except ValueError:
                raise ValueError(
                    f"unknown task {task!r}: neither a source task of this RapidNAS nor a registered task name"
                ) from None
            return spec.task_id, spec.load
        raise ValueError(f"unknown task {task!r}: give a TaskSpec, TaskData, task name or a mapping with 'spec'")

    def _embed(self, data: Any) -> _TaskBank:
        x, y = data.x_train, data.y_train
        if len(x) == 0:
            raise ValueError(f"task {data.name!r} has no training images to encode")
        with torch.no_grad():
            features = torch.cat([self.embedding(x[i : i + 512]) for i in range(0, len(x), 512)])
        if self.feature_mean is not None:
            features = (features - self.feature_mean) / self.feature_std
        return _TaskBank(features, y)

    def _bank(self, task: Any) -> _TaskBank:
        key, load = self._resolve(task)
        if key not in self._banks:
            self._banks[key] = self._embed(load())
        return self._banks[key]

    def _encoding_rng(self, extra: int = 0) -> np.random.Generator:
        return np.random.default_rng([self.config.seed, 7919, extra])

    def task_encoding(self, task: Any, which: Literal["generator", "predictor"] = "generator") -> np.ndarray:
        """The task's dataset encoding (the generator's posterior mean, or the predictor's vector) from a set of
        ``n_per_class`` training images per class drawn with the config's seed."""
        self._check_fitted()
        if which not in ("generator", "predictor"):
            raise ValueError(f"which must be 'generator' or 'predictor', got {which!r}")
        with torch_threads(self.config.num_threads), torch.no_grad():
            sets = self._bank(task).sample(self.config.n_per_class, self._encoding_rng())
            if which == "generator":
                return self.generator.posterior(sets)[0].numpy()
            return self.predictor.set_encoder(sets).numpy()

    # -- fitting -----------------------------------------------------------------------------------------------
    def fit(self, meta: Any) -> Self:
        """Meta-train the generator and the predictor on a ``MetaDataset`` (see the module docstring)."""
        cfg = self.config
        start = time.perf_counter()
        records, specs = _records_from_meta(meta, cfg.label)
        with torch_threads(cfg.num_threads):
            self._build()
            self.feature_mean = self.feature_std = None
            self._banks = {}
            self.sources = specs
            from nasmeta.data.tasks import TaskSpec

            raw = {task: self._embed(TaskSpec.from_json(spec).load()) for task, spec in specs.items()}
            stacked = torch.cat([b.features for b in raw.values()])
            self.feature_mean = stacked.mean(dim=0)
            self.feature_std = stacked.std(dim=0).clamp_min(1e-6)
            self._banks = {
                t: _TaskBank((b.features - self.feature_mean) / self.feature_std, b.labels) for t, b in raw.items()
            }
            embed_seconds = time.perf_counter() - start
            tasks = sorted(specs)
            good = _good_cells(records, cfg.good_fraction)
            self.training_cells = sorted({a for cells in good.values() for a in cells}, key=str)
            gen_loss = self._train_generator(tasks, good)
            pred_loss = self._train_predictor(tasks, records)
        self.fit_info = {
            "tasks": len(tasks),
            "records": sum(len(r) for r in records.values()),
            "good_cells": sum(len(c) for c in good.values()),
            "embed_seconds": embed_seconds,
            "fit_seconds": time.perf_counter() - start,
            "generator_loss": gen_loss,
            "predictor_loss": pred_loss,
        }
        return self

    def _train_generator(self, tasks: list[str], good: dict[str, list[Architecture]]) -> float:
        cfg = self.config
        pairs = [(t, a) for t in tasks for a in good.get(t, [])]
        if not pairs or cfg.gen_steps == 0:
            return math.nan
        types, adj = arch_graphs([a for _, a in pairs])
        task_of = np.array([tasks.index(t) for t, _ in pairs])
        rng = np.random.default_rng([cfg.seed, 1])
        torch.manual_seed(cfg.seed)
        net = self.generator.train()
        optimizer = torch.optim.Adam(net.parameters(), lr=cfg.gen_lr, weight_decay=cfg.weight_decay)
        recent: list[float] = []
        for _ in range(cfg.gen_steps):
            batch = rng.choice(len(pairs), size=min(cfg.gen_batch, len(pairs)), replace=False)
            mu, logvar = self._posterior_batch(tasks, task_of[batch], rng)
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
            recon = net.decoder.loss(z, types[batch], adj[batch])
            kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)
            loss = (recon + cfg.kl_weight * kl).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            recent = [*recent[-49:], loss.item()]
        net.eval()
        return float(np.mean(recent))

    def _posterior_batch(
        self, tasks: list[str], task_index: np.ndarray, rng: np.random.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar) per batch row, one freshly sampled set per distinct task in the batch."""
        distinct = sorted(set(task_index.tolist()))
        sets = [self._banks[tasks[i]].sample(self.config.n_per_class, rng) for i in distinct]
        out = self.generator.set_encoder.encode_many(sets)
        rows = torch.tensor([distinct.index(i) for i in task_index.tolist()])
        latent = self.generator.latent_dim
        return out[rows, :latent], out[rows, latent:]

    def _train_predictor(self, tasks: list[str], records: dict[str, dict[Architecture, float]]) -> float:
        cfg = self.config
        rows = [(t, a, acc) for t in tasks for a, acc in sorted(records[t].items(), key=lambda kv: str(kv[0]))]
        y = np.array([acc for _, _, acc in rows], dtype=np.float64)
        task_of = np.array([tasks.index(t) for t, _, _ in rows])
        if cfg.target == "task_zscore":
            for i in range(len(tasks)):
                mask = task_of == i
                spread = y[mask].std()
                y[mask] = (y[mask] - y[mask].mean()) / (spread if spread > 0 else 1.0)
            self.label_mean, self.label_std = 0.0, 1.0
        else:
            self.label_mean, self.label_std = float(y.mean()), float(y.std()) or 1.0
            y = (y - self.label_mean) / self.label_std
        if cfg.pred_steps == 0:
            return math.nan
        types, adj = arch_graphs([a for _, a, _ in rows])
        target = torch.from_numpy(y.astype(np.float32))
        rng = np.random.default_rng([cfg.seed, 2])
        torch.manual_seed(cfg.seed + 1)
        net = self.predictor.train()
        optimizer = torch.optim.Adam(net.parameters(), lr=cfg.pred_lr, weight_decay=cfg.weight_decay)
        recent: list[float] = []
        for _ in range(cfg.pred_steps):
            batch = rng.choice(len(rows), size=min(cfg.pred_batch, len(rows)), replace=False)
            distinct = sorted(set(task_of[batch].tolist()))
            encoded = net.set_encoder.encode_many(
                [self._banks[tasks[i]].sample(cfg.n_per_class, rng) for i in distinct]
            )
            z = encoded[torch.tensor([distinct.index(i) for i in task_of[batch].tolist()])]
            loss = torch.mean((net(z, types[batch], adj[batch]) - target[batch]) ** 2)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            recent = [*recent[-49:], loss.item()]
        net.eval()
        return float(np.mean(recent))

    # -- roles -------------------------------------------------------------------------------------------------
    def predict(self, archs: Sequence[Architecture], task: Any) -> np.ndarray:
        """Meta-predictor scores of ``archs`` on ``task`` (higher = better; ``target="accuracy"``: in %)."""
        self._check_fitted()
        archs = list(archs)
        if not archs:
            return np.zeros(0)
        types, adj = arch_graphs(archs)
        z = torch.from_numpy(self.task_encoding(task, "predictor"))
        with torch_threads(self.config.num_threads), torch.no_grad():
            out = torch.cat(
                [
                    self.predictor(z.expand(len(types[i : i + 2048]), -1), types[i : i + 2048], adj[i : i + 2048])
                    for i in range(0, len(types), 2048)
                ]
            )
        return out.numpy().astype(np.float64) * self.label_std + self.label_mean

    def generate(self, task: Any, n_samples: int, seed: int | None = None) -> list[Architecture | None]:
        """``n_samples`` stochastic decodes for ``task`` (None where a decode is not a valid NB201 cell)."""
        self._check_fitted()
        _check_count(n_samples, "n_samples")
        seed = self.config.seed if seed is None else seed
        mu = torch.from_numpy(self.task_encoding(task, "generator"))
        with torch_threads(self.config.num_threads), torch.no_grad():
            sets = self._bank(task).sample(self.config.n_per_class, self._encoding_rng())
            logvar = self.generator.posterior(sets)[1]
            generator = torch.Generator().manual_seed(int(seed))
            eps = torch.randn(n_samples, mu.shape[0], generator=generator)
            z = mu + eps * torch.exp(0.5 * logvar)
            types, adj = self.generator.decoder.sample(z, generator)
        return [decoded_to_arch(t, a) for t, a in zip(types, adj, strict=True)]

    def generation_quality(self, task: Any, n_samples: int = 1000, seed: int | None = None) -> dict[str, float]:
        """Validity, uniqueness and novelty (vs the good cells it was trained on) of ``n_samples`` decodes."""
        return generation_metrics(self.generate(task, n_samples, seed), self.training_cells)

    def candidates(
        self, task: Any, n: int | None = None, seed: int | None = None
    ) -> tuple[list[Architecture], np.ndarray, dict[str, Any]]:
        """Distinct valid generated cells (up to isomorphism), best predicted first, with their scores and info.

        Samples ``n_candidates`` graphs; when ``n`` is given and fewer than ``n`` distinct valid cells came out,
        samples further rounds (at most ``max_rounds`` in all)."""
        self._check_fitted()
        cfg = self.config
        if n is not None:
            _check_count(n, "n")
            if n > _NB201_DISTINCT:
                raise ValueError(f"n must be at most {_NB201_DISTINCT} (distinct NB201 cells), got {n!r}")
        seed = cfg.seed if seed is None else int(seed)
        start = time.perf_counter()
        found: dict[str, Architecture] = {}
        decoded: list[Architecture | None] = []
        for round_ in range(cfg.max_rounds):
            batch = self.generate(task, cfg.n_candidates, seed + 1_000_003 * round_)
            decoded += batch
            for arch in batch:
                if arch is not None:
                    found.setdefault(arch.arch_id, arch)
            if n is None or len(found) >= n:
                break
        cells = sorted(found.values(), key=str)
        scores = self.predict(cells, task) if cells else np.zeros(0)
        order = np.argsort(-scores, kind="stable")
        info = {
            "samples": len(decoded),
            "valid": sum(a is not None for a in decoded),
            "distinct": len(cells),
            "candidate_seconds": time.perf_counter() - start,
        }
        return [cells[i] for i in order], scores[order], info

    def propose(self, task: Any, n: int, seed: int | None = None) -> list[Architecture]:
        """The ``n`` generated cells with the highest predicted scores for ``task``."""
        cells, _, info = self.candidates(task, n, seed)
        if len(cells) < n:
            raise RuntimeError(
                f"RapidNAS generated only {len(cells)} distinct valid cells in {info['samples']} samples; "
                f"asked for {n} (raise max_rounds or n_candidates)"
            )
        return cells[:n]

    # -- persistence ------------------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        self._check_fitted()
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        weights = {
            "embedding": self.embedding.state_dict(),
            "generator": self.generator.state_dict(),
            "predictor": self.predictor.state_dict(),
            "feature_mean": self.feature_mean,
            "feature_std": self.feature_std,
        }
        torch.save(weights, folder / _WEIGHTS_FILE)
        info = {
            "config": self.config.model_dump(),
            "sources": self.sources,
            "training_cells": [list(a.encoding) for a in self.training_cells],
            "label_mean": self.label_mean,
            "label_std": self.label_std,
            "fit_info": self.fit_info,
        }
        (folder / _CONFIG_FILE).write_text(json.dumps(info, indent=1))
        return folder

    @classmethod
    def load(cls, directory: str | Path) -> Self:
        folder = Path(directory)
        if not (folder / _CONFIG_FILE).is_file() or not (folder / _WEIGHTS_FILE).is_file():
            raise ValueError(f"{folder} holds no saved RapidNAS ({_CONFIG_FILE} / {_WEIGHTS_FILE} missing)")
        info = json.loads((folder / _CONFIG_FILE).read_text())
        model = cls(RapidNASConfig(**info["config"]))
        weights = torch.load(folder / _WEIGHTS_FILE, weights_only=True)
        model.embedding.load_state_dict(weights["embedding"])
        model.generator.load_state_dict(weights["generator"])
        model.predictor.load_state_dict(weights["predictor"])
        model.generator.eval()
        model.predictor.eval()
        model.feature_mean, model.feature_std = weights["feature_mean"], weights["feature_std"]
        model.sources = dict(info["sources"])
        model.training_cells = [Architecture("nb201", tuple(e)) for e in info["training_cells"]]
        model.label_mean, model.label_std = float(info["label_mean"]), float(info["label_std"])
        model.fit_info = info["fit_info"]
        return model


def _check_count(n: Any, what: str) -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"{what} must be a positive integer, got {n!r}")
    return int(n)


def _records_from_meta(meta: Any, label: str) -> tuple[dict[str, dict[Architecture, float]], dict[str, str]]:
    """({task: {cell: mean label over its completed runs}}, {task: spec JSON}) of the NB201 runs in ``meta``."""
    if not hasattr(meta, "runs_with_archs"):
        raise ValueError(f"RapidNAS fits on a MetaDataset, got {type(meta).__name__}")
    rows = [r for r in meta.runs_with_archs(status="completed").to_pylist() if r["space"] == "nb201"]
    rows = [r for r in rows if r[label] is not None and math.isfinite(r[label])]
    if not rows:
        raise MissingMetadataError(f"rapidnas needs completed NB201 runs with {label} and stored cells; found none")
    specs = {r["task_id"]: r["spec"] for r in meta.tasks.to_pylist() if r["spec"]}
    missing = sorted({r["task_id"] for r in rows} - set(specs))
    if missing:
        raise MissingMetadataError(f"rapidnas needs the task spec (to load its images) of task(s) {missing}")
    values: dict[str, dict[Architecture, list[float]]] = {}
    for r in rows:
        arch = Architecture("nb201", tuple(json.loads(r["encoding"])))
        values.setdefault(r["task_id"], {}).setdefault(arch, []).append(float(r[label]))
    records = {t: {a: float(np.mean(v)) for a, v in cells.items()} for t, cells in values.items()}
    return records, {t: specs[t] for t in sorted(records)}


def _good_cells(records: dict[str, dict[Architecture, float]], fraction: float) -> dict[str, list[Architecture]]:
    """Per task: its top ``fraction`` of cells by accuracy (at least one), ties broken by the cell string."""
    good = {}
    for task, cells in records.items():
        ranked = sorted(cells, key=lambda a: (-cells[a], str(a)))
        good[task] = ranked[: max(1, math.ceil(fraction * len(ranked)))]
    return good


def rapidnas_search(
    model: RapidNAS,
    space: SearchSpace,
    task: Any,
    evaluator: Evaluator,
    n_evaluations: int = 10,
    seed: int = 0,
    reporter: Reporter | None = None,
    epochs: int | None = None,
    scheduler: Any = None,
    **loop: Any,
) -> SearchResult:
    """Generate ``model.config.n_candidates`` graphs for ``task``, rank the distinct valid cells by the
    meta-predictor, evaluate the top ``n_evaluations`` with ``evaluator`` (in the search loop, under ``scheduler``
    when given); the best by validation accuracy wins.  ``extra`` holds the generation phase (samples, valid,
    distinct, ``candidate_seconds``) and the predicted scores of the evaluated cells."""
    from nasmeta.search.loop import run_search
    from nasmeta.search.recorder import check_budget
    from nasmeta.search.searchers import FixedOrderSearcher

    n_evaluations = check_budget(n_evaluations)
    if space.name != "nb201":
        raise ValueError(f"RapidNAS generates NB201 cells; the search is over {space.name!r}")
    cells, scores, info = model.candidates(task, n_evaluations, seed)
    chosen = cells[:n_evaluations]
    result = run_search(
        FixedOrderSearcher(chosen),
        evaluator,
        len(chosen),
        scheduler,
        seed=seed,
        max_epochs=epochs,
        reporter=reporter,
        method="rapidnas",
        **loop,
    )
    result.extra.update(**info, predicted=[float(s) for s in scores[: len(chosen)]])
    return result
