"""Stored training runs as plain in-memory values for replay and for fitting curve-based methods.

A :class:`ReplayRun` is one completed run of the metadata store: its per-epoch validation curve, the seconds
each epoch took, and its final accuracies.  :func:`runs_from_meta` builds them from a
``metadata_store.MetaDataset`` view (``runs`` joined with ``curves`` and ``architectures``); units follow the
store (accuracy in percent; the store's ``curves.seconds`` is cumulative, here it is per epoch).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nasmeta.spaces.base import Architecture


def _frozen_array(values: Any, what: str, run_id: str) -> np.ndarray:
    array = np.array(values, dtype=float)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"run {run_id!r}: {what} must be a non-empty 1-D array, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"run {run_id!r}: {what} has missing or non-finite values")
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class ReplayRun:
    """One completed run: ``curve[t-1]`` is the validation accuracy after ``t`` epochs, ``epoch_seconds[t-1]``
    the wall-clock seconds of epoch ``t``."""

    run_id: str
    task_id: str
    arch_id: str
    curve: np.ndarray
    epoch_seconds: np.ndarray
    final_val_acc: float
    final_test_acc: float | None = None
    arch: Architecture | None = None
    n_params: int | None = None
    flops: int | None = None
    _cum_seconds: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        curve = _frozen_array(self.curve, "curve", self.run_id)
        seconds = _frozen_array(self.epoch_seconds, "epoch_seconds", self.run_id)
        if seconds.shape != curve.shape:
            raise ValueError(
                f"run {self.run_id!r}: epoch_seconds has {seconds.size} entries for a {curve.size}-epoch curve"
            )
        if np.any(seconds < 0):
            raise ValueError(f"run {self.run_id!r}: epoch_seconds must be >= 0")
        if not np.isfinite(self.final_val_acc):
            raise ValueError(f"run {self.run_id!r}: final_val_acc must be finite, got {self.final_val_acc!r}")
        object.__setattr__(self, "curve", curve)
        object.__setattr__(self, "epoch_seconds", seconds)
        cum = np.concatenate([[0.0], np.cumsum(seconds)])
        cum.setflags(write=False)
        object.__setattr__(self, "_cum_seconds", cum)

    @property
    def max_epochs(self) -> int:
        return int(self.curve.size)

    def seconds_until(self, epochs: int) -> float:
        """Seconds spent training this run for its first ``epochs`` epochs."""
        if not 0 <= epochs <= self.max_epochs:
            raise ValueError(f"run {self.run_id!r}: epochs must lie in [0, {self.max_epochs}], got {epochs}")
        return float(self._cum_seconds[epochs])


def group_by_task(runs: Iterable[ReplayRun]) -> dict[str, list[ReplayRun]]:
    """``{task_id: runs}`` with tasks and runs sorted by id (a deterministic order)."""
    groups: dict[str, list[ReplayRun]] = {}
    for run in runs:
        groups.setdefault(run.task_id, []).append(run)
    return {task: sorted(groups[task], key=lambda r: r.run_id) for task in sorted(groups)}


def parse_architecture(space: str | None, encoding: str | None) -> Architecture | None:
    """The architecture stored as (space, encoding JSON); None when the store lacks it."""
    if space is None or encoding is None:
        return None
    return Architecture.from_json({"space": space, "encoding": json.loads(encoding)})


def runs_from_meta(meta: Any, metric: str = "val_acc", parse_archs: bool = True) -> list[ReplayRun]:
    """The completed runs of a ``MetaDataset`` view that have a curve, sorted by run id.

    Epochs must be 1..T without gaps; per-epoch seconds come from the cumulative ``curves.seconds`` (or, where
    that column is empty for a run, ``runs.seconds`` spread evenly over its epochs).  A run without any
    timing raises ``ValueError`` naming it.  ``final_val_acc`` falls back to the curve's last value."""
    runs = meta.runs_with_archs(status="completed").to_pylist()
    curves = meta.curves_by_run(metric, status="completed")
    epochs = meta.curves_by_run("epoch", status="completed")
    seconds = meta.curves_by_run("seconds", status="completed")
    out = []
    for row in runs:
        rid = row["run_id"]
        if rid not in curves:
            continue
        expected = np.arange(1, len(epochs[rid]) + 1)
        if not np.array_equal(epochs[rid], expected):
            raise ValueError(f"run {rid!r}: curve epochs must be 1..T without gaps, got {epochs[rid].tolist()}")
        cumulative = seconds[rid]
        if np.all(np.isfinite(cumulative)):
            per_epoch = np.diff(np.concatenate([[0.0], cumulative]))
        elif row["seconds"] is not None:
            per_epoch = np.full(len(cumulative), row["seconds"] / len(cumulative))
        else:
            raise ValueError(f"run {rid!r} has no timing (curves.seconds and runs.seconds are empty)")
        curve = curves[rid]
        final_val = row["final_val_acc"]
        n_params = row["n_params"] if row["n_params"] is not None else row.get("arch_n_params")
        flops = row["flops"] if row["flops"] is not None else row.get("arch_flops")
        out.append(
            ReplayRun(
                run_id=rid,
                task_id=row["task_id"],
                arch_id=row["arch_id"],
                curve=curve,
                epoch_seconds=per_epoch,
                final_val_acc=float(curve[-1] if final_val is None else final_val),
                final_test_acc=row["final_test_acc"],
                arch=parse_architecture(row["space"], row["encoding"]) if parse_archs else None,
                n_params=n_params,
                flops=flops,
            )
        )
    return out


def check_task_runs(runs: Sequence[ReplayRun], task_id: str | None = None) -> int:
    """Validate one task's runs for replay and return their common number of epochs."""
    label = task_id if task_id is not None else "the dataset"
    if len(runs) == 0:
        raise ValueError(f"empty dataset: {label} has no completed runs with curves")
    tasks = sorted({r.task_id for r in runs})
    if len(tasks) != 1 or (task_id is not None and tasks[0] != task_id):
        raise ValueError(f"replay needs the runs of exactly one task ({label}), got tasks {tasks}")
    lengths = sorted({r.max_epochs for r in runs})
    if len(lengths) != 1:
        raise ValueError(f"task {tasks[0]!r}: runs have different numbers of epochs {lengths}; replay needs one")
    ids = [r.run_id for r in runs]
    if len(set(ids)) != len(ids):
        raise ValueError(f"task {tasks[0]!r}: duplicate run ids")
    return lengths[0]
