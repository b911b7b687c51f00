"""``nasmeta store summary | describe | import | compact | check``: inspect and maintain the Parquet metadata store.

Every command takes ``--store PATH`` (a folder or a URL such as ``s3://bucket/store``; default
``$NASMETA_HOME/store``).  Other command modules reuse :data:`StoreOption` and :func:`open_store`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from flows.cli._app import store_app
from flows.cli._common import cli_store, fail

StoreOption = Annotated[
    str | None, typer.Option("--store", help="Store root: a folder or URL (default: $NASMETA_HOME/store).")
]


def open_store(store: str | None, must_exist: bool = True):  # -> MetadataStore (imported lazily)
    """The store at ``store`` (default root when ``None``); a bad or (``must_exist``) missing root exits 2."""
    return cli_store(store, must_exist)


@store_app.command("summary")
def summary(
    store: StoreOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Rows per table, tasks, and completed / failed / stopped runs.

    Example: nasmeta store summary --store ./collection/store
    """
    info = open_store(store).summary()
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    tables = Table(title=f"store {info['root']}")
    tables.add_column("table")
    tables.add_column("rows", justify="right")
    tables.add_column("files", justify="right")
    for name, counts in info["tables"].items():
        tables.add_row(name, str(counts["rows"]), str(counts["files"]))
    console.print(tables)
    runs = info["runs"]
    console.print(f"runs: {runs['completed']} completed, {runs['failed']} failed, {runs['stopped']} stopped")
    if info["tasks"]:
        tasks = Table(title="tasks")
        columns = ("task_id", "name", "source", "completed", "failed", "stopped")
        for column in columns:
            tasks.add_column(column, justify="right" if column in runs else "left")
        for row in info["tasks"]:
            tasks.add_row(*(str(row[c] if row[c] is not None else "") for c in columns))
        console.print(tasks)


@store_app.command("describe")
def describe(
    store: StoreOption = None,
    label: Annotated[str, typer.Option(help="final_val_acc or final_test_acc")] = "final_val_acc",
    as_json: Annotated[bool, typer.Option("--json", help="Print the description as JSON.")] = False,
) -> None:
    """Per task: runs, DCN, accuracy spread and seed noise; the Kendall tau of cell rankings between every pair of
    tasks (how much there is to transfer).

    Example: nasmeta store describe --store metadata_store/collections/nasmeta-meta-v1
    """
    if label not in ("final_val_acc", "final_test_acc"):
        fail(f"--label must be final_val_acc or final_test_acc, got {label!r}")
    from metadata_store import MetaDataset
    from nasmeta.evaluation.collection import describe_collection, describe_markdown

    info = describe_collection(MetaDataset.from_store(open_store(store)), label)
    if not info["tasks"]:
        fail("the store holds no completed runs to describe")
    if as_json:
        pairs = [{"task_a": a, "task_b": b, "tau": None if v != v else v} for (a, b), v in info["tau"].items() if a < b]
        typer.echo(json.dumps({"tasks": info["tasks"], "tau": pairs}, indent=2))
        return
    typer.echo(describe_markdown(info), nl=False)


@store_app.command("import")
def import_(
    source: Annotated[str, typer.Argument(help="'nb201', 'macro', or a curve file (.csv / .parquet).")],
    store: StoreOption = None,
) -> None:
    """Import NAS-Bench-201, NAS-Bench-Macro (from NASMETA_DATA_DIR) or a learning-curve file.

    Curve file columns: see `python -c "import metadata_store.external as e; help(e)"`.

    Example: nasmeta store import nb201 --store ./store
    """
    from nasmeta.config import DataNotFoundError

    target = open_store(store, must_exist=False)
    try:
        from nasmeta.data import store_import

        if source == "nb201":
            written = store_import.import_nb201(target)
        elif source == "macro":
            written = store_import.import_macro(target)
        elif Path(source).is_file():
            written = store_import.import_curve_file(target, source)
        else:
            fail(f"{source!r} is neither 'nb201', 'macro' nor an existing curve file")
    except (ValueError, DataNotFoundError) as error:
        fail(str(error))
    typer.echo(f"imported {source} into {target.uri}: " + ", ".join(f"{k} {v}" for k, v in written.items()))


@store_app.command("compact")
def compact(store: StoreOption = None) -> None:
    """Merge each table's small files into one de-duplicated file (safe while others read and write).

    Example: nasmeta store compact --store ./collection/store
    """
    target = open_store(store)
    report = target.compact()
    for name, info in report.items():
        if info["files_before"]:
            typer.echo(f"{name}: {info['files_before']} -> {info['files_after']} files, {info['rows']} rows")


@store_app.command("check")
def check(
    store: StoreOption = None,
    repair: Annotated[
        bool, typer.Option("--repair", help="Move unreadable files to <store>/_quarantine/<table>/ (never deletes).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """List data files that are not readable Parquet (truncated, junk); --repair quarantines them.

    Exits 1 when unreadable files remain (found without --repair), 0 otherwise.

    Example: nasmeta store check --repair
    """
    target = open_store(store)
    report = target.check(repair=repair)
    if as_json:
        typer.echo(json.dumps({"root": target.uri, "repaired": repair, "unreadable": report}, indent=2))
    elif not report:
        typer.echo(f"store {target.uri}: every data file is readable")
    else:
        for table, entries in report.items():
            for entry in entries:
                moved = f" -> moved to {entry['moved_to']}" if "moved_to" in entry else ""
                typer.echo(f"{table}: {entry['path']}: {entry['error']}{moved}")
        if not repair:
            typer.echo("run `nasmeta store check --repair` to move them to the quarantine folder", err=True)
    if report and not repair:
        raise typer.Exit(1)
