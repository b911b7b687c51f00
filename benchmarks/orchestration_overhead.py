"""Orchestration overhead: the same small collection through the Prefect flow and through a plain Python loop
that calls the trainer directly (same tasks, architectures, recipe, threads), in one process.

Prints both wall times and a last line ``ratio=<flow/loop>``; the target is <= 1.15 when each run takes >= 2 s.
The flow pays for its Prefect task runs and its store writes (it skips MLflow here: ``--track`` adds it); the loop
does the same training and nothing else.  The Prefect API start-up is excluded: a warm-up flow run starts it first.

    python benchmarks/orchestration_overhead.py [--archs 6] [--epochs 6] [--track]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")

import flows  # noqa: E402,F401  (sets Prefect's embedded-mode defaults)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="digits-0to4,digits-5to9")
    parser.add_argument("--archs", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--track", action="store_true", help="also log every run to MLflow")
    args = parser.parse_args()

    from flows.collect import collect_metadata, plan_architectures
    from flows.common import resolve_task_spec
    from nasmeta.training import TrainConfig, build_model, train

    tasks = args.tasks.split(",")
    size = {"C": 8, "N": 1}
    train_cfg = {"batch_size": 64, "lr": 0.05, "num_threads": 1}
    archs = plan_architectures("nb201", args.archs, seed=0)
    config = TrainConfig(epochs=args.epochs, **train_cfg)
    for name in tasks:
        resolve_task_spec(name).load()  # both sides read cached tensors

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["NASMETA_HOME"] = tmp
        collect_metadata(tasks=tasks[:1], n_archs=1, epochs=1, size=size, train=train_cfg, landmarkers=False,
                         store=f"{tmp}/warmup", track=False)  # fmt: skip

        start = time.perf_counter()
        run_seconds = []
        for name in tasks:
            data = resolve_task_spec(name).load()
            for arch in archs:
                model = build_model(arch, data, size, 0)
                result = train(model, data, config)
                run_seconds.append(result.seconds)
        loop = time.perf_counter() - start

        start = time.perf_counter()
        summary = collect_metadata(tasks=tasks, n_archs=args.archs, epochs=args.epochs, size=size, train=train_cfg,
                                   landmarkers=False, store=f"{tmp}/store", track=args.track)  # fmt: skip
        flow = time.perf_counter() - start
    assert summary["completed"] == len(tasks) * args.archs, summary
    print(f"runs: {len(run_seconds)}, mean training seconds per run: {sum(run_seconds) / len(run_seconds):.2f}")
    print(f"plain loop: {loop:.1f} s   flow: {flow:.1f} s   (MLflow tracking {'on' if args.track else 'off'})")
    print(f"ratio={flow / loop:.3f}")


if __name__ == "__main__":
    main()
