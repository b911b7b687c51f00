"""``nasmeta pipeline`` (the main job) and ``nasmeta search target``."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from flows.cli._app import app, search_app
from flows.cli._common import csv_list, fail, failed_run, resolve_budget_options
from flows.defaults import DEFAULT_METADATA, DEFAULT_TARGET

METHODS_HELP = (
    "Comma-separated search methods (default: every default method that supports the space). A method that trains "
    "candidates composes with a scheduler: METHOD+SCHEDULER, e.g. blackbox-re+hyperband, blackbox-rs+asha, "
    "transfer-tapas+sh (schedulers: none, median, percentile, sh, hyperband, asha, domhan, baker, lcranknet). "
    "`nasmeta search methods` lists the methods."
)
SET_HELP = "Budget override KEY=VALUE, repeated (e.g. evaluations=6, eval_epochs=4, network.nb201.C=16)."


def _checked(space: str, methods: str | None, tasks: list[str]) -> list[str] | None:
    """Validate the space, the tasks and the methods before any flow starts (exit 2 naming the bad value)."""
    from nasmeta.config import DataNotFoundError
    from nasmeta.data.tasks import check_data
    from nasmeta.search.registry import check_methods
    from nasmeta.spaces import get_space

    try:
        get_space(space)
        for name in tasks:
            check_data(name)
        names = csv_list(methods, "--methods")
        return check_methods(names, space) if names else None
    except (ValueError, DataNotFoundError) as error:
        fail(str(error))


def _components(items: list[str] | None) -> dict[str, str]:
    from pathlib import Path

    from nasmeta.transfer.registry import component_names

    out: dict[str, str] = {}
    for item in items or []:
        name, sep, folder = item.partition("=")
        if not sep or name not in component_names():
            fail(f"--component takes NAME=DIR with NAME one of {', '.join(component_names())}, got {item!r}")
        if not Path(folder).is_dir():
            fail(f"--component {name}: {folder!r} is not a folder")
        out[name] = folder
    return out


def _preflight(store: str | None, track: bool) -> None:
    """The store is writable and the tracking server answers, before any flow starts (exit 2 otherwise)."""
    from flows.common import preflight

    try:
        preflight(store, track)
    except typer.Exit:
        raise
    except (OSError, RuntimeError, ValueError) as error:
        fail(str(error))


def _json_mode(as_json: bool) -> None:
    """With ``--json`` the JSON result owns stdout: tables and progress go to stderr."""
    if as_json:
        import os

        os.environ["NASMETA_TABLES"] = "stderr"


def _print_json(as_json: bool, result: dict[str, Any]) -> None:
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))


@app.command("pipeline")
def pipeline_command(
    target: str = typer.Option(DEFAULT_TARGET, help="Target task (held out of the transfer components)."),
    sources: str | None = typer.Option(
        None, help="Comma-separated source tasks to collect (default: the shipped collection's tasks, no training)."
    ),
    metadata: str = typer.Option(
        DEFAULT_METADATA, help="Shipped metadata collection to import instead of collecting, or 'none'."
    ),
    budget: str = typer.Option("default", help="micro | default | paper"),
    sets: Annotated[list[str] | None, typer.Option("--set", help=SET_HELP)] = None,
    space: str = typer.Option("nb201", help="Search space."),
    methods: str | None = typer.Option(None, help=METHODS_HELP),
    seed: int = typer.Option(0),
    store: str | None = typer.Option(None, help="Store root (default $NASMETA_HOME/store)."),
    no_track: bool = typer.Option(False, "--no-track", help="Do not log to MLflow."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout (tables go to stderr)."),
) -> None:
    """The main job: collect -> fit transfer components -> search the target side by side -> retrain the winner.

    Example: nasmeta pipeline --budget micro --space darts --no-track
    """
    from flows.defaults import DEFAULT_SOURCES

    shipped = None if metadata == "none" else metadata
    if shipped is not None:
        from metadata_store.snapshots import snapshot_path

        try:
            snapshot_path(shipped)
        except ValueError as error:
            fail(f"--metadata: {error}")
    source_list = csv_list(sources, "--sources") or ([] if shipped else DEFAULT_SOURCES)
    if target in source_list:
        fail(f"target {target!r} is also a source task; leave it out of --sources")
    method_list = _checked(space, methods, [target, *source_list])
    budget_obj = resolve_budget_options(budget, sets)
    _preflight(store, not no_track)
    _json_mode(as_json)
    from flows.pipeline import pipeline  # Prefect is imported only once the input is known to be good

    try:
        summary = pipeline(
            target=target,
            sources=source_list or None,
            metadata=shipped,
            budget=budget_obj,
            space=space,
            methods=method_list,
            seed=seed,
            store=store,
            track=not no_track,
        )
    except ValueError as error:
        fail(str(error))
    except RuntimeError as error:
        failed_run(error)
    _print_json(as_json, summary)
    from nasmeta import config

    typer.echo(f"store: {store or config.default_store_root()}   MLflow: {config.default_tracking_uri()}", err=as_json)
    typer.echo("look at the runs with `nasmeta ui`", err=as_json)


@search_app.command("target")
def search_target_command(
    task: str = typer.Option("digits-5to9", help="Target task."),
    space: str = typer.Option("nb201"),
    methods: str | None = typer.Option(None, help=METHODS_HELP),
    budget: str = typer.Option("default", help="micro | default | paper"),
    sets: Annotated[list[str] | None, typer.Option("--set", help=SET_HELP)] = None,
    seed: int = typer.Option(0),
    store: str | None = typer.Option(None, help="Store root whose metadata the transfer methods learn from."),
    no_track: bool = typer.Option(False, "--no-track"),
    fresh: bool = typer.Option(False, "--fresh", help="Run every method again, even those already in the store."),
    component: Annotated[
        list[str] | None,
        typer.Option("--component", help="A saved transfer component NAME=DIR, repeated (e.g. tnas=./tnas-model)."),
    ] = None,
    as_json: bool = typer.Option(False, "--json", help="Print the outcome as JSON on stdout (tables go to stderr)."),
) -> None:
    """Zero-shot, one-shot, transfer-guided and black-box searches side by side on one task.

    Example: nasmeta search target --methods blackbox-re+hyperband,blackbox-rs+asha,transfer-lcranknet
    """
    method_list = _checked(space, methods, [task])
    budget_obj = resolve_budget_options(budget, sets)
    _preflight(store, not no_track)
    _json_mode(as_json)
    from flows.search import search_target  # Prefect is imported only once the input is known to be good

    try:
        outcome = search_target(
            task=task,
            space=space,
            methods=method_list,
            budget=budget_obj,
            seed=seed,
            store=store,
            track=not no_track,
            resume=not fresh,
            components=_components(component),
        )
    except ValueError as error:
        fail(str(error))
    except RuntimeError as error:
        failed_run(error)
    _print_json(as_json, {k: v for k, v in outcome.items() if k != "rows"})


@search_app.command("methods")
def search_methods_command(
    space: str | None = typer.Option(None, help="Only the methods that support this space."),
) -> None:
    """The registered search methods: name, family, spaces, whether they take a scheduler, default or not.

    Example: nasmeta search methods --space darts
    """
    from rich.console import Console
    from rich.table import Table

    from nasmeta.search.registry import methods

    table = Table(title="Search methods (METHOD or METHOD+SCHEDULER)")
    for column in ("method", "family", "spaces", "+scheduler", "default", "what it does"):
        table.add_column(column)
    for name, info in methods(space).items():
        spaces = "any" if info.spaces is None else ", ".join(info.spaces)
        table.add_row(
            name,
            info.family,
            spaces,
            "yes" if info.schedulable else "-",
            "yes" if info.default else "-",
            info.description,
        )
    Console().print(table)
