"""Flows ``ofa-train`` (progressive shrinking, one Prefect task per phase) and ``ofa-deploy`` (latency table and
predictor, accuracy predictor, evolutionary search per constraint, extraction and export of each winner).

``ofa-train`` resumes: each phase writes its checkpoint atomically when it ends, and a rerun with the same
checkpoint directory skips every phase that has one (``nasmeta.ofa.shrink``).  A killed run loses only the
phase it was in.  Both flows log to MLflow (experiment ``nasmeta-ofa``) unless tracking is off.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.task_runners import ThreadPoolTaskRunner

from flows.common import open_store, provenance_tags, resolve_task_spec, task_row, tracking_enabled

EXPERIMENT = "nasmeta-ofa"


def _space(name: str) -> Any:
    from nasmeta.spaces import get_space
    from nasmeta.spaces.ofa import OFASpace

    space = get_space(name)
    if not isinstance(space, OFASpace):
        raise ValueError(f"space {name!r} is not an OFA space (use ofa or ofa-small)")
    return space


class _RunReporter:
    """Per-epoch training metrics of a phase to the MLflow run (step: epochs counted over all phases)."""

    def __init__(self, run: Any, offset: int) -> None:
        self.run, self.offset = run, offset

    def report(self, step: int, **metrics: Any) -> None:
        if self.run is not None:
            phase = metrics.get("phase", "phase")
            self.run.log_metrics({f"{phase}/train_loss": metrics.get("train_loss")}, step=self.offset + step)


@task(name="ofa-phase", persist_result=False, task_run_name="phase {phase}")
def shrink_phase(
    space: str,
    task_name: str,
    samples_per_class: int | None,
    phase: str,
    config: dict[str, Any],
    directory: str,
    run: Any,
    offset: int,
) -> dict[str, Any]:
    """Train one phase from the previous checkpoint and write this phase's checkpoint."""
    from nasmeta.ofa.shrink import ShrinkConfig, train_phase

    data = resolve_task_spec(task_name, samples_per_class).load()
    return train_phase(space, data, phase, ShrinkConfig.model_validate(config), directory, _RunReporter(run, offset))


@flow(name="ofa-train", log_prints=True, task_runner=ThreadPoolTaskRunner(max_workers=1))
def ofa_train(
    space: str = "ofa-small",
    task_name: str = "cifar10",
    samples_per_class: int | None = 200,
    config: dict[str, Any] | None = None,
    checkpoint_dir: str | None = None,
    track: bool = True,
) -> dict[str, Any]:
    """Progressive shrinking of ``space`` on ``task_name``; phases already checkpointed in ``checkpoint_dir``
    (default ``$NASMETA_HOME/ofa/<space>-<task id>``) are skipped."""
    from nasmeta import config as nasmeta_config
    from nasmeta.ofa.shrink import PHASES, ShrinkConfig, checkpoint_path, finished_phases

    logger = get_run_logger()
    spec = resolve_task_spec(task_name, samples_per_class)
    data = spec.load()
    ofa_space = _space(space)
    recipe = ShrinkConfig.model_validate(config or {})
    directory = checkpoint_dir or str(nasmeta_config.home() / "ofa" / f"{space}-{spec.task_id}-{recipe.fingerprint()}")
    done = finished_phases(directory, ofa_space, data, recipe)
    if done:
        logger.info("resuming in %s: phases %s already finished", directory, ", ".join(done))
    outcome: dict[str, Any] = {"skipped": done, "ran": [], "metrics": {}, "checkpoint_dir": directory}

    def run_all(run: Any) -> None:
        offset = sum(recipe.phase(p).epochs for p in done)
        for index, phase in enumerate(PHASES):
            if phase in done:
                continue
            future = shrink_phase.submit(
                space, task_name, samples_per_class, phase, recipe.model_dump(mode="json"), directory, run, offset
            )
            metrics = future.result()
            offset += recipe.phase(phase).epochs
            outcome["ran"].append(phase)
            outcome["metrics"][phase] = metrics
            logger.info("phase %s done: %s", phase, metrics)
            if run is not None:
                run.log_metrics({f"{k}": v for k, v in metrics.items() if k != "phase"}, step=index + 1)

    if tracking_enabled(track):
        from nasmeta import tracking

        tracking.configure()
        tags = {"space": space, "task": spec.name, "resumed_from": ",".join(done) or "none", **provenance_tags()}
        params = {"config": recipe.model_dump(mode="json"), "checkpoint_dir": directory, "task_id": spec.task_id}
        with tracking.parent_run(EXPERIMENT, run_name=f"ofa-train/{spec.name}/{space}", tags=tags, params=params) as p:
            run_all(p)
    else:
        run_all(None)
    outcome["final_checkpoint"] = str(checkpoint_path(directory, PHASES[-1]))
    return outcome


@task(name="ofa-latency-table", persist_result=False)
def latency_task(
    space: str, num_classes: int, input_shape: tuple[int, int, int], store_root: str | None, device: str, checks: int
) -> dict[str, Any]:
    """Fill the block lookup table and measure ``checks`` whole sub-networks (both stored); returns how well the
    table's sums predict the measured latencies."""
    import numpy as np
    from scipy.stats import kendalltau

    from nasmeta.data.store_import import architecture_row
    from nasmeta.latency import LatencyTable, MeasuredLatency, device_label
    from nasmeta.ofa.accuracy import sample_subnets
    from nasmeta.ofa.latency import OFALatencyPredictor

    store = open_store(store_root)
    ofa_space = _space(space)
    table = LatencyTable.from_store(store, device_label(device), space)
    predictor = OFALatencyPredictor(ofa_space, table, num_classes, input_shape)
    measured_blocks = predictor.fill(device)
    measure = MeasuredLatency(table, num_classes, device)
    archs = sample_subnets(ofa_space, checks, seed=12345)
    real = [measure(a, ofa_space.build(a, num_classes, input_shape), input_shape) for a in archs]
    predicted = [predictor.predict(a) for a in archs]
    store.append("architectures", [architecture_row(a) for a in archs])
    written = table.to_store(store)
    errors = np.abs(np.asarray(predicted) - np.asarray(real)) / np.asarray(real)
    return {
        "device": table.device,
        "blocks_measured": measured_blocks,
        "entries": len(table),
        "rows_written": written,
        "check_kendall_tau": float(kendalltau(predicted, real).statistic),
        "check_mean_abs_pct_error": float(100 * errors.mean()),
        "checks": [
            {"arch": str(a), "measured_ms": m, "predicted_ms": p}
            for a, m, p in zip(archs, real, predicted, strict=True)
        ],
    }


@flow(name="ofa-deploy", log_prints=True, task_runner=ThreadPoolTaskRunner(max_workers=1))
def ofa_deploy(
    checkpoint: str,
    task_name: str = "cifar10",
    samples_per_class: int | None = 200,
    latency_targets_ms: list[float] | None = None,
    flops_targets: list[float] | None = None,
    predictor_samples: int = 60,
    predictor_kind: str = "ridge",
    generations: int = 30,
    population_size: int = 100,
    latency_checks: int = 20,
    out_dir: str | None = None,
    store: str | None = None,
    device: str = "cpu",
    bn_images: int = 500,
    seed: int = 0,
    track: bool = True,
) -> dict[str, Any]:
    """Latency table (calibrated on ``latency_checks`` measured sub-networks), accuracy predictor, then per target
    an evolutionary search, the winner extracted with the shrunk weights (BN re-estimated), its latency measured,
    its test accuracy, and its export."""

    from nasmeta import config as nasmeta_config
    from nasmeta.latency import LatencyTable, MeasuredLatency, device_label
    from nasmeta.ofa.accuracy import AccuracyPredictor, held_out_quality, measure_accuracies, sample_subnets
    from nasmeta.ofa.deploy import deployable_subnet, export_subnet
    from nasmeta.ofa.evolution import EvolutionConfig, FlopsCost, evolution_search
    from nasmeta.ofa.latency import OFALatencyPredictor
    from nasmeta.ofa.shrink import evaluate_subnet, load_checkpoint

    logger = get_run_logger()
    targets = [("latency_ms", float(t)) for t in latency_targets_ms or []]
    targets += [("flops", float(t)) for t in flops_targets or []]
    if not targets:
        raise ValueError("give at least one latency or FLOPs target")
    spec = resolve_task_spec(task_name, samples_per_class)
    data = spec.load()
    net, meta = load_checkpoint(checkpoint)
    if meta["task_id"] != spec.task_id:
        raise ValueError(f"checkpoint {checkpoint} was trained on task {meta['task_id']}, not {spec.task_id}")
    # accuracy, BN re-estimation and export run on the CPU; ``device`` is where latency is measured
    space = net.space
    out = Path(out_dir or nasmeta_config.home() / "ofa" / "deploy")
    db = open_store(store)
    db.append("tasks", [task_row(spec, data)])

    def run_all(run: Any) -> dict[str, Any]:
        start = time.perf_counter()
        latency = latency_task(space.name, data.num_classes, data.input_shape, store, device, latency_checks)
        logger.info("latency table: %s", {k: v for k, v in latency.items() if k != "checks"})
        archs = sample_subnets(space, predictor_samples, seed)
        accs = measure_accuracies(net, archs, data, bn_images)
        quality = held_out_quality(space, archs, accs, predictor_kind) if len(archs) >= 10 else {}
        predictor = AccuracyPredictor(space, predictor_kind, seed).fit(archs, accs)  # type: ignore[arg-type]
        table = LatencyTable.from_store(db, device_label(device), space.name)
        lut = OFALatencyPredictor(space, table, data.num_classes, data.input_shape)
        checks = latency["checks"]
        if len(checks) >= 3:
            lut.calibrate([space.parse(c["arch"]) for c in checks], [c["measured_ms"] for c in checks])
        measure = MeasuredLatency(table, data.num_classes, device)
        flops = FlopsCost(space, data.num_classes, data.input_shape)
        evo = EvolutionConfig(generations=generations, population_size=population_size, seed=seed)
        winners = []
        for kind, limit in targets:
            result = evolution_search(space, predictor, lut.predict if kind == "latency_ms" else flops, limit, evo)
            arch = result.best
            model = deployable_subnet(net, arch, data, bn_images)
            # MLflow model names may not contain '.', so 1.5 ms becomes 1p5
            name = f"ofa-{kind}-{limit:g}".replace(".", "p")
            files = export_subnet(net, arch, data, out / f"{name}.pt", bn_images)
            row = {
                "target": name,
                "arch": str(arch),
                "arch_id": arch.arch_id,
                "constraint": kind,
                "limit": limit,
                "predicted_acc": result.predicted_acc,
                "predicted_latency_ms": lut.predict(arch),
                "lookup_sum_ms": lut.lookup_sum(arch),
                "measured_latency_ms": measure(arch, model, data.input_shape),
                "flops": flops(arch),
                "val_acc": evaluate_subnet(net, arch, data, bn_images, "val"),
                "test_acc": evaluate_subnet(net, arch, data, bn_images, "test"),
                "export": str(files.model),
                "program": str(files.program) if files.program else None,
            }
            winners.append(row)
            logger.info("winner %s", row)
            if run is not None:
                from nasmeta import tracking

                paths = [p for p in (files.model, files.arch_json, files.program, files.onnx) if p is not None]
                tracking.log_exported_model(paths, name, run=run, tags={"arch_id": arch.arch_id})
        table.to_store(db)
        summary = {
            "latency": latency,
            "predictor": {"kind": predictor_kind, "samples": len(archs), **quality},
            "latency_calibration": {"scale": lut.scale, "offset": lut.offset},
            "samples": [{"arch": str(a), "val_acc": v} for a, v in zip(archs, accs, strict=True)],
            "winners": winners,
            "seconds": time.perf_counter() - start,
        }
        if run is not None:
            from nasmeta import tracking

            run.log_metrics({f"predictor_{k}": v for k, v in quality.items()})
            run.log_metrics({"latency_check_kendall_tau": latency["check_kendall_tau"]})
            tracking.log_table("winners", winners, run=run)
        return summary

    if tracking_enabled(track):
        from nasmeta import tracking

        tracking.configure()
        tags = {"space": space.name, "task": spec.name, "device": device, **provenance_tags()}
        params = {"checkpoint": checkpoint, "targets": targets, "predictor_samples": predictor_samples}
        with tracking.parent_run(EXPERIMENT, run_name=f"ofa-deploy/{spec.name}", tags=tags, params=params) as p:
            return run_all(p)
    return run_all(None)
