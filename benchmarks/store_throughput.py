"""Write learning-curve rows in batches and read a filtered slice back: the metadata store vs a naive baseline.

Store: ``MetadataStore.append("curves", batch)`` per batch (one new file each, written to a temporary name,
fsynced and renamed), then ``read("curves", task_id=t, run_id=[...])`` with the filters pushed down to the
Parquet scan and de-duplication by key; the read is timed before and after ``compact()``.

Baseline: the naive approach of keeping one Parquet file and, per batch, reading it with pandas, concatenating
the batch and writing it back (no fsync, no de-duplication: favourable to the baseline); the read loads the
whole file with pandas and filters it with a boolean mask.

Both sides get the same pre-built batches (building them is not timed).  Printed ratios are **time ratios**
``store seconds / baseline seconds``: below 1 means the store is faster.

    python benchmarks/store_throughput.py                 # 1,000,000 rows in batches of 10,000
    python benchmarks/store_throughput.py --rows 50000    # a quick run
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from metadata_store import MetadataStore


def make_batches(rows: int, batch: int, epochs: int, tasks: int, seed: int = 0) -> list[pa.Table]:
    """Curves of ``rows // epochs`` runs spread over ``tasks`` tasks, cut into batches of ``batch`` rows."""
    rng = np.random.default_rng(seed)
    n_runs = max(1, rows // epochs)
    run = np.repeat(np.arange(n_runs), epochs)[:rows]
    epoch = np.tile(np.arange(1, epochs + 1), n_runs)[:rows].astype(np.int32)
    table = pa.table(
        {
            "run_id": pa.array([f"run{r:08d}" for r in run]),
            "task_id": pa.array([f"task{r % tasks:03d}" for r in run]),
            "epoch": epoch,
            "train_loss": rng.random(rows),
            "val_acc": 100 * rng.random(rows),
            "val_loss": rng.random(rows),
            "test_acc": 100 * rng.random(rows),
            "seconds": epoch * 1.5,
        }
    )
    return [table.slice(start, batch) for start in range(0, rows, batch)]


def time_store(root: Path, batches: list[pa.Table], task: str, run_ids: list[str]) -> dict[str, float]:
    store = MetadataStore(root)
    start = time.perf_counter()
    for batch in batches:
        store.append("curves", batch)
    write = time.perf_counter() - start
    start = time.perf_counter()
    got = store.read("curves", task_id=task, run_id=run_ids)
    read = time.perf_counter() - start
    start = time.perf_counter()
    store.compact("curves")
    compact = time.perf_counter() - start
    start = time.perf_counter()
    got_compacted = store.read("curves", task_id=task, run_id=run_ids)
    read_compacted = time.perf_counter() - start
    if got.num_rows != got_compacted.num_rows:
        raise AssertionError("compaction changed the answer")
    return {"write": write, "read": read, "compact": compact, "read_compacted": read_compacted, "rows": got.num_rows}


def time_baseline(root: Path, frames: list[pd.DataFrame], task: str, run_ids: list[str]) -> dict[str, float]:
    path = root / "curves.parquet"
    root.mkdir(parents=True)
    start = time.perf_counter()
    for frame in frames:
        if path.exists():
            frame = pd.concat([pd.read_parquet(path), frame], ignore_index=True)
        frame.to_parquet(path, index=False)
    write = time.perf_counter() - start
    start = time.perf_counter()
    data = pd.read_parquet(path)
    got = data[(data["task_id"] == task) & data["run_id"].isin(run_ids)]
    read = time.perf_counter() - start
    return {"write": write, "read": read, "rows": len(got)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="curve rows to write")
    parser.add_argument("--batch", type=int, default=10_000, help="rows per append")
    parser.add_argument("--epochs", type=int, default=50, help="epochs per run (rows per run)")
    parser.add_argument("--tasks", type=int, default=10, help="tasks the runs are spread over")
    parser.add_argument("--select", type=int, default=100, help="run ids in the read filter")
    args = parser.parse_args()
    if min(args.rows, args.batch, args.epochs, args.tasks, args.select) < 1:
        parser.error("all sizes must be positive")

    batches = make_batches(args.rows, args.batch, args.epochs, args.tasks)
    frames = [b.to_pandas() for b in batches]
    task = "task001" if args.tasks > 1 else "task000"
    all_runs = sorted(
        {
            r
            for b in batches
            for r, t in zip(b["run_id"].to_pylist(), b["task_id"].to_pylist(), strict=True)
            if t == task
        }
    )
    run_ids = all_runs[:: max(1, len(all_runs) // args.select)][: args.select]

    folder = Path(tempfile.mkdtemp(prefix="store_throughput_"))
    try:
        store = time_store(folder / "store", batches, task, run_ids)
        baseline = time_baseline(folder / "baseline", frames, task, run_ids)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if store["rows"] != baseline["rows"]:
        raise AssertionError(f"store read {store['rows']} rows, baseline {baseline['rows']}")

    print(f"{args.rows:,} rows in {len(batches)} batches of {args.batch:,}; read: 1 task, {len(run_ids)} runs "
          f"({store['rows']:,} rows)")  # fmt: skip
    print(f"store    write {store['write']:.2f} s ({args.rows / store['write']:,.0f} rows/s), "
          f"read {store['read'] * 1e3:.1f} ms, compact {store['compact']:.2f} s, "
          f"read after compact {store['read_compacted'] * 1e3:.1f} ms")  # fmt: skip
    print(f"baseline write {baseline['write']:.2f} s ({args.rows / baseline['write']:,.0f} rows/s), "
          f"read {baseline['read'] * 1e3:.1f} ms")  # fmt: skip
    print("ratios are time ratios store/baseline (< 1: the store is faster)")
    print(f"write ratio={store['write'] / baseline['write']:.3f}")
    print(f"read (uncompacted, {len(batches)} files) ratio={store['read'] / baseline['read']:.3f}")
    print(f"read ratio={store['read_compacted'] / baseline['read']:.3f}")


if __name__ == "__main__":
    main()
