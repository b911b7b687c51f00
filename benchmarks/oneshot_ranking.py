"""Random-sampling one-shot on NAS-Bench-201: how well does the supernet rank cells?  Kendall tau / Spearman rho
between the supernet accuracies of ``--candidates`` distinct random cells and their NB201 CIFAR-10 accuracies
(200-epoch test), for each supernet training budget in ``--epochs``.

    NASMETA_DATA_DIR=../shared/data python benchmarks/oneshot_ranking.py --epochs 10 50
    ... --resolution 32 --samples-per-class 1000 --size C=16 --size N=5 --device cuda --epochs 50 250

Published (Yu et al., "Evaluating the Search Phase of NAS", ICLR 2020; METHODS.md): weight-sharing rankings
correlate with stand-alone rankings only at tau 0.20-0.44, after full supernet training (hundreds of epochs on
the whole CIFAR-10 train set at 32x32).  Each budget is a separate run from the same seed (cosine schedule over
its own epochs).  Data: the CIFAR-10 subset of ``NASMETA_DATA_DIR`` (train split halved: weights / ranking).
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--samples-per-class", type=int, default=200)
    parser.add_argument("--resolution", type=int, default=16)
    parser.add_argument("--size", action="append", default=None, help="supernet size KEY=INT (default C=8, N=1)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    from nasmeta.data.benchmarks import nb201_accuracy
    from nasmeta.data.tasks import get_task
    from nasmeta.oneshot import oneshot_search
    from nasmeta.oneshot.random_oneshot import ranking_correlation

    torch.set_num_threads(args.threads)
    size = {k: int(v) for k, v in (item.split("=") for item in (args.size or ["C=8", "N=1"]))}
    spec = get_task("cifar10").with_(samples_per_class=args.samples_per_class, test_per_class=10)
    task = (spec.with_(resolution=args.resolution) if args.resolution else spec).load()

    def truth(arch):
        return nb201_accuracy(arch, "cifar10", 200, "test")

    print(
        f"random one-shot ranking on NB201 {size}, CIFAR-10 subset {len(task.x_train)} train images at "
        f"{task.input_shape[1]}px, {args.candidates} distinct cells, seed {args.seed}; published tau 0.20-0.44"
    )
    print(f"{'epochs':>6}{'mean acc':>10}{'best acc':>10}{'best NB201':>12}{'tau':>8}{'p':>10}{'rho':>8}{'seconds':>9}")
    for epochs in args.epochs:
        start = time.perf_counter()
        result = oneshot_search(
            "random",
            "nb201",
            task,
            epochs,
            args.batch_size,
            args.seed,
            supernet_size=size,
            device=args.device,
            n_candidates=args.candidates,
        )
        seconds = time.perf_counter() - start
        stats = ranking_correlation(result.history, truth)
        accs = [e.val_acc for e in result.history]
        best = max(result.history, key=lambda e: e.val_acc)
        print(
            f"{epochs:>6}{sum(accs) / len(accs):>10.1f}{best.val_acc:>10.1f}{truth(best.arch):>12.2f}"
            f"{stats['kendall_tau']:>8.3f}{stats['kendall_p']:>10.2g}{stats['spearman_rho']:>8.3f}{seconds:>9.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
