"""``nasmeta collect``: run the metadata-collection flow."""

from __future__ import annotations

import json

import typer

from flows.cli._app import app


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


@app.command("collect")
def collect_command(
    tasks: str = typer.Option("digits,digits-0to4", help="Comma-separated task names (see `nasmeta tasks list`)."),
    space: str = typer.Option("nb201", help="Search space."),
    archs: int = typer.Option(8, "--archs", help="Number of architectures to sample (distinct ids)."),
    arch_file: str | None = typer.Option(None, help="File with one architecture string per line instead."),
    arch_seed: int = typer.Option(0, help="Seed for sampling architectures."),
    epochs: int = typer.Option(3, help="Training epochs per run."),
    seeds: str = typer.Option("0", help="Comma-separated training seeds."),
    size: str = typer.Option('{"C": 8, "N": 1}', help="JSON of network size arguments for space.build."),
    train: str = typer.Option("{}", help="JSON of TrainConfig overrides, e.g. '{\"lr\": 0.05}'."),
    samples_per_class: int | None = typer.Option(None, help="Use at most this many train images per class."),
    no_landmarkers: bool = typer.Option(False, "--no-landmarkers", help="Skip the landmarkers (DCN, ...)."),
    store: str | None = typer.Option(None, help="Store root (default $NASMETA_HOME/store)."),
    task_runner: str = typer.Option("threads", help="threads | dask"),
    workers: int = typer.Option(1, help="Parallel training runs (threads or local Dask workers)."),
    address: str | None = typer.Option(None, help="Address of an existing Dask scheduler."),
    no_track: bool = typer.Option(False, "--no-track", help="Do not log to MLflow."),
) -> None:
    """Train sampled architectures on source tasks; store learning curves and landmarkers."""
    from pydantic import ValidationError

    from flows.collect import CollectParams, collect

    try:
        explicit = None
        if arch_file:
            with open(arch_file) as handle:
                explicit = [line.strip() for line in handle if line.strip()]
        params = CollectParams(
            tasks=_csv(tasks),
            space=space,
            n_archs=archs,
            archs=explicit,
            arch_seed=arch_seed,
            epochs=epochs,
            seeds=[int(s) for s in _csv(seeds)],
            size=json.loads(size),
            train=json.loads(train),
            samples_per_class=samples_per_class,
            landmarkers=not no_landmarkers,
            store=store,
            track=not no_track,
        )
        params.train_config()  # bad training overrides fail here, before any work
        if task_runner not in {"threads", "dask"}:
            raise ValueError(f"unknown task runner {task_runner!r}; expected 'threads' or 'dask'")
        from flows.common import open_store

        open_store(store)  # a store root that is a file fails here
    except (ValueError, ValidationError, OSError, json.JSONDecodeError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    summary = collect(params, task_runner=task_runner, max_workers=workers, address=address)  # type: ignore[arg-type]
    typer.echo(json.dumps({k: v for k, v in summary.items() if k != "failures"}, indent=2, default=str))
    if summary["failures"]:
        typer.echo(f"{len(summary['failures'])} run(s) failed:", err=True)
        for failure in summary["failures"]:
            typer.echo(f"  {failure['run_id']}: {failure['error']}", err=True)
