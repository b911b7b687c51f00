"""A one-shot job end to end, as ``nasmeta search oneshot`` runs it: search a supernet, look the found cell up in
the NB201 table where that applies, retrain it from scratch, write the outputs (architecture, trace, plots) and
export the retrained model.  The CLI only turns options into this call and prints the outcome."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nasmeta.data.types import TaskData
from nasmeta.search_result import SearchResult


@dataclass
class OneshotJob:
    result: SearchResult
    looked_up: tuple[str, float] | None = None
    retrained: Any = None  # nasmeta.retrain.Retrained
    files: Any = None  # nasmeta.export.ExportedFiles


def table_accuracy(space: str, task: Any, arch: Any) -> tuple[str, float] | None:
    """NB201 table accuracy (200-epoch test) of ``arch`` when the task is a CIFAR-10 / CIFAR-100 task and the table
    is in the data folder; None otherwise."""
    if space != "nb201":
        return None
    from nasmeta.config import DataNotFoundError
    from nasmeta.data.benchmarks import nb201_accuracy
    from nasmeta.data.tasks import get_task

    source = (get_task(task) if isinstance(task, str) else task).source
    dataset = "cifar10" if source.startswith("cifar10") else "cifar100" if source.startswith("cifar100") else None
    if dataset is None:
        return None
    try:
        return dataset, nb201_accuracy(arch, dataset, 200, "test")
    except DataNotFoundError:
        return None


def run_oneshot_job(
    method: str,
    space: str,
    task: Any,
    data: TaskData,
    epochs: int,
    *,
    batch_size: int = 64,
    seed: int = 0,
    supernet_size: dict[str, Any] | None = None,
    retrain_epochs: int = 0,
    retrain_size: dict[str, Any] | None = None,
    device: str = "auto",
    out: Path | None = None,
    **method_kwargs: Any,
) -> OneshotJob:
    """Search, look up, retrain (``retrain_epochs > 0``, network size ``retrain_size``, default the supernet's),
    and write the outputs to ``out`` (when given)."""
    from nasmeta.oneshot.api import oneshot_search
    from nasmeta.retrain import retrain, with_retrain

    size = dict(supernet_size or {})
    result = oneshot_search(
        method, space, data, epochs, batch_size, seed, supernet_size=size, device=device, **method_kwargs
    )
    job = OneshotJob(result, table_accuracy(space, task, result.best_arch))
    if retrain_epochs:
        job.retrained = retrain(result.best_arch, data, retrain_epochs, seed, **(retrain_size or size))
        job.result = with_retrain(result, job.retrained)
    if out is not None:
        job.files = write_outputs(out, job)
    return job


def write_outputs(out: Path, job: OneshotJob) -> Any:
    """``arch.json``, ``trace.json``, op-weight / curve / cell plots, and the exported retrained model."""
    from nasmeta.export import export_model
    from nasmeta.oneshot.plots import draw_cell, plot_op_weights, plot_search_curves

    result, retrained, looked_up = job.result, job.retrained, job.looked_up
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
    if retrained is None:
        return None
    return export_model(
        retrained.model,
        result.best_arch,
        out / "model.pt",
        num_classes=retrained.build["num_classes"],
        input_shape=tuple(retrained.build["input_shape"]),
        size=retrained.build["size"],
    )
