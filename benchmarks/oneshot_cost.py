"""Cost of each one-shot strategy on the same supernet, data and batch: seconds per epoch and peak memory; and the
library's DARTS loop against a bare PyTorch DARTS loop (``--loop-vs-bare``).

    NASMETA_DATA_DIR=../shared/data python benchmarks/oneshot_cost.py
    ... --space darts --size C=8 --size layers=5 --epochs 2         # the DARTS search network, reduced
    ... --device cuda --size C=16 --size N=5 --resolution 32        # NB201 at the benchmark size on a GPU
    ... --size C=16 --size N=5 --resolution 32 --samples-per-class 32 --epochs 2 \
        --strategies darts-1st pcdarts proxyless gdas               # the memory-frugal / sampled supernets
    ... --loop-vs-bare --size C=16 --size N=5 --resolution 32 --samples-per-class 250 --threads 2 --epochs 1

Strategies: DARTS first order (the baseline of the ratio columns), DARTS second order, ENAS (published controller
settings: 30 controller steps x 10 samples after each epoch), random one-shot (SPOS/RSPS; its ``final s`` is the
ranking of ``--candidates`` cells), PC-DARTS (K=4), ProxylessNAS ('two' mode, no latency loss), GDAS; PC-DARTS and
ProxylessNAS update their architecture at every step from the first epoch here (no warm-up, ProxylessNAS
``arch_every=1``) so that the timed epochs hold the same arch and weight steps as DARTS'.  Each strategy runs in a
fresh Python process, so that the process peak resident set size (``resource.getrusage(RUSAGE_SELF).ru_maxrss``,
CPU) or ``torch.cuda.max_memory_allocated`` (GPU) belongs to it alone; ``base MB`` is the resident size just
before the search starts (interpreter, torch, data, and a one-step warm-up search of the same strategy on a tiny
supernet: imports, allocator arenas, kernel caches), ``search MB`` the growth above it.  ``s/epoch`` is the mean
over the epochs after the first (warm-up) and includes ENAS's controller training and the per-epoch validation
pass.  Data: the CIFAR-10 subset when ``NASMETA_DATA_DIR`` is set, else scikit-learn's digits.

``--loop-vs-bare`` runs first-order DARTS on the NB201 supernet in the library (:func:`nasmeta.oneshot.oneshot_search`)
and in ``benchmarks/_bare_darts.py`` (plain PyTorch, the DARTS reference code's way: every candidate op summed,
alpha requiring gradients in the weight step), alternating fresh processes ``--repeats`` times, and prints the
median images/s of the last epoch and the peak-RSS growth of each, and their ratios.
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
    # arch updates from the first epoch, so the timed epochs include them (published warm-ups are 15 / 40 epochs)
    "pcdarts": ("pcdarts", {"warmup_epochs": 0}),
    "proxyless": ("proxyless", {"warmup_epochs": 0, "arch_every": 1}),
    "gdas": ("gdas", {}),
}
BASELINE = "darts-1st"


def _worker_env() -> dict[str, str]:
    """Workers' environment: glibc's mmap threshold fixed at 64 KiB (unless set), so that every large tensor is
    mapped on allocation and unmapped when freed and the peak RSS follows the live tensors; by default glibc raises
    the threshold after each freed block and serves later tensors from a heap that does not shrink."""
    return {**os.environ, "MALLOC_MMAP_THRESHOLD_": os.environ.get("MALLOC_MMAP_THRESHOLD_", "65536")}


def _rss_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _warm_up(method: str, space: str, task, kwargs: dict, device: str) -> None:  # noqa: ANN001
    """One step of the same search on a tiny supernet and 16 images at 8 px, before the base is read: imports,
    allocator arenas and kernel caches then count in the base, not in the search's growth."""
    from dataclasses import replace

    from torch.nn import functional as F

    from nasmeta.oneshot import oneshot_search

    small = F.interpolate(task.x_train[:16], size=(8, 8), mode="bilinear", align_corners=False)
    tiny = replace(task, x_train=small, y_train=task.y_train[:16])
    size = {"C": 4, "N": 1} if space == "nb201" else {"C": 4, "layers": 3}
    if method == "random":
        kwargs = {**kwargs, "n_candidates": 2}
    oneshot_search(method, space, tiny, 1, 8, 0, supernet_size=size, device=device, **kwargs)


def _task(args: argparse.Namespace):  # -> TaskData
    """The benchmark's images: the CIFAR-10 subset when the data folder is set, else digits."""
    from nasmeta.data.tasks import get_task

    name = "cifar10" if os.environ.get("NASMETA_DATA_DIR") else "digits"
    spec = get_task(name).with_(samples_per_class=args.samples_per_class, test_per_class=10)
    if args.resolution:
        spec = spec.with_(resolution=args.resolution)
    return spec.load()


def _bare_worker(args: argparse.Namespace) -> None:
    """``--loop-vs-bare``: one process runs either the library's DARTS loop or the bare loop, same data and size."""
    import torch

    torch.set_num_threads(args.threads)
    task = _task(args)
    size = {k: int(v) for k, v in (item.split("=") for item in args.size)}
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _bare_darts import bare_darts_search

    from nasmeta.oneshot import oneshot_search

    if args.worker == "bare":
        bare_darts_search(task.x_train[:32, :, :8, :8], task.y_train[:32], task.num_classes, 1, 8, 4, 1)
    else:
        _warm_up("darts", "nb201", task, {"order": 1}, "cpu")
    base = _rss_mb()
    if args.worker == "bare":
        seconds = bare_darts_search(
            task.x_train, task.y_train, task.num_classes, args.epochs, args.batch_size, size["C"], size["N"]
        )
    else:
        result = oneshot_search(
            "darts", "nb201", task, args.epochs, args.batch_size, 0, supernet_size=size, device="cpu", order=1
        )
        seconds = [row["epoch_seconds"] for row in result.trace[1:]]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    images = (len(task.x_train) // 2) // args.batch_size * args.batch_size
    print(json.dumps({"loop": args.worker, "seconds": seconds, "images": images, "base_mb": base, "peak_mb": peak}))


def _loop_vs_bare(args: argparse.Namespace) -> None:
    """Alternate library / bare processes ``--repeats`` times; report images/s of the last epoch and peak memory."""
    import statistics

    rows: dict[str, list[dict]] = {"library": [], "bare": []}
    for _ in range(args.repeats):
        for loop in ("bare", "library"):
            cmd = [sys.executable, __file__, "--worker", loop, "--loop-vs-bare", "--epochs", str(args.epochs)]
            cmd += ["--batch-size", str(args.batch_size), "--samples-per-class", str(args.samples_per_class)]
            cmd += ["--resolution", str(args.resolution), "--threads", str(args.threads)]
            for item in args.size:
                cmd += ["--size", item]
            done = subprocess.run(cmd, capture_output=True, text=True, env=_worker_env())
            if done.returncode != 0:
                sys.exit(f"{loop} failed:\n{done.stderr}")
            rows[loop].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"measured {loop}: {rows[loop][-1]['seconds']}", file=sys.stderr, flush=True)
    images = rows["bare"][0]["images"]
    print(
        f"DARTS 1st order, NB201 {' '.join(args.size)} at {args.resolution}px, batch {args.batch_size}, "
        f"{images} + {images} images per epoch, {args.threads} threads, {args.repeats} alternating runs per loop; "
        f"images/s of the last of {args.epochs} epochs (train images / epoch seconds incl. the validation pass); "
        "memory = process peak RSS growth above the base"
    )
    print(f"{'loop':<9}{'images/s (median)':>19}{'runs':>40}{'search MB (median)':>20}")
    summary = {}
    for loop, runs in rows.items():
        speeds = [r["images"] / r["seconds"][-1] for r in runs]
        growth = [r["peak_mb"] - r["base_mb"] for r in runs]
        summary[loop] = (statistics.median(speeds), statistics.median(growth))
        listed = " ".join(f"{v:.1f}" for v in speeds)
        print(f"{loop:<9}{summary[loop][0]:>19.1f}{listed:>40}{summary[loop][1]:>20.0f}")
    print(
        f"ratio library / bare: images/s {summary['library'][0] / summary['bare'][0]:.3f} (target >= 0.95), "
        f"search memory {summary['library'][1] / summary['bare'][1]:.3f} (target <= 1)"
    )


def _worker(args: argparse.Namespace) -> None:
    import torch

    from nasmeta.oneshot import oneshot_search

    torch.set_num_threads(args.threads)
    task = _task(args)
    method, kwargs = STRATEGIES[args.worker]
    if method == "random":
        kwargs = {**kwargs, "n_candidates": args.candidates}
    size = dict(item.split("=") for item in args.size)
    size = {k: int(v) for k, v in size.items()}
    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    _warm_up(method, args.space, task, kwargs, args.device)
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
    parser.add_argument("--loop-vs-bare", action="store_true", help="the DARTS loop against a bare PyTorch loop")
    parser.add_argument("--repeats", type=int, default=2, help="--loop-vs-bare: alternating runs per loop")
    parser.add_argument("--worker", choices=[*STRATEGIES, "bare", "library"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.size is None:
        args.size = ["C=8", "N=1"] if args.space == "nb201" else ["C=8", "layers=5"]
    if args.loop_vs_bare:
        if args.worker:
            _bare_worker(args)
        else:
            _loop_vs_bare(args)
        return
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
        done = subprocess.run(cmd, capture_output=True, text=True, env=_worker_env())
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
