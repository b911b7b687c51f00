"""Flow ``train_transfer``: fit each transfer component on the store (minus a held-out task), save it, and log
it to MLflow as a model.  A component that fails (missing metadata, an exception while fitting) is reported as
failed with its reason; the others still run.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.task_runners import ThreadPoolTaskRunner

from flows.common import open_store, tracking_enabled

EXPERIMENT = "nasmeta-transfer"


def component_factories() -> dict[str, Any]:
    """Name -> class of the transfer components that exist (``nasmeta.transfer.registry``)."""
    from nasmeta.transfer.registry import component_class, component_names

    return {name: component_class(name) for name in component_names()}


def available_tables(store: Any) -> set[str]:
    """Tables of the store (or a view) that hold rows: what a component's ``data_requirements`` are checked on."""
    return {name for name, info in store.summary()["tables"].items() if info["rows"]}


@task(name="fit-component", persist_result=False, task_run_name="fit {name}")
def fit_component(
    name: str, params: dict[str, Any], store_root: str | None, holdout: str | None, out_dir: str, parent: Any
) -> dict[str, Any]:
    """Fit one component; never raises (a failure is returned with its reason)."""
    start = time.perf_counter()
    outcome: dict[str, Any] = {"component": name, "holdout": holdout, "status": "completed", "error": None}
    try:
        factories = component_factories()
        if name not in factories:
            raise ValueError(f"unknown transfer component {name!r}; known: {', '.join(sorted(factories))}")
        store = open_store(store_root)
        component = factories[name](**params)
        component.check_requirements(available_tables(store))
        meta = store.meta()
        if holdout and holdout in meta.task_ids:
            meta = meta.without(holdout)
        component.fit(meta)
        path = component.save(Path(out_dir) / name)
        outcome["path"] = str(path)
        if parent is not None:
            from nasmeta import tracking

            tags = {"component": name, "lodo_fold": holdout or "none"}
            with tracking.child_run(parent, run_name=f"fit-{name}", tags=tags, params=params) as child:
                outcome["model_id"] = tracking.log_model(component, name, run=child, params=params)
                child.log_metrics({"fit_seconds": time.perf_counter() - start})
    except Exception as error:
        outcome.update(status="failed", error=f"{type(error).__name__}: {error}")
    outcome["seconds"] = time.perf_counter() - start
    return outcome


@flow(name="train-transfer", log_prints=True, task_runner=ThreadPoolTaskRunner(max_workers=1))
def train_transfer(
    components: list[str] | None = None,
    params: dict[str, dict[str, Any]] | None = None,
    holdout: str | None = None,
    store: str | None = None,
    out_dir: str | None = None,
    track: bool = True,
) -> dict[str, Any]:
    """Fit ``components`` (default: all that exist) on the store without ``holdout`` (a task id)."""
    from nasmeta import config

    logger = get_run_logger()
    # by default every component that learns from the store (T-NAS meta-trains on image episodes instead)
    names = components or sorted(
        n for n, c in component_factories().items() if "task_samples" not in c.data_requirements
    )
    params = params or {}
    unknown = set(params) - set(names)
    if unknown:
        raise ValueError(f"parameters given for components not fitted: {sorted(unknown)}")
    out = out_dir or str(config.home() / "components" / (holdout or "all"))

    def run_all(parent: Any) -> list[dict[str, Any]]:
        futures = [fit_component.submit(n, params.get(n, {}), store, holdout, out, parent) for n in names]
        return [f.result() for f in futures]

    if tracking_enabled(track):
        from nasmeta import tracking

        tracking.configure()
        tags = {"lodo_fold": holdout or "none"}
        with tracking.parent_run(EXPERIMENT, run_name="train-transfer", tags=tags, params={"components": names}) as p:
            outcomes = run_all(p)
            failed = [o for o in outcomes if o["status"] == "failed"]
            if failed:
                p.set_tags({"failed_components": ", ".join(o["component"] for o in failed)})
    else:
        outcomes = run_all(None)
    for o in outcomes:
        if o["status"] == "failed":
            logger.warning("transfer component %s failed: %s", o["component"], o["error"])
    return {o["component"]: o for o in outcomes}
