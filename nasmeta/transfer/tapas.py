"""TAPAS: Train-less Accuracy Predictor for Architecture Search (Istrate, Scheidegger, Mariani, Nikolopoulos,
Bekas & Malossi, AAAI 2019, arXiv:1806.00250).

The method, as METHODS.md states it, and how it is realised here:

1. **Dataset characterisation.**  A dataset's difficulty is one number, the DCN: the validation accuracy of one
   fixed small probe network trained on it with a fixed recipe.  TAPAS reads it as the landmarker ``dcn`` of a
   task (``nasmeta.data.landmarkers``) or from the records it is given; on the NAS-Bench-201 table (which has no
   images for CIFAR-100 / ImageNet16-120) the probe is a fixed NB201 cell, see :mod:`nasmeta.transfer.tapas_lodo`.
   DCNs are fractions in (0, 1].
2. **Lifelong database of experiments (LDE) and source selection.**  The experiments are (architecture, dataset,
   accuracy) records (``fit`` takes a ``MetaDataset`` or a list of :class:`TapasRecord`).  For a target with DCN
   ``d``, the datasets with ``|DCN - d| <= dcn_threshold`` are selected; when fewer than ``min_sources`` pass, the
   nearest ones are added until ``min_sources`` are selected (with only two source datasets, as in NB201's
   leave-one-dataset-out, both are kept).  Each selected dataset gets the same total weight in the loss
   (``source_weighting="uniform"``) or a weight ``exp(-|DCN - d| / similarity_scale)``
   (``"similarity"``), so a closer dataset counts more.
3. **TAP** (:class:`~nasmeta.transfer.tap_model.TAPNetwork`): an LSTM over the architecture's tokens (NB201: the
   6 edges; NAS-Bench-Macro: the 8 layers); each step sees the token's embedding, the cumulative depth, FLOPs and
   parameters of the prefix (from the built networks, see :mod:`nasmeta.transfer.tap_model`) and the DCN; an MLP
   on the last hidden state and the DCN predicts the accuracy.  It is trained with a weighted squared error on the
   selected datasets' records, after the target's DCN is known (TAPAS trains the TAP once per target, "an
   operation that takes up to a few minutes"); :meth:`TAPAS.predict` trains and caches the TAP of a selection it
   has not seen.
4. **Search** (:func:`tapas_search`): regularised evolution (``nasmeta.blackbox.regularized_evolution``) whose
   fitness is the TAP prediction -- no training -- followed by evaluating the ``n_evaluations`` distinct
   architectures (distinct up to isomorphism) with the highest predictions through a real ``Evaluator`` (trained,
   or looked up in a benchmark table); the one with the best validation accuracy is returned.

Choices and deviations (stated so they can be judged):

- Label normalisation (``target``): the paper feeds the DCN as an input and predicts the accuracy itself.  The
  default here, ``"dcn_ratio"``, regresses ``accuracy / DCN`` instead and multiplies the output back by the DCN,
  so one network covers datasets whose accuracies differ by a factor of two (NB201: 94 % CIFAR-10 vs 47 %
  ImageNet16-120) and an unseen dataset's level comes from its DCN rather than from extrapolating an input the
  network saw at two values only.  ``target="accuracy"`` is the paper's form.  Either way the regression target
  is standardised by its training mean and standard deviation.
- The paper's search is large-scale evolution (Real et al. 2017); here the aging variant (Real et al. 2019) from
  ``nasmeta.blackbox`` is reused with the TAP as its evaluator, which keeps one evolution implementation.
- The paper encodes each layer's hyperparameters (kernel, channels, ...); a cell space has none beyond the op, so
  the token embedding is the layer encoding.
- Several runs of one (task, architecture) in a ``MetaDataset`` are averaged into one record.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Self

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from nasmeta.evaluators import Evaluation, Evaluator
from nasmeta.reporting import Reporter
from nasmeta.search_result import SearchResult
from nasmeta.spaces.base import Architecture, SearchSpace
from nasmeta.threads import torch_threads
from nasmeta.transfer.base import MissingMetadataError, Predictor
from nasmeta.transfer.tap_model import COST_SPACES, TAPNetwork, encode

__all__ = ["TAPAS", "TAPASConfig", "TAPScoreEvaluator", "TapasRecord", "tapas_search"]

_CONFIG_FILE = "tapas.json"
_RECORDS_FILE = "records.json"
_PREDICT_CHUNK = 4096


@dataclass(frozen=True)
class TapasRecord:
    """One experiment of the LDE: ``arch`` reached ``accuracy`` (%) on dataset ``task`` whose DCN is ``dcn``."""

    arch: Architecture
    task: str
    dcn: float
    accuracy: float

    def __post_init__(self) -> None:
        if not isinstance(self.arch, Architecture):
            raise ValueError(f"record arch must be an Architecture, got {self.arch!r}")
        if not isinstance(self.task, str) or not self.task:
            raise ValueError(f"record task must be a non-empty string, got {self.task!r}")
        _check_dcn(self.dcn, f"record of task {self.task!r}")
        numeric = isinstance(self.accuracy, int | float | np.integer | np.floating) and not isinstance(
            self.accuracy, bool
        )
        if not (numeric and math.isfinite(self.accuracy) and 0 <= self.accuracy <= 100):
            raise ValueError(f"record accuracy must be a percentage in [0, 100], got {self.accuracy!r}")


def _check_dcn(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating) or not 0 < float(value) <= 1:
        raise ValueError(f"the DCN of {what} must be a fraction in (0, 1], got {value!r}")
    return float(value)


class TAPASConfig(BaseModel):
    """TAP size and training recipe, source selection, and which stored accuracy is the label.

    The recipe defaults were chosen on the NB201 leave-one-dataset-out folds (Kendall tau on the held-out dataset,
    mean of the three folds, one seed, 1,000 cells per source): 0.634 with hidden 32 / lr 3e-3 / batch 64 / 40
    epochs, 0.734 with these; ``target="accuracy"`` gave 0.675 and ``source_weighting="similarity"`` 0.709 with
    the same recipe.  With NB201's DCNs (0.76 / 0.47 / 0.23) no source lies within ``dcn_threshold`` of a
    target, so ``min_sources=2`` keeps both sources there.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    embedding_dim: int = Field(16, ge=1)
    hidden_size: int = Field(64, ge=1)
    mlp_size: int = Field(64, ge=1)
    epochs: int = Field(60, ge=1)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(2e-2, gt=0.0)
    weight_decay: float = Field(1e-5, ge=0.0)
    seed: int = 0
    #: sources with ``|DCN - DCN_target| <= dcn_threshold`` are selected ...
    dcn_threshold: float = Field(0.1, ge=0.0)
    #: ... and the nearest others are added until at least this many are
    min_sources: int = Field(2, ge=1)
    source_weighting: Literal["uniform", "similarity"] = "uniform"
    similarity_scale: float = Field(0.25, gt=0.0)
    target: Literal["dcn_ratio", "accuracy"] = "dcn_ratio"
    #: the runs column used as the label when fitting on a ``MetaDataset``
    label: Literal["final_val_acc", "final_test_acc"] = "final_val_acc"
    #: restrict a ``MetaDataset``'s runs to one training recipe (``runs.config_hash``); None: all
    config_hash: str | None = None
    #: torch threads while training / predicting (restored afterwards); the TAP is so small that more threads
    #: only add synchronisation (measured 20x slower with 2 threads on a busy 2-core machine); None: leave as is
    num_threads: int | None = Field(1, ge=1)


@dataclass
class _FittedTAP:
    sources: tuple[tuple[str, float], ...]
    y_mean: float
    y_std: float
    network: TAPNetwork
    n_records: int
    train_seconds: float


Selection = tuple[tuple[str, float], ...]


class TAPAS(Predictor):
    """DCN-based source selection + TAP; ``predict(archs, task)`` gives predicted accuracies (%).

    ``task`` is a DCN (float), a mapping with a ``"dcn"`` entry (a landmarker dict, as the LODO harness passes),
    or the id of a task in the fitted records.
    """

    name = "tapas"
    spaces = COST_SPACES
    data_requirements = frozenset({"landmarkers", "architectures", "runs"})

    def __init__(self, config: TAPASConfig | None = None, **params: Any) -> None:
        if config is not None and params:
            raise ValueError(f"pass either a TAPASConfig or keyword parameters, not both (got {sorted(params)})")
        self.config = config if config is not None else TAPASConfig(**params)
        self.records: list[TapasRecord] = []
        self.dcn: dict[str, float] = {}
        self.space: str | None = None
        self._models: dict[Selection, _FittedTAP] = {}

    # -- data ----------------------------------------------------------------------------------------------------
    def fit(self, meta: Any, target: Any = None) -> Self:
        """Store the LDE (a ``MetaDataset`` or a sequence of :class:`TapasRecord`) and train a TAP.

        With ``target`` (anything :meth:`predict` accepts as a task) the TAP of the target's source selection is
        trained; without it, a TAP on every source with equal weights.
        """
        records = self._records_from(meta)
        self._set_records(records)
        if target is None:
            self._model(tuple((task, 1.0 / len(self.dcn)) for task in sorted(self.dcn)))
        else:
            self._model(self.select_sources(self._resolve_dcn(target)))
        return self

    def _records_from(self, meta: Any) -> list[TapasRecord]:
        if isinstance(meta, Sequence) and not isinstance(meta, str):
            records = list(meta)
            bad = [r for r in records if not isinstance(r, TapasRecord)]
            if bad:
                raise ValueError(f"fit takes TapasRecord items or a MetaDataset, got {type(bad[0]).__name__}")
            return records
        if not hasattr(meta, "runs_with_archs"):
            raise ValueError(f"fit takes a MetaDataset or a list of TapasRecord, got {type(meta).__name__}")
        return _records_from_meta(meta, self.config.label, self.config.config_hash)

    def _set_records(self, records: list[TapasRecord]) -> None:
        if not records:
            raise ValueError("TAPAS needs at least one training record; got none")
        spaces = sorted({r.arch.space for r in records})
        if len(spaces) != 1:
            raise ValueError(f"TAPAS records must share one search space, got {spaces}")
        if spaces[0] not in COST_SPACES:
            raise ValueError(f"TAPAS supports spaces {list(COST_SPACES)}, got {spaces[0]!r}")
        dcn: dict[str, float] = {}
        for record in records:
            if dcn.setdefault(record.task, record.dcn) != record.dcn:
                raise ValueError(f"task {record.task!r} has two DCNs: {dcn[record.task]} and {record.dcn}")
        self.records = records
        self.dcn = dcn
        self.space = spaces[0]
        self._models = {}

    def _resolve_dcn(self, task: Any) -> float:
        if isinstance(task, Mapping):
            if "dcn" in task and task["dcn"] is not None:
                return _check_dcn(task["dcn"], f"task {task.get('task_id', '?')!r}")
            if task.get("task_id") in self.dcn:
                return self.dcn[task["task_id"]]
            raise MissingMetadataError(f"tapas needs the task's 'dcn' landmarker; got only {sorted(task)}")
        if isinstance(task, str):
            if task not in self.dcn:
                raise ValueError(f"unknown task {task!r}: give its DCN; known tasks: {sorted(self.dcn)}")
            return self.dcn[task]
        return _check_dcn(task, "the target")

    # -- selection and training -----------------------------------------------------------------------------------
    def select_sources(self, target_dcn: float) -> Selection:
        """((task, loss weight), ...) of the source datasets chosen for a target with DCN ``target_dcn``."""
        if not self.dcn:
            raise RuntimeError("TAPAS is not fitted: call fit(meta) first")
        target_dcn = _check_dcn(target_dcn, "the target")
        cfg = self.config
        ranked = sorted(self.dcn, key=lambda t: (abs(self.dcn[t] - target_dcn), t))
        chosen = [t for t in ranked if abs(self.dcn[t] - target_dcn) <= cfg.dcn_threshold]
        chosen += [t for t in ranked if t not in chosen][: max(0, cfg.min_sources - len(chosen))]
        if cfg.source_weighting == "uniform":
            raw = [1.0] * len(chosen)
        else:
            raw = [math.exp(-abs(self.dcn[t] - target_dcn) / cfg.similarity_scale) for t in chosen]
        total = sum(raw)
        return tuple(sorted((t, w / total) for t, w in zip(chosen, raw, strict=True)))

    def _model(self, selection: Selection) -> _FittedTAP:
        if selection not in self._models:
            with torch_threads(self.config.num_threads):
                self._models[selection] = self._train(selection)
        return self._models[selection]

    def _new_network(self) -> TAPNetwork:
        from nasmeta.spaces import get_space

        cfg = self.config
        return TAPNetwork(get_space(self.space).vocab_size, cfg.embedding_dim, cfg.hidden_size, cfg.mlp_size)

    def _train(self, selection: Selection) -> _FittedTAP:
        cfg = self.config
        start = time.perf_counter()
        weight_of = dict(selection)
        chosen = [r for r in self.records if r.task in weight_of]
        counts: dict[str, int] = {}
        for r in chosen:
            counts[r.task] = counts.get(r.task, 0) + 1
        tokens, costs = encode([r.arch for r in chosen])
        dcn = np.array([r.dcn for r in chosen], dtype=np.float32)
        y = np.array([r.accuracy / 100.0 for r in chosen], dtype=np.float64)
        if cfg.target == "dcn_ratio":
            y = y / dcn
        y_mean, y_std = float(y.mean()), float(y.std())
        y_std = y_std if y_std > 0 else 1.0
        # every selected dataset carries its selection weight in total, however many records it has
        w = np.array([weight_of[r.task] / counts[r.task] for r in chosen])
        w = w / w.mean()
        data = [
            torch.from_numpy(tokens),
            torch.from_numpy(costs),
            torch.from_numpy(dcn),
            torch.from_numpy(((y - y_mean) / y_std).astype(np.float32)),
            torch.from_numpy(w.astype(np.float32)),
        ]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            network = self._new_network()
        generator = torch.Generator().manual_seed(cfg.seed)
        optimizer = torch.optim.Adam(network.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        n = len(chosen)
        steps_per_epoch = math.ceil(n / cfg.batch_size)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs * steps_per_epoch)
        network.train()
        for _ in range(cfg.epochs):
            order = torch.randperm(n, generator=generator)
            for i in range(0, n, cfg.batch_size):
                idx = order[i : i + cfg.batch_size]
                tok, cost, d, target, weight = (t[idx] for t in data)
                loss = (weight * (network(tok, cost, d) - target) ** 2).sum() / weight.sum()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
        network.eval()
        return _FittedTAP(selection, y_mean, y_std, network, n, time.perf_counter() - start)

    # -- prediction -----------------------------------------------------------------------------------------------
    def predict(self, archs: Sequence[Architecture], task: Any) -> np.ndarray:
        """Predicted accuracy (%) of each architecture on ``task`` (a DCN, a landmarker dict or a known task id)."""
        if not self.dcn:
            raise RuntimeError("TAPAS is not fitted: call fit(meta) first")
        archs = list(archs)
        if not archs:
            return np.zeros(0)
        wrong = [a for a in archs if not isinstance(a, Architecture) or a.space != self.space]
        if wrong:
            raise ValueError(f"TAPAS was fitted on {self.space} architectures, got {wrong[0]!r}")
        target_dcn = self._resolve_dcn(task)
        fitted = self._model(self.select_sources(target_dcn))
        out = []
        for i in range(0, len(archs), _PREDICT_CHUNK):
            tokens, costs = encode(archs[i : i + _PREDICT_CHUNK])
            d = torch.full((len(tokens),), target_dcn, dtype=torch.float32)
            with torch.no_grad(), torch_threads(self.config.num_threads):
                out.append(fitted.network(torch.from_numpy(tokens), torch.from_numpy(costs), d).numpy())
        y = np.concatenate(out).astype(np.float64) * fitted.y_std + fitted.y_mean
        if self.config.target == "dcn_ratio":
            y = y * target_dcn
        return 100.0 * y

    def fitted_selections(self) -> list[dict[str, Any]]:
        """The TAPs trained so far: sources with weights, records used, training seconds."""
        return [
            {"sources": dict(m.sources), "n_records": m.n_records, "train_seconds": m.train_seconds}
            for m in self._models.values()
        ]

    # -- persistence ---------------------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Config, the LDE records and every trained TAP's weights and label statistics."""
        if not self.dcn:
            raise RuntimeError("TAPAS is not fitted: nothing to save")
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        models = []
        for i, fitted in enumerate(self._models.values()):
            file = f"tap_{i}.pt"
            torch.save(fitted.network.state_dict(), folder / file)
            models.append(
                {
                    "sources": [list(s) for s in fitted.sources],
                    "y_mean": fitted.y_mean,
                    "y_std": fitted.y_std,
                    "n_records": fitted.n_records,
                    "train_seconds": fitted.train_seconds,
                    "file": file,
                }
            )
        info = {"config": self.config.model_dump(), "space": self.space, "dcn": self.dcn, "models": models}
        (folder / _CONFIG_FILE).write_text(json.dumps(info, indent=1))
        rows = [
            {"encoding": list(r.arch.encoding), "task": r.task, "dcn": r.dcn, "accuracy": r.accuracy}
            for r in self.records
        ]
        (folder / _RECORDS_FILE).write_text(json.dumps({"space": self.space, "records": rows}))
        return folder

    @classmethod
    def load(cls, directory: str | Path) -> Self:
        from nasmeta.spaces import get_space

        folder = Path(directory)
        if not (folder / _CONFIG_FILE).is_file():
            raise ValueError(f"{folder} holds no saved TAPAS ({_CONFIG_FILE} is missing)")
        info = json.loads((folder / _CONFIG_FILE).read_text())
        saved = json.loads((folder / _RECORDS_FILE).read_text())
        space = get_space(saved["space"])
        records = [
            TapasRecord(space.from_encoding(r["encoding"]), r["task"], r["dcn"], r["accuracy"])
            for r in saved["records"]
        ]
        tapas = cls(TAPASConfig(**info["config"]))
        tapas._set_records(records)
        for entry in info["models"]:
            network = tapas._new_network()
            network.load_state_dict(torch.load(folder / entry["file"], weights_only=True))
            network.eval()
            selection = tuple((str(t), float(w)) for t, w in entry["sources"])
            tapas._models[selection] = _FittedTAP(
                selection, entry["y_mean"], entry["y_std"], network, entry["n_records"], entry["train_seconds"]
            )
        return tapas


def _records_from_meta(meta: Any, label: str, config_hash: str | None) -> list[TapasRecord]:
    """One record per (task, architecture): the mean ``label`` of its completed runs; DCN from the landmarkers."""
    runs = meta.runs_with_archs(status="completed").to_pylist()
    if config_hash is not None:
        runs = [r for r in runs if r["config_hash"] == config_hash]
    runs = [r for r in runs if r[label] is not None and math.isfinite(r[label])]
    if not runs:
        raise MissingMetadataError(f"tapas needs completed runs with {label} in the metadata; found none")
    # the store keeps the DCN like every accuracy, in percent (nasmeta.data.landmarkers); TAPAS uses fractions
    dcn = {r["task_id"]: r["value"] / 100.0 for r in meta.landmarkers.to_pylist() if r["name"] == "dcn"}
    missing = sorted({r["task_id"] for r in runs} - set(dcn))
    if missing:
        raise MissingMetadataError(f"tapas needs the 'dcn' landmarker of task(s) {missing}")
    grouped: dict[tuple[str, str], list[float]] = {}
    archs: dict[str, Architecture] = {}
    for r in runs:
        if r["encoding"] is None:
            raise MissingMetadataError(f"run {r['run_id']!r}: architecture {r['arch_id']!r} is not in the store")
        if r["arch_id"] not in archs:
            archs[r["arch_id"]] = Architecture.from_json({"space": r["space"], "encoding": json.loads(r["encoding"])})
        grouped.setdefault((r["task_id"], r["arch_id"]), []).append(float(r[label]))
    return [
        TapasRecord(archs[arch_id], task, float(dcn[task]), float(np.mean(values)))
        for (task, arch_id), values in sorted(grouped.items())
    ]


class TAPScoreEvaluator(Evaluator):
    """An evaluator whose "accuracy" is the TAP prediction (no training, zero simulated cost; one lookup, reported
    as ``epochs`` = 0)."""

    max_epochs = 1

    def __init__(self, tapas: TAPAS, task: Any) -> None:
        self.tapas = tapas
        self.task = task
        self._cache: dict[tuple, float] = {}

    def evaluate(self, arch: Architecture, epochs: int | None = None, seed: int = 0) -> Evaluation:
        if arch.encoding not in self._cache:
            self._cache[arch.encoding] = float(self.tapas.predict([arch], self.task)[0])
        score = self._cache[arch.encoding]
        return Evaluation(arch, score, score, 0.0, 0, extra={"predicted": True})


def tapas_search(
    tapas: TAPAS,
    space: SearchSpace,
    task: Any,
    evaluator: Evaluator,
    n_evaluations: int = 10,
    n_predictions: int = 1000,
    population_size: int = 50,
    sample_size: int = 10,
    seed: int = 0,
    reporter: Reporter | None = None,
    epochs: int | None = None,
    scheduler: Any = None,
    **loop: Any,
) -> SearchResult:
    """TAP-scored regularised evolution (``n_predictions`` TAP calls), then the ``n_evaluations`` distinct
    architectures with the highest predictions evaluated by ``evaluator`` in that order (in the search loop, under
    ``scheduler`` when given); the best by validation accuracy wins.

    ``SearchResult.history`` holds only the real evaluations; ``extra`` has the TAP phase (predictions made,
    seconds, the evaluated architectures' predicted scores) and the source selection.
    """
    from nasmeta.blackbox import regularized_evolution
    from nasmeta.search.loop import run_search
    from nasmeta.search.recorder import check_budget
    from nasmeta.search.searchers import FixedOrderSearcher

    n_evaluations = check_budget(n_evaluations)
    n_predictions = check_budget(n_predictions)
    if n_predictions < n_evaluations:
        raise ValueError(f"n_predictions ({n_predictions}) must be at least n_evaluations ({n_evaluations})")
    if space.name != tapas.space:
        raise ValueError(f"TAPAS was fitted on the {tapas.space} space, the search is over {space.name!r}")
    target_dcn = tapas._resolve_dcn(task)
    start = time.perf_counter()
    scored = regularized_evolution(
        space, TAPScoreEvaluator(tapas, target_dcn), n_predictions, population_size, sample_size, seed
    )
    best_by_id: dict[str, Evaluation] = {}
    for evaluation in scored.history:
        arch_id = evaluation.arch.arch_id
        if arch_id not in best_by_id:
            best_by_id[arch_id] = evaluation
    ranked = sorted(best_by_id.values(), key=lambda e: (-e.val_acc, str(e.arch)))[:n_evaluations]
    tap_seconds = time.perf_counter() - start
    result = run_search(
        FixedOrderSearcher([c.arch for c in ranked]),
        evaluator,
        len(ranked),
        scheduler,
        seed=seed,
        max_epochs=epochs,
        reporter=reporter,
        method="tapas",
        **loop,
    )
    result.extra.update(
        dcn=target_dcn,
        sources=dict(tapas.select_sources(target_dcn)),
        n_predictions=n_predictions,
        n_distinct_predicted=len(best_by_id),
        tap_seconds=tap_seconds,
        predicted=[e.val_acc for e in ranked],
    )
    return result
