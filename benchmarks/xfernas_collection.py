"""XferNAS and NAO against random search, regularised evolution and the portfolio, leave-one-task-out over a
collection's stored cells at equal evaluations (``nasmeta.evaluation.pool_lodo``).

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/xfernas_collection.py                  # nasmeta-meta-v1, 5 seeds
    ... --seeds 2 --tasks <task ids>                                                         # quicker

For each held-out task the pool is its stored cells (128 NB201 cells per task in ``nasmeta-meta-v1``, trained
for real when the collection was made); every method is built from the other tasks only.  ``xfernas``: the
universal part fitted on the other tasks' runs (final validation accuracy, percentile ranks per task), the 5
pool cells it ranks highest first, then NAO rounds of 5 with ``g_u + r_t``; ``nao``: NAO from scratch, 5 random
pool cells then rounds of 5.  A decoded cell that is not in the pool is replaced by the nearest pool cell not yet
evaluated (token Hamming distance): the collection holds results for its pool cells only, and training new cells
is not part of this replay.  ``regret_val@k`` / ``regret_test@k``: the pool's best validation (test) accuracy
minus that of the best-by-validation cell among the first ``k`` evaluations, in points; means over tasks with a
95 % Student-t interval over tasks (``nasmeta.evaluation.intervals``), seeds averaged within a task first.
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--collection", default="nasmeta-meta-v1", help="a shipped collection or a store root")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--ks", type=int, nargs="+", default=[5, 10, 20])
    parser.add_argument("--methods", nargs="*", default=["random", "re", "portfolio", "nao", "xfernas"])
    parser.add_argument("--tasks", nargs="*", default=None)
    parser.add_argument("--out", default=None, help="write the per-seed rows to this CSV")
    args = parser.parse_args()

    import pandas as pd
    import torch

    from metadata_store import MetadataStore
    from metadata_store.dataset import MetaDataset
    from metadata_store.snapshots import list_snapshots, snapshot_path
    from nasmeta.evaluation.intervals import interval_markdown, interval_table, wins_markdown, wins_table
    from nasmeta.evaluation.pool_lodo import pool_lodo

    torch.set_num_threads(1)
    root = str(snapshot_path(args.collection)) if args.collection in list_snapshots() else args.collection
    meta = MetaDataset.from_store(MetadataStore(root))
    start = time.perf_counter()
    rows = pool_lodo(meta, args.methods, seeds=range(args.seeds), ks=args.ks, tasks=args.tasks, errors="raise")
    seconds = time.perf_counter() - start
    frame = pd.DataFrame(rows)
    if args.out:
        frame.to_csv(args.out, index=False)
    n_tasks = frame["task_id"].nunique()
    for split in ("val", "test"):
        metrics = [f"regret_{split}@{k}" for k in sorted(set(args.ks))]
        print(f"\n### {args.collection}: {n_tasks} held-out tasks, {args.seeds} seeds, regret ({split} accuracy)\n")
        print(interval_markdown(interval_table(frame, metrics), metrics))
    k = max(args.ks)
    pairs = [("xfernas", m) for m in args.methods if m != "xfernas"] if "xfernas" in args.methods else []
    if pairs:
        print(f"per-task wins of xfernas (regret_val@{k}, seed means):\n")
        print(wins_markdown(wins_table(frame, f"regret_val@{k}", pairs)))
    fit = frame.groupby("method", sort=False)["fit_seconds"].mean()
    print("fit seconds per fold: " + ", ".join(f"{m} {s:.2f}" for m, s in fit.items()))
    print(f"total {seconds:.0f} s")


if __name__ == "__main__":
    main()
