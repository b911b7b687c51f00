"""``nasmeta fewshot``: meta-train (MAML, MAML on a fixed cell, T-NAS) or search per episode (DARTS from scratch)
and report the mean meta-test accuracy over N-way K-shot episodes with a 95 % interval."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from flows.cli._app import app


@app.command("fewshot")
def fewshot(
    data: Annotated[str, typer.Option(help="Class pools: omniglot, mnist, cifar10.")] = "omniglot",
    ways: Annotated[int, typer.Option(help="N classes per episode.")] = 5,
    shots: Annotated[int, typer.Option(help="K support images per class.")] = 1,
    queries: Annotated[int, typer.Option(help="Query images per class.")] = 5,
    method: Annotated[str, typer.Option(help="maml | maml-cell | darts | tnas.")] = "maml",
    episodes: Annotated[int, typer.Option(help="Meta-test episodes.")] = 600,
    iterations: Annotated[int, typer.Option(help="Meta-training iterations (outer steps).")] = 300,
    meta_batch: Annotated[int, typer.Option(help="Tasks per outer step.")] = 4,
    image_size: Annotated[int, typer.Option(help="Side of the (square) input images.")] = 16,
    filters: Annotated[int, typer.Option(help="4-conv width.")] = 32,
    channels: Annotated[int, typer.Option("--C", help="Cell network / supernet channels.")] = 8,
    cells: Annotated[int, typer.Option(help="NB201: cells per stage; DARTS: cells.")] = 1,
    space: Annotated[str, typer.Option(help="Supernet cell space for darts/tnas: nb201 | darts.")] = "nb201",
    train_steps: Annotated[int, typer.Option(help="Inner steps at meta-training.")] = 1,
    test_steps: Annotated[int, typer.Option(help="Inner (target) steps at meta-test.")] = 3,
    first_order: Annotated[bool, typer.Option(help="First-order MAML (T-NAS is always first order).")] = False,
    retrain_cells: Annotated[int, typer.Option(help="T-NAS++: re-meta-train the cells of the first n episodes.")] = 0,
    seed: Annotated[int, typer.Option(help="Seed of episodes and initialisation.")] = 0,
    save: Annotated[Path | None, typer.Option(help="T-NAS: save the meta-architecture here.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the full result as JSON.")] = None,
    threads: Annotated[int, typer.Option(help="torch threads.")] = 1,
    mlflow: Annotated[
        bool, typer.Option("--mlflow/--no-mlflow", help="Log the run (and T-NAS model) to MLflow.")
    ] = False,
) -> None:
    """Few-shot accuracy (mean +- 95 % interval) on the meta-test classes."""
    import torch
    from pydantic import ValidationError
    from rich.console import Console

    from nasmeta.fewshot.benchmark import FewShotSetting, run_setting

    torch.set_num_threads(threads)
    console = Console()
    try:
        setting = FewShotSetting(
            data=data,
            ways=ways,
            shots=shots,
            queries=queries,
            method=method,
            episodes=episodes,
            iterations=iterations,
            meta_batch=meta_batch,
            image_size=image_size,
            filters=filters,
            C=channels,
            cells=cells,
            space=space,
            train_steps=train_steps,
            test_steps=test_steps,
            first_order=first_order,
            seed=seed,
        )
        result = run_setting(
            setting, log=console.print, save_dir=str(save) if save else None, retrain_cells=retrain_cells
        )
    except (ValidationError, ValueError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    console.print(
        f"{method} {data} {ways}-way {shots}-shot: {100 * result['acc']:.2f} +- {100 * result['ci95']:.2f} % "
        f"over {result['n_episodes']} meta-test episodes; {result['seconds_per_task']:.3f} s per adapted task"
    )
    if "supernet_acc" in result:
        m, h = result["supernet_acc"]
        console.print(
            f"  adapted mixed supernet: {100 * m:.2f} +- {100 * h:.2f} %; "
            f"{result['distinct_cells']} distinct decoded cells"
        )
        for d in result["decoded_first_episodes"]:
            console.print(f"  episode {d['episode']}: {d['cell']}")
    for r in result.get("retrained", []):
        m, h = r["all_episodes"]
        console.print(
            f"  T-NAS++ cell of episode {r['episode']} {r['cell']}: {100 * r['task_acc']:.2f} % on its task "
            f"(T-NAS {100 * r['tnas_task_acc']:.2f} %), {100 * m:.2f} +- {100 * h:.2f} % over all episodes"
        )
    if mlflow:
        _log_mlflow(setting, result, save)
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=1, default=str))


def _log_mlflow(setting, result: dict, save: Path | None) -> None:
    """One run in experiment ``fewshot``: the setting as params, accuracies and timings as metrics, the full result
    as ``fewshot.json``; a saved T-NAS meta-architecture as a logged model."""
    from nasmeta import tracking

    name = f"{setting.method}-{setting.data}-{setting.ways}w{setting.shots}s"
    with tracking.parent_run("fewshot", run_name=name, params=setting.model_dump()) as run:
        metrics = {k: result[k] for k in ("acc", "ci95", "seconds_per_task", "total_seconds") if k in result}
        if "meta_train_seconds" in result:
            metrics["meta_train_seconds"] = result["meta_train_seconds"]
        if "supernet_acc" in result:
            metrics["supernet_acc"], metrics["supernet_ci95"] = result["supernet_acc"]
        run.log_metrics(metrics)
        run.log_dict(json.loads(json.dumps(result, default=str)), "fewshot.json")
        if setting.method == "tnas" and save is not None:
            from nasmeta.transfer.tnas import TNAS

            tracking.log_model(TNAS.load(save), name=name, run=run, params={"ways": setting.ways})
