"""``nasmeta tasks list`` and ``nasmeta tasks describe NAME``."""

from __future__ import annotations

import json

import typer

from flows.cli._app import tasks_app


@tasks_app.command("list")
def list_command(
    available: bool = typer.Option(False, "--available", help="Only tasks whose data is present."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Registered tasks: source, classes, resolution, channels, corruption and whether the data is present.

    Example: nasmeta tasks list --available
    """
    from rich.console import Console
    from rich.table import Table

    from nasmeta.data.tasks import describe_spec, get_task, list_tasks

    rows = [describe_spec(get_task(name)) for name in list_tasks(available_only=available)]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="nasmeta tasks")
    table.add_column("name", no_wrap=True)
    for column in ("source", "classes", "res", "ch", "corruption", "present"):
        table.add_column(column)
    for row in rows:
        corruption = row["corruption"] or {}
        table.add_row(
            row["name"],
            row["source"],
            "all" if row["classes"] is None else ",".join(map(str, row["classes"])),
            "-" if row["resolution"] is None else str(row["resolution"]),
            "-" if row["channels"] is None else str(row["channels"]),
            ", ".join(f"{k}={v}" for k, v in corruption.items() if v and k != "seed") or "-",
            "yes" if row["available"] else "no",
        )
    Console().print(table)


@tasks_app.command("describe")
def describe_command(
    name: str = typer.Argument(..., help="A registered task name (see `nasmeta tasks list`)."),
    per_class: int = typer.Option(None, "--per-class", help="Describe the small version with this many per class."),
    dcn: bool = typer.Option(True, "--dcn/--no-dcn", help="Train the DCN probe (a few seconds per seed)."),
    seeds: int = typer.Option(3, "--seeds", min=1, help="Number of DCN seeds (0, 1, ...)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """A task's spec, sizes and landmarkers (meta-features, linear-probe accuracy, DCN).

    Example: nasmeta tasks describe digits-5to9
    """
    from rich.console import Console
    from rich.table import Table

    from nasmeta.data.landmarkers import describe
    from nasmeta.data.tasks import get_task

    try:
        spec = get_task(name)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="NAME") from None
    if per_class:
        spec = spec.small(per_class)
    info = describe(spec, seeds=tuple(range(seeds)), with_dcn=dcn)
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    console = Console()
    spec_table = Table(title=f"task {spec.name} ({info['task_id']})", show_header=False)
    for key, value in info["spec"].items():
        spec_table.add_row(key, json.dumps(value))
    console.print(spec_table)
    lm_table = Table(title="landmarkers")
    lm_table.add_column("name")
    lm_table.add_column("value", justify="right")
    for key, value in info["landmarkers"].items():
        lm_table.add_row(key, f"{value:.4g}")
    console.print(lm_table)
