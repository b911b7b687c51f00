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

import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel, ConfigDict, Field

from flows.common import open_store, resolve_task_spec, task_row, tracking_enabled

EXPERIMENT = "nasmeta-search"
METHODS = ("zeroshot", "oneshot-darts", "transfer-tapas", "transfer-lcranknet", "blackbox-re")


class SearchBudget(BaseModel):
    """How much each method may spend; the presets are in :data:`BUDGETS`."""

    model_config = ConfigDict(extra="forbid")

    size: dict[str, Any] = Field(default_factory=lambda: {"C": 8, "N": 1})
    train: dict[str, Any] = Field(default_factory=lambda: {"batch_size": 64, "lr": 0.05, "num_threads": 1})
    eval_epochs: int = Field(8, ge=1)
    evaluations: int = Field(6, ge=1)
    zeroshot_samples: int = Field(100, ge=1)
    zeroshot_proxies: list[str] = Field(default_factory=lambda: ["naswot", "synflow"])
    oneshot_epochs: int = Field(10, ge=1)
    tapas_predictions: int = Field(500, ge=1)
    retrain_epochs: int = Field(20, ge=1)
    samples_per_class: int | None = Field(None, ge=2)


BUDGETS: dict[str, SearchBudget] = {
    "micro": SearchBudget(
        size={"C": 4, "N": 1},
        eval_epochs=2,
        evaluations=2,
        zeroshot_samples=8,
        oneshot_epochs=1,
        tapas_predictions=50,
        retrain_epochs=2,
        samples_per_class=30,
    ),
    "default": SearchBudget(),
    "paper": SearchBudget(
        size={"C": 16, "N": 5},
        train={"batch_size": 256, "lr": 0.1},
        eval_epochs=12,
        evaluations=100,
        zeroshot_samples=1000,
        oneshot_epochs=50,
        tapas_predictions=10000,
        retrain_epochs=200,
    ),
}


def resolve_budget(budget: str | dict[str, Any] | SearchBudget) -> SearchBudget:
    if isinstance(budget, SearchBudget):
        return budget
    if isinstance(budget, str):
        if budget not in BUDGETS:
            raise ValueError(f"unknown budget {budget!r}; expected one of {', '.join(BUDGETS)} or a mapping")
        return BUDGETS[budget]
    return SearchBudget(**budget)


def _evaluator(space: str, spec: Any, budget: SearchBudget) -> Any:
    from nasmeta.training import TrainConfig, TrainingEvaluator

    config = TrainConfig(**{"epochs": budget.eval_epochs, **budget.train})
    return TrainingEvaluator(space, spec, config, size=budget.size)


def run_method(
    method: str, space: str, spec: Any, budget: SearchBudget, seed: int, components: dict[str, str], meta: Any
) -> Any:
    """Run one search method; returns a ``SearchResult`` whose best_val/test are training-evaluated."""
    from nasmeta.spaces import get_space

    space_obj = get_space(space)
    data = spec.load()
    evaluator = _evaluator(space, spec, budget)
    if method == "zeroshot":
        from nasmeta.zeroshot.search import zero_shot_search

        return zero_shot_search(
            space_obj,
            data,
            budget.zeroshot_proxies,
            n_samples=budget.zeroshot_samples,
            seed=seed,
            build_kwargs=budget.size,
            top_k_evaluator=evaluator,
            top_k=budget.evaluations,
        )
    if method == "oneshot-darts":
        from dataclasses import replace

        from nasmeta.oneshot.api import oneshot_search

        result = oneshot_search(
            "darts", space_obj, data, epochs=budget.oneshot_epochs, seed=seed, supernet_size=budget.size
        )
        picked = evaluator.evaluate(result.best_arch, seed=seed)
        if picked.status != "completed":
            raise RuntimeError(f"training the one-shot pick failed: {picked.error}")
        return replace(
            result,
            best_val_acc=picked.val_acc,
            best_test_acc=picked.test_acc,
            history=[*result.history, picked],
            n_evaluations=result.n_evaluations + 1,
            cost_seconds=result.cost_seconds + picked.cost_seconds,
        )
    if method == "transfer-tapas":
        from nasmeta.transfer.tapas import TAPAS, tapas_search

        tapas = TAPAS.load(components["tapas"]) if "tapas" in components else TAPAS().fit(meta)
        # TAPAS takes the DCN as a fraction; landmarkers (like every accuracy here) are in percent
        target = {"task_id": spec.task_id, "dcn": _landmarkers(spec)["dcn"] / 100.0}
        return tapas_search(
            tapas,
            space_obj,
            target,
            evaluator,
            n_evaluations=budget.evaluations,
            n_predictions=budget.tapas_predictions,
            seed=seed,
        )
    if method == "transfer-lcranknet":
        from nasmeta.blackbox.stopped_search import random_search_with_stopping
        from nasmeta.transfer.lcranknet import LCRankNet

        ranker = LCRankNet.load(components["lcranknet"]) if "lcranknet" in components else LCRankNet().fit(meta)

        def make(arch: Any, curves: list, archs: list, finals: list) -> Any:
            return ranker.as_should_stop(
                max_epochs=budget.eval_epochs,
                arch=arch,
                task_id=spec.task_id,
                completed_curves=curves,
                completed_archs=archs,
                completed_finals=finals,
            )

        return random_search_with_stopping(space_obj, evaluator, budget.evaluations, make, seed=seed)
    if method == "blackbox-re":
        from nasmeta.blackbox.evolution import regularized_evolution

        population = max(2, min(10, budget.evaluations // 2))
        return regularized_evolution(
            space_obj, evaluator, budget.evaluations, population_size=population, sample_size=2, seed=seed
        )
    if method == "blackbox-rs":
        from nasmeta.blackbox.random_search import random_search

        return random_search(space_obj, evaluator, budget.evaluations, seed=seed)
    raise ValueError(f"unknown search method {method!r}; known: {', '.join((*METHODS, 'blackbox-rs'))}")


def _landmarkers(spec: Any) -> dict[str, Any]:
    """The target's landmarkers (DCN, ...) for transfer methods, computed once per process."""
    from nasmeta.data.landmarkers import compute_landmarkers

    if spec.task_id not in _LANDMARKER_CACHE:
        _LANDMARKER_CACHE[spec.task_id] = {"task_id": spec.task_id, **compute_landmarkers(spec)}
    return _LANDMARKER_CACHE[spec.task_id]


_LANDMARKER_CACHE: dict[str, dict[str, Any]] = {}


@task(name="search-method", persist_result=False)
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
) -> dict[str, Any]:
    """One method as a child run; never raises (a failure comes back with its reason)."""
    from nasmeta.spaces.base import stable_hash

    budget_obj = SearchBudget(**budget)
    spec = resolve_task_spec(task_name, budget_obj.samples_per_class)
    store = open_store(store_root)
    tags = {
        "task": spec.name,
        "task_id": spec.task_id,
        "space": space,
        "method": method,
        "lodo_fold": holdout or "none",
    }
    row: dict[str, Any] = {"method": method, "status": "completed", "error": None}
    start = time.perf_counter()

    def body(child: Any) -> None:
        meta = store.meta().without(holdout) if holdout and method.startswith("transfer") else store.meta()
        result = run_method(method, space, spec, budget_obj, seed, components, meta)
        if method == "zeroshot" and result.extra.get("rows"):
            from nasmeta.zeroshot.store import write_scores

            write_scores(store, spec.task_id, result.extra["rows"])
            if child is not None:
                from nasmeta import tracking

                tracking.log_table("proxy_scores", result.extra["rows"], run=child)
        n_params = next((e.extra.get("n_params") for e in result.history if e.arch == result.best_arch), None)
        row.update(
            arch=str(result.best_arch),
            arch_id=result.best_arch.arch_id,
            arch_json=result.best_arch.to_json(),
            best_val_acc=result.best_val_acc,
            best_test_acc=result.best_test_acc,
            search_seconds=result.cost_seconds,
            n_evaluations=result.n_evaluations,
            params=n_params,
        )
        if child is not None:
            from nasmeta import tracking

            metrics = {
                k: row[k] for k in ("best_val_acc", "best_test_acc", "search_seconds", "n_evaluations", "params")
            }
            child.log_metrics({k: v for k, v in metrics.items() if v is not None})
            tracking.log_architecture(result.best_arch, run=child)
            if result.trace and method.startswith("oneshot"):
                _log_oneshot_plots(result, child)

    try:
        if parent is not None:
            from nasmeta import tracking

            with tracking.child_run(parent, run_name=f"{method}/{spec.name}", tags=tags, params=budget) as child:
                row["mlflow_run_id"] = child.run_id
                body(child)
        else:
            body(None)
    except Exception as error:
        row.update(status="failed", error=f"{type(error).__name__}: {error}")
    row["wall_seconds"] = time.perf_counter() - start
    if row["status"] == "completed":
        store.append(
            "searches",
            [
                {
                    "search_id": stable_hash("search", spec.task_id, method, budget, seed, holdout),
                    "task_id": spec.task_id,
                    "method": method,
                    "budget": f"{budget_obj.evaluations} evaluations x {budget_obj.eval_epochs} epochs",
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


@task(name="retrain-winner", persist_result=False)
def retrain_winner(
    winner: dict[str, Any], task_name: str, budget: dict[str, Any], seed: int, out_dir: str, parent: Any
) -> dict[str, Any]:
    """Train the winning architecture from scratch for ``retrain_epochs`` and export it."""
    from nasmeta.oneshot.api import retrain
    from nasmeta.oneshot.export import export_model
    from nasmeta.spaces import Architecture
    from nasmeta.training import TrainConfig

    budget_obj = SearchBudget(**budget)
    spec = resolve_task_spec(task_name, budget_obj.samples_per_class)
    arch = Architecture.from_json(winner["arch_json"])
    config = TrainConfig(**{"epochs": budget_obj.retrain_epochs, **budget_obj.train})
    reporter = None
    outcome: dict[str, Any] = {"method": winner["method"], "arch": str(arch), "arch_id": arch.arch_id}

    def body(child: Any) -> None:
        retrained = retrain(arch, spec.load(), budget_obj.retrain_epochs, seed, reporter, config, **budget_obj.size)
        data = spec.load()
        files = export_model(
            retrained.model,
            arch,
            Path(out_dir) / f"{arch.arch_id}.pt",
            num_classes=data.num_classes,
            input_shape=data.input_shape,
            size=budget_obj.size,
        )
        ev = retrained.evaluation
        outcome.update(
            status=ev.status,
            val_acc=ev.val_acc,
            test_acc=ev.test_acc,
            seconds=ev.cost_seconds,
            params=retrained.result.n_params,
            export=str(files.model),
        )
        if child is not None:
            child.log_metrics({"retrained_val_acc": ev.val_acc, "retrained_test_acc": ev.test_acc})

    if parent is not None:
        from nasmeta import tracking

        tags = {"task": spec.name, "method": winner["method"], "arch_id": arch.arch_id, "stage": "retrain"}
        with tracking.child_run(parent, run_name=f"retrain/{winner['method']}", tags=tags) as child:
            reporter = child.reporter()
            body(child)
    else:
        body(None)
    return outcome


# one method at a time: each already uses every CPU core, and a shared global RNG keeps runs reproducible
@flow(name="search-target", log_prints=True, task_runner=ThreadPoolTaskRunner(max_workers=1))
def search_target(
    task: str = "digits-5to9",
    space: str = "nb201",
    methods: list[str] | None = None,
    budget: str | dict[str, Any] = "default",
    seed: int = 0,
    components: dict[str, str] | None = None,
    holdout: bool = True,
    store: str | None = None,
    track: bool = True,
) -> dict[str, Any]:
    """Search ``task`` with each method; retrain the best pick; return the comparison table.

    ``components`` maps component names to saved directories (from ``train_transfer``); missing ones are fitted
    on the store here.  With ``holdout`` the transfer methods never see the target task's own metadata.
    """
    from nasmeta import config
    from nasmeta.spaces import get_space

    logger = get_run_logger()
    budget_obj = resolve_budget(budget)
    get_space(space)
    methods = list(methods or METHODS)
    bad = [m for m in methods if m not in (*METHODS, "blackbox-rs")]
    if bad:
        raise ValueError(f"unknown search method(s) {bad}; known: {', '.join((*METHODS, 'blackbox-rs'))}")
    spec = resolve_task_spec(task, budget_obj.samples_per_class)
    store_obj = open_store(store)
    store_obj.append("tasks", [task_row(spec, spec.load())])
    fold = spec.task_id if holdout else None
    budget_json = budget_obj.model_dump(mode="json")
    out_dir = str(config.home() / "exports" / spec.task_id)

    def run_all(parent: Any) -> dict[str, Any]:
        futures = [
            search_method.submit(m, space, task, budget_json, seed, components or {}, store, fold, parent)
            for m in methods
        ]
        rows = [f.result() for f in futures]
        ok = [r for r in rows if r["status"] == "completed" and r.get("best_val_acc") is not None]
        if not ok:
            reasons = "; ".join(f"{r['method']}: {r['error']}" for r in rows)
            raise RuntimeError(f"no search method succeeded on {task}: {reasons}")
        winner = max(ok, key=lambda r: r["best_val_acc"])
        retrained = retrain_winner.submit(winner, task, budget_json, seed, out_dir, parent).result()
        return {"rows": rows, "winner": winner["method"], "retrained": retrained}

    if tracking_enabled(track):
        from nasmeta import tracking

        tracking.configure()
        tags = {"task": spec.name, "space": space, "lodo_fold": fold or "none"}
        with tracking.parent_run(EXPERIMENT, run_name=f"search/{spec.name}", tags=tags, params=budget_json) as parent:
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
    print_comparison(outcome)
    return outcome


def comparison_rows(outcome: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per method: accuracy, search cost, evaluations, parameters, status."""
    keys = ("method", "status", "best_val_acc", "best_test_acc", "search_seconds", "n_evaluations", "params", "arch")
    rows = [{k: r.get(k) for k in keys} | {"error": r.get("error")} for r in outcome["rows"]]
    return rows


def print_comparison(outcome: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Search comparison (pick trained with the same recipe)")
    for col in ("method", "status", "val acc", "test acc", "search s", "evals", "params", "architecture / error"):
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
            fmt(r["params"], ",d"),
            r["arch"] if r["status"] == "completed" else (r["error"] or "")[:80],
        )
    # a log file or pipe gets full rows rather than the 80-column default
    console = Console(width=None if Console().is_terminal else 200)
    console.print(table)
    rt = outcome.get("retrained") or {}
    if rt:
        console.print(
            f"winner: {outcome['winner']}  {rt.get('arch')}  retrained test acc {fmt(rt.get('test_acc'))} %"
            f"  -> {rt.get('export')}"
        )
