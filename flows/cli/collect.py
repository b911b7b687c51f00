"""``nasmeta collect``: run the metadata-collection flow."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from flows.cli._app import app
from flows.cli._common import csv_list, fail, failed_run, parse_sizes


def _int(text: str, option: str) -> int:
    try:
        return int(text)
    except ValueError:
        fail(f"{option}: {text!r} is not an integer")


def _json_object(text: str, option: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        fail(f"{option} is not JSON ({error.msg} at character {error.pos}): {text!r}")
    if not isinstance(value, dict):
        fail(f"{option} must be a JSON object, got {type(value).__name__}: {text!r}")
    return value


def _check_plan(params: Any, workers: int, address: str | None) -> None:
    """What the flow would find out only later: unparsable architecture lines, more architectures than the
    space has, no workers, an unreachable Dask scheduler."""
    from nasmeta.data.tasks import check_data
    from nasmeta.spaces import get_space

    for name in params.tasks:
        check_data(name)  # a missing data file is one line now, not one failed run per architecture
    space = get_space(params.space)
    for line in params.archs or []:
        space.parse(line)
    if not params.archs and params.n_archs > 1000:
        distinct = space.count_distinct()
        if distinct is not None and params.n_archs > distinct:
            raise ValueError(
                f"--archs {params.n_archs}: space {params.space!r} has only {distinct} distinct architectures"
            )
    if workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    if address:
        _check_address(address)


def _check_address(address: str) -> None:
    """A Dask scheduler address answers a TCP connection within 3 s."""
    import socket
    from urllib.parse import urlparse

    parsed = urlparse(address if "://" in address else f"tcp://{address}")
    if not parsed.hostname or not parsed.port:
        raise ValueError(f"--address {address!r} is not tcp://HOST:PORT")
    try:
        with socket.create_connection((parsed.hostname, parsed.port), timeout=3):
            pass
    except OSError as error:
        raise ValueError(f"--address {address!r}: no Dask scheduler answers ({error})") from None


#: options a named collection fixes (name -> their defaults): giving one beside --collection is an error
_PLAN_OPTIONS = {
    "--tasks": "digits,digits-0to4",
    "--space": "nb201",
    "--archs": 8,
    "--arch-file": None,
    "--arch-seed": 0,
    "--epochs": 3,
    "--seeds": "0",
    "--size": None,
    "--train": "{}",
    "--samples-per-class": None,
}


@app.command("collect")
def collect_command(
    collection: str | None = typer.Option(
        None, help="A named collection (tasks, cells, seeds, sizes; e.g. nasmeta-meta-v1) instead of the plan options."
    ),
    tasks: str = typer.Option("digits,digits-0to4", help="Comma-separated task names (see `nasmeta tasks list`)."),
    space: str = typer.Option("nb201", help="Search space."),
    archs: int = typer.Option(8, "--archs", help="Number of architectures to sample (distinct ids)."),
    arch_file: str | None = typer.Option(None, help="File with one architecture string per line instead."),
    arch_seed: int = typer.Option(0, help="Seed for sampling architectures."),
    epochs: int = typer.Option(3, help="Training epochs per run."),
    seeds: str = typer.Option("0", help="Comma-separated training seeds."),
    size: Annotated[
        list[str] | None,
        typer.Option(help="Network size KEY=INT for space.build, repeated (default: the default budget's size)."),
    ] = None,
    train: str = typer.Option("{}", help="JSON of TrainConfig overrides, e.g. '{\"lr\": 0.05}'."),
    samples_per_class: int | None = typer.Option(None, help="Use at most this many train images per class."),
    no_landmarkers: bool = typer.Option(False, "--no-landmarkers", help="Skip the landmarkers (DCN, ...)."),
    store: str | None = typer.Option(None, help="Store root (default $NASMETA_HOME/store)."),
    task_runner: str = typer.Option("threads", help="threads | dask"),
    workers: int = typer.Option(1, help="Parallel training runs (threads or local Dask workers)."),
    address: str | None = typer.Option(None, help="Address of an existing Dask scheduler."),
    no_track: bool = typer.Option(False, "--no-track", help="Do not log to MLflow."),
) -> None:
    """Train sampled architectures on source tasks; store learning curves and landmarkers.

    Example: nasmeta collect --tasks digits,digits-0to4 --archs 8 --epochs 3 --size C=8 --size N=1
    """
    from pydantic import ValidationError

    from flows.collect_params import CollectParams

    try:
        if collection is not None:
            given = dict(
                zip(
                    _PLAN_OPTIONS,
                    (tasks, space, archs, arch_file, arch_seed, epochs, seeds, size or None, train, samples_per_class),
                    strict=True,
                )
            )
            fixed = [option for option, value in given.items() if value != _PLAN_OPTIONS[option]]
            if fixed:
                raise ValueError(f"--collection {collection} fixes {', '.join(fixed)}; drop them or drop --collection")
            params = CollectParams.from_collection(
                collection, landmarkers=not no_landmarkers, store=store, track=not no_track
            )
        else:
            params = _params_from_options(
                tasks,
                space,
                archs,
                arch_file,
                arch_seed,
                epochs,
                seeds,
                size,
                train,
                samples_per_class,
                not no_landmarkers,
                store,
                not no_track,
            )
        params.train_config()  # bad training overrides fail here, before any work
        _check_plan(params, workers, address)
        if task_runner not in {"threads", "dask"}:
            raise ValueError(f"unknown task runner {task_runner!r}; expected 'threads' or 'dask'")
        from flows.common import preflight

        preflight(store, not no_track)  # a store that cannot be written or a dead tracking server fails here
    except typer.Exit:
        raise
    except (ValueError, ValidationError, OSError, RuntimeError) as error:
        fail(str(error))
    from flows.collect import collect  # Prefect is imported only once the input is known to be good

    try:
        summary = collect(params, task_runner=task_runner, max_workers=workers, address=address)  # type: ignore[arg-type]
    except RuntimeError as error:
        failed_run(error)
    typer.echo(json.dumps({k: v for k, v in summary.items() if k != "failures"}, indent=2, default=str))
    if summary["failures"]:
        typer.echo(f"{len(summary['failures'])} run(s) failed:", err=True)
        for failure in summary["failures"]:
            typer.echo(f"  {failure['run_id']}: {failure['error']}", err=True)


def _params_from_options(
    tasks: str,
    space: str,
    archs: int,
    arch_file: str | None,
    arch_seed: int,
    epochs: int,
    seeds: str,
    size: list[str] | None,
    train: str,
    samples_per_class: int | None,
    landmarkers: bool,
    store: str | None,
    track: bool,
) -> Any:
    from flows.collect_params import CollectParams

    explicit = None
    if arch_file:
        with open(arch_file) as handle:
            explicit = [line.strip() for line in handle if line.strip()]
    return CollectParams(
        tasks=csv_list(tasks, "--tasks"),
        space=space,
        n_archs=archs,
        archs=explicit,
        arch_seed=arch_seed,
        epochs=epochs,
        seeds=[_int(s, "--seeds") for s in csv_list(seeds, "--seeds")],
        size=parse_sizes(size) or None,
        train=_json_object(train, "--train"),
        samples_per_class=samples_per_class,
        landmarkers=landmarkers,
        store=store,
        track=track,
    )
