"""UnNAS on NAS-Bench-201: the cell a DARTS-family search finds on a pretext task (no labels) against the cell it
finds on the labels, under one budget, and how the pretext-trained supernet ranks cells against the label-trained one.

    NASMETA_DATA_DIR=../shared/data OMP_NUM_THREADS=1 python benchmarks/unnas_nb201.py --seeds 0 1 2 \\
        --objectives labels rotation1 jigsaw colorization --jsonl unnas.jsonl

Budget (that of ``benchmarks/oneshot_collapse.py --part nb201``): the CIFAR-10 subset (``--samples-per-class`` train
images per class, halved into weight / arch data), ``--resolution`` px, supernet ``C=8, N=1``, ``--epochs`` epochs,
batch 64, the loop's weight optimiser, the method's published architecture settings.  Objectives: ``labels``,
``rotation`` (all four rotations of every image: 4x the steps per epoch, the paper's protocol), ``rotation1`` (one
drawn rotation per image: the same steps as the label search), ``jigsaw`` (2x2, 24 permutations), ``colorization``.

Each run goes through the steps of :func:`nasmeta.oneshot.oneshot_search` (``search_setup``, the strategy,
``run_search``, ``finish``) so that the trained supernet stays at hand; it then evaluates ``--rank-archs`` NB201 cells
(drawn once with seed 12345, the same for every run) through the supernet's shared weights on the arch-validation
half of its own objective (pretext accuracy for a pretext supernet, label accuracy for the label supernet).  Output:
one JSON line per run (the found cell, its NB201 CIFAR-10 200-epoch test accuracy from the table, the per-cell
supernet accuracies), then a summary: table accuracy per objective (mean +- sd over seeds) and Kendall tau /
Spearman rho of each pretext supernet's ranking against the label supernet's of the same seed and against the table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

OBJECTIVES: dict[str, Any] = {
    "labels": "labels",
    "rotation": {"name": "rotation", "all_rotations": True},
    "rotation1": {"name": "rotation", "all_rotations": False},
    "jigsaw": {"name": "jigsaw", "grid": 2},
    "colorization": {"name": "colorization"},
}
RANK_SEED = 12345


def _emit(args: argparse.Namespace, row: dict[str, Any]) -> None:
    print(json.dumps({k: v for k, v in row.items() if k != "rank_accs"}), flush=True)
    if args.jsonl:
        with open(args.jsonl, "a") as f:
            f.write(json.dumps(row) + "\n")


def run_one(args: argparse.Namespace, task: Any, objective: str, seed: int, rank_archs: list[Any]) -> dict[str, Any]:
    from nasmeta.oneshot.api import strategy_names
    from nasmeta.oneshot.loop import evaluate_architecture, run_search, strategy_class
    from nasmeta.oneshot.pretext import search_setup
    from nasmeta.spaces import get_space

    strategy_names()  # registers every strategy
    start = time.perf_counter()
    torch.manual_seed(seed)
    size = {"C": args.C, "N": args.N}
    supernet, data, pretext = search_setup(OBJECTIVES[objective], get_space("nb201"), task, seed, 0.5, size)
    strategy = strategy_class(args.method)(supernet, data, args.batch_size, seed)
    trace, search_seconds = run_search(strategy, args.epochs)
    arch = strategy.finish()[0]
    rank_start = time.perf_counter()
    rank_accs = [evaluate_architecture(supernet, a, data.x_val, data.y_val)[1] for a in rank_archs]
    return {
        "objective": objective,
        "method": args.method,
        "seed": seed,
        "arch": str(arch),
        "search_seconds": round(search_seconds, 1),
        "rank_seconds": round(time.perf_counter() - rank_start, 1),
        "seconds": round(time.perf_counter() - start, 1),
        "final_val_acc": trace[-1]["val_acc"],
        "pretext": None if pretext is None else pretext.state(),
        "n_train": len(data.x_train),
        "rank_accs": rank_accs,
    }


def summary(rows: list[dict[str, Any]], table_accs: list[float]) -> None:
    from scipy.stats import kendalltau, spearmanr

    print("\nNB201 CIFAR-10 200-epoch test accuracy (table) of the found cell")
    by_obj: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_obj.setdefault(row["objective"], []).append(row)
    for obj, group in by_obj.items():
        accs = [r["nb201_c10_test"] for r in group]
        sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
        per = " ".join(f"{r['seed']}:{r['nb201_c10_test']:.2f}" for r in group)
        seconds = np.mean([r["seconds"] for r in group])
        print(f"{obj:<14}{statistics.mean(accs):7.2f} +- {sd:5.2f}   {per}   {seconds:.0f} s/run")
    print("\nRanking of the sampled cells by the supernet: Kendall tau / Spearman rho")
    labels = {r["seed"]: r for r in by_obj.get("labels", [])}
    for obj, group in by_obj.items():
        for r in group:
            vs_table = kendalltau(r["rank_accs"], table_accs)[0], spearmanr(r["rank_accs"], table_accs)[0]
            text = f"{obj:<14}seed {r['seed']}  vs table {vs_table[0]:+.3f} / {vs_table[1]:+.3f}"
            if obj != "labels" and r["seed"] in labels:
                other = labels[r["seed"]]["rank_accs"]
                text += f"   vs label supernet {kendalltau(r['rank_accs'], other)[0]:+.3f} / "
                text += f"{spearmanr(r['rank_accs'], other)[0]:+.3f}"
            print(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objectives", nargs="+", default=["labels", "rotation1", "jigsaw", "colorization"],
                        choices=sorted(OBJECTIVES))  # fmt: skip
    parser.add_argument("--method", default="darts")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--samples-per-class", type=int, default=200)
    parser.add_argument("--test-per-class", type=int, default=100)
    parser.add_argument("--resolution", type=int, default=16)
    parser.add_argument("--C", type=int, default=8)
    parser.add_argument("--N", type=int, default=1)
    parser.add_argument("--rank-archs", type=int, default=64)
    parser.add_argument("--jsonl", default=None, help="append one JSON line per run; runs already there are skipped")
    parser.add_argument("--summary-only", action="store_true", help="print the summary of --jsonl and stop")
    args = parser.parse_args()
    torch.set_num_threads(1)

    from nasmeta.data.benchmarks import TabularEvaluator
    from nasmeta.data.tasks import get_task
    from nasmeta.spaces import get_space

    table = TabularEvaluator("nb201", "cifar10", 200, val_at_200="test")
    rng = np.random.default_rng(RANK_SEED)
    space = get_space("nb201")
    rank_archs = [space.sample(rng) for _ in range(args.rank_archs)]
    table_accs = [table.evaluate(a).test_acc for a in rank_archs]
    done: list[dict[str, Any]] = []
    if args.jsonl and Path(args.jsonl).exists():
        done = [json.loads(line) for line in Path(args.jsonl).read_text().splitlines() if line.strip()]
    if not args.summary_only:
        spec = get_task("cifar10").with_(samples_per_class=args.samples_per_class, test_per_class=args.test_per_class)
        task = spec.with_(resolution=args.resolution).load()
        for objective in args.objectives:
            for seed in args.seeds:
                key = (objective, args.method, seed)
                if any((r["objective"], r["method"], r["seed"]) == key for r in done):
                    continue
                row = run_one(args, task, objective, seed, rank_archs)
                row["nb201_c10_test"] = table.evaluate(space.parse(row["arch"])).test_acc
                _emit(args, row)
                done.append(row)
    summary([r for r in done if r["method"] == args.method], table_accs)


if __name__ == "__main__":
    main()
