"""Seconds per architecture per zero-shot proxy on CPU, NAS-Bench-201 networks, batch 64.

    NASMETA_DATA_DIR=../shared/data python benchmarks/proxy_speed.py --n 3
    python benchmarks/proxy_speed.py --n 3 --C 8 --N 1 --task random --proxies synflow,naswot   # no data needed

Each proxy runs through the zero-shot search's scoring path (fresh deep copy, seeded; ``linear_regions`` on
TE-NAS' thin network) on ``--n`` random cells.  The baseline, measured in the same run on the same networks, is
one training step (forward + backward of cross-entropy at batch 64); the table prints each proxy's wall and CPU
time and its CPU time as a multiple of the step's (CPU time is the steadier number on a shared machine).
Every proxy sees the same 64 rows here (NASWOT's published batch is 128, which doubles its cost).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

ALL = ("params", "flops", "synflow", "snip", "grad_norm", "grasp", "fisher", "jacob_cov", "naswot", "zen", "ntk")
ALL += ("linear_regions",)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3, help="random NB201 cells")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--proxies", default=",".join(ALL))
    parser.add_argument("--C", type=int, default=16, help="initial channels (benchmark: 16)")
    parser.add_argument("--N", type=int, default=5, help="cells per stage (benchmark: 5)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--task", default="cifar10", help="task giving the batch; 'random' for Gaussian inputs")
    args = parser.parse_args(argv)

    import torch
    import torch.nn.functional as F

    from nasmeta.spaces import get_space
    from nasmeta.zeroshot.batch import Batch
    from nasmeta.zeroshot.search import sample_architectures, score_architectures

    torch.set_num_threads(args.threads)
    proxies = [p.strip() for p in args.proxies.split(",") if p.strip()]
    if args.task == "random":
        batch = Batch.random((3, 32, 32), 10, size=args.batch_size, seed=args.seed)
    else:
        from nasmeta.data.tasks import get_task

        batch = Batch.from_task(get_task(args.task).load(), size=args.batch_size, seed=args.seed)
    space = get_space("nb201")
    sizes = {"C": args.C, "N": args.N}
    archs = sample_architectures(space, args.n, args.seed)

    baseline, baseline_cpu = [], []
    for arch in archs:
        torch.manual_seed(args.seed)
        net = space.build(arch, batch.num_classes, batch.input_shape, **sizes)
        F.cross_entropy(net(batch.x), batch.y).backward()  # warm-up of the allocator and kernels
        start, start_cpu = time.perf_counter(), time.process_time()
        F.cross_entropy(net(batch.x), batch.y).backward()
        baseline.append(time.perf_counter() - start)
        baseline_cpu.append(time.process_time() - start_cpu)
    step, step_cpu = float(np.mean(baseline)), float(np.mean(baseline_cpu))

    seconds: dict[str, list[float]] = {p: [] for p in proxies}
    cpu: dict[str, list[float]] = {p: [] for p in proxies}
    for arch in archs:
        for name in proxies:
            scored = score_architectures(space, [arch], batch, [name], seed=args.seed, build_kwargs=sizes)
            seconds[name].append(scored[0].seconds[name])
            cpu[name].append(scored[0].cpu_seconds[name])

    size = "benchmark size C=16 N=5" if sizes == {"C": 16, "N": 5} else f"REDUCED size C={args.C} N={args.N}"
    print(
        f"NB201, {args.n} random cells (seed {args.seed}), {size}, batch {args.batch_size} from {args.task}, "
        f"CPU with {args.threads} torch thread(s) ({os.cpu_count()} cores here)"
    )
    print(
        f"baseline: one training step (forward + backward, batch {args.batch_size}) = {step:.3f} s wall, "
        f"{step_cpu:.3f} s CPU"
    )
    header = (
        f"{'proxy':16s} {'wall s/arch':>12s} {'min':>8s} {'max':>8s} {'CPU s/arch':>11s} {'x train step (CPU)':>19s}"
    )
    print(header)
    print("-" * len(header))
    for name in sorted(proxies, key=lambda p: np.mean(cpu[p])):
        wall, used = seconds[name], cpu[name]
        print(
            f"{name:16s} {np.mean(wall):12.3f} {np.min(wall):8.3f} {np.max(wall):8.3f} {np.mean(used):11.3f} "
            f"{np.mean(used) / step_cpu:19.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
