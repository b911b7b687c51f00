"""XferNAS against NAO from scratch and random search, leave-one-task-out over a collection with real training:
every proposed cell (inside the collection's pool or not) is trained on the held-out task with the collection's
recipe, as ``nasmeta pipeline`` trains its target's searches.

    PYTHONPATH=. NASMETA_DATA_DIR=../shared/data OMP_NUM_THREADS=1 python benchmarks/xfernas_collection_train.py
    ... --evaluations 10 --seeds 0 --tasks meta-digits-noisy meta-mnist-16-blur --out rows.csv

For each held-out task the XferNAS component is fitted on the other tasks' stored runs only (``meta.without``);
the search methods run through the one registry (``transfer-xfernas``, ``blackbox-nao``, ``blackbox-rs``) with
the collection's training recipe (batch size, learning rate, epochs, network size, all images) and
``--evaluations`` trained cells each.  Yardstick: the held-out task's stored cells (its lowest-seed runs, the
pool of ``benchmarks/xfernas_collection.py``), which no method sees; ``regret_val`` = the pool's best validation
accuracy minus the pick's, so a method that finds a cell better than every stored one has a negative regret.
Means over tasks with a 95 % Student-t interval over tasks; per-task wins of XferNAS.
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--collection", default="nasmeta-meta-v1", help="a shipped collection")
    parser.add_argument("--evaluations", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--methods", nargs="+", default=["transfer-xfernas", "blackbox-nao", "blackbox-rs"])
    parser.add_argument("--tasks", nargs="*", default=None, help="held-out task names (default: every task)")
    parser.add_argument("--out", default=None, help="write the per-(task, method, seed) rows to this CSV")
    args = parser.parse_args()

    import pandas as pd
    import torch

    from flows.collect_params import CollectParams
    from flows.pipeline import _with_collection_recipe
    from metadata_store import MetadataStore
    from metadata_store.dataset import MetaDataset, lowest_seed_view
    from metadata_store.snapshots import snapshot_path
    from nasmeta.budget import resolve_budget
    from nasmeta.data.tasks import get_task
    from nasmeta.evaluation.intervals import interval_markdown, interval_table, wins_markdown, wins_table
    from nasmeta.search.target import SearchContext, run_method

    torch.set_num_threads(1)
    plan = {**CollectParams.from_collection(args.collection).model_dump(), "collection": args.collection}
    budget = _with_collection_recipe(resolve_budget("default"), plan, "nb201")
    budget = budget.model_copy(update={"evaluations": args.evaluations})
    meta = MetaDataset.from_store(MetadataStore(str(snapshot_path(args.collection))))
    runs = [r for r in lowest_seed_view(meta).runs.to_pylist() if r["status"] == "completed"]
    names = args.tasks or list(plan["tasks"])
    rows = []
    start = time.perf_counter()
    for name in names:
        spec = get_task(name)
        pool = [r for r in runs if r["task_id"] == spec.task_id and r["final_val_acc"] is not None]
        if not pool:
            raise ValueError(f"the collection holds no runs of task {name!r}")
        best_val = max(r["final_val_acc"] for r in pool)
        best_test = max(r["final_test_acc"] for r in pool)
        train = meta.without(spec.task_id)
        fitted: dict[str, object] = {}
        for seed in args.seeds:
            for method in args.methods:
                ctx = SearchContext("nb201", spec, budget, seed=seed, meta=train)
                ctx._cache.update(fitted)  # one XferNAS fit per held-out task, shared by its seeds
                t0 = time.perf_counter()
                result = run_method(method, ctx)
                fitted.update({k: v for k, v in ctx._cache.items() if k.startswith("component:")})
                pool_ids = {r["arch_id"] for r in pool}
                trained = {e.arch.arch_id for e in result.history if e.arch is not None}
                rows.append(
                    {
                        "task": name,
                        "task_id": spec.task_id,
                        "method": method,
                        "seed": seed,
                        "status": "completed",
                        "pick": str(result.best_arch),
                        "val": result.best_val_acc,
                        "test": result.best_test_acc,
                        "regret_val": best_val - result.best_val_acc,
                        "regret_test": best_test - result.best_test_acc,
                        "pool_best_val": best_val,
                        "new_cells": len(trained - pool_ids),
                        "seconds": time.perf_counter() - t0,
                    }
                )
                print(
                    f"{name} {method} seed {seed}: val {result.best_val_acc:.2f} (pool best {best_val:.2f}) test "
                    f"{result.best_test_acc:.2f}, {rows[-1]['new_cells']} cells outside the pool, "
                    f"{rows[-1]['seconds']:.0f} s",
                    flush=True,
                )
                if args.out:
                    pd.DataFrame(rows).to_csv(args.out, index=False)
    frame = pd.DataFrame(rows)
    metrics = ["regret_val", "regret_test", "seconds"]
    print(f"\n### {frame['task'].nunique()} held-out tasks, seeds {args.seeds}, {args.evaluations} trained cells\n")
    print(interval_markdown(interval_table(frame, metrics), metrics))
    if "transfer-xfernas" in args.methods:
        pairs = [("transfer-xfernas", m) for m in args.methods if m != "transfer-xfernas"]
        print(wins_markdown(wins_table(frame, "regret_val", pairs)))
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
