"""``nasmeta search oneshot``: DARTS (1st / 2nd order), ENAS, random one-shot, PC-DARTS, ProxylessNAS or GDAS on a task,
retrain the found architecture from scratch and export it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from flows.cli._app import search_app
from flows.cli._common import fail, parse_sizes


def _log(run: Any, job: Any) -> None:
    """The search's trace (per-epoch metrics), its result, and the plots / exported files written under ``--out``."""
    if run is None:
        return
    from flows.common import log_search_result

    for row in job.result.trace:
        metrics = {k: v for k, v in row.items() if isinstance(v, int | float) and k != "epoch"}
        run.log_metrics(metrics, step=int(row.get("epoch") or 0))
    log_search_result(run, job.result)
    if job.looked_up is not None:
        run.log_metrics({f"nb201_{job.looked_up[0]}_test_200ep": job.looked_up[1]})


def _print_trace(trace: list[dict[str, Any]], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    columns = [
        c
        for c in (
            "train_loss",
            "train_acc",
            "val_acc",
            "skip_share",
            "alpha_entropy",
            "entropy",
            "reward_mean",
            "hessian_eig",
        )
        if any(c in row for row in trace)
    ]
    table = Table(title=title, title_justify="left")
    table.add_column("epoch")
    for c in (*columns, "seconds"):
        table.add_column(c)
    for row in trace:
        cells = [f"{row[c]:.4g}" if isinstance(row.get(c), int | float) else "" for c in (*columns, "seconds")]
        table.add_row(str(row["epoch"]), *cells)
    Console().print(table)


@search_app.command("oneshot")
def oneshot(
    space: Annotated[str, typer.Option(help="nb201, darts or darts-s1..darts-s4.")] = "nb201",
    task: Annotated[str, typer.Option(help="Task (train split halved for the search), e.g. cifar10.")] = "digits",
    method: Annotated[
        str,
        typer.Option(
            help="darts, enas, random (random-sampling one-shot), pcdarts, proxyless, gdas, fairdarts, pdarts, "
            "darts-plus, robust-darts, darts-ada, asap, darts-pt or darts-pt-fixed."
        ),
    ] = "darts",
    epochs: Annotated[int, typer.Option(min=1, help="Search epochs.")] = 10,
    order: Annotated[int, typer.Option(min=1, max=2, help="DARTS order: 1 or 2 (unrolled).")] = 1,
    retrain_epochs: Annotated[int, typer.Option(min=0, help="Retrain the found architecture (0: skip).")] = 0,
    batch_size: Annotated[int, typer.Option(min=2, help="Search batch size (train and arch batches).")] = 64,
    seed: Annotated[int, typer.Option(help="Seed of the split, the init, the sampling and the retraining.")] = 0,
    size: Annotated[
        list[str] | None, typer.Option(help="Supernet size KEY=INT (NB201: C, N; DARTS: C, layers).")
    ] = None,
    retrain_size: Annotated[
        list[str] | None, typer.Option(help="Size KEY=INT of the retrained network (default: --size).")
    ] = None,
    samples_per_class: Annotated[
        int | None, typer.Option(min=2, help="Subsample the task's train split (CPU runs).")
    ] = None,
    resolution: Annotated[int | None, typer.Option(min=2, help="Resize the task's images (CPU runs).")] = None,
    candidates: Annotated[int, typer.Option(min=1, help="random: architectures ranked after training.")] = 100,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    objective: Annotated[
        str,
        typer.Option(
            help="Search objective: labels, or an UnNAS pretext task searched without labels (rotation, "
            "colorization, jigsaw); the found cell is still looked up / retrained on labels."
        ),
    ] = "labels",
    out: Annotated[
        Path | None, typer.Option(help="Folder for arch.json, trace.json, plots and the exported model.")
    ] = None,
    no_track: Annotated[bool, typer.Option("--no-track", help="Do not log to MLflow.")] = False,
) -> None:
    """One-shot search on a task: prints the per-epoch trace, the found cell, its NB201 table accuracy where the
    table applies, and the retrained accuracy.

    Example: nasmeta search oneshot --task digits --method darts --epochs 5 --size C=4 --size N=1
    """
    from flows.common import tracked_command
    from nasmeta.data.tasks import get_task
    from nasmeta.oneshot import strategy_names
    from nasmeta.oneshot.job import run_oneshot_job
    from nasmeta.spaces import get_space

    try:
        spec = get_task(task)
        if not get_space(space).has_supernet:
            raise ValueError(f"no one-shot supernet for space {space!r}")
    except ValueError as err:
        fail(str(err))
    if order == 2 and method != "darts":
        fail(f"--order 2 applies to darts only, not {method!r}")
    known = strategy_names(imported=False)
    if method not in known:
        fail(f"unknown method {method!r}; expected one of {', '.join(known)}")
    from nasmeta.oneshot.pretext import OBJECTIVES

    if objective not in OBJECTIVES:
        fail(f"unknown search objective {objective!r}; expected one of {', '.join(OBJECTIVES)}")
    kwargs: dict[str, Any] = {} if objective == "labels" else {"objective": objective}
    if method == "darts":
        kwargs["order"] = order
    elif method == "random":
        kwargs["n_candidates"] = candidates
    try:
        spec = get_task(task)
        changes = {k: v for k, v in (("samples_per_class", samples_per_class), ("resolution", resolution)) if v}
        data = (spec.with_(**changes) if changes else spec).load()
        tags = {"task": task, "space": space, "method": f"oneshot-{method}"}
        params = {"epochs": epochs, "seed": seed, "batch_size": batch_size, **parse_sizes(size), **kwargs}
        with tracked_command("nasmeta-search", f"oneshot/{task}/{space}/{method}", tags, params, not no_track) as run:
            job = run_oneshot_job(
                method,
                space,
                spec,
                data,
                epochs,
                batch_size=batch_size,
                seed=seed,
                supernet_size=parse_sizes(size),
                retrain_epochs=retrain_epochs,
                retrain_size=parse_sizes(retrain_size, "--retrain-size") or None,
                device=device,
                out=out,
                **kwargs,
            )
            _log(run, job)
    except (ValueError, RuntimeError) as err:
        fail(str(err))
    result = job.result
    label = f"{method}{'-2nd' if method == 'darts' and order == 2 else ''}"
    _print_trace(result.trace, f"{label} on {space} / {task}")
    typer.echo(f"found: {result.best_arch}")
    typer.echo(f"search: {result.extra['search_seconds']:.1f} s, supernet weights {result.extra['supernet_params']:,}")
    if job.looked_up is not None:
        typer.echo(f"NB201 table ({job.looked_up[0]}, 200 epochs, test): {job.looked_up[1]:.2f} %")
    if job.retrained is not None:
        typer.echo(
            f"retrained {retrain_epochs} epochs ({job.retrained.result.status}): val {result.best_val_acc:.2f} %, "
            f"test {result.best_test_acc:.2f} %"
        )
    if job.files is not None:
        files = job.files
        primary = files.program or files.torchscript
        note = f"program: {primary.name}" if primary else f"no program ({files.program_error})"
        typer.echo(f"exported {files.model.name} ({note})")
    if out is not None:
        typer.echo(f"wrote {out}")
