"""Bring the NAS-Bench-201 and NAS-Bench-Macro tables (and external curve files) into the metadata store.

Both benchmarks land in the same tables as real training runs, with their origin recorded:

- **NAS-Bench-201** (Dong & Yang 2020): tasks ``nb201:cifar10``, ``nb201:cifar100``, ``nb201:imagenet16-120``
  (source the same string); one run per (task, architecture) and fidelity, seed ``-1`` (the table holds means
  over the benchmark's seeds), ``config_hash`` ``nb201-200ep`` (``final_test_acc`` = 200-epoch test accuracy,
  ``final_val_acc`` null: the table has no 200-epoch validation accuracy) or ``nb201-12ep`` (validation and test
  accuracy of the 12-epoch schedule; for cifar10 that is NB201's ``cifar10-valid`` setting, trained on half the
  training set).  The ``config`` column names the source columns.
- **NAS-Bench-Macro** (Su et al. 2021): task ``macro:cifar10``; one run per architecture and benchmark training
  run, seeds ``0, 1, 2`` = the table's three runs, ``config_hash`` ``macro-50ep`` (the best test accuracy over 50
  epochs, which is what the benchmark recorded), ``final_val_acc`` null (no validation split).  Params and FLOPs
  come from the table (FLOPs = 2 x its multiply-accumulates, the convention of ``torch.utils.flop_counter``).

Architectures get ``arch_id`` from ``nasmeta.spaces.get_space(space).arch_id``, which identifies isomorphic
encodings.  Deviation from a row-per-cell copy: NB201 trained isomorphic cells separately, so a group of
isomorphic cells (15,625 cells, 6,466 architectures) becomes one run whose accuracy is the group mean, as with
seeds; its ``arch_str`` is the group's first cell in NB201 index order.  NAS-Bench-Macro already gives every
encoding of one network the same numbers (3,969 networks among 6,561 encodings), so nothing is averaged there.

Imports are idempotent: runs, tasks and architectures already in the store are skipped, so a second import
writes nothing.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from metadata_store import TABLES, MetadataStore, import_curves, read_curve_file, run_id
from nasmeta.data import benchmarks
from nasmeta.spaces import Architecture, get_space

NB201_CONFIGS = {"nb201-200ep": 200, "nb201-12ep": 12}
MACRO_CONFIG = "macro-50ep"


def architecture_row(
    arch: Architecture, n_params: int | None = None, flops: int | None = None, arch_id: str | None = None
) -> dict[str, Any]:
    """The ``architectures`` row of ``arch`` (``encoding`` is the JSON of ``arch.encoding``); pass ``arch_id``
    when it is already known, to skip recomputing it."""
    return {
        "arch_id": arch_id or arch.arch_id,
        "space": arch.space,
        "encoding": json.dumps(arch.to_json()["encoding"]),
        "arch_str": str(arch),
        "n_params": n_params,
        "flops": flops,
    }


def architecture_from_row(row: dict[str, Any]) -> Architecture:
    """Rebuild (and validate) the architecture of an ``architectures`` row."""
    return Architecture.from_json({"space": row["space"], "encoding": json.loads(row["encoding"])})


def training_rows(
    task_id: str, arch: Architecture, seed: int, result: Any, mlflow_run_id: str | None = None, config: Any = None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(``runs`` row, ``curves`` rows) of one ``nasmeta.training.TrainResult`` of ``arch`` on ``task_id``.

    The run id uses ``result.config_hash``, the same hash a collection computes up front to skip finished runs.
    ``config`` (a mapping or pydantic model) is stored as JSON beside the hash.  Curve rows keep the columns
    of the ``curves`` table (epoch, losses, accuracies, seconds); other keys are left out.
    """
    if not result.config_hash:
        raise ValueError("the training result carries no config_hash; cannot key its run")
    rid = run_id(task_id, arch.arch_id, int(seed), result.config_hash)
    if config is not None and hasattr(config, "model_dump"):
        config = config.model_dump(mode="json")
    run = {
        "run_id": rid,
        "task_id": task_id,
        "arch_id": arch.arch_id,
        "seed": int(seed),
        "config_hash": result.config_hash,
        "status": result.status,
        "final_val_acc": _finite(result.final_val_acc),
        "final_test_acc": _finite(result.final_test_acc),
        "epochs_done": int(result.epochs_done),
        "seconds": float(result.seconds),
        "n_params": int(result.n_params),
        "flops": int(result.flops),
        "device": str(result.device),
        "error": result.error,
        "config": None if config is None else json.dumps(config, sort_keys=True, default=str),
        "mlflow_run_id": mlflow_run_id,
    }
    # the curve schema's metrics only: an extra diagnostic a trainer may add must not lose a finished run
    keep = set(TABLES["curves"].schema.names) - {"run_id", "task_id", "schema_version", "created_at"}
    curves = [
        {"run_id": rid, "task_id": task_id, **{k: v for k, v in row.items() if k in keep}} for row in result.curve
    ]
    return run, curves


def _finite(value: float) -> float | None:
    return float(value) if value is not None and np.isfinite(value) else None


def _write_new(store: MetadataStore, table: str, key: str, rows: list[dict[str, Any]]) -> int:
    """Append the rows whose key the store does not hold yet."""
    if not rows:
        return 0
    known = set(store.read(table, columns=[key], **{key: [r[key] for r in rows]})[key].to_pylist())
    return store.append(table, [r for r in rows if r[key] not in known])


def _write_runs(store: MetadataStore, rows: list[dict[str, Any]]) -> int:
    done = store.completed_run_ids(task_id=sorted({r["task_id"] for r in rows}))
    return store.append("runs", [r for r in rows if r["run_id"] not in done])


@functools.lru_cache(maxsize=4)
def _groups(space_name: str, arch_strs: tuple[str, ...]) -> tuple[list[str], np.ndarray, list[dict[str, Any]]]:
    """(arch ids in first-seen order, group number of every table row, architecture rows) of a table's
    architectures; cached because parsing and hashing thousands of strings dominates a re-import."""
    space = get_space(space_name)
    ids: dict[str, int] = {}
    group = np.empty(len(arch_strs), dtype=np.int64)
    rows = []
    for i, text in enumerate(arch_strs):
        arch = space.parse(text)
        arch_id = space.arch_id(arch)
        if arch_id not in ids:
            ids[arch_id] = len(ids)
            rows.append(architecture_row(arch, arch_id=arch_id))
        group[i] = ids[arch_id]
    return list(ids), group, rows


def _group_means(values: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    return np.bincount(group, weights=values, minlength=n_groups) / np.bincount(group, minlength=n_groups)


def _run_rows(task_id: str, arch_ids: list[str], seed: int, config_hash: str, **columns: Any) -> list[dict[str, Any]]:
    """One completed run per architecture; ``columns`` are per-architecture arrays (or ``None``) or constants."""
    rows = []
    for i, arch_id in enumerate(arch_ids):
        row = {
            "run_id": run_id(task_id, arch_id, seed, config_hash),
            "task_id": task_id,
            "arch_id": arch_id,
            "seed": seed,
            "config_hash": config_hash,
            "status": "completed",
        }
        for name, value in columns.items():
            row[name] = value[i].item() if isinstance(value, np.ndarray) else value
        rows.append(row)
    return rows


def import_nb201(store: MetadataStore) -> dict[str, int]:
    """Import NAS-Bench-201 (from ``NASMETA_DATA_DIR``); returns rows written per table."""
    table = benchmarks.nb201_table()
    arch_ids, group, archs = _groups("nb201", tuple(table.arch_strs))
    tasks, runs = [], []
    for dataset in benchmarks.NB201_DATASETS:
        task_id = f"nb201:{dataset}"
        channels, height, width = benchmarks.INPUT_SHAPE[dataset]
        tasks.append(
            {
                "task_id": task_id,
                "name": dataset,
                "source": task_id,
                "n_classes": benchmarks.NUM_CLASSES[dataset],
                "n_train": benchmarks.N_TRAIN[dataset],
                "channels": channels,
                "height": height,
                "width": width,
                "spec": json.dumps({"benchmark": "NAS-Bench-201", "dataset": dataset, "file": benchmarks.NB201_FILE}),
            }
        )
        for config_hash, epochs in NB201_CONFIGS.items():
            columns = {split: benchmarks.NB201_COLUMNS.get((dataset, epochs, split)) for split in ("val", "test")}
            config = {"benchmark": "NAS-Bench-201", "epochs": epochs, "columns": columns, "seeds": "mean"}
            val, test = (
                None if c is None else _group_means(table.columns[c], group, len(arch_ids))
                for c in (columns["val"], columns["test"])
            )
            runs += _run_rows(
                task_id,
                arch_ids,
                -1,
                config_hash,
                final_val_acc=val,
                final_test_acc=test,
                epochs_done=epochs,
                config=json.dumps(config, sort_keys=True),
            )
    return {
        "tasks": _write_new(store, "tasks", "task_id", tasks),
        "architectures": _write_new(store, "architectures", "arch_id", archs),
        "runs": _write_runs(store, runs),
    }


def import_macro(store: MetadataStore) -> dict[str, int]:
    """Import NAS-Bench-Macro (from ``NASMETA_DATA_DIR``); returns rows written per table."""
    table = benchmarks.macro_table()
    keys = tuple(table.entries)
    arch_ids, group, archs = _groups("macro", keys)
    n = len(arch_ids)
    _, first = np.unique(group, return_index=True)  # each architecture's first encoding in file order
    params = np.array([table.entries[keys[i]].params for i in first], dtype=np.int64)
    flops = 2 * np.array([table.entries[keys[i]].flops for i in first], dtype=np.int64)
    archs = [{**row, "n_params": int(p), "flops": int(f)} for row, p, f in zip(archs, params, flops, strict=True)]
    task_id = "macro:cifar10"
    channels, height, width = benchmarks.INPUT_SHAPE["cifar10"]
    task = {
        "task_id": task_id,
        "name": "cifar10",
        "source": task_id,
        "n_classes": 10,
        "n_train": benchmarks.N_TRAIN["cifar10"],
        "channels": channels,
        "height": height,
        "width": width,
        "spec": json.dumps({"benchmark": "NAS-Bench-Macro", "dataset": "cifar10", "file": benchmarks.MACRO_FILE}),
    }
    config = json.dumps({"benchmark": "NAS-Bench-Macro", "epochs": benchmarks.MACRO_EPOCHS, "metric": "best test acc"})
    accuracies = np.array([table.entries[k].test_acc for k in keys])  # (encodings, training runs)
    runs = []
    for seed in range(accuracies.shape[1]):
        runs += _run_rows(
            task_id,
            arch_ids,
            seed,
            MACRO_CONFIG,
            final_test_acc=_group_means(accuracies[:, seed], group, n),
            epochs_done=benchmarks.MACRO_EPOCHS,
            n_params=params,
            flops=flops,
            config=config,
        )
    return {
        "tasks": _write_new(store, "tasks", "task_id", [task]),
        "architectures": _write_new(store, "architectures", "arch_id", archs),
        "runs": _write_runs(store, runs),
    }


def import_curve_file(store: MetadataStore, path: str | os.PathLike) -> dict[str, int]:
    """Import a learning-curve file in the format of :mod:`metadata_store.external` (README, "Importing
    learning curves").

    Rows that name ``space`` and ``arch_str`` get their architecture parsed by that space, so its
    ``architectures`` row carries the ``encoding`` that components need.  Without an ``arch_id`` column the id is
    the space's canonical ``arch_id``; with one, the file's id is kept (it may be another collection's) and must
    name one architecture.  A string the space cannot parse raises ``ValueError`` naming the row.
    """
    data = read_curve_file(path)
    names = data.column_names
    if "arch_id" not in names:
        missing = [c for c in ("space", "arch_str") if c not in names]
        if missing:
            raise ValueError(f"curve file {str(path)!r} has no 'arch_id' column, so it needs {missing} to compute it")
    archs: dict[tuple[str, str], Architecture] = {}
    rows: dict[str, dict[str, Any]] = {}
    canonical: dict[str, Architecture] = {}
    if "space" in names and "arch_str" in names:
        given = data["arch_id"].to_pylist() if "arch_id" in names else None
        ids = []
        for i, pair in enumerate(zip(data["space"].to_pylist(), data["arch_str"].to_pylist(), strict=True)):
            if pair[0] is None or pair[1] is None:
                if given is None:
                    raise ValueError(f"row {i + 1} of curve file {str(path)!r}: empty space or arch_str and no arch_id")
                ids.append(given[i])
                continue
            if pair not in archs:
                try:
                    archs[pair] = get_space(pair[0]).parse(pair[1])
                except ValueError as error:
                    raise ValueError(f"row {i + 1} of curve file {str(path)!r}: {error}") from error
            arch = archs[pair]
            arch_id = given[i] if given is not None and given[i] is not None else arch.arch_id
            if arch_id not in rows:
                rows[arch_id] = architecture_row(arch, arch_id=arch_id)  # the first of isomorphic encodings
                canonical[arch_id] = arch
            elif canonical[arch_id].arch_id != arch.arch_id:  # isomorphic encodings are one architecture
                raise ValueError(
                    f"row {i + 1} of curve file {str(path)!r}: arch_id {arch_id!r} names two architectures "
                    f"({str(canonical[arch_id])!r} and {str(arch)!r})"
                )
            ids.append(arch_id)
        if given is None:
            data = data.append_column("arch_id", pa.array(ids, pa.string()))
    return import_curves(store, data, source_name=Path(path).name, architectures=list(rows.values()))
