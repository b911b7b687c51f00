"""``nasmeta searches list | show ID | report ID``: the searches the store remembers (one row per search method
run: ``search target``, the pipeline, LODO), found again by id prefix, with their MLflow runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from flows.cli._app import app
from flows.cli._common import cli_store, fail

searches_app = typer.Typer(help="Searches stored in the metadata store: list, show, report.", no_args_is_help=True)
app.add_typer(searches_app, name="searches")

StoreOption = Annotated[str | None, typer.Option("--store", help="Store root (default: $NASMETA_HOME/store).")]


def _rows(store: str | None) -> list[dict[str, Any]]:
    rows = cli_store(store, must_exist=True).read("searches").to_pylist()
    tasks = {r["task_id"]: r["name"] for r in cli_store(store, must_exist=True).read("tasks").to_pylist()}
    for row in rows:
        row["task"] = tasks.get(row["task_id"], row["task_id"])
    return sorted(rows, key=lambda r: (r["task"], r["lodo_fold"] or "", r["method"], r["search_id"]))


def _find(rows: list[dict[str, Any]], prefix: str) -> dict[str, Any]:
    found = [r for r in rows if r["search_id"].startswith(prefix)]
    if not found:
        fail(f"no search with id {prefix!r} (see `nasmeta searches list`)")
    if len(found) > 1:
        fail(f"id prefix {prefix!r} matches {len(found)} searches; give more characters")
    return found[0]


def _fmt(value: Any, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


@searches_app.command("list")
def list_searches(
    store: StoreOption = None,
    task: Annotated[str | None, typer.Option(help="Only searches of this task (name or id).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """One line per stored search: id, task, method, budget, accuracy, cost.

    Example: nasmeta searches list --task digits-5to9
    """
    from rich.console import Console
    from rich.table import Table

    rows = [r for r in _rows(store) if task is None or task in (r["task"], r["task_id"])]
    if as_json:
        import json

        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    table = Table(title=f"{len(rows)} stored search(es)")
    for column in ("id", "task", "method", "budget", "val acc", "test acc", "cost s", "evals", "fold"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r["search_id"][:12],
            r["task"],
            r["method"],
            (r["budget"] or "")[:40],
            _fmt(r["best_val_acc"]),
            _fmt(r["best_test_acc"]),
            _fmt(r["cost_seconds"], ".1f"),
            _fmt(r["n_evaluations"], "d"),
            r["lodo_fold"] or "-",
        )
    Console().print(table)


@searches_app.command("show")
def show(search_id: str, store: StoreOption = None) -> None:
    """Everything stored about one search (and its pick's architecture).

    Example: nasmeta searches show 3f2a
    """
    import json

    import pyarrow.compute as pc

    row = _find(_rows(store), search_id)
    archs = cli_store(store).read("architectures", filter=pc.field("arch_id") == row["best_arch_id"]).to_pylist()
    if archs:
        row["best_arch"] = archs[0]["arch_str"]
    typer.echo(json.dumps(row, indent=2, default=str))


@searches_app.command("report")
def report(
    search_id: str,
    store: StoreOption = None,
    out: Annotated[Path | None, typer.Option(help="Folder for report.md and accuracy_vs_cost.png.")] = None,
) -> None:
    """The comparison a search was part of: every method stored for the same task, budget and fold, as a markdown
    table and an accuracy-vs-cost plot; MLflow run ids link each row to its details.

    Example: nasmeta searches report 3f2a --out report/
    """
    rows = _rows(store)
    chosen = _find(rows, search_id)
    peers = [
        r
        for r in rows
        if (r["task_id"], r["budget"], r["lodo_fold"]) == (chosen["task_id"], chosen["budget"], chosen["lodo_fold"])
    ]
    lines = [
        f"## {chosen['task']}: {len(peers)} method(s), budget {chosen['budget']}",
        "",
        "| method | val acc | test acc | cost s | evals | MLflow run |",
        "|---|---|---|---|---|---|",
    ]
    for r in sorted(peers, key=lambda r: -(r["best_val_acc"] or 0)):
        lines.append(
            f"| {r['method']} | {_fmt(r['best_val_acc'])} | {_fmt(r['best_test_acc'])} | "
            f"{_fmt(r['cost_seconds'], '.1f')} | {_fmt(r['n_evaluations'], 'd')} | {r['mlflow_run_id'] or '-'} |"
        )
    text = "\n".join(lines)
    typer.echo(text)
    if out is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        out.mkdir(parents=True, exist_ok=True)
        (out / "report.md").write_text(text + "\n")
        fig, ax = plt.subplots(figsize=(6, 4))
        for r in peers:
            if r["cost_seconds"] is not None and r["best_test_acc"] is not None:
                ax.scatter(r["cost_seconds"], r["best_test_acc"])
                ax.annotate(r["method"], (r["cost_seconds"], r["best_test_acc"]), fontsize=8)
        ax.set_xlabel("search cost (s)")
        ax.set_ylabel("test accuracy of the pick (%)")
        ax.set_title(chosen["task"])
        fig.tight_layout()
        fig.savefig(out / "accuracy_vs_cost.png", dpi=120)
        plt.close(fig)
        typer.echo(f"wrote {out / 'report.md'} and {out / 'accuracy_vs_cost.png'}")
