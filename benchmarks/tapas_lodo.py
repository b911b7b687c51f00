"""TAPAS leave-one-dataset-out on NAS-Bench-201 against random search at equal evaluations.

    NASMETA_DATA_DIR=../shared/data python benchmarks/tapas_lodo.py                  # 10 seeds, k = 10
    ... --seeds 3 --n-train 500 --epochs 30                                          # quicker
    ... --no-refit                                                                   # one TAP per fold

For each held-out dataset (cifar10, cifar100, imagenet16-120) TAPAS is fitted on the other two (``--n-train``
cells each, 200-epoch test accuracy as the label; TAP refitted per seed unless ``--no-refit``) and run on the
held-out one: TAP-scored regularised evolution (``--n-predictions`` TAP calls), then the ``k`` distinct
top-predicted cells looked up.  Random search evaluates ``k`` uniform cells with the same seeds.  Both select on
the 12-epoch validation accuracy and report the 200-epoch test accuracy (NB201's protocol); protocol and the
NB201 DCN probe in ``nasmeta/transfer/tapas_lodo.py``.

Columns: ``tau`` / ``rho`` (Kendall / Spearman of the TAP over all 15,625 cells vs the held-out 200-epoch test
accuracy), ``TAPAS`` and ``random`` (mean +- std test accuracy of the returned cell over seeds), their regrets
against the best cell of the table, ``wins`` (seeds where TAPAS returned the better cell, ties in brackets),
``ratio`` (TAPAS regret / random regret, the baseline measured in the same run), and ``fit s`` (TAP training
seconds).  TAPAS also spends one 12-epoch probe run on the held-out dataset (its DCN), listed under the table.
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--k", type=int, default=10, help="evaluations per method on the held-out dataset")
    parser.add_argument("--n-train", type=int, default=1000, help="training cells per source dataset")
    parser.add_argument("--n-predictions", type=int, default=1000, help="TAP calls of the evolution")
    parser.add_argument("--epochs", type=int, default=None, help="TAP training epochs (default: TAPASConfig's)")
    parser.add_argument("--target", choices=["dcn_ratio", "accuracy"], default="dcn_ratio")
    parser.add_argument("--weighting", choices=["uniform", "similarity"], default="uniform")
    parser.add_argument("--no-refit", action="store_true", help="fit one TAP per fold (seed 0's sample)")
    parser.add_argument("--held-out", nargs="*", default=None)
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    from nasmeta.transfer.tapas import TAPASConfig
    from nasmeta.transfer.tapas_lodo import NB201LodoConfig, nb201_lodo, summarize_nb201_lodo

    tap = {"target": args.target, "source_weighting": args.weighting}
    if args.epochs is not None:
        tap["epochs"] = args.epochs
    config = NB201LodoConfig(
        k=args.k,
        n_train=args.n_train,
        n_predictions=args.n_predictions,
        refit_per_seed=not args.no_refit,
        tapas=TAPASConfig(**tap),
    )
    start = time.perf_counter()
    frame = nb201_lodo(args.held_out, range(args.seeds), config)
    summary = summarize_nb201_lodo(frame)
    seconds = time.perf_counter() - start

    table = Table(
        title=f"TAPAS vs random search, NB201 LODO: k={args.k} evaluations, {args.seeds} seeds, "
        f"{args.n_train} cells per source, target={args.target}, weighting={args.weighting}"
    )
    for column in ("held out", "tau", "rho", "TAPAS acc", "random acc", "TAPAS regret", "random regret"):
        table.add_column(column, justify="right")
    for column in ("ratio", "wins", "fit s"):
        table.add_column(column, justify="right")
    for row in summary.itertuples():
        ratio = row.tapas_regret / row.random_regret if row.random_regret > 0 else float("nan")
        table.add_row(
            row.held_out,
            f"{row.kendall_tau:.3f}",
            f"{row.spearman_rho:.3f}",
            f"{row.tapas_acc:.2f} +- {row.tapas_acc_std:.2f}",
            f"{row.random_acc:.2f} +- {row.random_acc_std:.2f}",
            f"{row.tapas_regret:.2f}",
            f"{row.random_regret:.2f}",
            f"{ratio:.2f}",
            f"{row.tapas_wins}/{row.seeds} ({row.ties})",
            f"{row.fit_seconds:.1f}",
        )
    console = Console(width=160)
    console.print(table)
    probe = frame.groupby("held_out", sort=False)[["dcn", "probe_cost_seconds", "tapas_cost_seconds"]].mean()
    for dataset, values in probe.iterrows():
        console.print(
            f"{dataset}: DCN {values.dcn:.3f}; probe run {values.probe_cost_seconds / 3600:.2f} simulated GPU-h "
            f"on top of TAPAS's {values.tapas_cost_seconds / 3600:.1f} GPU-h of evaluations"
        )
    console.print(f"total {seconds:.0f} s")


if __name__ == "__main__":
    main()
