"""RapidNAS (MetaD2A) meta-trained on the shipped collection: generator quality, task encodings, save/load, and
transfer to the NAS-Bench-201 table with CIFAR-10 as the target.

    NASMETA_DATA_DIR=../shared/data OMP_NUM_THREADS=1 python benchmarks/rapidnas_report.py --out rapidnas.json

1. Fit ``RapidNAS`` (default config) on all 12 tasks of ``metadata_store/collections/nasmeta-meta-v1``.
2. Generator quality over ``--samples`` (1,000) decodes per task (the 12 sources and the CIFAR-10 target):
   validity, uniqueness, novelty (against the good cells the generator was trained on), also up to isomorphism.
3. Task encodings (the generator's posterior means): the Euclidean distance matrix between the tasks, each task's
   nearest neighbour, and the distance between two encodings of one task from different image draws (the noise
   floor of the distances).
4. Save / load: predictions on all 15,625 cells and proposals for CIFAR-10 compared bit for bit.
5. NB201 transfer: target = the registered ``cifar10`` task (the CIFAR-10 subset in the data folder, encoded from
   its training images; the model never saw CIFAR-10 as a whole nor any NB201 table entry).  For ``k`` = 1, 5, 10
   the top-``k`` generated cells by the meta-predictor are looked up in the NB201 table (``TabularEvaluator``:
   selection on the 12-epoch validation accuracy, reported 200-epoch test accuracy, NB201's protocol), beside
   random search, regularised evolution (population 10, tournament 3) and the collection's portfolio at the same
   number of lookups, over ``--seeds`` seeds; ``best-of-k test`` is the best 200-epoch test accuracy among the
   ``k`` looked-up cells (what MetaD2A reports), ``picked`` the test accuracy of the cell the 12-epoch validation
   picks.  Published MetaD2A: 94.37 (the table's optimum).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", default="metadata_store/collections/nasmeta-meta-v1")
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--ks", type=int, nargs="*", default=[1, 5, 10])
    parser.add_argument("--target", default="cifar10")
    parser.add_argument("--out", default=None)
    parser.add_argument("--save", default=None, help="folder to save the fitted component in")
    parser.add_argument("--load", default=None, help="a saved component to report on instead of fitting one")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from metadata_store import MetadataStore
    from nasmeta.blackbox import random_search, regularized_evolution
    from nasmeta.data.benchmarks import TabularEvaluator, nb201_table
    from nasmeta.data.tasks import get_task
    from nasmeta.search.loop import run_search
    from nasmeta.search.searchers import FixedOrderSearcher
    from nasmeta.spaces import get_space
    from nasmeta.transfer.portfolio import Portfolio
    from nasmeta.transfer.rapidnas import RapidNAS, rapidnas_search

    report: dict = {}
    meta = MetadataStore(args.store).meta()
    names = {r["task_id"]: r["name"] for r in meta.tasks.to_pylist()}
    start = time.perf_counter()
    model = RapidNAS.load(args.load) if args.load else RapidNAS().fit(meta)
    report["fit"] = {**model.fit_info, "wall_seconds": time.perf_counter() - start}
    if args.save:
        model.save(args.save)
    print("fit:", json.dumps(report["fit"]), flush=True)

    target = get_task(args.target)
    tasks = {names[t]: t for t in sorted(names, key=names.get)}

    # generator quality
    quality = {}
    for name, task in [*tasks.items(), (args.target, target)]:
        quality[name] = model.generation_quality(task, args.samples, seed=0)
    report["generation"] = quality
    print(
        f"\ngenerator quality over {args.samples} decodes per task (novelty vs {len(model.training_cells)} "
        "good training cells)"
    )
    print(f"{'task':30s} validity uniq  novel  uniq_iso novel_iso")
    for name, q in quality.items():
        print(
            f"{name:30s} {q['validity']:.3f}   {q['uniqueness']:.3f} {q['novelty']:.3f} {q['uniqueness_iso']:.3f}"
            f"    {q['novelty_iso']:.3f}"
        )
    sources = [quality[n] for n in tasks]
    print(
        "mean over sources:",
        {
            k: round(float(np.mean([q[k] for q in sources])), 4)
            for k in ("validity", "uniqueness", "novelty", "uniqueness_iso", "novelty_iso")
        },
    )

    # task encodings
    labels = [*tasks, args.target]
    short = [n.replace("meta-", "")[:12] for n in labels]
    report["encodings"] = {"labels": labels}
    for which in ("generator", "predictor"):
        z = np.stack([model.task_encoding(t, which) for t in [*tasks.values(), target]])
        distance = np.linalg.norm(z[:, None] - z[None], axis=2)
        encoder = model.generator.set_encoder if which == "generator" else model.predictor.set_encoder
        redraw = []
        for task, code in zip([*tasks.values(), target], z, strict=True):
            sets = model._bank(task).sample(model.config.n_per_class, np.random.default_rng(123))
            with torch.no_grad():
                other = encoder(sets)[: code.shape[0]].numpy()
            redraw.append(float(np.linalg.norm(other - code)))
        masked = distance + np.diag(np.full(len(labels), np.inf))
        nearest = {labels[i]: labels[int(np.argmin(masked[i]))] for i in range(len(labels))}
        report["encodings"][which] = {"distance": distance.tolist(), "nearest": nearest, "redraw": redraw}
        title = "posterior means" if which == "generator" else "dataset vectors"
        print(f"\ntask-encoding distances ({which}'s set encoder, {title}, dim {z.shape[1]})")
        print(" " * 14 + " ".join(f"{s:>6.6s}" for s in short))
        for i, s in enumerate(short):
            print(f"{s:14s}" + " ".join(f"{d:6.2f}" for d in distance[i]))
        offdiag = distance[~np.eye(len(labels), dtype=bool)]
        print(
            f"between tasks: min {offdiag.min():.3f} median {np.median(offdiag):.3f}; same task, another image "
            f"draw: mean {np.mean(redraw):.3f} max {np.max(redraw):.3f}"
        )
        for name, other in nearest.items():
            print(f"  nearest of {name}: {other}")

    # save / load
    space = get_space("nb201")
    every = list(space.enumerate())
    with tempfile.TemporaryDirectory() as folder:
        loaded = RapidNAS.load(model.save(Path(folder) / "rapidnas"))
        same_pred = bool(np.array_equal(loaded.predict(every, target), model.predict(every, target)))
        same_prop = loaded.propose(target, 10) == model.propose(target, 10)
    report["save_load"] = {"identical_predictions_15625": same_pred, "identical_proposals_10": same_prop}
    print("\nsave/load:", report["save_load"], flush=True)

    # NB201 transfer
    table = nb201_table()
    optimum = table.best("cifar10", 200, "test")
    evaluator = TabularEvaluator("nb201", "cifar10", val_at_200="val12")
    portfolio = Portfolio().fit(meta)
    rows = []
    for seed in range(args.seeds):
        cells, scores, info = model.candidates(target, max(args.ks), seed=seed)
        for k in args.ks:
            for method in ("rapidnas", "random", "rea", "portfolio"):
                if method == "rapidnas":
                    result = rapidnas_search(model, space, target, evaluator, n_evaluations=k, seed=seed)
                    extra = {
                        "candidate_seconds": result.extra["candidate_seconds"],
                        "valid": info["valid"],
                        "distinct": info["distinct"],
                    }
                elif method == "random":
                    result, extra = random_search(space, evaluator, k, seed=seed, distinct=True), {}
                elif method == "rea":
                    result, extra = regularized_evolution(space, evaluator, k, seed=seed), {}
                else:
                    if seed > 0:
                        continue  # deterministic
                    result = run_search(FixedOrderSearcher(portfolio.propose(None, k)), evaluator, k, seed=seed)
                    extra = {}
                tests = [e.test_acc for e in result.history if e.status == "completed"]
                rows.append(
                    {
                        "method": method,
                        "seed": seed,
                        "k": k,
                        "picked": result.best_test_acc,
                        "best_of_k": max(tests),
                        "lookups": len(tests),
                        **extra,
                    }
                )
    report["nb201"] = {"optimum": optimum, "published": 94.37, "rows": rows}
    print(
        f"\nNB201 CIFAR-10 (200-epoch test accuracy; table optimum {optimum:.2f}, MetaD2A published 94.37), "
        f"mean +- std over {args.seeds} seeds (portfolio: deterministic)"
    )
    print(f"{'method':10s} {'k':>3s}  {'best-of-k test':>16s}  {'picked (val12)':>16s}  lookups")
    for method in ("rapidnas", "random", "rea", "portfolio"):
        for k in args.ks:
            sel = [r for r in rows if r["method"] == method and r["k"] == k]
            b = np.array([r["best_of_k"] for r in sel])
            p = np.array([r["picked"] for r in sel])
            print(
                f"{method:10s} {k:3d}  {b.mean():7.2f} +- {b.std():5.2f}  {p.mean():7.2f} +- {p.std():5.2f}  "
                f"{sel[0]['lookups']}"
            )
    secs = [r["candidate_seconds"] for r in rows if r["method"] == "rapidnas"]
    print(
        f"seconds to produce and rank the candidates ({model.config.n_candidates} samples, CPU, 1 thread): "
        f"mean {np.mean(secs):.2f}, max {np.max(secs):.2f}"
    )
    top = model.propose(target, 10)
    report["top10"] = [{"arch": str(a), "test200": table.accuracy(a, "cifar10", 200, "test")} for a in top]
    for row in report["top10"]:
        print(f"  {row['test200']:6.2f}  {row['arch']}")
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
