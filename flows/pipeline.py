"""Flow ``pipeline``, the main job: collect metadata on source tasks -> fit the transfer components -> search the
target task with zero-shot, one-shot, transfer-guided and black-box methods side by side -> retrain the winner ->
a comparison table (console, the store's ``searches`` table, MLflow).

Metadata: by default the shipped collection ``nasmeta-meta-v1`` (12 tasks x 128 NB201 cells x 12 epochs,
``metadata_store/collections/``) is imported into the store instead of collecting (``metadata``); its tasks other
than the target are the sources, and the target's searches use the collection's training recipe (batch size,
learning rate) and network size, so new evaluations are comparable with what the components learned from.  With
``sources`` given, or a space the collection does not cover, the sources are collected afresh as before.

The ``default`` budget runs on the embedded default (the target ``meta-digits-noisy`` is built from
scikit-learn's digits; CPU, sqlite MLflow, Prefect's ephemeral API) in minutes on two cores; ``paper`` and explicit
parameters scale it to MNIST / CIFAR-10 / torchvision datasets on GPU workers.  The target task is always held out
of the transfer components' training.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from flows.collect import collect_metadata
from flows.defaults import DEFAULT_METADATA, DEFAULT_SOURCES, DEFAULT_TARGET
from flows.progress import note, stage
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
    metadata: str | None = DEFAULT_METADATA,
) -> dict[str, Any]:
    """The end-to-end job; returns the stage summaries and the comparison table."""
    from flows.common import preflight, resolve_task_spec
    from nasmeta.data.tasks import get_task
    from nasmeta.spaces import get_space

    logger = get_run_logger()
    budget_obj = resolve_budget(budget)
    plan = _shipped_plan(metadata, space) if sources is None else None
    if plan is not None:
        budget_obj = _with_collection_recipe(budget_obj, plan, space)
        sources = [t for t in plan["tasks"] if t != target]
    sources = list(sources or DEFAULT_SOURCES)
    # everything a user can get wrong is checked before the first run trains
    get_space(space)
    for name in [target, *sources]:
        get_task(name)
    if target in sources:
        raise ValueError(f"target {target!r} is also a source task; leave it out of sources")
    methods = check_methods(methods, space)
    preflight(store, track)

    if plan is not None:
        collected = _import_metadata(plan["collection"], store)
    else:
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
    reference = _stored_reference(store, target_id, budget_obj.train_config().config_hash())
    if reference:
        note(
            f"[pipeline] the store's {reference['cells']} cells trained on {target} with this recipe (held out of "
            f"every component): best val {reference['best_val_acc']:.2f} / test {reference['best_test_acc']:.2f}, "
            f"median val {reference['median_val_acc']:.2f}"
        )
    summary = {
        "reference": reference,
        "target": target,
        "target_task_id": target_id,
        "sources": sources,
        "budget": budget_obj.name,
        "collect": {
            **{k: collected[k] for k in ("planned", "skipped", "trained", "completed", "failed")},
            "collection": collected.get("collection"),
        },
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


def _stored_reference(store: str | None, task_id: str, config_hash: str) -> dict[str, Any] | None:
    """What the store knows of the target (a collection task): its completed runs' best and median accuracies, a
    yardstick for the searches (which never see these runs)."""
    import numpy as np

    from flows.common import open_store
    from nasmeta import config

    runs = open_store(store or config.default_store_root()).read("runs", task_id=task_id).to_pylist()
    done = [
        r
        for r in runs
        if r["status"] == "completed" and r["final_val_acc"] is not None and r["config_hash"] == config_hash
    ]
    if not done:
        return None
    return {
        "cells": len({r["arch_id"] for r in done}),
        "best_val_acc": max(r["final_val_acc"] for r in done),
        "best_test_acc": max(r["final_test_acc"] for r in done if r["final_test_acc"] is not None),
        "median_val_acc": float(np.median([r["final_val_acc"] for r in done])),
    }


def _shipped_plan(metadata: str | None, space: str) -> dict[str, Any] | None:
    """The plan of shipped collection ``metadata`` when it covers ``space`` (None otherwise)."""
    if not metadata:
        return None
    from flows.collect_params import CollectParams
    from metadata_store.snapshots import snapshot_path

    snapshot_path(metadata)  # ValueError naming the shipped collections
    params = CollectParams.from_collection(metadata)
    if params.space != space:
        return None
    return {**params.model_dump(), "collection": metadata}


def _with_collection_recipe(budget: Budget, plan: dict[str, Any], space: str) -> Budget:
    """``budget`` with the collection's batch size, learning rate, epochs and network size for ``space``, all
    images."""
    from nasmeta.budget import space_family

    train = {**budget.train, **{k: v for k, v in plan["train"].items() if k in ("batch_size", "lr")}}
    network = {**budget.network, space_family(space): dict(plan["size"])}
    # the target keeps the collection's images (reduced, its id would differ from the copy held out of the sources)
    # and its epochs, so a search's accuracies compare with the collection's runs of the target
    update = {"train": train, "network": network, "samples_per_class": None, "eval_epochs": plan["epochs"]}
    return budget.model_copy(update=update)


def _import_metadata(name: str, store: str | None) -> dict[str, Any]:
    """Import the shipped collection into the store (nothing when it is there already); a collect-like summary."""
    from flows.common import open_store
    from metadata_store.snapshots import import_snapshot
    from nasmeta import config

    target = open_store(store or config.default_store_root())
    with stage("metadata", total=1, unit="collection") as shown:
        outcome = import_snapshot(target, name)
        shown.advance(f"{name}: {outcome['imported'].get('runs', 0)} runs imported")
    runs = target.read("runs", task_id=outcome["task_ids"], columns=["run_id", "status"]).to_pylist()
    completed = sum(r["status"] == "completed" for r in runs)
    return {
        "collection": name,
        "planned": len(runs),
        "skipped": len(runs),
        "trained": 0,
        "completed": completed,
        "failed": sum(r["status"] == "failed" for r in runs),
    }
