"""The validated parameters of a metadata collection and its architecture plan, apart from the flow so that the
CLI checks its input without importing Prefect (bad input is answered in about a second)."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class CollectParams(BaseModel):
    """Validated parameters of a collection (checked before any training starts)."""

    model_config = ConfigDict(extra="forbid")

    tasks: list[str] = Field(default_factory=lambda: ["digits", "digits-0to4"], min_length=1)
    space: str = "nb201"
    n_archs: int = Field(8, ge=1)
    archs: list[str] | None = None
    arch_seed: int = 0
    epochs: int = Field(3, ge=1)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    #: the first ``repeat_archs`` planned cells are also trained with each of these seeds (seed noise)
    repeat_seeds: list[int] = Field(default_factory=list)
    repeat_archs: int = Field(0, ge=0)
    #: the tasks whose first ``repeat_archs`` cells get the repeat seeds (None: every task)
    repeat_tasks: list[str] | None = None
    #: per task, this many more cells proposed by mutating the task's best planned cells once they are trained
    search_archs: int = Field(0, ge=0)
    train: dict[str, Any] = Field(default_factory=dict)
    #: network size for ``space.build``; None: the default budget's size for the space (``nasmeta.budget``)
    size: dict[str, Any] | None = None
    samples_per_class: int | None = Field(None, ge=2)
    landmarkers: bool = True
    landmarker_seeds: list[int] = Field(default_factory=lambda: [0, 1, 2])
    store: str | None = None
    track: bool = True
    #: the named collection these parameters come from (``nasmeta.data.collections``), a label in MLflow
    collection: str | None = None

    @field_validator("space")
    @classmethod
    def _known_space(cls, value: str) -> str:
        from nasmeta.spaces import get_space

        get_space(value)
        return value

    @model_validator(mode="after")
    def _repeat_tasks_are_tasks(self) -> CollectParams:
        unknown = sorted(set(self.repeat_tasks or []) - set(self.tasks))
        if unknown:
            raise ValueError(f"repeat_tasks {unknown} are not among the collected tasks")
        return self

    @field_validator("tasks")
    @classmethod
    def _known_tasks(cls, value: list[str]) -> list[str]:
        from nasmeta.data.tasks import get_task

        for name in value:
            get_task(name)
        return value

    @classmethod
    def from_collection(cls, name: str, **changes: Any) -> CollectParams:
        """The plan of a named collection (``nasmeta.data.collections``), with ``changes`` (e.g. ``store``)."""
        from nasmeta.data.collections import collection_plan

        return cls(**{**collection_plan(name), "collection": name, **changes})

    def train_config(self) -> Any:
        from nasmeta.training import TrainConfig

        return TrainConfig(**{"epochs": self.epochs, **self.train})

    def network_size(self) -> dict[str, Any]:
        from nasmeta.budget import resolve_budget

        return dict(self.size) if self.size is not None else resolve_budget("default").network_size(self.space)


def plan_architectures(space_name: str, n_archs: int, seed: int, explicit: list[str] | None = None) -> list[Any]:
    """``explicit`` parsed, or ``n_archs`` architectures with distinct ids sampled with ``seed``."""
    from nasmeta.spaces import get_space

    space = get_space(space_name)
    if explicit:
        archs = [space.parse(text) for text in explicit]
        return list({a.arch_id: a for a in archs}.values())
    rng = np.random.default_rng(seed)
    chosen: dict[str, Any] = {}
    for _ in range(100 * n_archs):
        arch = space.sample(rng)
        chosen.setdefault(arch.arch_id, arch)
        if len(chosen) == n_archs:
            break
    if len(chosen) < n_archs:
        raise ValueError(f"space {space_name!r} gave only {len(chosen)} distinct architectures, {n_archs} asked")
    return list(chosen.values())


def search_proposals(
    space_name: str, ranked: list[Any], exclude: set[str], n: int, seed: int, top: int = 5
) -> list[Any]:
    """``n`` new cells for one task: mutations of its ``top`` best cells (``ranked`` best first), taken in turn,
    none of them in ``exclude`` (ids) — one generation of a local search around what did well on that task."""
    from nasmeta.spaces import get_space

    space = get_space(space_name)
    parents = ranked[:top]
    if not parents or n == 0:
        return []
    rng = np.random.default_rng(seed)
    seen, chosen = set(exclude), []
    for attempt in range(100 * n):
        child = space.mutate(parents[attempt % len(parents)], rng)
        if child.arch_id not in seen:
            seen.add(child.arch_id)
            chosen.append(child)
            if len(chosen) == n:
                break
    return chosen
