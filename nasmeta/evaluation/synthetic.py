"""A seeded synthetic meta-dataset for tests and demonstrations of the replay (no training).

Each task has an accuracy level and spread; each run's final validation accuracy is
``level + spread * q(arch) + noise``, where ``q`` is a fixed random linear function of the NB201 one-hot
features (shared by all tasks, so what is learnt on some tasks transfers); its curve approaches the final value
exponentially with a run-specific rate (fast and slow learners cross, so early ranks are imperfect), plus
per-epoch noise; an epoch takes longer the more convolutions the cell has.  Everything follows from ``seed``.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from metadata_store import MetaDataset, config_hash, run_id


def synthetic_tables(
    n_tasks: int = 3, n_runs: int = 30, epochs: int = 20, seed: int = 0, space: str = "nb201"
) -> dict[str, list[dict[str, Any]]]:
    """Rows for the ``tasks``, ``architectures``, ``runs`` and ``curves`` tables (store units: percent,
    cumulative seconds)."""
    from nasmeta.spaces import get_space

    for label, value, low in (("n_tasks", n_tasks, 1), ("n_runs", n_runs, 1), ("epochs", epochs, 3)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{label} must be an integer >= {low}, got {value!r}")
    rng = np.random.default_rng(seed)
    sp = get_space(space)
    archs: dict[str, Any] = {}
    while len(archs) < n_runs:
        arch = sp.sample(rng)
        archs.setdefault(arch.arch_id, arch)
    arch_list = [archs[k] for k in sorted(archs)]
    feats = np.stack([sp.features(a) for a in arch_list]).astype(float)
    weights = rng.normal(size=feats.shape[1])
    quality = feats @ weights
    quality = (quality - quality.mean()) / (quality.std() + 1e-12)
    conv = np.array([sum("conv" in str(tok) for tok in a.encoding) for a in arch_list], dtype=float)
    cfg = config_hash({"synthetic": True, "epochs": epochs})
    tables: dict[str, list[dict[str, Any]]] = {"tasks": [], "architectures": [], "runs": [], "curves": []}
    for a in arch_list:
        tables["architectures"].append(
            {"arch_id": a.arch_id, "space": space, "encoding": json.dumps(a.to_json()["encoding"]), "arch_str": str(a)}
        )
    t = np.arange(1, epochs + 1, dtype=float)
    for k in range(n_tasks):
        task_id = f"syn-{k}"
        level, spread = rng.uniform(60.0, 85.0), rng.uniform(3.0, 8.0)
        tables["tasks"].append({"task_id": task_id, "name": task_id, "source": "synthetic"})
        for j, a in enumerate(arch_list):
            final = float(np.clip(level + spread * quality[j] + rng.normal(0.0, 1.0), 1.0, 99.0))
            start = rng.uniform(10.0, 30.0)
            rate = rng.uniform(0.08, 0.5)
            curve = final - (final - start) * np.exp(-rate * (t - 1))
            curve = np.clip(curve + rng.normal(0.0, 0.3, size=epochs), 0.0, 100.0)
            per_epoch = (5.0 + 3.0 * conv[j]) * rng.uniform(0.9, 1.1, size=epochs)
            rid = run_id(task_id, a.arch_id, 0, cfg)
            tables["runs"].append(
                {
                    "run_id": rid,
                    "task_id": task_id,
                    "arch_id": a.arch_id,
                    "seed": 0,
                    "config_hash": cfg,
                    "status": "completed",
                    "final_val_acc": float(curve[-1]),
                    "final_test_acc": float(curve[-1] + rng.normal(0.0, 0.5)),
                    "epochs_done": epochs,
                    "seconds": float(per_epoch.sum()),
                }
            )
            cumulative = np.cumsum(per_epoch)
            for e in range(epochs):
                tables["curves"].append(
                    {
                        "run_id": rid,
                        "task_id": task_id,
                        "epoch": e + 1,
                        "val_acc": float(curve[e]),
                        "seconds": float(cumulative[e]),
                    }
                )
    return tables


def synthetic_meta(
    n_tasks: int = 3, n_runs: int = 30, epochs: int = 20, seed: int = 0, space: str = "nb201"
) -> MetaDataset:
    """The synthetic tables as an in-memory ``MetaDataset``."""
    return MetaDataset.from_tables(**synthetic_tables(n_tasks, n_runs, epochs, seed, space))
