"""T-NAS: a meta-learned architecture (DARTS alpha and supernet weights w) that adapts to a new task in a few steps.

Lian et al., "Towards Fast Adaptation of Neural Architectures with Meta Learning", ICLR 2020.  MAML (Finn et al.,
ICML 2017) over both the architecture parameters alpha and the weights w of a DARTS supernet: for each task of a
meta-batch the inner loop takes M steps on the support set, each step updating alpha' (lr ``alpha_lr``, 30 in the
paper's few-shot setting) and then w' (lr ``w_lr``, 0.1); the outer step moves alpha and w with Adam (1e-3) on the
mean query loss at (alpha', w') -- first order by default (the paper's choice), second order optional.  For a new
task: adapt M steps from the meta-learned (alpha, w) and decode the cell (the T-NAS step); T-NAS++ retrains the
decoded cell (here: MAML on the fixed decoded cell network, see ``nasmeta fewshot --retrain-cells``).  "DARTS from
scratch" is the same adaptation started from a freshly initialised supernet.

Supernets: :class:`nasmeta.oneshot.supernet_nb201.NB201Supernet` and
:class:`nasmeta.oneshot.supernet_darts.DartsSupernet` are reused as they are: their alphas are module parameters
read through ``getattr`` in ``forward``, so ``torch.func.functional_call`` substitutes adapted alphas and weights
alike.  Their BN layers are switched to batch statistics only (no running buffers), as in MAML.  Each inner
update of a group differentiates with respect to fresh graph nodes of that group (see ``inner_loop``), so in
second order the w step takes the partial derivative at the current alpha', not the total one through alpha'.

Deviations from the paper: the supernets are small (NB201 cell: C=8, one cell per stage; DARTS cell: C=4, three
cells) and the images small (sizes are the caller's, recorded in the config); the accuracy of the T-NAS step is
measured on the decoded cell run with the adapted supernet weights of its ops (and, for reference, the adapted
mixed supernet); the support set serves both alpha and w in the inner loop (the paper's few-shot setting).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch.func import functional_call

from nasmeta.fewshot.episodes import ClassPool, Episode, EpisodeSampler
from nasmeta.fewshot.maml import Group, MAMLConfig, MetaLearner, Params, accuracy, clone_params, inner_loop
from nasmeta.fewshot.nets import no_running_stats
from nasmeta.oneshot.supernet import Supernet
from nasmeta.search_result import SearchResult
from nasmeta.spaces.base import Architecture, SearchSpace
from nasmeta.transfer.base import MetaArchitecture


class TNASConfig(BaseModel):
    """Sizes and learning rates of T-NAS (paper values where the paper gives them)."""

    model_config = ConfigDict(frozen=True)

    space: Literal["nb201", "darts"] = "nb201"
    ways: int = Field(5, ge=2)
    shots: int = Field(1, ge=1)
    queries: int = Field(5, ge=1)
    input_shape: tuple[int, int, int] = (1, 28, 28)
    C: int = Field(8, ge=1)
    cells: int = Field(1, ge=1)  # NB201: cells per stage; DARTS: total cells
    w_lr: float = Field(0.1, gt=0)
    alpha_lr: float = Field(30.0, gt=0)
    inner_steps: int = Field(5, ge=1)
    test_steps: int = Field(5, ge=1)
    meta_batch: int = Field(4, ge=1)
    meta_lr: float = Field(1e-3, gt=0)
    first_order: bool = True
    iterations: int = Field(300, ge=0)


def build_supernet(config: TNASConfig, seed: int = 0) -> Supernet:
    """A freshly initialised supernet of ``config`` (seeded), with batch-statistics BN."""
    torch.manual_seed(seed)
    if config.space == "nb201":
        from nasmeta.oneshot.supernet_nb201 import NB201Supernet

        net: Supernet = NB201Supernet(config.ways, config.input_shape, C=config.C, N=config.cells)
    else:
        from nasmeta.oneshot.supernet_darts import DartsSupernet

        net = DartsSupernet(config.ways, config.input_shape, C=config.C, layers=config.cells)
    return no_running_stats(net).train()  # type: ignore[return-value]


def inner_groups(supernet: Supernet, config: TNASConfig) -> list[Group]:
    """alpha first, then w, in every inner step (DARTS's alternation)."""
    alphas = tuple(f"alpha_{t}" for t in supernet.cell_types)
    weights = tuple(n for n, _ in supernet.named_weights())
    return [(alphas, config.alpha_lr), (weights, config.w_lr)]


def task_tensors(task: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """``(support_x, support_y, query_x, query_y)`` of an :class:`Episode`, a dict or a 2-/4-tuple."""
    if isinstance(task, Episode):
        return task.support_x, task.support_y, task.query_x, task.query_y
    if isinstance(task, dict) and {"support_x", "support_y"} <= set(task):
        return task["support_x"], task["support_y"], task.get("query_x"), task.get("query_y")
    if isinstance(task, tuple | list) and len(task) in (2, 4):
        parts = [torch.as_tensor(t) for t in task]
        return (parts[0], parts[1], *(parts[2:] if len(parts) == 4 else (None, None)))  # type: ignore[return-value]
    raise ValueError(f"a few-shot task is an Episode, a dict with support_x/support_y or a 2-/4-tuple, got {task!r}")


@dataclass
class Adapted:
    """What adapting a supernet to one task gives: decoded cell, adapted tensors, accuracies, wall time."""

    arch: Architecture
    params: Params
    seconds: float
    cell_acc: float | None = None
    supernet_acc: float | None = None
    weights_table: dict[str, Any] = field(default_factory=dict)


def adapt_supernet(
    supernet: Supernet, params: Params, task: Any, config: TNASConfig, steps: int | None = None
) -> Adapted:
    """Adapt ``params`` (alpha and w of ``supernet``) on the task's support set, decode the cell; when the task
    has a query set, the query accuracy of the decoded cell (adapted weights of its ops) and of the mixed supernet."""
    sx, sy, qx, qy = task_tensors(task)
    steps = config.test_steps if steps is None else steps
    start = time.perf_counter()
    adapted = inner_loop(supernet, params, sx, sy, inner_groups(supernet, config), steps, first_order=True)
    adapted = {k: v.detach() for k, v in adapted.items()}
    weights = {t: adapted[f"alpha_{t}"].softmax(dim=-1) for t in supernet.cell_types}
    arch = supernet.derive(weights)
    seconds = time.perf_counter() - start
    out = Adapted(arch, adapted, seconds, weights_table=supernet.weights_table(weights))
    if qx is not None and qy is not None:
        with torch.no_grad():
            path = supernet.arch_to_path(arch)
            out.cell_acc = accuracy(functional_call(supernet, adapted, (qx,), {"path": path}), qy)
            out.supernet_acc = accuracy(functional_call(supernet, adapted, (qx,)), qy)
    return out


def darts_from_scratch(config: TNASConfig, task: Any, seed: int = 0, steps: int | None = None) -> Adapted:
    """DARTS on one task from a fresh supernet: the T-NAS adaptation without the meta-learned start."""
    supernet = build_supernet(config, seed)
    return adapt_supernet(supernet, clone_params(supernet), task, config, steps)


class TNAS(MetaArchitecture):
    """The T-NAS meta-architecture: ``fit`` meta-learns (alpha, w) on a meta-train pool, ``adapt`` decodes a cell."""

    name: ClassVar[str] = "tnas"
    data_requirements: ClassVar[frozenset[str]] = frozenset({"task_samples"})

    def __init__(self, config: TNASConfig | None = None, seed: int = 0) -> None:
        self.config = config or TNASConfig()
        self.seed = seed
        self.supernet = build_supernet(self.config, seed)
        self.history: list[dict[str, float]] = []
        self.last: Adapted | None = None

    def _learner(self) -> MetaLearner:
        cfg = self.config
        maml = MAMLConfig(
            inner_lr=cfg.w_lr,
            inner_steps=cfg.inner_steps,
            test_steps=cfg.test_steps,
            meta_batch=cfg.meta_batch,
            meta_lr=cfg.meta_lr,
            first_order=cfg.first_order,
            iterations=cfg.iterations,
        )
        return MetaLearner(self.supernet, maml, inner_groups(self.supernet, cfg))

    def fit(self, meta: Any, log: Any = None) -> Self:
        """Meta-train on ``meta``: an :class:`EpisodeSampler` or a meta-train :class:`ClassPool`."""
        if isinstance(meta, ClassPool):
            meta = EpisodeSampler(meta, self.config.ways, self.config.shots, self.config.queries, seed=self.seed)
        if not isinstance(meta, EpisodeSampler):
            raise ValueError(f"T-NAS meta-trains on few-shot tasks: give an EpisodeSampler or ClassPool, got {meta!r}")
        if meta.ways != self.config.ways:
            raise ValueError(f"sampler has ways={meta.ways} but the supernet has {self.config.ways} outputs")
        self.history = self._learner().meta_train(meta, self.config.iterations, seed=self.seed, log=log)
        return self

    def adapt_task(self, task: Any, steps: int | None = None) -> Adapted:
        self.last = adapt_supernet(self.supernet, clone_params(self.supernet), task, self.config, steps)
        return self.last

    def adapt(self, task: Any) -> Architecture:
        """The cell decoded after ``test_steps`` steps on the task's support set."""
        return self.adapt_task(task).arch

    def save(self, directory: str | Path) -> Path:
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        torch.save(self.supernet.state_dict(), path / "supernet.pt")
        (path / "tnas.json").write_text(
            json.dumps(
                {
                    "name": self.name,
                    "seed": self.seed,
                    "config": self.config.model_dump(mode="json"),
                    "history": self.history,
                },
                indent=1,
            )
        )
        return path

    @classmethod
    def load(cls, directory: str | Path) -> Self:
        path = Path(directory)
        meta_file = path / "tnas.json"
        if not meta_file.is_file():
            raise ValueError(f"{path} holds no saved T-NAS model (tnas.json missing)")
        info = json.loads(meta_file.read_text())
        obj = cls(TNASConfig(**info["config"]), seed=int(info["seed"]))
        obj.supernet.load_state_dict(torch.load(path / "supernet.pt", weights_only=True))
        obj.history = info.get("history", [])
        return obj


def tnas_search(
    space: str | SearchSpace,
    task_data: Any,
    model: TNAS | str | Path,
    steps: int | None = None,
    seed: int = 0,
) -> SearchResult:
    """The T-NAS step as a search method: adapt the meta-architecture ``model`` (fitted, or a saved directory) on
    a target task's few-shot data and return the decoded cell.  ``best_val_acc`` is the decoded cell's query
    accuracy when ``task_data`` carries a query set; ``cost_seconds`` the adaptation wall time."""
    torch.manual_seed(seed)
    tnas = model if isinstance(model, TNAS) else TNAS.load(model)
    name = space if isinstance(space, str) else space.name
    if name != tnas.config.space:
        raise ValueError(f"the T-NAS model searches space {tnas.config.space!r}, not {name!r}")
    result = tnas.adapt_task(task_data, steps)
    return SearchResult(
        method="tnas",
        best_arch=result.arch,
        best_val_acc=result.cell_acc,
        cost_seconds=result.seconds,
        n_evaluations=0,
        trace=[{"alphas": result.weights_table}],
        extra={"supernet_acc": result.supernet_acc, "steps": steps or tnas.config.test_steps},
    )


__all__: Sequence[str] = (
    "TNAS",
    "TNASConfig",
    "Adapted",
    "adapt_supernet",
    "build_supernet",
    "darts_from_scratch",
    "tnas_search",
)
