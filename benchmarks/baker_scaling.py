"""Cost of fitting Baker et al.'s sequential regression models as the training collection grows, with and without
the scaling options (``max_runs`` subsample, ``retune_every`` grid-search reuse), and what they cost in accuracy.

    python benchmarks/baker_scaling.py                               # synthetic: 4 datasets x 200 runs x 20 epochs
    python benchmarks/baker_scaling.py --tasks 5 --runs 220 --epochs 52   # the ~1,100-run, 49-SRM case of issue 19
    python benchmarks/baker_scaling.py --store tests/fixtures/digits_collection

One LODO fold: the SRMs are fitted on every dataset but the last (by task id) and judged on the held-out one by
the mean absolute error of the predicted final validation accuracy after a quarter, half and three quarters of
the epochs.  Data: the seeded synthetic meta-dataset of ``nasmeta.evaluation.synthetic`` (``--store`` uses a
real store instead).  Single-threaded (``OMP_NUM_THREADS=1``) so timings compare on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--runs", type=int, default=200, help="runs per dataset")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--store", default=None, help="a metadata store to use instead of synthetic data")
    parser.add_argument("--max-runs", type=int, default=300)
    parser.add_argument("--retune-every", type=int, default=4)
    args = parser.parse_args()

    from nasmeta.blackbox.baker import BakerStopper
    from nasmeta.evaluation.runs import runs_from_meta

    if args.store:
        from metadata_store import MetadataStore

        meta = MetadataStore(args.store).meta()
    else:
        from nasmeta.evaluation.synthetic import synthetic_meta

        meta = synthetic_meta(n_tasks=args.tasks, n_runs=args.runs, epochs=args.epochs, seed=0)
    runs = runs_from_meta(meta)
    tasks = sorted({r.task_id for r in runs})
    held = tasks[-1]
    train = [r for r in runs if r.task_id != held]
    test = [r for r in runs if r.task_id == held]
    T = test[0].max_epochs
    print(f"{len(train)} training runs on {len(tasks) - 1} datasets, {len(test)} held-out runs, {T} epochs")
    settings = {
        "exact (defaults)": {},
        f"max_runs={args.max_runs}": {"max_runs": args.max_runs},
        f"retune_every={args.retune_every}": {"retune_every": args.retune_every},
        "both": {"max_runs": args.max_runs, "retune_every": args.retune_every},
    }
    print(f"{'setting':<22} {'fit s':>8} {'ratio':>7}   MAE at " + "  ".join(f"{f:.2f}T" for f in (0.25, 0.5, 0.75)))
    base = None
    for label, options in settings.items():
        start = time.perf_counter()
        baker = BakerStopper(min_epochs=3, **options).fit(train)
        seconds = time.perf_counter() - start
        base = base or seconds
        maes = []
        for fraction in (0.25, 0.5, 0.75):
            t = max(3, int(round(fraction * T)))
            errors = [
                abs(baker.predict_final(r.curve[:t], {"max_epochs": T, "arch": r.arch, "n_params": r.n_params,
                                                      "flops": r.flops}) - r.final_val_acc)
                for r in test
            ]  # fmt: skip
            maes.append(float(np.mean(errors)))
        print(f"{label:<22} {seconds:8.1f} {base / seconds:6.1f}x   " + "  ".join(f"{m:6.2f}" for m in maes))


if __name__ == "__main__":
    main()
