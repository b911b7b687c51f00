"""The one typed context every scheduler and stopper decides on: :class:`StopContext`.

The loop (:mod:`nasmeta.search.loop`) builds it after each reported epoch of a trial, from the trial itself and
from the trials that completed before it.  The same value serves a live search on real training, a search on a
table with simulated cost, and the replay of stored curves, because all three run through the same loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class StopContext:
    """What a scheduler knows when it decides on a trial after ``epoch`` epochs (accuracies in percent).

    ``completed_curves`` holds the full ``max_epochs``-epoch curves of the trials that completed so far (a
    read-only ``[k, max_epochs]`` array, ``k`` may be 0), aligned with ``completed_archs``; the best of them (by
    final validation accuracy) is ``best_so_far`` with its curve, architecture and sizes.
    """

    epoch: int
    max_epochs: int
    task_id: str | None = None
    run_id: str | None = None
    arch: Any = None
    n_params: int | None = None
    flops: int | None = None
    best_so_far: float | None = None
    best_curve: np.ndarray | None = None
    best_arch: Any = None
    best_n_params: int | None = None
    best_flops: int | None = None
    completed_curves: np.ndarray = field(default_factory=lambda: np.zeros((0, 1)))
    completed_archs: tuple[Any, ...] = ()


def stop_context(
    *,
    epoch: int,
    max_epochs: int,
    completed_curves: np.ndarray | Sequence[Sequence[float]] | None = None,
    completed_archs: Sequence[Any] | None = None,
    completed_finals: Sequence[float] | None = None,
    completed_sizes: Sequence[tuple[int | None, int | None]] | None = None,
    task_id: str | None = None,
    run_id: str | None = None,
    arch: Any = None,
    n_params: int | None = None,
    flops: int | None = None,
) -> StopContext:
    """Build and validate a :class:`StopContext`; the best run is the completed run with the highest final value
    (``completed_finals``, default: the last curve value); ``completed_sizes`` are (n_params, flops) per run."""
    if epoch < 1 or max_epochs < epoch:
        raise ValueError(f"need 1 <= epoch <= max_epochs, got epoch={epoch}, max_epochs={max_epochs}")
    curves = np.zeros((0, max_epochs)) if completed_curves is None else np.asarray(completed_curves, dtype=float)
    if curves.size == 0:
        curves = curves.reshape(0, max_epochs)
    if curves.ndim != 2 or curves.shape[1] != max_epochs:
        raise ValueError(f"completed_curves must have shape [k, {max_epochs}], got {curves.shape}")
    if curves.flags.writeable:  # schedulers see history through the context; they must not edit it
        curves = curves.copy()
        curves.setflags(write=False)
    archs = [None] * len(curves) if completed_archs is None else list(completed_archs)
    finals = curves[:, -1] if completed_finals is None else np.asarray(completed_finals, dtype=float)
    sizes = [(None, None)] * len(curves) if completed_sizes is None else list(completed_sizes)
    if not len(archs) == len(finals) == len(sizes) == len(curves):
        raise ValueError("completed_curves, completed_archs, completed_finals and completed_sizes must align")
    best = int(np.argmax(finals)) if len(finals) else None
    return StopContext(
        epoch=int(epoch),
        max_epochs=int(max_epochs),
        task_id=task_id,
        run_id=run_id,
        arch=arch,
        n_params=n_params,
        flops=flops,
        best_so_far=None if best is None else float(finals[best]),
        best_curve=None if best is None else curves[best],
        best_arch=None if best is None else archs[best],
        best_n_params=None if best is None else sizes[best][0],
        best_flops=None if best is None else sizes[best][1],
        completed_curves=curves,
        completed_archs=tuple(archs),
    )
