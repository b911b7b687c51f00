"""Cost of each one-shot strategy on the same supernet, data and batch: seconds per epoch and peak memory.

    NASMETA_DATA_DIR=../shared/data python benchmarks/oneshot_cost.py
    ... --space darts --size C=8 --size layers=5 --epochs 2         # the DARTS search network, reduced
    ... --device cuda --size C=16 --size N=5 --resolution 32        # NB201 at the benchmark size on a GPU

Strategies: DARTS first order (the baseline of the ratio columns), DARTS second order, ENAS (published controller
settings: 30 controller steps x 10 samples after each epoch), random one-shot (SPOS/RSPS; its ``final s`` is the
ranking of ``--candidates`` cells).  Each strategy runs in a fresh Python process, so that the process peak
resident set size (``resource.getrusage(RUSAGE_SELF).ru_maxrss``, CPU) or ``torch.cuda.max_memory_allocated``
(GPU) belongs to it alone; ``base MB`` is the resident size just before the search starts (interpreter, torch,
data), ``search MB`` the growth above it.  ``s/epoch`` is the mean over the epochs after the first (warm-up) and
includes ENAS's controller training and the per-epoch validation pass.  Data: the CIFAR-10 subset when
``NASMETA_DATA_DIR`` is set, else scikit-learn's digits.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

STRATEGIES = {
    "darts-1st": ("darts", {"order": 1}),
    "darts-2nd": ("darts", {"order": 2}),
    "enas": ("enas", {}),
    "random": ("random", {}),
}
BASELINE = "darts-1st"


def _rss_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _worker(args: argparse.Namespace) -> None:
    import torch

    from nasmeta.data.tasks import get_task
    from nasmeta.oneshot import oneshot_search

    torch.set_num_threads(args.threads)
    name = "cifar10" if os.environ.get("NASMETA_DATA_DIR") else "digits"
    spec = get_task(name).with_(samples_per_class=args.samples_per_class, test_per_class=10)
    if args.resolution:
        spec = spec.with_(resolution=args.resolution)
    task = spec.load()
    method, kwargs = STRATEGIES[args.worker]
    if method == "random":
        kwargs = {**kwargs, "n_candidates": args.candidates}
    size = dict(item.split("=") for item in args.size)
    size = {k: int(v) for k, v in size.items()}
    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    base = _rss_mb()
    start = time.perf_counter()
    result = oneshot_search(
        method, args.space, task, args.epochs, args.batch_size, 0, supernet_size=size, device=args.device, **kwargs
    )
    wall = time.perf_counter() - start
    epochs = [row["epoch_seconds"] for row in result.trace[1:]]
    timed = epochs[1:] if len(epochs) > 1 else epochs
    peak = (
        torch.cuda.max_memory_allocated() / 2**20 if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    print(
        json.dumps(
            {
                "strategy": args.worker,
                "task": task.name,
                "device": result.extra["device"],
                "s_per_epoch": sum(timed) / len(timed),
                "final_s": result.extra["choose_seconds"],
                "wall_s": wall,
                "base_mb": 0.0 if cuda else base,
                "peak_mb": peak,
                "memory": "cuda max allocated" if cuda else "process peak RSS",
                "params": result.extra["supernet_params"],
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--space", default="nb201")
    parser.add_argument("--size", action="append", default=None, help="supernet size KEY=INT (default C=8, N=1)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--samples-per-class", type=int, default=100)
    parser.add_argument("--resolution", type=int, default=16)
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=list(STRATEGIES))
    parser.add_argument("--worker", choices=list(STRATEGIES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.size is None:
        args.size = ["C=8", "N=1"] if args.space == "nb201" else ["C=8", "layers=5"]
    if args.worker:
        _worker(args)
        return

    strategies = [BASELINE] + [s for s in args.strategies if s != BASELINE]
    rows = []
    for name in strategies:
        cmd = [sys.executable, __file__, "--worker", name, "--space", args.space, "--epochs", str(args.epochs)]
        cmd += ["--batch-size", str(args.batch_size), "--samples-per-class", str(args.samples_per_class)]
        cmd += ["--resolution", str(args.resolution), "--candidates", str(args.candidates)]
        cmd += ["--device", args.device, "--threads", str(args.threads)]
        for item in args.size:
            cmd += ["--size", item]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"{name} failed:\n{done.stderr}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"measured {name}", file=sys.stderr, flush=True)

    base = rows[0]
    first = rows[0]
    print(
        f"one-shot cost on {args.space} {' '.join(args.size)}, task {first['task']} at {args.resolution}px, "
        f"batch {args.batch_size}, {args.epochs} epochs, device {first['device']}, {args.threads} thread(s); "
        f"{first['params']:,} supernet weights; memory = {first['memory']}; ratios against {BASELINE}"
    )
    header = f"{'strategy':<11}{'s/epoch':>9}{'time ratio':>12}{'final s':>9}{'base MB':>9}{'peak MB':>9}"
    header += f"{'search MB':>11}{'mem ratio':>11}"
    print(header)
    base_growth = max(base["peak_mb"] - base["base_mb"], 1e-9)
    for r in rows:
        growth = r["peak_mb"] - r["base_mb"]
        print(
            f"{r['strategy']:<11}{r['s_per_epoch']:>9.2f}{r['s_per_epoch'] / base['s_per_epoch']:>12.2f}"
            f"{r['final_s']:>9.2f}{r['base_mb']:>9.0f}{r['peak_mb']:>9.0f}{growth:>11.0f}{growth / base_growth:>11.2f}"
        )


if __name__ == "__main__":
    main()
