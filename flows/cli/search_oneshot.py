"""``nasmeta search oneshot``: DARTS (1st / 2nd order), ENAS, random one-shot, PC-DARTS, ProxylessNAS or GDAS on a task,
retrain the found architecture from scratch and export it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from flows.cli._app import search_app
from flows.cli.proxies import parse_sizes
from flows.cli.space import fail


def _table_accuracy(space: str, task_name: str, arch: Any) -> tuple[str, float] | None:
    """NB201 table accuracy (200-epoch test) of ``arch`` when the task is a CIFAR-10 task and the table exists."""
    if space != "nb201":
        return None
    from nasmeta.config import DataNotFoundError
    from nasmeta.data.benchmarks import nb201_accuracy
    from nasmeta.data.tasks import get_task

    source = get_task(task_name).source
    dataset = "cifar10" if source.startswith("cifar10") else "cifar100" if source.startswith("cifar100") else None
    if dataset is None:
        return None
    try:
        return dataset, nb201_accuracy(arch, dataset, 200, "test")
    except DataNotFoundError:
        return None


def _print_trace(trace: list[dict[str, Any]], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    columns = [
        c
        for c in ("train_loss", "train_acc", "val_acc", "skip_share", "alpha_entropy", "entropy", "reward_mean")
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
    task: Annotated[str, typer.Option(help="Registered task (its train split is halved for the search).")] = "cifar10",
    method: Annotated[
        str, typer.Option(help="darts, enas, random (random-sampling one-shot), pcdarts, proxyless or gdas.")
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
    out: Annotated[
        Path | None, typer.Option(help="Folder for arch.json, trace.json, plots and the exported model.")
    ] = None,
) -> None:
    """One-shot search on a task: prints the per-epoch trace, the found cell, its NB201 table accuracy where the
    table applies, and the retrained accuracy."""
    from nasmeta.data.tasks import get_task
    from nasmeta.oneshot import METHODS, oneshot_search, retrain, with_retrain

    if method not in METHODS:
        fail(f"unknown method {method!r}; expected one of {', '.join(sorted(METHODS))}")
    if order == 2 and method != "darts":
        fail(f"--order 2 applies to darts only, not {method!r}")
    kwargs: dict[str, Any] = {}
    if method == "darts":
        kwargs["order"] = order
    elif method == "random":
        kwargs["n_candidates"] = candidates
    try:
        spec = get_task(task)
        changes = {k: v for k, v in (("samples_per_class", samples_per_class), ("resolution", resolution)) if v}
        data = (spec.with_(**changes) if changes else spec).load()
        sizes = parse_sizes(size)
        result = oneshot_search(
            method, space, data, epochs, batch_size, seed, supernet_size=sizes, device=device, **kwargs
        )
    except ValueError as err:
        fail(str(err))
    label = f"{method}{'-2nd' if method == 'darts' and order == 2 else ''}"
    _print_trace(result.trace, f"{label} on {space} / {task}")
    typer.echo(f"found: {result.best_arch}")
    typer.echo(f"search: {result.cost_seconds:.1f} s, supernet weights {result.extra['supernet_params']:,}")
    looked_up = _table_accuracy(space, task, result.best_arch)
    if looked_up is not None:
        typer.echo(f"NB201 table ({looked_up[0]}, 200 epochs, test): {looked_up[1]:.2f} %")
    retrained = None
    if retrain_epochs:
        build = parse_sizes(retrain_size) if retrain_size else dict(sizes)
        try:
            retrained = retrain(result.best_arch, data, retrain_epochs, seed, **build)
        except ValueError as err:
            fail(str(err))
        result = with_retrain(result, retrained)
        typer.echo(
            f"retrained {retrain_epochs} epochs ({retrained.result.status}): val {result.best_val_acc:.2f} %, "
            f"test {result.best_test_acc:.2f} %"
        )
    if out is not None:
        _write_outputs(out, result, retrained, looked_up)
        typer.echo(f"wrote {out}")


def _write_outputs(out: Path, result: Any, retrained: Any, looked_up: tuple[str, float] | None) -> None:
    from nasmeta.oneshot.export import export_model
    from nasmeta.oneshot.plots import draw_cell, plot_op_weights, plot_search_curves

    out.mkdir(parents=True, exist_ok=True)
    arch_doc: dict[str, Any] = {"arch": result.best_arch.to_json(), "method": result.method}
    if looked_up is not None:
        arch_doc["nb201_table"] = {"dataset": looked_up[0], "test_acc_200ep": looked_up[1]}
    if retrained is not None:
        arch_doc.update(retrained.build)
        arch_doc["retrained"] = {"val_acc": result.best_val_acc, "test_acc": result.best_test_acc}
    (out / "arch.json").write_text(json.dumps(arch_doc, indent=2))
    (out / "trace.json").write_text(json.dumps(result.trace, indent=2))
    if any("op_weights" in row for row in result.trace):
        plot_op_weights(result.trace, out / "op_weights.png", title=f"{result.method}: op weights per epoch")
    plot_search_curves(result.trace, out / "curves.png", title=result.method)
    draw_cell(result.best_arch, out / "cell.png")
    if retrained is not None:
        files = export_model(
            retrained.model,
            result.best_arch,
            out / "model.pt",
            num_classes=retrained.build["num_classes"],
            input_shape=tuple(retrained.build["input_shape"]),
            size=retrained.build["size"],
        )
        note = (
            f"TorchScript: {files.torchscript.name}"
            if files.torchscript
            else f"no TorchScript ({files.torchscript_error})"
        )
        typer.echo(f"exported {files.model.name} ({note})")
