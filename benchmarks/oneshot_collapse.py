"""DARTS' collapse and its fixes (FairDARTS, P-DARTS, DARTS+, RobustDARTS-ES, DARTS-ADA, ASAP, DARTS-PT with trained
and with fixed alpha) under one short budget: the NB201 table, the RobustDARTS spaces S1-S4, and DARTS' Hessian
eigenvalue trace with R-DARTS' early-stop rule.

    NASMETA_DATA_DIR=../shared/data python benchmarks/oneshot_collapse.py --part nb201 --seeds 0 1 2
    ... --part spaces --spaces darts-s1 darts-s2 darts-s3 darts-s4 --seeds 0 --retrain-epochs 10
    ... --part hessian --hessian-space darts-s3 --hessian-epochs 20 --png hessian.png --mlflow

Every run is one process thread on the CIFAR-10 subset (``--samples-per-class`` train images per class, halved into
weight / arch data, ``--resolution`` px), with the loop's shared weight optimiser and each method's published
architecture settings; ``--jsonl`` gets one JSON line per finished run (so an interrupted benchmark keeps what it
finished).

* ``nb201``: the derived cell's NB201 CIFAR-10 200-epoch test accuracy (the table), supernet ``C=8, N=1``.
* ``spaces``: the DARTS-space supernet (``--darts-size``, default ``C=8, layers=5``) on S1-S4; the share of
  ``skip_connect`` among the 8 ops of the derived normal cell (and S3's ``none``-free, parameter-free count), and with
  ``--retrain-epochs`` the derived cells retrained from scratch (``--retrain-size``, no auxiliary head) -- test
  accuracy on the task's test split.
* ``retrain``: each distinct derived cell of a ``spaces`` JSONL (``--from-jsonl``) retrained once
  (``--retrain-epochs``, ``--retrain-size``), test accuracy on the task's test split.
* ``hessian``: ``robust-darts`` with ``early_stop=False`` (plain DARTS with lambda tracked) for ``--hessian-epochs``;
  prints lambda, its 5-epoch mean, the ratio ``lambda_bar(i-5)/lambda_bar(i)``, the derived normal cell's skip count
  and the softmax skip weight per epoch; reports where R-DARTS' rule (ratio < 0.75) fires and where the skip
  share peaks; plots it (``--png``) and logs the plot and the trace to MLflow (``--mlflow``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch

METHODS = [
    "darts",
    "fairdarts",
    "pdarts",
    "darts-plus",
    "robust-darts",
    "darts-ada",
    "asap",
    "darts-pt",
    "darts-pt-fixed",
]
PUBLISHED_NB201 = {"darts": 54.30, "darts-pt": 88.11, "darts-pt-fixed": 93.80}
PARAMETER_FREE = {"skip_connect", "max_pool_3x3", "avg_pool_3x3", "none", "noise"}


def _sizes(items: list[str] | None, default: list[str]) -> dict[str, int]:
    return {k: int(v) for k, v in (item.split("=") for item in (items or default))}


def _task(args: argparse.Namespace):  # noqa: ANN202
    from nasmeta.data.tasks import get_task

    spec = get_task("cifar10").with_(samples_per_class=args.samples_per_class, test_per_class=args.test_per_class)
    return spec.with_(resolution=args.resolution).load()


def _emit(args: argparse.Namespace, row: dict[str, Any]) -> None:
    print(json.dumps(row), flush=True)
    if args.jsonl:
        with open(args.jsonl, "a") as f:
            f.write(json.dumps(row) + "\n")


def _search(method: str, space: str, task: Any, args: argparse.Namespace, seed: int, size: dict[str, int]):  # noqa: ANN202
    from nasmeta.oneshot import oneshot_search

    start = time.perf_counter()
    result = oneshot_search(method, space, task, args.epochs, args.batch_size, seed, supernet_size=size, device="cpu")
    return result, time.perf_counter() - start


def nb201_part(args: argparse.Namespace, task: Any) -> None:
    from nasmeta.data.benchmarks import TabularEvaluator

    table = TabularEvaluator("nb201", "cifar10", 200, val_at_200="test")
    size = _sizes(args.size, ["C=8", "N=1"])
    rows: dict[str, list[float]] = {}
    for seed in args.seeds:
        for method in args.methods:
            result, seconds = _search(method, "nb201", task, args, seed, size)
            acc = table.evaluate(result.best_arch).test_acc
            rows.setdefault(method, []).append(acc)
            row = {
                "part": "nb201",
                "method": method,
                "seed": seed,
                "arch": str(result.best_arch),
                "nb201_c10_test": acc,
            }
            _emit(args, {**row, "epochs_run": len(result.trace) - 1, "seconds": round(seconds, 1)})
    print(f"\nNB201 C10 200-epoch test accuracy of the derived cell; {args.epochs} epochs, {size}, {args.resolution}px")
    for method, accs in rows.items():
        sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
        pub = PUBLISHED_NB201.get(method)
        print(f"{method:<15}{statistics.mean(accs):>8.2f} +- {sd:5.2f}  {' '.join(f'{a:.2f}' for a in accs):<24}"
              f"published {'-' if pub is None else pub}")  # fmt: skip


def _normal(arch: Any) -> list[tuple[str, int]]:
    return [tuple(p) for p in arch.encoding[0]]


def _space_row(method: str, space: str, task: Any, args: argparse.Namespace, seed: int, size: dict[str, int]):  # noqa: ANN202
    result, seconds = _search(method, space, task, args, seed, size)
    normal = _normal(result.best_arch)
    row = {
        "part": "spaces", "space": space, "method": method, "seed": seed, "arch": str(result.best_arch),
        "normal_skip_share": sum(op == "skip_connect" for op, _ in normal) / len(normal),
        "normal_param_free_share": sum(op in PARAMETER_FREE for op, _ in normal) / len(normal),
        "softmax_skip_normal": result.trace[-1].get("skip_share_normal"),
        "epochs_run": len(result.trace) - 1, "seconds": round(seconds, 1),
    }  # fmt: skip
    if "depths" in result.extra:  # P-DARTS' supernet depth per stage
        row["depths"] = result.extra["depths"]
    return result, row


def spaces_part(args: argparse.Namespace, task: Any) -> None:
    size = _sizes(args.darts_size, ["C=8", "layers=5"])
    retrain_size = _sizes(args.retrain_size, ["C=8", "layers=5"])
    for seed in args.seeds:
        for space in args.spaces:
            for method in args.methods:
                result, row = _space_row(method, space, task, args, seed, size)
                if args.retrain_epochs:
                    done = _retrain_cell(result.best_arch, _retrain_task(args, task), args, seed, retrain_size)
                    row["retrain_test_acc"] = done["test_acc"]
                    row["retrain_seconds"] = done["seconds"]
                    row["retrain_budget"] = _budget(args, retrain_size)
                _emit(args, row)


def table_part(args: argparse.Namespace, task: Any) -> None:
    """S1-S4 skip share and retrained accuracy per (seed, space, method), seed-major so that an interrupted run
    leaves whole seeds: a search row is taken from ``--from-jsonl`` files when one matches (P-DARTS: only rows of
    the progressive-depth version, which carry ``depths``), else searched and appended to ``--spaces-jsonl``; each
    derived cell is retrained once per seed at the one budget and appended to ``--jsonl`` (rows already there are
    kept, so the run resumes)."""
    from nasmeta.spaces import get_space

    if not args.retrain_epochs or not args.spaces_jsonl:
        raise ValueError("--part table needs --retrain-epochs N and --spaces-jsonl FILE")
    size = _sizes(args.darts_size, ["C=8", "layers=5"])
    retrain_size = _sizes(args.retrain_size, ["C=8", "layers=5"])
    budget = _budget(args, retrain_size)
    files = [Path(f) for f in (args.from_jsonl or [])] + [Path(args.spaces_jsonl), Path(args.jsonl)]
    rows = [json.loads(line) for f in files if f.exists() for line in f.read_text().splitlines() if line.strip()]
    searched = {}
    for r in rows:
        if r.get("part") == "spaces" and (r["method"] != "pdarts" or "depths" in r):
            searched[(r["space"], r["method"], r["seed"])] = r  # the last run of a key counts (reruns)
    trained = {(r["space"], r["arch"], r["seed"]): r for r in rows if r.get("part") == "retrain-table"
               and r.get("budget") == budget}  # fmt: skip
    retrain_task = _retrain_task(args, task)
    for seed in args.seeds:
        for space in args.spaces:
            for method in args.methods:
                row = searched.get((space, method, seed))
                if row is None:
                    _, row = _space_row(method, space, task, args, seed, size)
                    with open(args.spaces_jsonl, "a") as f:
                        f.write(json.dumps(row) + "\n")
                    print(json.dumps(row), flush=True)
                    searched[(space, method, seed)] = row
                key = (space, row["arch"], seed)
                if key not in trained:
                    done = _retrain_cell(get_space(space).parse(row["arch"]), retrain_task, args, seed, retrain_size)
                    trained[key] = {"part": "retrain-table", "space": space, "arch": row["arch"], "seed": seed,
                                    "budget": budget, **done}  # fmt: skip
                    _emit(args, trained[key])
                print(f"{space} seed {seed} {method}: skip share {row['normal_skip_share']:.3f}, "
                      f"retrained {trained[key]['test_acc']:.2f}", flush=True)  # fmt: skip


def summary_part(args: argparse.Namespace, task: Any) -> None:
    """Markdown table of ``table`` results (``--from-jsonl``: search rows and retrain rows; no compute): per method
    and space, the derived normal cell's skip share (S4: noise share) and its retrained test accuracy, mean and per
    seed; ``-`` where a seed was not run."""
    files = [Path(f) for f in args.from_jsonl or []]
    rows = [json.loads(line) for f in files for line in f.read_text().splitlines() if line.strip()]
    searched = {}
    for r in rows:
        if r.get("part") == "spaces" and (r["method"] != "pdarts" or "depths" in r):
            searched[(r["space"], r["method"], r["seed"])] = r  # the last run of a key counts (reruns)
    trained = {(r["space"], r["arch"], r["seed"]): r["test_acc"] for r in rows if r.get("part") == "retrain-table"}

    def cell(values: list[float | None], digits: int) -> str:
        got = [v for v in values if v is not None]
        if not got:
            return "-"
        each = " ".join("-" if v is None else f"{v:.{digits}f}" for v in values)
        return f"{statistics.mean(got):.{digits}f} [{each}]"

    print(
        "| method | "
        + " | ".join(f"{sp} {'noise' if sp == 'darts-s4' else 'skip'} | {sp} acc" for sp in args.spaces)
        + " |"
    )
    print("|---|" + "---|---|" * len(args.spaces))
    for method in args.methods:
        parts = []
        for space in args.spaces:
            found = [searched.get((space, method, seed)) for seed in args.seeds]
            op = "noise" if space == "darts-s4" else "skip_connect"
            share = [
                None if r is None else sum(o == op for o, _ in _normal(_parse(space, r["arch"]))) / 8 for r in found
            ]
            acc = [
                None if r is None else trained.get((space, r["arch"], seed))
                for r, seed in zip(found, args.seeds, strict=True)
            ]
            parts += [cell(share, 3), cell(acc, 1)]
        print(f"| {method} | " + " | ".join(parts) + " |")


def _parse(space: str, arch: str) -> Any:
    from nasmeta.spaces import get_space

    return get_space(space).parse(arch)


def _retrain_task(args: argparse.Namespace, task: Any) -> Any:
    """The retraining task: the search task unless ``--retrain-samples-per-class`` asks for more train images."""
    if not args.retrain_samples_per_class:
        return task
    from nasmeta.data.tasks import get_task

    spec = get_task("cifar10").with_(samples_per_class=args.retrain_samples_per_class,
                                     test_per_class=args.test_per_class)  # fmt: skip
    return spec.with_(resolution=args.resolution).load()


def _retrain_cell(arch: Any, task: Any, args: argparse.Namespace, seed: int, size: dict[str, int]) -> dict[str, Any]:
    """Train ``arch`` from scratch at the benchmark's one retrain budget; test accuracy and seconds."""
    from nasmeta.retrain import retrain
    from nasmeta.training import TrainConfig

    config = TrainConfig(batch_size=args.retrain_batch_size, device="cpu")
    start = time.perf_counter()
    done = retrain(arch, task, args.retrain_epochs, seed, config=config, auxiliary=False, drop_path_prob=0.0, **size)
    return {"test_acc": done.evaluation.test_acc, "seconds": round(time.perf_counter() - start, 1)}


def _budget(args: argparse.Namespace, size: dict[str, int]) -> dict[str, Any]:
    return {"size": size, "epochs": args.retrain_epochs, "batch_size": args.retrain_batch_size,
            "samples_per_class": args.retrain_samples_per_class or args.samples_per_class}  # fmt: skip


def budget_part(args: argparse.Namespace, task: Any) -> None:
    """Does the retrain budget separate cells?  DARTS-V2 against the same network with an all-skip normal cell
    (DARTS-V2's reduce cell kept), each seed of ``--seeds``."""
    from nasmeta.spaces import get_space
    from nasmeta.spaces.darts import DARTS_V2

    if not args.retrain_epochs:
        raise ValueError("--part budget needs --retrain-epochs N")
    size = _sizes(args.retrain_size, ["C=8", "layers=5"])
    space = get_space("darts")
    all_skip = space.from_encoding([[("skip_connect", j) for j in (0, 1, 0, 1, 0, 1, 0, 1)], DARTS_V2.encoding[1]])
    task = _retrain_task(args, task)
    for seed in args.seeds:
        for name, arch in (("darts-v2", DARTS_V2), ("all-skip-normal", all_skip)):
            done = _retrain_cell(arch, task, args, seed, size)
            _emit(args, {"part": "budget", "cell": name, "arch": str(arch), "seed": seed, **_budget(args, size),
                         "test_acc": done["test_acc"], "seconds": done["seconds"]})  # fmt: skip


def retrain_part(args: argparse.Namespace, task: Any) -> None:
    """Retrain each distinct derived cell of a ``spaces`` JSONL (``--from-jsonl``) once, from scratch."""
    from nasmeta.retrain import retrain
    from nasmeta.spaces import get_space

    if not args.from_jsonl or not args.retrain_epochs:
        raise ValueError("--part retrain needs --from-jsonl FILE and --retrain-epochs N")
    size = _sizes(args.retrain_size, ["C=8", "layers=5"])
    rows = [json.loads(line) for f in args.from_jsonl for line in Path(f).read_text().splitlines() if line.strip()]
    done: dict[tuple[str, str], float] = {}
    for row in rows:
        if row.get("part") != "spaces" or (row["space"], row["arch"]) in done:
            continue
        arch = get_space(row["space"]).parse(row["arch"])
        start = time.perf_counter()
        trained = retrain(arch, task, args.retrain_epochs, args.seeds[0], auxiliary=False, drop_path_prob=0.0, **size)
        done[(row["space"], row["arch"])] = trained.evaluation.test_acc
        _emit(args, {"part": "retrain", "space": row["space"], "arch": row["arch"], "size": size,
                     "epochs": args.retrain_epochs, "seed": args.seeds[0], "test_acc": trained.evaluation.test_acc,
                     "seconds": round(time.perf_counter() - start, 1)})  # fmt: skip


def rule_fires(smooth: list[float], k: int = 5, ratio: float = 0.75) -> int | None:
    """1-based epoch where ``smooth[i-k] / smooth[i] < ratio`` first holds (``smooth[0]`` is epoch 1)."""
    for i in range(k, len(smooth)):
        if smooth[i] != 0 and smooth[i - k] / smooth[i] < ratio:
            return i + 1
    return None


def hessian_part(args: argparse.Namespace, task: Any) -> None:
    from nasmeta.oneshot import oneshot_search
    from nasmeta.spaces import get_space

    size = _sizes(args.darts_size, ["C=8", "layers=5"])
    space = get_space(args.hessian_space)
    start = time.perf_counter()
    result = oneshot_search(
        "robust-darts", args.hessian_space, task, args.hessian_epochs, args.batch_size, args.seeds[0],
        supernet_size=size, device="cpu", early_stop=False, hessian_samples=args.hessian_samples,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    rows = result.trace[1:]
    eig = [r["hessian_eig"] for r in rows]
    smooth = [r["hessian_eig_smooth"] for r in rows]
    skips = [sum(op == "skip_connect" for op, _ in _normal(space.parse(r["arch"]))) for r in rows]
    soft = [r["skip_share_normal"] for r in rows]
    fires = rule_fires(smooth)
    peak = max(range(len(skips)), key=lambda i: (skips[i], -i)) + 1
    print(f"\n{args.hessian_space}, {args.hessian_epochs} epochs, {size}, seed {args.seeds[0]}: {seconds:.0f} s")
    print(f"{'epoch':>5}{'lambda':>10}{'lambda_5':>10}{'ratio':>8}{'skips':>7}{'softmax skip':>14}")
    for i, r in enumerate(rows):
        ratio = smooth[i - 5] / smooth[i] if i >= 5 and smooth[i] else float("nan")
        print(f"{r['epoch']:>5}{eig[i]:>10.4f}{smooth[i]:>10.4f}{ratio:>8.3f}{skips[i]:>7}{soft[i]:>14.4f}")
    print(f"R-DARTS rule fires at epoch {fires} (roll back to {None if fires is None else fires - 5}); "
          f"derived normal cell's skip count peaks first at epoch {peak} ({skips[peak - 1]}/8)")  # fmt: skip
    _emit(args, {"part": "hessian", "space": args.hessian_space, "seed": args.seeds[0], "eig": eig,
                 "eig_smooth": smooth, "normal_skips": skips, "softmax_skip_normal": soft, "fires": fires,
                 "skip_peak_epoch": peak, "seconds": round(seconds, 1)})  # fmt: skip
    if args.png:
        png = _plot(eig, smooth, skips, soft, fires, args.hessian_space, Path(args.png))
        print(f"plot: {png}")
        if args.mlflow:
            from nasmeta import tracking

            tags = {"space": args.hessian_space, "method": "oneshot-robust-darts"}
            with tracking.parent_run("nasmeta-benchmarks", f"hessian/{args.hessian_space}", tags=tags) as run:
                for r in rows:
                    run.log_metrics({"hessian_eig": r["hessian_eig"], "hessian_eig_smooth": r["hessian_eig_smooth"],
                                     "skip_share_normal": r["skip_share_normal"]}, step=r["epoch"])  # fmt: skip
                run.log_artifact(png)
                run.log_dict(result.trace, "trace.json")
                print(f"MLflow run {run.run_id} at {tracking.tracking_uri()}")


def _plot(eig, smooth, skips, soft, fires, space, out: Path) -> Path:  # noqa: ANN001
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = list(range(1, len(eig) + 1))
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(epochs, eig, "o-", alpha=0.5, label="dominant eigenvalue")
    ax.plot(epochs, smooth, "-", lw=2, label="5-epoch mean")
    ax.set_xlabel("epoch")
    ax.set_ylabel("lambda_max of Hessian of L_val w.r.t. alpha")
    right = ax.twinx()
    right.step(epochs, [s / 8 for s in skips], "g-", where="mid", label="skip share of derived normal cell")
    right.plot(epochs, soft, "g:", label="softmax skip weight (normal)")
    right.set_ylabel("skip share")
    right.set_ylim(0, 1.05)
    if fires is not None:
        ax.axvline(fires, color="r", ls="--", label=f"R-DARTS stop (epoch {fires})")
        ax.axvline(fires - 5, color="r", ls=":", label=f"roll-back (epoch {fires - 5})")
    lines = ax.get_legend_handles_labels()
    more = right.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=7, loc="upper left")
    ax.set_title(f"DARTS on {space}: Hessian eigenvalue and skip connections")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--part", choices=["nb201", "spaces", "hessian", "retrain", "budget", "table", "summary"], required=True
    )
    parser.add_argument("--from-jsonl", nargs="+", default=None, help="retrain / table: the spaces part's JSONL")
    parser.add_argument("--spaces-jsonl", default=None, help="table: where new search rows are appended")
    parser.add_argument("--methods", nargs="+", default=METHODS)
    parser.add_argument("--spaces", nargs="+", default=["darts-s1", "darts-s2", "darts-s3", "darts-s4"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--samples-per-class", type=int, default=200)
    parser.add_argument("--test-per-class", type=int, default=100)
    parser.add_argument("--resolution", type=int, default=16)
    parser.add_argument("--size", action="append", help="NB201 supernet size KEY=INT (default C=8, N=1)")
    parser.add_argument("--darts-size", action="append", help="DARTS supernet size KEY=INT (default C=8, layers=5)")
    parser.add_argument("--retrain-size", action="append", help="retrained network size (default C=8, layers=5)")
    parser.add_argument("--retrain-epochs", type=int, default=0)
    parser.add_argument("--retrain-batch-size", type=int, default=256)
    parser.add_argument("--retrain-samples-per-class", type=int, default=0, help="0: the search task's")
    parser.add_argument("--hessian-space", default="darts-s3")
    parser.add_argument("--hessian-epochs", type=int, default=20)
    parser.add_argument("--hessian-samples", type=int, default=64)
    parser.add_argument("--png", default=None)
    parser.add_argument("--mlflow", action="store_true")
    parser.add_argument("--jsonl", default=None)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    task = None if args.part == "summary" else _task(args)  # the summary reads JSONL only
    parts = {
        "nb201": nb201_part,
        "spaces": spaces_part,
        "hessian": hessian_part,
        "retrain": retrain_part,
        "budget": budget_part,
        "table": table_part,
        "summary": summary_part,
    }
    parts[args.part](args, task)


if __name__ == "__main__":
    main()
