"""XferNAS vs NAO from scratch vs regularised evolution vs random search, leave-one-dataset-out on NAS-Bench-201.

    NASMETA_DATA_DIR=../shared/data OMP_NUM_THREADS=1 python benchmarks/xfernas_nb201.py          # 10 seeds
    ... --seeds 2 --held-out cifar10 --n-source 500                                                 # quicker

For each held-out dataset (cifar10, cifar100, imagenet16-120):

- **Universal part**: ``--n-source`` cells drawn (seeded, without replacement, independently per dataset) for each
  of the two other datasets, labelled with their 200-epoch test accuracy (known knowledge on a source), one
  XferNAS universal model fitted on them (seed 0, once per fold; its fit seconds are printed).
- **Searches** on the held-out dataset through ``TabularEvaluator("nb201", dataset)``, ``max(--ks)`` evaluations
  each, seeds ``0..--seeds-1``: ``xfernas`` (g_u's top cells first, then NAO rounds with g_u + r_t), ``nao``
  (NAO from scratch: 10 random cells, rounds of 10), ``re`` (regularised evolution, NB201's REA settings:
  population 10, tournament 3), ``random``.  Each search selects on the 12-epoch validation accuracy and is scored
  by the 200-epoch test accuracy (NB201's protocol, no test leak).  ``regret@k`` = the table's best 200-epoch test
  accuracy minus the test accuracy of the best-by-validation cell among the first ``k`` evaluations.
- **Decoder quality** of the universal model on ``--quality-cells`` held-out cells (not among its training cells):
  token / whole-cell reconstruction accuracy and the share of valid decodes; plus the share of valid decodes
  during the searches.
- **Predictor Kendall tau** on ``--quality-cells`` held-out target cells against the target's 200-epoch test
  accuracy (and its 12-epoch validation accuracy, the search signal): ``g_u`` alone, then ``g_u + r_t`` with the
  residual fitted (exactly as in the search) on ``n`` random target cells (n = each of ``--ks``) labelled with
  their 12-epoch validation accuracy; with the percentile-scale squared error of both on the held-out cells.

Tables: per held-out dataset, each method's mean regret with a 95 % Student-t interval over the seeds
(``nasmeta.evaluation.intervals``, seeds as the unit within one dataset), and the mean over the three datasets
with its interval over datasets (the unit of a LODO comparison).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

DATASETS = ("cifar10", "cifar100", "imagenet16-120")
METHODS = ("xfernas", "nao", "re", "random")


def sample_cells(dataset: str, n: int, seed: int, exclude: set[int] | None = None) -> np.ndarray:
    """``n`` NB201 table rows drawn without replacement (seeded per dataset), avoiding ``exclude``."""
    from nasmeta.spaces.base import stable_hash

    rng = np.random.default_rng([int(seed), int(stable_hash(dataset, length=8), 16)])
    rows = np.arange(15_625) if not exclude else np.array(sorted(set(range(15_625)) - exclude))
    return np.sort(rng.choice(rows, size=n, replace=False))


def regrets(history: list[Any], best: float, ks: list[int]) -> dict[str, float]:
    out = {}
    for k in ks:
        first = [e for e in history[:k] if e.status == "completed"]
        pick = max(first, key=lambda e: e.val_acc)  # earliest on ties
        out[f"regret@{k}"] = best - pick.test_acc
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--ks", type=int, nargs="+", default=[25, 50, 100])
    parser.add_argument("--n-source", type=int, default=2000, help="cells per source dataset for g_u")
    parser.add_argument("--quality-cells", type=int, default=2000, help="held-out cells for decoder quality / tau")
    parser.add_argument("--held-out", nargs="*", default=list(DATASETS))
    parser.add_argument("--methods", nargs="*", default=list(METHODS))
    parser.add_argument("--out", default=None, help="write the per-seed rows to this CSV")
    args = parser.parse_args()

    import pandas as pd
    import torch

    from nasmeta.blackbox.nao import NAOSearcher, percentile_labels, predict, reconstruct
    from nasmeta.data.benchmarks import TabularEvaluator, nb201_best_accuracy, nb201_column, nb201_table
    from nasmeta.evaluation.intervals import interval_markdown, interval_table
    from nasmeta.evaluation.metrics import rank_correlations
    from nasmeta.search.loop import run_search
    from nasmeta.search.searchers import EvolutionSearcher, RandomSearcher
    from nasmeta.spaces import get_space
    from nasmeta.transfer.xfernas import XferNAS

    torch.set_num_threads(1)
    space = get_space("nb201")
    table = nb201_table()
    cells = list(space.enumerate())
    ks = sorted(set(args.ks))
    n_trials = max(ks)
    rows: list[dict[str, Any]] = []
    quality: list[dict[str, Any]] = []
    started = time.perf_counter()
    for held_out in args.held_out:
        sources = [d for d in DATASETS if d != held_out]
        data, used = {}, set()
        for d in sources:
            picked = sample_cells(d, args.n_source, seed=0)
            used |= set(int(i) for i in picked)
            column = table.columns[nb201_column(d, 200, "test")]
            data[d] = ([cells[i] for i in picked], [float(column[i]) for i in picked])
        start = time.perf_counter()
        xfernas = XferNAS().fit_tasks(data)
        fit_seconds = time.perf_counter() - start

        # decoder quality and predictor tau on held-out cells of the target (none among g_u's training cells)
        test_col = table.columns[nb201_column(held_out, 200, "test")]
        val_col = table.columns[nb201_column(held_out, 12, "val")]
        q_rows = sample_cells(held_out, args.quality_cells, seed=1, exclude=used)
        q_archs = [cells[i] for i in q_rows]
        rec = reconstruct(xfernas.model, space, q_archs)
        g_u = xfernas.predict(q_archs)
        q_test, q_val = test_col[q_rows], val_col[q_rows]
        q_label = percentile_labels(q_val)
        entry = {
            "held_out": held_out,
            "fit_seconds": fit_seconds,
            "n_source_cells": sum(len(a) for a, _ in data.values()),
            **rec,
            "tau_test g_u": rank_correlations(g_u, q_test)["kendall_tau"],
            "tau_val12 g_u": rank_correlations(g_u, q_val)["kendall_tau"],
            "mse g_u": float(np.mean((g_u - q_label) ** 2)),
        }
        exclude = used | set(int(i) for i in q_rows)
        for n in ks:
            fit_rows = sample_cells(held_out, n, seed=2, exclude=exclude)
            searcher = xfernas.searcher(0)
            evaluator = TabularEvaluator("nb201", held_out)
            searcher.fit([evaluator.evaluate(cells[i]) for i in fit_rows])
            after = predict(searcher.model, space, q_archs)
            entry[f"tau_test +r({n})"] = rank_correlations(after, q_test)["kendall_tau"]
            entry[f"tau_val12 +r({n})"] = rank_correlations(after, q_val)["kendall_tau"]
            entry[f"mse +r({n})"] = float(np.mean((after - q_label) ** 2))
        quality.append(entry)

        best = nb201_best_accuracy(held_out)
        evaluator = TabularEvaluator("nb201", held_out)
        for seed in range(args.seeds):
            for method in args.methods:
                if method == "xfernas":
                    searcher = xfernas.searcher(seed)
                elif method == "nao":
                    searcher = NAOSearcher(space, seed)
                elif method == "re":
                    searcher = EvolutionSearcher(space, seed, population_size=10, sample_size=3)
                elif method == "random":
                    searcher = RandomSearcher(space, seed)
                else:
                    raise ValueError(f"unknown method {method!r}; known: {', '.join(METHODS)}")
                start = time.perf_counter()
                result = run_search(searcher, evaluator, n_trials, seed=seed, method=method)
                row = {
                    "task_id": held_out,
                    "method": method,
                    "seed": seed,
                    "seconds": time.perf_counter() - start,
                    **regrets(result.history, best, ks),
                }
                if isinstance(searcher, NAOSearcher):
                    row["valid_share"] = searcher.valid_share
                    row["refits"] = searcher.stats["refits"]
                    row["random_fallback"] = searcher.stats["random_fallback"]
                    if method == "xfernas":
                        after = predict(searcher.model, space, q_archs)
                        row["tau_test_after_search"] = rank_correlations(after, q_test)["kendall_tau"]
                rows.append(row)
            print(f"[{time.perf_counter() - started:.0f}s] {held_out} seed {seed} done", flush=True)

    frame = pd.DataFrame(rows)
    if args.out:
        frame.to_csv(args.out, index=False)
    metrics = [f"regret@{k}" for k in ks]
    print(
        f"\nNB201 LODO, {args.seeds} seeds, {args.n_source} cells per source dataset for g_u "
        f"(200-epoch test accuracy), regret in points of 200-epoch test accuracy (selection: 12-epoch val)\n"
    )
    for held_out in args.held_out:
        part = frame[frame["task_id"] == held_out].assign(task_id=lambda f: f["seed"].astype(str))
        print(f"### held out: {held_out} (95 % interval over seeds)\n")
        print(interval_markdown(interval_table(part, metrics), metrics).replace("| tasks |", "| seeds |"))
    if len(args.held_out) > 1:
        print("### mean over held-out datasets (95 % interval over datasets)\n")
        print(interval_markdown(interval_table(frame, metrics), metrics))
    extra = frame.groupby("method", sort=False)[["seconds"]].mean()
    for column in ("valid_share", "refits", "random_fallback", "tau_test_after_search"):
        if column in frame:
            extra[column] = frame.groupby("method", sort=False)[column].mean()
    print("per-search means:\n" + extra.to_string(float_format=lambda v: f"{v:.3f}") + "\n")
    print("universal part: decoder quality and Kendall tau on held-out target cells\n")
    print(pd.DataFrame(quality).set_index("held_out").T.to_string(float_format=lambda v: f"{v:.3f}"))
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
