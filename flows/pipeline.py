"""Flow ``pipeline``, the main job: collect metadata on source tasks -> fit the transfer components -> search the
target task with zero-shot, one-shot, transfer-guided and black-box methods side by side -> retrain the winner ->
a comparison table (console, the store's ``searches`` table, MLflow).

The ``default`` budget runs on the embedded default (scikit-learn digits-derived tasks, CPU, sqlite MLflow,
Prefect's ephemeral API) in minutes on two cores; ``paper`` and explicit parameters scale it to MNIST / CIFAR-10 /
torchvision datasets on GPU workers.  The target task is always held out of the transfer components' training.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from pydantic import BaseModel, ConfigDict, Field

from flows.collect import collect_metadata
from flows.search import BUDGETS, resolve_budget, search_target
from flows.transfer import train_transfer

DEFAULT_SOURCES = ["digits-0to4", "digits-even", "digits-odd", "digits-rot30"]


class CollectBudget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n_archs: int = Field(16, ge=1)
    epochs: int = Field(8, ge=1)
    samples_per_class: int | None = Field(None, ge=2)
    landmarker_seeds: list[int] = Field(default_factory=lambda: [0])
    transfer: dict[str, dict[str, Any]] = Field(
        default_factory=lambda: {"tapas": {"epochs": 30}, "lcranknet": {"steps": 200}}
    )


COLLECT_BUDGETS = {
    "micro": CollectBudget(
        n_archs=2,
        epochs=2,
        samples_per_class=30,
        transfer={"tapas": {"epochs": 2}, "lcranknet": {"steps": 5}},
    ),
    "default": CollectBudget(),
    "paper": CollectBudget(n_archs=200, epochs=50, landmarker_seeds=[0, 1, 2], transfer={}),
}


@flow(name="pipeline", log_prints=True)
def pipeline(
    target: str = "digits-5to9",
    sources: list[str] | None = None,
    budget: str = "default",
    space: str = "nb201",
    methods: list[str] | None = None,
    seed: int = 0,
    store: str | None = None,
    track: bool = True,
) -> dict[str, Any]:
    """The end-to-end job; returns the stage summaries and the comparison table."""
    logger = get_run_logger()
    if budget not in COLLECT_BUDGETS:
        raise ValueError(f"unknown budget {budget!r}; expected one of {', '.join(COLLECT_BUDGETS)}")
    sources = list(sources or DEFAULT_SOURCES)
    if target in sources:
        raise ValueError(f"target {target!r} is also a source task; leave it out of sources")
    collect_budget = COLLECT_BUDGETS[budget]
    search_budget = resolve_budget(budget)
    train = {**search_budget.train}

    collected = collect_metadata(
        tasks=sources,
        space=space,
        n_archs=collect_budget.n_archs,
        epochs=collect_budget.epochs,
        seeds=[seed],
        train=train,
        size=search_budget.size,
        samples_per_class=collect_budget.samples_per_class,
        landmarker_seeds=collect_budget.landmarker_seeds,
        store=store,
        track=track,
    )
    logger.info("collected: %s", {k: collected[k] for k in ("planned", "skipped", "completed", "failed")})

    from flows.common import resolve_task_spec

    target_id = resolve_task_spec(target, search_budget.samples_per_class).task_id
    fitted = train_transfer(params=collect_budget.transfer, holdout=target_id, store=store, track=track)
    components = {name: o["path"] for name, o in fitted.items() if o["status"] == "completed"}
    transfer_failures = {name: o["error"] for name, o in fitted.items() if o["status"] != "completed"}

    searched = search_target(
        task=target,
        space=space,
        methods=methods,
        budget=budget,
        seed=seed,
        components=components,
        holdout=True,
        store=store,
        track=track,
    )
    summary = {
        "target": target,
        "target_task_id": target_id,
        "sources": sources,
        "budget": budget,
        "collect": {k: collected[k] for k in ("planned", "skipped", "trained", "completed", "failed")},
        "transfer": {n: o["status"] for n, o in fitted.items()},
        "transfer_failures": transfer_failures,
        "table": searched["table"],
        "winner": searched["winner"],
        "retrained": searched["retrained"],
    }
    failed_methods = [r["method"] for r in searched["table"] if r["status"] == "failed"]
    if failed_methods or transfer_failures:
        logger.warning("pipeline finished with failures: methods %s, components %s", failed_methods, transfer_failures)
    return summary


assert set(COLLECT_BUDGETS) == set(BUDGETS)
