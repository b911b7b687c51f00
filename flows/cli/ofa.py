"""``nasmeta ofa train`` (progressive shrinking, resumable) and ``nasmeta ofa deploy`` (latency table, accuracy
predictor, evolutionary search under latency / FLOPs targets, export of each winner without retraining)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from flows.cli._app import app
from flows.cli._common import fail

ofa_app = typer.Typer(help="Once-for-All: progressive shrinking and deployment search.", no_args_is_help=True)
app.add_typer(ofa_app, name="ofa")

_PHASES = ("largest", "kernel", "depth", "expand")


def _four(text: str, option: str, kind: type) -> list[Any]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if len(parts) == 1:
        parts = parts * 4
    if len(parts) != 4:
        fail(f"{option} takes one value or four (largest, kernel, depth, expand), got {text!r}")
    try:
        return [kind(p) for p in parts]
    except ValueError:
        fail(f"{option} {text!r}: values must be of type {kind.__name__}")


@ofa_app.command("train")
def train(
    space: Annotated[
        str, typer.Option(help="OFA space: ofa (paper MobileNetV3 sizes) or ofa-small (CPU).")
    ] = "ofa-small",
    task: Annotated[str, typer.Option(help="Registered task.")] = "cifar10",
    samples_per_class: Annotated[int | None, typer.Option(min=2, help="Images per class (default: all).")] = None,
    epochs: Annotated[str, typer.Option(help="Epochs per phase: one value or four.")] = "180,120,120,120",
    lr: Annotated[str, typer.Option(help="Peak learning rate per phase: one value or four.")] = "2.6,0.96,0.24,0.24",
    subnets: Annotated[str, typer.Option(help="Sub-networks per step per phase: one value or four.")] = "1,1,2,4",
    batch_size: Annotated[int, typer.Option(min=2)] = 2048,
    kd_ratio: Annotated[float, typer.Option(min=0.0, help="Weight of the distillation loss.")] = 1.0,
    fixed_resolution_largest: Annotated[
        bool, typer.Option(help="Train the largest network at the maximum resolution (elastic from the kernel phase).")
    ] = False,
    seed: Annotated[int, typer.Option()] = 0,
    threads: Annotated[int | None, typer.Option(min=1, help="torch threads.")] = None,
    checkpoint_dir: Annotated[Path | None, typer.Option(help="Where phase checkpoints go (rerun to resume).")] = None,
    no_track: Annotated[bool, typer.Option("--no-track", help="Do not log to MLflow.")] = False,
) -> None:
    """Progressive shrinking: largest network, then elastic kernel, depth, expansion (distilled from the largest).

    Example: nasmeta ofa train --task cifar10 --samples-per-class 200 --epochs 10,5,5,5 --lr 0.1,0.03,0.03,0.03
    --batch-size 128 --threads 1 --checkpoint-dir ofa-ckpt --no-track
    """
    from flows.ofa import ofa_train

    counts, rates, per_step = _four(epochs, "--epochs", int), _four(lr, "--lr", float), _four(subnets, "--subnets", int)
    config: dict[str, Any] = {
        phase: {"epochs": e, "lr": r, "subnets_per_step": s}
        for phase, e, r, s in zip(_PHASES, counts, rates, per_step, strict=True)
    }
    config.update(batch_size=batch_size, kd_ratio=kd_ratio, seed=seed, num_threads=threads)
    config["largest_elastic_resolution"] = not fixed_resolution_largest
    try:
        out = ofa_train(
            space=space,
            task_name=task,
            samples_per_class=samples_per_class,
            config=config,
            checkpoint_dir=str(checkpoint_dir) if checkpoint_dir else None,
            track=not no_track,
        )
    except ValueError as err:
        fail(str(err))
    typer.echo(f"skipped (already finished): {', '.join(out['skipped']) or 'none'}; ran: {', '.join(out['ran'])}")
    for phase, metrics in out["metrics"].items():
        typer.echo(
            f"  {phase:8s} loss {metrics['train_loss']:.3f}  val acc largest {metrics['val_acc_largest']:.2f}  "
            f"smallest {metrics['val_acc_smallest']:.2f}  {metrics['seconds']:.0f} s"
        )
    typer.echo(f"final checkpoint: {out['final_checkpoint']}")


@ofa_app.command("deploy")
def deploy(
    checkpoint: Annotated[Path, typer.Argument(help="The final (expand) checkpoint of `nasmeta ofa train`.")],
    task: Annotated[str, typer.Option(help="The task the network was trained on.")] = "cifar10",
    samples_per_class: Annotated[int | None, typer.Option(min=2, help="As given to `ofa train`.")] = None,
    latency_ms: Annotated[list[float] | None, typer.Option(help="Latency target in ms (repeat).")] = None,
    flops: Annotated[list[float] | None, typer.Option(help="FLOPs target (repeat).")] = None,
    predictor_samples: Annotated[int, typer.Option(min=2, help="Sub-networks evaluated to fit the predictor.")] = 60,
    predictor: Annotated[str, typer.Option(help="Accuracy predictor: ridge or mlp.")] = "ridge",
    generations: Annotated[int, typer.Option(min=1)] = 30,
    population: Annotated[int, typer.Option(min=2)] = 100,
    device: Annotated[str, typer.Option(help="cpu or cuda: where latency is measured.")] = "cpu",
    out: Annotated[Path | None, typer.Option(help="Directory for the exported winners.")] = None,
    store: Annotated[str | None, typer.Option(help="Metadata store root.")] = None,
    json_out: Annotated[Path | None, typer.Option(help="Write the full summary here.")] = None,
    seed: Annotated[int, typer.Option()] = 0,
    no_track: Annotated[bool, typer.Option("--no-track", help="Do not log to MLflow.")] = False,
) -> None:
    """Deployment search on a shrunk OFA network; winners are exported with the shrunk weights (no retraining).

    Example: nasmeta ofa deploy ofa-ckpt/4-expand.pt --task cifar10 --samples-per-class 200 --latency-ms 2.5 --no-track
    """
    from flows.ofa import ofa_deploy

    if not checkpoint.exists():
        fail(f"checkpoint {str(checkpoint)!r} does not exist")
    try:
        summary = ofa_deploy(
            checkpoint=str(checkpoint),
            task_name=task,
            samples_per_class=samples_per_class,
            latency_targets_ms=latency_ms,
            flops_targets=flops,
            predictor_samples=predictor_samples,
            predictor_kind=predictor,
            generations=generations,
            population_size=population,
            out_dir=str(out) if out else None,
            store=store,
            device=device,
            seed=seed,
            track=not no_track,
        )
    except ValueError as err:
        fail(str(err))
    if json_out is not None:
        json_out.write_text(json.dumps(summary, indent=2))
    for row in summary["winners"]:
        typer.echo(
            f"{row['target']}: {row['arch']}  measured {row['measured_latency_ms']:.2f} ms "
            f"(predicted {row['predicted_latency_ms']:.2f})  test acc {row['test_acc']:.2f}  -> {row['export']}"
        )
