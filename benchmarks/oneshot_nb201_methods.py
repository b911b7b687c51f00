"""DARTS, PC-DARTS, ProxylessNAS and GDAS on NAS-Bench-201 with the same short budget: each method's derived cell
looked up in the 200-epoch table, over seeds, beside the published NB201 numbers; and ProxylessNAS with the latency
loss off and on for two targets (the found cell's measured latency, its table accuracy and its supernet CE).

    NASMETA_DATA_DIR=../shared/data python benchmarks/oneshot_nb201_methods.py                 # both parts
    ... --part accuracy --seeds 0 1 2 --epochs 10 --size C=8 --size N=1 --resolution 16
    ... --part latency --latency-batch 16

Every method runs in this process, one thread, on the CIFAR-10 subset (``--samples-per-class`` images per class in
the train split, halved into weight / arch data), with the loop's shared weight optimiser.  Arch updates: every step
for all methods (ProxylessNAS' published ``arch_every=5`` would give it a fifth of the others' updates in so short a
search), warm-up the published share (PC-DARTS 15/50, ProxylessNAS 40/160 of the epochs), GDAS' temperature 10 ->
0.1 over the epochs.  Table accuracy: NB201 CIFAR-10 test accuracy after 200 epochs (``TabularEvaluator`` with the
test column), printed beside what a search must beat: a cell drawn uniformly from the none-free cells (89.45 +-
6.13) and the parameter-free all-skip / all-avg-pool cells (54.30 / 49.02).  Why the sampled methods land near the
latter at short budgets: ``benchmarks/oneshot_sampled_diagnostics.py``.  Latency: the found cell's standalone
network (at the supernet size), eval mode, on this CPU at ``--latency-batch`` images, process CPU time of adaptive
repeats (``torch.utils.benchmark``, one thread: immune to the other processes on the shared machine), measured in
this run after all searches, each distinct cell once.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

PUBLISHED_C10 = {"darts": 54.30, "pcdarts": 93.41, "gdas": 93.61, "proxyless": None}
ALL_OF = "|{op}~0|+|{op}~0|{op}~1|+|{op}~0|{op}~1|{op}~2|"
METHOD_KWARGS = {
    "darts": {"order": 1},
    "pcdarts": {},
    "proxyless": {"arch_every": 1},
    "gdas": {},
}


def _task(args: argparse.Namespace):  # noqa: ANN202
    from nasmeta.data.tasks import get_task

    spec = get_task("cifar10").with_(samples_per_class=args.samples_per_class, test_per_class=10)
    return spec.with_(resolution=args.resolution).load()


def accuracy_part(args: argparse.Namespace, task, size: dict[str, int]) -> None:  # noqa: ANN001
    from nasmeta.data.benchmarks import TabularEvaluator
    from nasmeta.oneshot import oneshot_search

    table = TabularEvaluator("nb201", "cifar10", 200, val_at_200="test")
    rows: dict[str, list[tuple[int, str, float, float]]] = {}
    for method in args.methods:
        for seed in args.seeds:
            start = time.perf_counter()
            result = oneshot_search(
                method, "nb201", task, args.epochs, args.batch_size, seed, supernet_size=size, device="cpu",
                **METHOD_KWARGS[method],
            )  # fmt: skip
            acc = table.evaluate(result.best_arch).test_acc
            rows.setdefault(method, []).append((seed, str(result.best_arch), acc, time.perf_counter() - start))
            print(
                f"  {method} seed {seed}: {result.best_arch} -> {acc:.2f} % ({rows[method][-1][3]:.0f} s)", flush=True
            )
    print(
        f"\nNB201 CIFAR-10 200-epoch test accuracy of the derived cell; search: {args.epochs} epochs, supernet "
        f"{size}, {args.resolution}px, {len(task.x_train) // 2}+{len(task.x_train) // 2} images, batch "
        f"{args.batch_size}, seeds {args.seeds}"
    )
    width = max(28, 1 + 6 * max(len(runs) for runs in rows.values()))  # room for every seed's "xx.xx "
    print(f"{'method':<11}{'mean':>8}{'sd':>7}{'per seed':>{width}}{'published':>11}{'s/run':>8}")
    for method, runs in rows.items():
        accs = [r[2] for r in runs]
        sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
        pub = PUBLISHED_C10[method]
        per_seed = " ".join(f"{a:.2f}" for a in accs)
        print(
            f"{method:<11}{statistics.mean(accs):>8.2f}{sd:>7.2f}{per_seed:>{width}}"
            f"{'-' if pub is None else f'{pub:.2f}':>11}{statistics.mean(r[3] for r in runs):>8.0f}"
        )
    from nasmeta.data.benchmarks import nb201_accuracy
    from nasmeta.spaces import get_space

    # what a search must beat: a cell drawn uniformly from the none-free cells, and the all-skip / all-pool cells
    free = [nb201_accuracy(a) for a in get_space("nb201").enumerate() if "none" not in a.encoding]
    print(f"{'reference':<11}{statistics.mean(free):>8.2f}{statistics.stdev(free):>7.2f}  (a uniformly random "
          f"none-free cell); all-skip {nb201_accuracy(ALL_OF.format(op='skip_connect')):.2f}, all-avg-pool "
          f"{nb201_accuracy(ALL_OF.format(op='avg_pool_3x3')):.2f}")  # fmt: skip
    for method, runs in rows.items():
        for seed, arch, acc, _ in runs:
            print(f"  {method} seed {seed}: {arch} {acc:.2f}")


def latency_part(args: argparse.Namespace, task, size: dict[str, int]) -> None:  # noqa: ANN001
    from nasmeta.data.benchmarks import TabularEvaluator
    from nasmeta.oneshot import build_supernet, oneshot_search
    from nasmeta.oneshot.latency import build_arch, measure_latency_table, network_ms

    table_eval = TabularEvaluator("nb201", "cifar10", 200, val_at_200="test")
    torch.manual_seed(0)
    probe = build_supernet("nb201", task.num_classes, task.input_shape, **size)
    start = time.perf_counter()
    table = measure_latency_table(probe, task.num_classes, task.input_shape, "cpu", batch_size=args.latency_batch)
    print(
        f"latency table: {time.perf_counter() - start:.1f} s to measure on cpu at batch {args.latency_batch}; base "
        f"{table.base_ms:.2f} ms; per-edge ms (summed over the {size.get('N', 5) * 3} cells) "
        + "; ".join(f"{op} {v:.2f}" for op, v in zip(probe.edge_ops["cell"][0], table.per_edge["cell"][0], strict=True))
    )
    for ref in table.reference:
        print(f"  reference {ref['arch']}: measured {ref['measured_ms']:.2f} ms, ops {ref['ops_ms']:.2f} ms")
    uniform = float(table.expected_ms({"cell": torch.full((6, 5), 0.2)}))
    cheapest = table.base_ms + float(np.sort(table.per_edge["cell"], axis=1)[:, 1].sum())  # best non-none op
    targets = [None, *(args.targets or [round(0.5 * (uniform + cheapest), 2), round(cheapest * 1.05, 2)])]
    print(f"expected latency of the uniform distribution {uniform:.2f} ms; cheapest non-none cell {cheapest:.2f} ms")
    results = []
    for target in targets:
        for seed in args.latency_seeds:
            kwargs = {"arch_every": 1, "latency_table": table}
            if target is not None:
                kwargs["latency_target_ms"] = target
            result = oneshot_search(
                "proxyless", "nb201", task, args.epochs, args.batch_size, seed, supernet_size=size, device="cpu",
                **kwargs,
            )  # fmt: skip
            arch = result.best_arch
            final = result.trace[-1]
            results.append(
                [target, seed, arch, None, table.arch_ms(probe, arch), table_eval.evaluate(arch).test_acc,
                 final["val_loss"], final.get("expected_latency_ms", float("nan"))]
            )  # fmt: skip
            print(f"  T={target} seed {seed}: {arch}", flush=True)
    measured: dict[str, float] = {}
    for row in results:  # after all searches, each distinct cell once
        key = str(row[2])
        if key not in measured:
            net = build_arch(probe, row[2], task.num_classes, task.input_shape)
            measured[key] = network_ms(net, task.input_shape, "cpu", args.latency_batch, min_run_time=1.0)
        row[3] = measured[key]
    print(
        f"\nProxylessNAS on NB201 {size} {args.resolution}px, {args.epochs} epochs; latency loss CE * 0.2 * "
        f"(log E[LAT] / log T)^0.3 on the table above; latency measured at batch {args.latency_batch}"
    )
    print(f"{'target T ms':<12}{'seed':>5}{'measured ms':>13}{'table ms':>10}{'E[LAT] end':>12}{'val CE':>8}"
          f"{'NB201 %':>9}  cell")  # fmt: skip
    for target, seed, arch, measured, predicted, acc, val_ce, expected in results:
        label = "off" if target is None else f"{target:.2f}"
        print(
            f"{label:<12}{seed:>5}{measured:>13.2f}{predicted:>10.2f}{expected:>12.2f}{val_ce:>8.3f}{acc:>9.2f}  {arch}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=["accuracy", "latency", "both"], default="both")
    parser.add_argument("--methods", nargs="+", default=list(METHOD_KWARGS), choices=list(METHOD_KWARGS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--latency-seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--samples-per-class", type=int, default=200)
    parser.add_argument("--resolution", type=int, default=16)
    parser.add_argument("--size", action="append", default=None, help="supernet size KEY=INT (default C=8, N=1)")
    parser.add_argument("--latency-batch", type=int, default=16)
    parser.add_argument("--targets", nargs="+", type=float, default=None, help="latency targets T in ms")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    size = {k: int(v) for k, v in (item.split("=") for item in (args.size or ["C=8", "N=1"]))}
    task = _task(args)
    if args.part in ("accuracy", "both"):
        accuracy_part(args, task, size)
    if args.part in ("latency", "both"):
        latency_part(args, task, size)


if __name__ == "__main__":
    main()
