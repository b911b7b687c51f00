"""Flow ``collect_metadata``: landmarkers per task, then one training run per (task, architecture, seed).

Results go to the Parquet store (not Prefect's result storage) and to MLflow (a parent run per flow run, a child
run per training run with per-epoch metrics, the architecture JSON and a learning-curve PNG).  Each run's key is
``run_id = hash(task_id, arch_id, seed, config_hash)``; runs the store already holds as completed are skipped, so a
rerun after a crash only does what is missing.  A run writes its curve rows first and its ``runs`` row last, so a
crash in between leaves no completed row and the run is redone.  A failing run (diverging loss, a corrupt task)
is stored as failed with its reason and the flow goes on with the others.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.task_runners import ThreadPoolTaskRunner

from flows.collect_params import CollectParams, plan_architectures, search_proposals
from flows.common import (
    TaskRunnerName,
    make_task_runner,
    open_store,
    preflight,
    resolve_task_spec,
    task_row,
    tracking_enabled,
)
from flows.progress import stage

EXPERIMENT = "nasmeta-collect"


@task(name="landmarkers", retries=1, persist_result=False)
def landmarker_task(task_name: str, samples_per_class: int | None, seeds: list[int], store_root: str) -> str:
    """Load the task, record its ``tasks`` row and (unless the store has them) its landmarkers."""
    import json

    from nasmeta.data import landmarkers as lm

    store = open_store(store_root)
    spec = resolve_task_spec(task_name, samples_per_class)
    data = spec.load()
    store.append("tasks", [task_row(spec, data)])
    if store.read("landmarkers", task_id=spec.task_id).num_rows == 0:
        values = lm.compute_landmarkers(spec, seeds=tuple(seeds))
        # how the values were measured, so landmarkers from different recipes are never mixed unknowingly
        recipe = {
            "seeds": list(seeds),
            **{k: v for k, v in vars(lm).items() if k.isupper() and isinstance(v, int | float)},
        }
        store.append(
            "landmarkers",
            [
                {"task_id": spec.task_id, "name": k, "value": float(v), "spec": json.dumps(recipe, default=str)}
                for k, v in values.items()
            ],
        )
    return spec.task_id


#: seconds a collector's claim on a run lasts without renewal (it is renewed while the run trains)
LEASE_TTL = 600.0


def _train_run_name() -> str:
    """``train <task> <arch id> s<seed>``: readable task-run names in the Prefect UI."""
    from prefect.runtime import task_run

    from nasmeta.spaces import Architecture

    p = task_run.parameters
    return f"train {p['task_name']} {Architecture.from_json(p['arch_json']).arch_id} s{p['seed']}"


def _retry_unless_store_error(task: Any, task_run: Any, state: Any) -> bool:
    """Retry a failed training run, except when the store cannot be written: retraining would hit the same error."""
    from metadata_store import StoreWriteError

    try:
        state.result()
    except StoreWriteError:
        return False
    except Exception:
        return True
    return True


@task(
    name="train-run",
    retries=1,
    retry_delay_seconds=1,
    tags=["gpu"],
    persist_result=False,
    task_run_name=_train_run_name,
    retry_condition_fn=_retry_unless_store_error,
)
def train_run(
    task_name: str,
    samples_per_class: int | None,
    arch_json: dict[str, Any],
    seed: int,
    config_json: dict[str, Any],
    size: dict[str, Any],
    store_root: str,
    parent: Any = None,
) -> dict[str, Any]:
    """Claim the run in the store, then train and store it (:func:`_train_one`); a run another live collector
    holds, or that completed since the collection was planned, is skipped (``status="skipped"``)."""
    from metadata_store import run_id as make_run_id
    from nasmeta.spaces import Architecture
    from nasmeta.training import TrainConfig

    store = open_store(store_root)
    spec = resolve_task_spec(task_name, samples_per_class)
    rid = make_run_id(
        spec.task_id, Architecture.from_json(arch_json).arch_id, seed, TrainConfig(**config_json).config_hash()
    )
    lease = store.claim(rid, ttl=LEASE_TTL)
    if lease is None:
        return {"run_id": rid, "status": "skipped", "error": "claimed by another collector", "seconds": 0.0}
    with lease:
        if store.has_completed(rid):
            return {"run_id": rid, "status": "skipped", "error": "completed by another collector", "seconds": 0.0}
        return _train_one(task_name, samples_per_class, arch_json, seed, config_json, size, store_root, parent)


def _train_one(
    task_name: str,
    samples_per_class: int | None,
    arch_json: dict[str, Any],
    seed: int,
    config_json: dict[str, Any],
    size: dict[str, Any],
    store_root: str,
    parent: Any = None,
) -> dict[str, Any]:
    """Train one architecture on one task with one seed; store the run and its curve; never raise for a bad run."""
    from nasmeta.data.store_import import architecture_row, training_rows
    from nasmeta.spaces import Architecture
    from nasmeta.training import TrainConfig, TrainResult, train_architecture

    store = open_store(store_root)
    arch = Architecture.from_json(arch_json)
    config = TrainConfig(**config_json)
    spec = resolve_task_spec(task_name, samples_per_class)
    tags = {"task": spec.name, "task_id": spec.task_id, "space": arch.space, "arch_id": arch.arch_id, "seed": seed}
    params = {"arch_str": str(arch), "config_hash": config.config_hash(), **config.model_dump(mode="json"), **size}

    def run(reporter: Any) -> TrainResult:
        return train_architecture(arch, spec, config, size=size, seed=seed, reporter=reporter).result

    mlflow_run_id = None
    if parent is not None:
        from nasmeta import tracking

        with tracking.child_run(
            parent, run_name=f"{spec.name}/{arch.arch_id}/s{seed}", tags=tags, params=params
        ) as child:
            result = run(child.reporter())
            tracking.log_architecture(arch, run=child)
            if result.curve:
                tracking.log_learning_curve_png(result.curve, run=child)
            child.log_metrics({"final_val_acc": result.final_val_acc, "final_test_acc": result.final_test_acc})
            if result.status == "failed":
                child.fail(result.error or "failed")
            mlflow_run_id = child.run_id
    else:
        result = run(None)

    run_row, curve_rows = training_rows(spec.task_id, arch, seed, result, mlflow_run_id, config)
    store.append("architectures", [architecture_row(arch, result.n_params or None, result.flops or None)])
    if curve_rows:
        store.append("curves", curve_rows)
    store.append("runs", [run_row])  # last: its presence marks the run done
    return {"run_id": run_row["run_id"], "status": result.status, "error": result.error, "seconds": result.seconds}


@flow(name="collect-metadata", log_prints=True, task_runner=ThreadPoolTaskRunner(max_workers=1))
def collect_metadata(
    tasks: list[str] | None = None,
    space: str = "nb201",
    n_archs: int = 8,
    archs: list[str] | None = None,
    arch_seed: int = 0,
    epochs: int = 3,
    seeds: list[int] | None = None,
    repeat_seeds: list[int] | None = None,
    repeat_archs: int = 0,
    repeat_tasks: list[str] | None = None,
    search_archs: int = 0,
    train: dict[str, Any] | None = None,
    size: dict[str, Any] | None = None,
    samples_per_class: int | None = None,
    landmarkers: bool = True,
    landmarker_seeds: list[int] | None = None,
    store: str | None = None,
    track: bool = True,
    task_runner: TaskRunnerName = "threads",
    workers: int = 1,
    address: str | None = None,
    collection: str | None = None,
) -> dict[str, Any]:
    """Collect landmarkers and learning curves for every (task, architecture, seed); returns a summary.

    Training runs go one at a time through a thread by default (torch already uses every core of a CPU; one run
    at a time also keeps CPU results bit-reproducible).  ``task_runner="dask"`` spreads them over a local Dask
    cluster of ``workers`` processes, or over the cluster at ``address``; that happens in a child flow run,
    since a flow's task runner is fixed when it starts.
    """
    given = {
        "tasks": tasks,
        "space": space,
        "n_archs": n_archs,
        "archs": archs,
        "arch_seed": arch_seed,
        "epochs": epochs,
        "seeds": seeds,
        "repeat_seeds": repeat_seeds,
        "repeat_archs": repeat_archs,
        "repeat_tasks": repeat_tasks,
        "search_archs": search_archs,
        "train": train,
        "size": size,
        "samples_per_class": samples_per_class,
        "landmarkers": landmarkers,
        "landmarker_seeds": landmarker_seeds,
        "store": store,
        "track": track,
        "collection": collection,
    }
    params = CollectParams(**{k: v for k, v in given.items() if v is not None})
    if task_runner == "threads" and workers == 1 and address is None:
        return run_collection(params)
    runner = make_task_runner(task_runner, workers, address)
    return collect_runs.with_options(task_runner=runner)(params)


def run_collection(params: CollectParams) -> dict[str, Any]:
    """The body of :func:`collect_metadata` (inside a flow run)."""
    from metadata_store import run_id as make_run_id

    logger = get_run_logger()
    from nasmeta import config as nconfig

    store_root = params.store or nconfig.default_store_root()
    preflight(store_root, params.track)
    store = open_store(store_root)
    config = params.train_config()
    archs = plan_architectures(params.space, params.n_archs, params.arch_seed, params.archs)

    task_ids = {}
    for name in params.tasks:
        if params.landmarkers:
            task_ids[name] = landmarker_task.submit(name, params.samples_per_class, params.landmarker_seeds, store_root)
        else:
            task_ids[name] = resolve_task_spec(name, params.samples_per_class).task_id
    landmarker_failures = []
    for name, value in list(task_ids.items()):
        if hasattr(value, "result"):
            try:
                task_ids[name] = value.result()
            except Exception as error:  # a task that cannot load: its runs are recorded as failed below
                landmarker_failures.append({"task": name, "error": f"{type(error).__name__}: {error}"})
                task_ids[name] = resolve_task_spec(name, params.samples_per_class).task_id

    done = store.completed_run_ids()
    planned: list[str] = []

    def plan(runs: list[tuple[str, Any, int]]) -> list[tuple[str, Any, int]]:
        """The runs of ``runs`` the store lacks (all are counted as planned)."""
        todo = []
        for name, arch, seed in runs:
            rid = make_run_id(task_ids[name], arch.arch_id, seed, config.config_hash())
            planned.append(rid)
            if rid not in done:
                todo.append((name, arch, seed))
        return todo

    todo = plan(
        [
            (name, arch, seed)
            for name in params.tasks
            for i, arch in enumerate(archs)
            for seed in params.seeds + (params.repeat_seeds if _repeated(params, name, i) else [])
        ]
    )
    logger.info(
        "collect: %d runs planned, %d already in the store, %d to train%s",
        len(planned),
        len(planned) - len(todo),
        len(todo),
        f" (then {params.search_archs} searched cells per task)" if params.search_archs else "",
    )

    summary: dict[str, Any] = {
        "planned": len(planned),
        "skipped": len(planned) - len(todo),
        "trained": 0,
        "completed": 0,
        "failed": 0,
        "stopped": 0,
        "failures": [],
        "landmarker_failures": landmarker_failures,
        "task_ids": task_ids,
        "store": store_root,
        "planned_before_search": len(planned),
    }

    def submit(runs: list[tuple[str, Any, int]], parent: Any, label: str) -> None:
        futures = [
            train_run.submit(
                name,
                params.samples_per_class,
                arch.to_json(),
                seed,
                config.model_dump(mode="json"),
                params.network_size(),
                store_root,
                parent,
            )
            for name, arch, seed in runs
        ]
        with stage(label, total=len(futures), unit="training runs") as shown:
            for future in futures:
                outcome = future.result()
                shown.advance(f"{outcome['status']} {outcome['run_id']}")
                _count(outcome)

    def submit_all(parent: Any) -> None:
        submit(todo, parent, "collect")
        if params.search_archs:
            searched = plan(_searched_runs(params, store, task_ids, archs, config.config_hash()))
            summary["planned"] = len(planned)
            summary["skipped"] += len(planned) - summary["planned_before_search"] - len(searched)
            submit(searched, parent, "collect (searched cells)")

    def _count(outcome: dict[str, Any]) -> None:
        if outcome["status"] == "skipped":  # another collector holds or finished it
            summary["skipped"] += 1
            return
        summary["trained"] += 1
        summary[outcome["status"]] += 1
        if outcome["status"] == "failed":
            summary["failures"].append({"run_id": outcome["run_id"], "error": outcome["error"]})

    if tracking_enabled(params.track):
        from nasmeta import tracking

        tracking.configure()
        run_params = params.model_dump(mode="json", exclude={"store"})
        with tracking.parent_run(
            EXPERIMENT,
            run_name=f"collect-{params.collection or params.space}",
            tags={"space": params.space, **({"collection": params.collection} if params.collection else {})},
            params=run_params,
        ) as parent:
            submit_all(parent)
            parent.log_metrics(
                {k: summary[k] for k in ("planned", "skipped", "trained", "completed", "failed", "stopped")}
            )
            summary["mlflow_run_id"] = parent.run_id
    else:
        submit_all(None)
    if summary["failed"]:
        logger.warning(
            "collect: %d of %d runs failed: %s", summary["failed"], summary["trained"], summary["failures"][:5]
        )
    if summary["trained"] and summary["failed"] == summary["trained"]:
        # nothing was learned: the flow run must not end Completed (each run is stored as failed with its reason)
        raise RuntimeError(
            f"every one of the {summary['trained']} training runs failed; first: {summary['failures'][0]['error']}"
        )
    summary.pop("planned_before_search")
    return summary


def _repeated(params: CollectParams, task: str, index: int) -> bool:
    """Whether the ``index``-th planned cell of ``task`` is also trained with the repeat seeds."""
    return index < params.repeat_archs and (params.repeat_tasks is None or task in params.repeat_tasks)


def _searched_runs(
    params: CollectParams, store: Any, task_ids: dict[str, str], archs: list[Any], config_hash: str
) -> list[tuple[str, Any, int]]:
    """Per task, ``search_archs`` cells mutated from its best planned cells (first seed's final validation
    accuracy); only the planned cells' runs rank, so a rerun proposes the same cells whatever else is stored."""
    import zlib

    by_id = {a.arch_id: a for a in archs}
    seed = params.seeds[0]
    runs = []
    for name in params.tasks:
        rows = store.read("runs", task_id=task_ids[name]).to_pylist()
        scored = {
            r["arch_id"]: r["final_val_acc"]
            for r in rows
            if r["status"] == "completed"
            and r["seed"] == seed
            and r["config_hash"] == config_hash
            and r["arch_id"] in by_id
        }
        ranked = [by_id[a] for a in sorted(scored, key=lambda a: (-scored[a], a))]
        proposal_seed = [params.arch_seed, zlib.crc32(task_ids[name].encode())]
        for arch in search_proposals(params.space, ranked, set(by_id), params.search_archs, proposal_seed):
            runs.append((name, arch, seed))
    return runs


@flow(name="collect-metadata-runs", log_prints=True)
def collect_runs(params: CollectParams) -> dict[str, Any]:
    """The collection under a task runner chosen by the parent flow (Dask, or several threads)."""
    return run_collection(params)


def collect(
    params: CollectParams, task_runner: TaskRunnerName = "threads", max_workers: int = 1, address: str | None = None
) -> dict[str, Any]:
    """Run the flow with the chosen task runner (the CLI's entry point)."""
    return collect_metadata(**params.model_dump(), task_runner=task_runner, workers=max_workers, address=address)
