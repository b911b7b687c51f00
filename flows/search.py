"""Flow ``search_target``: zero-shot, one-shot, transfer-guided and black-box searches side by side on one target
task, then the winner retrained from scratch and exported.

Every method's pick is evaluated the same way (trained with the same recipe for ``eval_epochs`` by a
``TrainingEvaluator``, or already so by the method itself), so the comparison table lines up: best val / test
accuracy, search seconds, evaluations, parameters.  Each method is a child MLflow run with the same tags
(task, space, method, lodo_fold) and metric names (``best_val_acc``, ``best_test_acc``, ``search_seconds``,
``n_evaluations``, ``params``) so MLflow's compare view lines them up; each gets a ``searches`` row.
A method that raises is reported as failed with its reason; the flow fails only when no method succeeds.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.task_runners import ThreadPoolTaskRunner

from flows.common import (
    budget_label,
    open_store,
    preflight,
    provenance_tags,
    publish_markdown,
    resolve_task_spec,
    task_row,
    tracking_enabled,
)
from flows.progress import stage
from nasmeta.budget import Budget, resolve_budget
from nasmeta.search.registry import check_methods

EXPERIMENT = "nasmeta-search"


class _TrialLogger:
    """Each ended trial of a loop-based method as an MLflow run nested under the method's run (tags: status,
    promotions, epochs; its learning curve as metrics), and the pause / resume counts on the method's run."""

    def __init__(self, run: Any) -> None:
        self.run = run
        self.counts = {"paused": 0, "resumed": 0, "completed": 0, "stopped": 0, "failed": 0}

    def __call__(self, trial: Any, event: str) -> None:
        if event in self.counts:
            self.counts[event] += 1
        if event not in ("completed", "stopped", "failed"):
            return
        from nasmeta import tracking

        evaluation = trial.evaluation
        tags = {
            "trial": trial.trial_id,
            "status": trial.status,
            "promotions": trial.promotions,
            "epochs": trial.epochs,
            "arch": str(trial.arch),
            "arch_id": getattr(trial.arch, "arch_id", None),
        }
        name = f"trial-{trial.trial_id}/{trial.status}"
        with tracking.child_run(self.run, run_name=name, tags=tags) as child:
            for row in evaluation.curve if evaluation is not None else []:
                child.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=int(row["epoch"]))
            if trial.status == "failed":
                child.fail(evaluation.error if evaluation is not None else "failed")


def run_method_row(
    method: str,
    space: str,
    spec: Any,
    budget: Budget,
    seed: int,
    components: dict[str, str],
    store: Any,
    holdout: str | None,
    child: Any,
) -> dict[str, Any]:
    """Run one registered method; the comparison row (raises on failure)."""
    from nasmeta.search.target import SearchContext, run_method

    meta = store.meta()
    if holdout and holdout in meta.task_ids:
        meta = meta.without(holdout)
    trials = _TrialLogger(child) if child is not None else None
    ctx = SearchContext(space, spec, budget, seed=seed, components=components, meta=meta, on_trial=trials)
    result = run_method(method, ctx)
    if result.extra.get("rows"):  # zero-shot proxy scores
        from nasmeta.zeroshot.store import write_scores

        write_scores(store, spec.task_id, result.extra["rows"])
        if child is not None:
            from nasmeta import tracking

            tracking.log_table("proxy_scores", result.extra["rows"], run=child)
    n_params = next((e.extra.get("n_params") for e in result.history if e.arch == result.best_arch), None)
    row = {
        "arch": str(result.best_arch),
        "arch_id": result.best_arch.arch_id,
        "arch_json": result.best_arch.to_json(),
        "best_val_acc": result.best_val_acc,
        "best_test_acc": result.best_test_acc,
        "search_seconds": result.cost_seconds,
        "n_evaluations": result.n_evaluations,
        "n_stopped": result.extra.get("n_stopped", 0),
        "n_promotions": result.extra.get("n_promotions", 0),
        "params": n_params,
    }
    if child is not None:
        from nasmeta import tracking

        keys = ("best_val_acc", "best_test_acc", "search_seconds", "n_evaluations", "n_stopped", "n_promotions")
        child.log_metrics({k: row[k] for k in (*keys, "params") if row[k] is not None})
        if trials is not None:
            child.log_metrics({f"trials_{k}": v for k, v in trials.counts.items()})
        if result.extra.get("trials"):
            tracking.log_table("trials", result.extra["trials"], run=child)
        tracking.log_architecture(result.best_arch, run=child)
        if result.trace and result.extra.get("family") == "one-shot":
            _log_oneshot_plots(result, child)
    return row


@task(name="search-method", persist_result=False, task_run_name="{method} on {task_name}")
def search_method(
    method: str,
    space: str,
    task_name: str,
    budget: dict[str, Any],
    seed: int,
    components: dict[str, str],
    store_root: str | None,
    holdout: str | None,
    parent: Any,
    resume: bool = True,
) -> dict[str, Any]:
    """One method as a child run; never raises (a failure comes back with its reason).  With ``resume`` a method
    whose search (same task, method, budget, seed, fold) is already in the store is not run again."""
    from nasmeta.spaces.base import stable_hash

    budget_obj = resolve_budget(budget)
    spec = resolve_task_spec(task_name, budget_obj.samples_per_class)
    store = open_store(store_root)
    tags = {
        "task": spec.name,
        "task_id": spec.task_id,
        "space": space,
        "method": method,
        "budget": budget_obj.name,
        "lodo_fold": holdout or "none",
    }
    search_id = stable_hash("search", spec.task_id, method, budget, seed, holdout)
    previous = _stored_search(store, search_id) if resume else None
    if previous is not None:  # an interrupted search run again: this method already finished
        return previous
    row: dict[str, Any] = {"method": method, "status": "completed", "error": None}
    start = time.perf_counter()
    try:
        if parent is not None:
            from nasmeta import tracking

            with tracking.child_run(parent, run_name=f"{method}/{spec.name}", tags=tags, params=budget) as child:
                row["mlflow_run_id"] = child.run_id
                row.update(run_method_row(method, space, spec, budget_obj, seed, components, store, holdout, child))
        else:
            row.update(run_method_row(method, space, spec, budget_obj, seed, components, store, holdout, None))
    except Exception as error:
        row.update(status="failed", error=f"{type(error).__name__}: {error}")
    row["wall_seconds"] = time.perf_counter() - start
    if row["status"] == "completed":
        from nasmeta.data.store_import import architecture_row
        from nasmeta.spaces import Architecture

        pick = Architecture.from_json(row["arch_json"])
        store.append("architectures", [architecture_row(pick, row.get("params"), None)])
        store.append(
            "searches",
            [
                {
                    "search_id": search_id,
                    "task_id": spec.task_id,
                    "method": method,
                    "budget": budget_obj.describe(),
                    "best_arch_id": row["arch_id"],
                    "best_val_acc": row["best_val_acc"],
                    "best_test_acc": row["best_test_acc"],
                    "cost_seconds": row["search_seconds"],
                    "n_evaluations": row["n_evaluations"],
                    "lodo_fold": holdout,
                    "mlflow_run_id": row.get("mlflow_run_id"),
                }
            ],
        )
    return row


def _stored_search(store: Any, search_id: str) -> dict[str, Any] | None:
    """The comparison row of a finished search (its ``searches`` row and the pick's ``architectures`` row), or
    None; counts the store does not keep (stopped trials, promotions) are None."""
    import pyarrow.compute as pc

    found = store.read("searches", filter=pc.field("search_id") == search_id).to_pylist()
    if not found:
        return None
    done = found[0]
    archs = store.read("architectures", filter=pc.field("arch_id") == done["best_arch_id"]).to_pylist()
    if not archs:
        return None
    from nasmeta.data.store_import import architecture_from_row

    arch = architecture_from_row(archs[0])
    return {
        "method": done["method"],
        "status": "completed",
        "error": None,
        "reused": True,
        "arch": str(arch),
        "arch_id": arch.arch_id,
        "arch_json": arch.to_json(),
        "best_val_acc": done["best_val_acc"],
        "best_test_acc": done["best_test_acc"],
        "search_seconds": done["cost_seconds"],
        "n_evaluations": done["n_evaluations"],
        "n_stopped": None,
        "n_promotions": None,
        "params": archs[0].get("n_params"),
        "mlflow_run_id": done["mlflow_run_id"],
        "wall_seconds": 0.0,
    }


def _log_oneshot_plots(result: Any, run: Any) -> None:
    import tempfile

    from nasmeta.oneshot.plots import draw_cell, plot_op_weights

    with tempfile.TemporaryDirectory() as tmp:
        for path in (
            plot_op_weights(result.trace, Path(tmp) / "op_weights.png"),
            draw_cell(result.best_arch, Path(tmp) / "cell.png"),
        ):
            run.log_artifact(path)
    for row in result.trace:
        if "skip_share" in row and row.get("epoch") is not None:
            run.log_metrics({"skip_share": row["skip_share"]}, step=int(row["epoch"]))


@task(name="retrain-winner", persist_result=False, task_run_name="retrain {winner[method]}")
def retrain_winner(
    winner: dict[str, Any], task_name: str, space: str, budget: dict[str, Any], seed: int, out_dir: str, parent: Any
) -> dict[str, Any]:
    """Train the winning architecture from scratch for ``retrain_epochs`` and export it."""
    from nasmeta.export import export_model
    from nasmeta.spaces import Architecture
    from nasmeta.training import train_architecture

    budget_obj = resolve_budget(budget)
    spec = resolve_task_spec(task_name, budget_obj.samples_per_class)
    arch = Architecture.from_json(winner["arch_json"])
    size = budget_obj.network_size(arch.space)
    config = budget_obj.train_config(budget_obj.retrain_epochs)
    outcome: dict[str, Any] = {"method": winner["method"], "arch": str(arch), "arch_id": arch.arch_id}

    def body(child: Any) -> None:
        data = spec.load()
        trained = train_architecture(
            arch, data, config, size=size, seed=seed, reporter=child.reporter("retrain_") if child else None
        )
        ev = trained.evaluation
        outcome.update(status=ev.status, val_acc=ev.val_acc, test_acc=ev.test_acc, seconds=ev.cost_seconds)
        if trained.model is None or ev.status == "failed":
            outcome["error"] = ev.error
            return
        files = export_model(
            trained.model,
            arch,
            Path(out_dir) / f"{arch.arch_id}.pt",
            num_classes=data.num_classes,
            input_shape=data.input_shape,
            size=size,
        )
        outcome.update(params=trained.result.n_params, export=str(files.model))
        if child is not None:
            child.log_metrics({"retrained_val_acc": ev.val_acc, "retrained_test_acc": ev.test_acc})
            from nasmeta import tracking

            tracking.log_architecture(arch, run=child)
            if ev.curve:
                tracking.log_learning_curve_png(ev.curve, run=child)
            exported = [p for p in (files.model, files.arch_json, files.program, files.onnx, files.torchscript) if p]
            outcome["model_id"] = tracking.log_exported_model(
                exported, f"winner-{arch.arch_id}", run=child, tags={"arch": str(arch), "method": winner["method"]}
            )

    if parent is not None:
        from nasmeta import tracking

        tags = {"task": spec.name, "method": winner["method"], "arch_id": arch.arch_id, "stage": "retrain"}
        with tracking.child_run(parent, run_name=f"retrain/{winner['method']}", tags=tags) as child:
            body(child)
    else:
        body(None)
    return outcome


def _flow_run_name() -> str:
    from prefect.runtime import flow_run

    p = flow_run.parameters
    return f"search {p.get('task')} ({p.get('space')}, {budget_label(p.get('budget'))})"


# one method at a time: each already uses every CPU core, and a shared global RNG keeps runs reproducible
@flow(
    name="search-target",
    log_prints=True,
    task_runner=ThreadPoolTaskRunner(max_workers=1),
    flow_run_name=_flow_run_name,
)
def search_target(
    task: str = "digits-5to9",
    space: str = "nb201",
    methods: list[str] | None = None,
    budget: str | dict[str, Any] | Budget = "default",
    seed: int = 0,
    components: dict[str, str] | None = None,
    holdout: bool = True,
    store: str | None = None,
    track: bool = True,
    resume: bool = True,
) -> dict[str, Any]:
    """Search ``task`` with each method; retrain the best pick; return the comparison table.

    ``resume``: methods whose identical search (task, method, budget, seed, fold) already finished are read back
    from the store instead of run again, so an interrupted search picks up where it stopped.

    ``components`` maps component names to saved directories (from ``train_transfer``); missing ones are fitted
    on the store here.  With ``holdout`` the transfer methods never see the target task's own metadata.
    """
    from nasmeta import config
    from nasmeta.spaces import get_space

    logger = get_run_logger()
    budget_obj = resolve_budget(budget)
    get_space(space)
    methods = check_methods(methods, space)
    spec = resolve_task_spec(task, budget_obj.samples_per_class)
    preflight(store, track)
    store_obj = open_store(store)
    store_obj.append("tasks", [task_row(spec, spec.load())])
    fold = spec.task_id if holdout else None
    budget_json = budget_obj.model_dump(mode="json")
    out_dir = str(config.home() / "exports" / spec.task_id)

    def run_all(parent: Any) -> dict[str, Any]:
        futures = [
            search_method.submit(m, space, task, budget_json, seed, components or {}, store, fold, parent, resume)
            for m in methods
        ]
        rows = []
        with stage("search", total=len(futures), unit="methods") as shown:
            for future in futures:
                rows.append(future.result())
                shown.advance(f"{rows[-1]['method']} {rows[-1]['status']}")
        ok = [r for r in rows if r["status"] == "completed" and r.get("best_val_acc") is not None]
        if not ok:
            reasons = "; ".join(f"{r['method']}: {r['error']}" for r in rows)
            raise RuntimeError(f"no search method succeeded on {task}: {reasons}")
        winner = max(ok, key=lambda r: r["best_val_acc"])
        with stage("retrain", total=1, unit="winner") as shown:
            retrained = retrain_winner.submit(winner, task, space, budget_json, seed, out_dir, parent).result()
            shown.advance(winner["method"])
        return {"rows": rows, "winner": winner["method"], "retrained": retrained}

    if tracking_enabled(track):
        from nasmeta import tracking

        tracking.configure()
        tags = {
            "task": spec.name,
            "space": space,
            "budget": budget_obj.name,
            "methods": ",".join(methods),
            "lodo_fold": fold or "none",
            **provenance_tags(),
        }
        # unique per search: the same task searched twice must not give two runs of one name
        run_name = f"search/{spec.name}/{time.strftime('%Y%m%d-%H%M%S')}"
        with tracking.parent_run(EXPERIMENT, run_name=run_name, tags=tags, params=budget_json) as parent:
            outcome = run_all(parent)
            tracking.log_table("comparison", comparison_rows(outcome), run=parent)
            parent.log_metrics(
                {"retrained_test_acc": outcome["retrained"].get("test_acc", float("nan")), "n_methods": len(methods)}
            )
            failed = [r["method"] for r in outcome["rows"] if r["status"] == "failed"]
            if failed:
                parent.set_tags({"failed_methods": ", ".join(failed)})
            outcome["mlflow_run_id"] = parent.run_id
    else:
        outcome = run_all(None)
    for row in outcome["rows"]:
        if row["status"] == "failed":
            logger.warning("search method %s failed: %s", row["method"], row["error"])
    outcome["table"] = comparison_rows(outcome)
    outcome["task_id"] = spec.task_id
    outcome["artifact"] = publish_markdown(
        f"comparison-{spec.name}-{space}",
        comparison_markdown(outcome, spec.name, space, budget_obj.name),
        f"search comparison on {spec.name} ({space}, budget {budget_obj.name})",
    )
    print_comparison(outcome)
    return outcome


def comparison_markdown(outcome: dict[str, Any], task: str, space: str, budget: str) -> str:
    """The comparison as a markdown table, with the MLflow run ids that hold each method's details."""
    head = ["method", "status", "val acc", "test acc", "search s", "evals", "stopped", "promoted", "MLflow run"]
    lines = [f"## Search comparison: {task} ({space}, budget {budget})", "", "| " + " | ".join(head) + " |"]
    lines.append("|" + "---|" * len(head))

    def fmt(v: Any, spec: str = ".2f") -> str:
        return "-" if v is None else format(v, spec)

    for r in outcome["rows"]:
        cells = [
            r["method"],
            r["status"] if r["status"] == "completed" else f"failed: {(r.get('error') or '')[:80]}",
            fmt(r.get("best_val_acc")),
            fmt(r.get("best_test_acc")),
            fmt(r.get("search_seconds"), ".1f"),
            fmt(r.get("n_evaluations"), "d"),
            fmt(r.get("n_stopped"), "d"),
            fmt(r.get("n_promotions"), "d"),
            f"`{r['mlflow_run_id']}`" if r.get("mlflow_run_id") else "-",
        ]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    rt = outcome.get("retrained") or {}
    if rt:
        lines += [
            "",
            f"**Winner**: {outcome['winner']} `{rt.get('arch')}` retrained test accuracy "
            f"{fmt(rt.get('test_acc'))} %, exported to `{rt.get('export')}`",
        ]
    if outcome.get("mlflow_run_id"):
        lines += ["", f"MLflow parent run: `{outcome['mlflow_run_id']}` (experiment `{EXPERIMENT}`; `nasmeta ui`)"]
    return "\n".join(lines)


def comparison_rows(outcome: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per method: accuracy, search cost, evaluations, parameters, status."""
    keys = (
        "method",
        "status",
        "best_val_acc",
        "best_test_acc",
        "search_seconds",
        "n_evaluations",
        "n_stopped",
        "n_promotions",
        "params",
        "arch",
    )
    rows = [{k: r.get(k) for k in keys} | {"error": r.get("error")} for r in outcome["rows"]]
    return rows


def print_comparison(outcome: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Search comparison (pick trained with the same recipe)")
    columns = ("method", "status", "val acc", "test acc", "search s", "evals", "stopped", "promoted", "params")
    for col in (*columns, "architecture / error"):
        table.add_column(col)

    def fmt(v: Any, spec: str = ".2f") -> str:
        return "-" if v is None else format(v, spec)

    for r in comparison_rows(outcome):
        table.add_row(
            r["method"],
            r["status"],
            fmt(r["best_val_acc"]),
            fmt(r["best_test_acc"]),
            fmt(r["search_seconds"], ".1f"),
            fmt(r["n_evaluations"], "d"),
            fmt(r["n_stopped"], "d"),
            fmt(r["n_promotions"], "d"),
            fmt(r["params"], ",d"),
            r["arch"] if r["status"] == "completed" else (r["error"] or "")[:80],
        )
    # a log file or pipe gets full rows rather than the 80-column default; with the CLI's --json the JSON result
    # owns stdout and the table goes to stderr
    to_stderr = os.environ.get("NASMETA_TABLES") == "stderr"
    console = Console(width=None if Console(stderr=to_stderr).is_terminal else 200, stderr=to_stderr)
    console.print(table)
    rt = outcome.get("retrained") or {}
    if rt:
        console.print(
            f"winner: {outcome['winner']}  {rt.get('arch')}  retrained test acc {fmt(rt.get('test_acc'))} %"
            f"  -> {rt.get('export')}"
        )
