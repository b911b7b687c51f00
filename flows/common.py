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


def tracking_enabled(track: bool) -> bool:
    """MLflow tracking can be switched off per call or globally with ``NASMETA_TRACKING=0``."""
    return track and os.environ.get("NASMETA_TRACKING", "1") not in {"0", "false", "no"}
