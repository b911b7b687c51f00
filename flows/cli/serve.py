"""``nasmeta serve``: run the deployments of deployments/prefect.yaml on their schedules from this process."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli._app import app
from flows.cli._common import fail


@app.command("serve")
def serve(
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="Serve only this deployment (flow/deployment, e.g. collect-metadata/nightly)."),
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Most flow runs executing at once.")] = None,
    prefect_file: Annotated[
        Path | None, typer.Option(help="Deployment file (default: deployments/prefect.yaml of this project).")
    ] = None,
    list_only: Annotated[
        bool, typer.Option("--list", help="Print the deployments and their schedules, serve nothing.")
    ] = False,
) -> None:
    """Serve the nasmeta deployments (schedules included) on this machine without work pools or workers.

    Runs execute as subprocesses of this command until it is stopped (Ctrl-C).  Start them with
    `prefect deployment run 'pipeline/cpu'`, or see them in the Prefect UI when PREFECT_API_URL points at a
    `prefect server`.

    Example: nasmeta serve --list
    """
    from rich.console import Console
    from rich.table import Table

    from flows.serve import PREFECT_FILE, build_deployments, serve_all

    source = prefect_file or PREFECT_FILE
    try:
        deployments = build_deployments(source, only)
    except ValueError as error:
        fail(str(error))
    table = Table(title=f"deployments served from {source}")
    table.add_column("deployment", no_wrap=True)
    table.add_column("schedule", no_wrap=True)
    table.add_column("parameters")
    table.add_column("tags")
    for deployment in deployments:
        schedules = ", ".join(
            s.schedule.cron if getattr(s.schedule, "cron", None) else str(s.schedule) for s in deployment.schedules
        )
        table.add_row(
            f"{deployment.flow_name}/{deployment.name}",
            schedules or "on demand",
            ", ".join(f"{k}={v}" for k, v in deployment.parameters.items()) or "defaults",
            ", ".join(deployment.tags),
        )
    Console().print(table)
    if list_only:
        return
    serve_all(source, only, limit)
