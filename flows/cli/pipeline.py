"""``nasmeta pipeline`` (the main job) and ``nasmeta search target``."""

from __future__ import annotations

import json

import typer

from flows.cli._app import app, search_app


def _csv(text: str | None) -> list[str] | None:
    return [p.strip() for p in text.split(",") if p.strip()] if text else None


@app.command("pipeline")
def pipeline_command(
    target: str = typer.Option("digits-5to9", help="Target task (held out of the transfer components)."),
    sources: str | None = typer.Option(None, help="Comma-separated source tasks (default: digits variants)."),
    budget: str = typer.Option("default", help="micro | default | paper"),
    space: str = typer.Option("nb201", help="Search space."),
    methods: str | None = typer.Option(None, help="Comma-separated search methods (default: all)."),
    seed: int = typer.Option(0),
    store: str | None = typer.Option(None, help="Store root (default $NASMETA_HOME/store)."),
    no_track: bool = typer.Option(False, "--no-track", help="Do not log to MLflow."),
    json_out: str | None = typer.Option(None, "--json", help="Also write the summary as JSON to this file."),
) -> None:
    """The main job: collect -> fit transfer components -> search the target side by side -> retrain the winner."""
    from flows.pipeline import pipeline

    try:
        summary = pipeline(
            target=target,
            sources=_csv(sources),
            budget=budget,
            space=space,
            methods=_csv(methods),
            seed=seed,
            store=store,
            track=not no_track,
        )
    except ValueError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    if json_out:
        with open(json_out, "w") as handle:
            json.dump(summary, handle, indent=2, default=str)
    from nasmeta import config

    typer.echo(f"store: {store or config.default_store_root()}   MLflow: {config.default_tracking_uri()}")
    typer.echo("look at the runs with `nasmeta ui`")


@search_app.command("target")
def search_target_command(
    task: str = typer.Option("digits-5to9", help="Target task."),
    space: str = typer.Option("nb201"),
    methods: str | None = typer.Option(None, help="Comma-separated methods (default: all)."),
    budget: str = typer.Option("default", help="micro | default | paper"),
    seed: int = typer.Option(0),
    store: str | None = typer.Option(None),
    no_track: bool = typer.Option(False, "--no-track"),
) -> None:
    """Zero-shot, one-shot, transfer-guided and black-box searches side by side on one task."""
    from flows.search import search_target

    try:
        search_target(
            task=task, space=space, methods=_csv(methods), budget=budget, seed=seed, store=store, track=not no_track
        )
    except ValueError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
