"""Once-for-All on a CIFAR-10 subset (CPU, one thread): progressive shrinking with a real kill and resume,
sub-networks taken from the shrunk network vs trained from scratch, and the evolutionary deployment search under
three latency targets, all latencies measured on this machine.

    NASMETA_DATA_DIR=../shared/data OMP_NUM_THREADS=1 python benchmarks/ofa_report.py --out benchmarks/results/issue18

1. Progressive shrinking of ``ofa-small`` with ``nasmeta ofa train`` in a subprocess (the Prefect flow, no MLflow).
   Once the ``kernel`` checkpoint exists and the ``depth`` phase has run ``--kill-after`` seconds, the process
   group is killed with SIGKILL; the same command is run again and must skip ``largest`` and ``kernel``.
2. The latency lookup table is filled on this CPU (minimum of 100 timed calls per entry) and calibrated on
   ``--calib`` (20) measured whole sub-networks (``OFALatencyPredictor.calibrate``); ``--pool`` sampled
   sub-networks are ranked by the predicted latency and ``--n-subnets`` (8) of them at evenly spaced quantiles of
   that ranking are measured whole (``nasmeta.latency.MeasuredLatency``), then evaluated with the shrunk weights
   (BN re-estimated on 500 training images) on the test split.
3. An accuracy predictor (ridge or OFA's MLP, whichever ranks better in 5-fold cross-validation on its own
   samples) is fitted on ``--predictor-samples`` sampled sub-networks (validation accuracy with shrunk weights);
   the evolution (population 100, ``--generations``) runs for three latency targets at the 25 / 50 / 75 %
   quantiles of the 8 sub-networks' predicted latencies; each winner is extracted, exported (the ``torch.export``
   program checked against the eager network), its latency measured and its test accuracy reported.
4. The same 8 sub-networks are trained from scratch with ``nasmeta.training.train`` for as many epochs as the
   whole progressive-shrinking run took (all four phases), same data, batch, augmentation, SGD recipe.

Writes ``ofa_report.json`` (everything) and the resume logs to ``--out``; prints the tables.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

# run from the repository root, the checkout's nasmeta is the one measured (not an installed copy)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _train_command(args: argparse.Namespace, ckpt: Path) -> list[str]:
    return [
        sys.executable, "-m", "flows", "ofa", "train",
        "--space", "ofa-small", "--task", args.task, "--samples-per-class", str(args.samples_per_class),
        "--epochs", args.epochs, "--lr", args.lr, "--subnets", args.subnets, "--batch-size", str(args.batch_size),
        "--threads", "1", "--seed", str(args.seed), "--checkpoint-dir", str(ckpt), "--no-track",
        *(["--fixed-resolution-largest"] if args.fixed_resolution_largest else []),
    ]  # fmt: skip


def shrink_with_kill(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """Run the flow, kill it mid-phase, rerun it; returns what happened."""
    ckpt = out / "checkpoints"
    command = _train_command(args, ckpt)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    record: dict[str, Any] = {"command": " ".join(command[1:])}
    kernel_done = ckpt / "2-kernel.pt"
    start = time.perf_counter()
    if not (ckpt / "4-expand.pt").exists():
        with open(out / "resume_run1.log", "w") as log:
            proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
            killed_at = None
            while proc.poll() is None:
                time.sleep(1.0)
                if kernel_done.exists():
                    if killed_at is None:
                        killed_at = time.perf_counter() + args.kill_after
                    elif time.perf_counter() >= killed_at:
                        os.killpg(proc.pid, signal.SIGKILL)
                        proc.wait()
                        break
        record["run1_returncode"] = proc.returncode
        record["run1_seconds"] = time.perf_counter() - start
        record["checkpoints_after_kill"] = sorted(p.name for p in ckpt.iterdir())
    second = time.perf_counter()
    run2 = subprocess.run(command, capture_output=True, text=True, env=env)
    (out / "resume_run2.log").write_text(run2.stdout + run2.stderr)
    record["run2_returncode"] = run2.returncode
    record["run2_seconds"] = time.perf_counter() - second
    record["run2_summary"] = [line for line in run2.stdout.splitlines() if line.startswith(("skipped", "  ", "final"))]
    record["checkpoints_final"] = sorted(p.name for p in ckpt.iterdir())
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="benchmarks/results/issue18")
    parser.add_argument("--task", default="cifar10")
    parser.add_argument("--samples-per-class", type=int, default=200)
    parser.add_argument("--epochs", default="16,4,4,6")
    parser.add_argument("--lr", default="0.1,0.04,0.02,0.02")
    parser.add_argument("--subnets", default="1,1,2,4")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--kill-after", type=float, default=20.0)
    parser.add_argument("--pool", type=int, default=300)
    parser.add_argument("--n-subnets", type=int, default=8)
    parser.add_argument("--predictor-samples", type=int, default=80)
    parser.add_argument("--calib", type=int, default=20)
    parser.add_argument("--generations", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-scratch", action="store_true")
    parser.add_argument("--fixed-resolution-largest", action="store_true")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report_path = out / "ofa_report.json"
    report: dict[str, Any] = json.loads(report_path.read_text()) if report_path.exists() else {}
    report["args"] = vars(args)

    def save() -> None:
        report_path.write_text(json.dumps(report, indent=2))

    t0 = time.perf_counter()
    report["resume"] = shrink_with_kill(args, out)
    save()

    import torch

    torch.set_num_threads(1)
    from nasmeta.data.tasks import get_task
    from nasmeta.export import load_program
    from nasmeta.latency import LatencyTable, MeasuredLatency, device_label
    from nasmeta.ofa.accuracy import AccuracyPredictor, held_out_quality, measure_accuracies, sample_subnets
    from nasmeta.ofa.deploy import deployable_subnet, export_subnet
    from nasmeta.ofa.evolution import EvolutionConfig, evolution_search
    from nasmeta.ofa.latency import OFALatencyPredictor
    from nasmeta.ofa.shrink import evaluate_subnet, load_checkpoint
    from nasmeta.training import TrainConfig, train

    spec = get_task(args.task).small(args.samples_per_class)
    data = spec.load()
    net, meta = load_checkpoint(out / "checkpoints" / "4-expand.pt")
    space = net.space
    shape, classes = data.input_shape, data.num_classes

    # -- latency table and the 8 sub-networks ---------------------------------------------------------------------
    t = time.perf_counter()
    table = LatencyTable(device_label("cpu"), space.name)
    lut = OFALatencyPredictor(space, table, classes, shape)
    lut.fill("cpu", repeats=100, warmup=10)
    measure = MeasuredLatency(table, classes, "cpu", repeats=100, warmup=10)
    calib = sample_subnets(space, args.calib, seed=args.seed + 3)
    calib_ms = [measure(a, space.build(a, classes, shape), shape) for a in calib]
    raw_sums = [lut.lookup_sum(a) for a in calib]
    scale, offset = lut.calibrate(calib, calib_ms)
    pool = sample_subnets(space, args.pool, seed=args.seed + 1)
    pool = sorted(pool, key=lambda a: (lut.predict(a), a.arch_id))
    picks = [pool[int(round(q * (len(pool) - 1)))] for q in np.linspace(0, 1, args.n_subnets)]
    subnets = []
    for arch in picks:
        model = deployable_subnet(net, arch, data)
        subnets.append(
            {
                "arch": str(arch),
                "arch_id": arch.arch_id,
                "lookup_sum_ms": lut.lookup_sum(arch),
                "predicted_latency_ms": lut.predict(arch),
                "measured_latency_ms": measure(arch, space.build(arch, classes, shape), shape),
                "ofa_test_acc": evaluate_subnet(net, arch, data, split="test"),
                "ofa_val_acc": evaluate_subnet(net, arch, data, split="val"),
                "params": sum(p.numel() for p in model.parameters()),
            }
        )
    report["latency_calibration"] = {
        "networks": len(calib),
        "scale": scale,
        "offset_ms": offset,
        "pairs": [
            {"arch": str(a), "lookup_sum_ms": r, "measured_ms": m}
            for a, r, m in zip(calib, raw_sums, calib_ms, strict=True)
        ],
    }
    report["latency_table"] = {"device": table.device, "entries": len(table), "seconds": time.perf_counter() - t}
    report["subnets"] = subnets
    save()

    # -- accuracy predictor and evolution ---------------------------------------------------------------------------
    t = time.perf_counter()
    archs = sample_subnets(space, args.predictor_samples, seed=args.seed + 2)
    accs = measure_accuracies(net, archs, data)
    quality = {kind: held_out_quality(space, archs, accs, kind) for kind in ("ridge", "mlp")}
    # the predictor kind with the better cross-validated ranking on the predictor's own samples (no test data)
    kind = max(quality, key=lambda k: quality[k]["kendall_tau"])
    predictor = AccuracyPredictor(space, kind, args.seed).fit(archs, accs)
    report["predictor"] = {"samples": len(archs), "quality": quality, "kind": kind, "seconds": time.perf_counter() - t}
    # targets in the constraint's own unit (calibrated predicted ms), at quantiles of the 8 sub-networks' latencies
    predicted = sorted(s["predicted_latency_ms"] for s in subnets)
    targets = [float(np.quantile(predicted, q)) for q in (0.25, 0.5, 0.75)]
    front = []
    for limit in targets:
        t = time.perf_counter()
        result = evolution_search(
            space, predictor, lut.predict, limit, EvolutionConfig(generations=args.generations, seed=args.seed)
        )
        arch = result.best
        files = export_subnet(net, arch, data, out / "exports" / f"ofa-lat{limit:.2f}ms.pt")
        program_ok = None
        if files.program is not None:
            model = deployable_subnet(net, arch, data)
            x = data.x_test[:8]
            with torch.no_grad():
                program_ok = bool(torch.allclose(load_program(files.program)(x), model(x), atol=1e-5))
        front.append(
            {
                "target_ms": limit,
                "arch": str(arch),
                "predicted_latency_ms": lut.predict(arch),
                "lookup_sum_ms": lut.lookup_sum(arch),
                "measured_latency_ms": measure(arch, space.build(arch, classes, shape), shape),
                "predicted_acc": result.predicted_acc,
                "test_acc": evaluate_subnet(net, arch, data, split="test"),
                "evaluated": result.evaluated,
                "search_seconds": time.perf_counter() - t,
                "export": files.model.name,
                "program_matches_eager": program_ok,
            }
        )
    report["front"] = front
    from scipy.stats import kendalltau

    rows = subnets + front
    real = np.array([r["measured_latency_ms"] for r in rows])
    report["latency_predictor"] = {}
    for name, column in (("lookup_sum", "lookup_sum_ms"), ("calibrated", "predicted_latency_ms")):
        pred = np.array([r[column] for r in rows])
        report["latency_predictor"][name] = {
            "kendall_tau": float(kendalltau(pred, real).statistic),
            "mean_abs_pct_error": float(100 * np.mean(np.abs(pred - real) / real)),
            "n": len(rows),
        }
    save()

    # -- from scratch ----------------------------------------------------------------------------------------------
    total_epochs = sum(int(e) for e in args.epochs.split(","))
    if not args.skip_scratch:
        config = TrainConfig(
            epochs=total_epochs,
            batch_size=args.batch_size,
            lr=float(args.lr.split(",")[0]),
            weight_decay=3e-5,
            label_smoothing=0.1,
            augment=True,
            seed=args.seed,
            device="cpu",
            num_threads=1,
        )
        for row in subnets:
            arch = space.parse(row["arch"])
            torch.manual_seed(args.seed)
            model = space.build(arch, classes, shape)
            result = train(model, data, config)
            row["scratch_test_acc"] = result.final_test_acc
            row["scratch_val_acc"] = result.final_val_acc
            row["scratch_seconds"] = result.seconds
            row["scratch_epochs"] = total_epochs
            save()
    report["total_seconds"] = time.perf_counter() - t0
    report["ofa_train_seconds"] = {k: v for k, v in report["resume"].items() if k.endswith("seconds")}
    save()
    print_tables(report)


def print_tables(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    r = report["resume"]
    console.print(
        f"resume: run 1 rc {r.get('run1_returncode')} after {r.get('run1_seconds', 0):.0f} s, checkpoints "
        f"{r.get('checkpoints_after_kill')}; run 2: {r['run2_summary'][:1]}"
    )
    table = Table(title="sub-networks: shrunk weights (no retraining) vs trained from scratch", title_justify="left")
    for col in ("arch", "LUT sum ms", "pred ms", "measured ms", "OFA test", "scratch test", "params"):
        table.add_column(col)
    for s in report["subnets"]:
        scratch = s.get("scratch_test_acc")
        latencies = [f"{s[k]:.2f}" for k in ("lookup_sum_ms", "predicted_latency_ms", "measured_latency_ms")]
        scratch_text = "-" if scratch is None else f"{scratch:.1f}"
        table.add_row(s["arch"], *latencies, f"{s['ofa_test_acc']:.1f}", scratch_text, str(s["params"]))
    console.print(table)
    table = Table(title="evolutionary search: winners per latency target", title_justify="left")
    for col in ("target ms", "arch", "pred ms", "measured ms", "pred acc", "test acc"):
        table.add_column(col)
    for f in report["front"]:
        table.add_row(
            f"{f['target_ms']:.2f}", f["arch"], f"{f['predicted_latency_ms']:.2f}", f"{f['measured_latency_ms']:.2f}",
            f"{f['predicted_acc']:.1f}", f"{f['test_acc']:.1f}",
        )  # fmt: skip
    console.print(table)
    console.print(
        f"latency calibration: scale {report['latency_calibration']['scale']:.3f}, offset "
        f"{report['latency_calibration']['offset_ms']:.3f} ms on {report['latency_calibration']['networks']} "
        f"measured networks"
    )
    console.print(f"latency predictor vs measured: {report['latency_predictor']}")
    console.print(f"accuracy predictor: {report['predictor']}")


if __name__ == "__main__":
    main()
