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

from flows.collect import collect_metadata
from flows.defaults import DEFAULT_SOURCES, DEFAULT_TARGET
from flows.progress import stage
from flows.search import search_target
from flows.transfer import train_transfer
from nasmeta.budget import Budget, resolve_budget
from nasmeta.search.registry import check_methods


def _flow_run_name() -> str:
    from prefect.runtime import flow_run

    p = flow_run.parameters
    from flows.common import budget_label

    return f"pipeline {p.get('target')} ({p.get('space')}, {budget_label(p.get('budget'))})"


@flow(name="pipeline", log_prints=True, flow_run_name=_flow_run_name)
def pipeline(
    target: str = DEFAULT_TARGET,
    sources: list[str] | None = None,
    budget: str | dict[str, Any] | Budget = "default",
    space: str = "nb201",
    methods: list[str] | None = None,
    seed: int = 0,
    store: str | None = None,
    track: bool = True,
) -> dict[str, Any]:
    """The end-to-end job; returns the stage summaries and the comparison table."""
    from flows.common import preflight, resolve_task_spec
    from nasmeta.data.tasks import get_task
    from nasmeta.spaces import get_space

    logger = get_run_logger()
    budget_obj = resolve_budget(budget)
    sources = list(sources or DEFAULT_SOURCES)
    # everything a user can get wrong is checked before the first run trains
    get_space(space)
    for name in [target, *sources]:
        get_task(name)
    if target in sources:
        raise ValueError(f"target {target!r} is also a source task; leave it out of sources")
    methods = check_methods(methods, space)
    preflight(store, track)

    collected = collect_metadata(
        tasks=sources,
        space=space,
        n_archs=budget_obj.n_archs,
        epochs=budget_obj.collect_epochs,
        seeds=[seed],
        train=dict(budget_obj.train),
        size=budget_obj.network_size(space),
        samples_per_class=budget_obj.samples_per_class,
        landmarker_seeds=budget_obj.landmarker_seeds,
        store=store,
        track=track,
    )
    logger.info("collected: %s", {k: collected[k] for k in ("planned", "skipped", "completed", "failed")})

    target_id = resolve_task_spec(target, budget_obj.samples_per_class).task_id
    from nasmeta.search.registry import components_needed

    usable = components_needed(methods)  # only what the chosen methods use (each supports the space it runs on)
    params = {n: p for n, p in budget_obj.transfer.items() if n in usable}
    with stage("transfer", total=len(usable), unit="components") as shown:
        fitted = train_transfer(usable, params=params, holdout=target_id, store=store, track=track)
        for name in usable:
            shown.advance(f"{name} {fitted.get(name, {}).get('status')}")
    components = {name: o["path"] for name, o in fitted.items() if o["status"] == "completed"}
    transfer_failures = {name: o["error"] for name, o in fitted.items() if o["status"] != "completed"}

    searched = search_target(
        task=target,
        space=space,
        methods=methods,
        budget=budget_obj,
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
        "budget": budget_obj.name,
        "collect": {k: collected[k] for k in ("planned", "skipped", "trained", "completed", "failed")},
        "transfer": {n: o["status"] for n, o in fitted.items()},
        "transfer_failures": transfer_failures,
        "table": searched["table"],
        "winner": searched["winner"],
        "retrained": searched["retrained"],
        "artifact": searched.get("artifact"),
        "mlflow_run_id": searched.get("mlflow_run_id"),
    }
    failed_methods = [r["method"] for r in searched["table"] if r["status"] == "failed"]
    if failed_methods or transfer_failures:
        logger.warning("pipeline finished with failures: methods %s, components %s", failed_methods, transfer_failures)
    return summary

