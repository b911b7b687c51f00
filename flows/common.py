"""Shared plumbing for the flows: opening the store, configuring MLflow, choosing a task runner, task specs."""

from __future__ import annotations

import os
from typing import Any, Literal

from metadata_store import MetadataStore
from nasmeta import config

TaskRunnerName = Literal["threads", "dask"]


def open_store(root: str | None = None) -> MetadataStore:
    """The store at ``root`` (default ``$NASMETA_HOME/store``); a root that is a file raises ``ValueError``."""
    return MetadataStore(root or config.default_store_root())


def make_task_runner(kind: TaskRunnerName = "threads", max_workers: int = 1, address: str | None = None) -> Any:
    """A Prefect task runner: threads in this process, or Dask (a local cluster, or the one at ``address``).

    Threads default to one worker because torch already uses every core for one CPU training run; on GPU
    machines or a Dask cluster raise ``max_workers`` (a local Dask cluster gets one process per worker).
    """
    if kind == "threads":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=max_workers)
    if kind == "dask":
        from prefect_dask import DaskTaskRunner

        if address:
            return DaskTaskRunner(address=address)
        return DaskTaskRunner(
            cluster_kwargs={
                "n_workers": max_workers,
                "threads_per_worker": 1,
                "processes": True,
                "dashboard_address": None,
            }
        )
    raise ValueError(f"unknown task runner {kind!r}; expected 'threads' or 'dask'")


def resolve_task_spec(name: str, samples_per_class: int | None = None) -> Any:
    """The registered task ``name``, reduced to ``samples_per_class`` images per class when given."""
    from nasmeta.data.tasks import get_task

    spec = get_task(name)
    return spec.small(samples_per_class) if samples_per_class else spec


def task_row(spec: Any, data: Any) -> dict[str, Any]:
    """The ``tasks`` table row of a loaded task."""
    c, h, w = data.input_shape
    return {
        "task_id": spec.task_id,
        "name": spec.name,
        "source": spec.source,
        "n_classes": data.num_classes,
        "n_train": len(data.y_train),
        "n_val": len(data.y_val),
        "n_test": len(data.y_test),
        "channels": c,
        "height": h,
        "width": w,
        "spec": spec.to_json(),
    }


def budget_label(budget: Any) -> str:
    """The name of a budget given as a preset name, a mapping or a ``Budget`` (flow-run names, tags)."""
    if isinstance(budget, str):
        return budget
    name = getattr(budget, "name", None) or (budget or {}).get("name")
    return name or "custom"


def tracking_enabled(track: bool) -> bool:
    """MLflow tracking can be switched off per call or globally with ``NASMETA_TRACKING=0``."""
    return track and os.environ.get("NASMETA_TRACKING", "1") not in {"0", "false", "no"}


def provenance_tags() -> dict[str, str]:
    """Tags that make a run findable again: the git commit of the code (when it runs from a checkout), the nasmeta
    version, and the Prefect flow run (id, name, and the UI path under the Prefect API URL) it belongs to."""
    import subprocess
    from importlib.metadata import PackageNotFoundError, version
    from pathlib import Path

    tags: dict[str, str] = {}
    try:
        tags["nasmeta.version"] = version("nasmeta")
    except PackageNotFoundError:
        pass
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        if commit:
            tags["mlflow.source.git.commit"] = commit
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        from prefect.runtime import flow_run

        if flow_run.id:
            tags["prefect.flow_run_id"] = str(flow_run.id)
            tags["prefect.flow_run_name"] = str(flow_run.name)
            tags["prefect.flow_run_url"] = f"/runs/flow-run/{flow_run.id}"
    except Exception:  # outside a flow run there is nothing to link
        pass
    return tags


def publish_markdown(key: str, markdown: str, description: str) -> str | None:
    """A Prefect markdown artifact on the current flow run (shown in the Prefect UI); ``key`` is reduced to the
    lowercase letters, digits and dashes Prefect accepts.  Returns the key, or None outside a flow run."""
    import re

    from prefect.artifacts import create_markdown_artifact
    from prefect.runtime import flow_run

    if not flow_run.id:
        return None
    clean = re.sub(r"[^a-z0-9-]+", "-", key.lower()).strip("-")[:100] or "nasmeta"
    create_markdown_artifact(key=clean, markdown=markdown, description=description)
    return clean


def preflight(store_root: str | None, track: bool) -> None:
    """Checks before any work: the store can be written (``StoreWriteError`` naming the path) and, when tracking
    is on, the tracking URI answers within a few seconds (``TrackingUnavailableError`` suggesting ``--no-track``)."""
    open_store(store_root).check_writable()
    if tracking_enabled(track):
        from nasmeta import tracking

        tracking.configure()
        tracking.check_tracking_uri()


def tracked_command(experiment: str, run_name: str, tags: dict[str, Any], params: dict[str, Any], track: bool) -> Any:
    """A context manager giving the MLflow run a command logs to (None with ``--no-track`` or
    ``NASMETA_TRACKING=0``); the tracking URI is checked first, and the run carries the provenance tags."""
    import contextlib

    if not tracking_enabled(track):
        return contextlib.nullcontext(None)
    from nasmeta import tracking

    tracking.configure()
    tracking.check_tracking_uri()
    return tracking.parent_run(experiment, run_name=run_name, tags={**tags, **provenance_tags()}, params=params)


def log_search_result(run: Any, result: Any) -> None:
    """The comparison metrics of a ``SearchResult`` (the names every search run uses), its architecture and, for
    loop-based searches, the trials table."""
    if run is None:
        return
    from nasmeta import tracking

    metrics = {
        "best_val_acc": result.best_val_acc,
        "best_test_acc": result.best_test_acc,
        "search_seconds": result.cost_seconds,
        "n_evaluations": result.n_evaluations,
    }
    run.log_metrics({k: v for k, v in metrics.items() if v is not None})
    if result.best_arch is not None:
        tracking.log_architecture(result.best_arch, run=run)
    if result.extra.get("trials"):
        tracking.log_table("trials", result.extra["trials"], run=run)
