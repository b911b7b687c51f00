"""Flow ``lodo_collection``: every comparison of a metadata collection, leave-one-dataset-out, in one run.

1. **Search at equal evaluations** (``nasmeta.evaluation.pool_lodo``): random search, regularised evolution, the
   portfolio, TAPAS with and without DCN source selection, NAO, XferNAS and RapidNAS — regret after k = 5 / 10 / 20
   evaluations of each held-out task's stored cells, the sources each TAPAS fold kept, and per-fold wins of each
   transfer method against the portfolio and random search.
2. **Early stopping** (the ``lodo_evaluation`` flow as a subflow, one run per cell): random search replayed
   under none / median / SH / Hyperband / ASHA / Domhan / Baker / LCRankNet (fixed policy, and the policy chosen
   by an inner leave-tasks-out, ``lcranknet-tuned``) — regret and training cost.
3. **Curve ranking** (``curve_epochs``): Kendall tau between LCRankNet's scores of the held-out task's runs after
   t epochs and their final accuracies, beside the tau of the accuracy at epoch t itself (the no-model baseline) —
   whether the model ranks partial curves better than their last value does.

Both give means over held-out tasks with 95 % intervals (``nasmeta.evaluation.intervals``), markdown, CSV and
plots in ``out``, and MLflow runs in experiment ``experiment`` (the stopping part's fold and method runs as
``lodo_evaluation`` makes them; a ``pool`` run with the pool tables and metrics ``regret_val@k/<method>``).

The store is a store root, or a shipped collection's name (``metadata_store/collections/``, read only: no
``searches`` rows are written into it).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NONE

from flows.common import open_store
from flows.progress import StageHooks, stage

#: every transfer method beside its baselines (NAO from scratch is the black-box baseline of XferNAS)
POOL_DEFAULT = ["random", "re", "portfolio", "tapas", "tapas-noselect", "nao", "xfernas", "rapidnas"]
STOPPING_DEFAULT = ["none", "median", "sh", "hyperband", "asha", "domhan", "baker", "lcranknet", "lcranknet-tuned"]
#: settings used unless given: both LCRankNets train with the same (halved) number of steps, so the tuned policy is
#: the only difference between them and 12 folds x 4 fits of the tuned one stay within minutes on a CPU
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {"lcranknet": {"steps": 500}, "lcranknet-tuned": {"steps": 500}}
POOL_METRICS_AT = ("regret_val", "regret_test", "seconds")


def resolve_store(store: str | None) -> tuple[str, bool]:
    """(root, shipped): a shipped collection's name resolves to its folder, read only."""
    from metadata_store.snapshots import list_snapshots, snapshot_path

    if store is not None and store in list_snapshots():
        return str(snapshot_path(store)), True
    from nasmeta import config

    return store or str(config.default_store_root()), False


@task(name="pool-lodo", cache_policy=NONE)
def pool_part(
    root: str, methods: list[str], seeds: list[int], ks: list[int], params: dict[str, Any], out: str
) -> list[dict[str, Any]]:
    """The equal-evaluation comparison over every fold; rows stream to ``out/pool_runs.csv``."""
    from nasmeta.evaluation.lodo import CsvRows, combine_hooks
    from nasmeta.evaluation.pool_lodo import pool_lodo

    meta = open_store(root).meta()
    total = len(meta.task_ids) * len(methods) * len(seeds)
    with stage("pool", total=total, unit="(task, method, seed) rows") as shown:
        hooks = StageHooks(shown, CsvRows(Path(out) / "pool_runs.csv")).hooks()
        return pool_lodo(meta, methods, seeds, ks, method_params=params, hooks=combine_hooks(hooks))


def pool_report(
    rows: list[dict[str, Any]], ks: list[int], out: Path, names: dict[str, str] | None = None
) -> dict[str, Path]:
    """Markdown, CSVs and the regret-vs-k plot of the pool comparison."""
    import pandas as pd

    from nasmeta.evaluation.intervals import interval_markdown, interval_table, wins_markdown, wins_table
    from nasmeta.evaluation.tables import completed

    frame = pd.DataFrame(rows)
    ok = completed(frame)
    metrics = [f"{m}@{k}" for k in ks for m in POOL_METRICS_AT]
    table = interval_table(ok, metrics)
    methods = list(dict.fromkeys(ok["method"]))
    transfer = [m for m in methods if m not in ("random", "re")]
    pairs = [(a, b) for a in transfer for b in ("portfolio", "random", "re") if a != b and b in methods]
    wins = pd.concat([wins_table(ok, f"regret_val@{k}", pairs) for k in ks], ignore_index=True)
    paths = {"runs_csv": out / "pool_runs.csv", "summary_csv": out / "pool_summary.csv", "markdown": out / "pool.md"}
    frame.to_csv(paths["runs_csv"], index=False)
    table.to_csv(paths["summary_csv"], index=False)
    wins.to_csv(out / "pool_wins.csv", index=False)
    lines = [
        f"# Search at equal evaluations, LODO over {ok['task_id'].nunique()} tasks x {ok['seed'].nunique()} seeds",
        "",
        "Regret in points of validation / test accuracy against the best stored cell of the held-out task; "
        "mean over tasks of the per-task seed means, 95 % Student-t interval over tasks.",
        "",
    ]
    for k in ks:
        lines += [f"## k = {k}", "", interval_markdown(table, [f"regret_val@{k}", f"regret_test@{k}", f"seconds@{k}"])]
    tau = interval_table(ok[ok["kendall_tau"].notna()], ["kendall_tau"])
    lines += [
        "## Rank correlation of fixed orders with the held-out task's accuracies",
        "",
        interval_markdown(tau, ["kendall_tau"]),
    ]
    lines += ["## Wins per fold (validation regret, seed means)", "", wins_markdown(wins)]
    if "n_sources" in ok:
        kept = ok.dropna(subset=["n_sources"]).groupby(["method", "task_id"])["n_sources"].first().unstack("method")
        lines += ["## TAPAS sources kept by the DCN selection, per fold", ""]
        lines += ["| task | " + " | ".join(kept.columns) + " |", "|---|" + "---|" * len(kept.columns)]
        names = names or {}
        lines += [
            f"| {names.get(task, task)} | " + " | ".join(f"{v:.0f}" for v in row) + " |"
            for task, row in kept.iterrows()
        ]
        lines.append("")
    paths["markdown"].write_text("\n".join(lines) + "\n")
    paths["plot"] = _plot_regret_vs_k(ok, ks, out / "pool_regret_vs_k.png")
    return paths


def _plot_regret_vs_k(frame: Any, ks: list[int], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nasmeta.evaluation.intervals import interval_table

    table = interval_table(frame, [f"regret_val@{k}" for k in ks])
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for row in table.to_dict("records"):
        means = [row[f"regret_val@{k}"] for k in ks]
        lo = [row[f"regret_val@{k}"] - row[f"regret_val@{k}_lo"] for k in ks]
        hi = [row[f"regret_val@{k}_hi"] - row[f"regret_val@{k}"] for k in ks]
        ax.errorbar(ks, means, yerr=[lo, hi], marker="o", capsize=3, label=row["method"])
    ax.set_xlabel("evaluated cells k")
    ax.set_ylabel("validation regret (points)")
    ax.set_xscale("log")
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


@task(name="curve-ranking", cache_policy=NONE)
def curve_part(root: str, epochs: list[int], params: dict[str, Any], out: str) -> list[dict[str, Any]]:
    """Per fold: LCRankNet fitted on the other tasks scores the held-out runs' first t epochs."""
    from metadata_store.dataset import lowest_seed_view
    from nasmeta.evaluation.lodo import CsvRows, combine_hooks, lodo_folds, lodo_loop, partial_curve_evaluator
    from nasmeta.transfer.lcranknet import LCRankNet

    meta = lowest_seed_view(open_store(root).meta())
    evaluators = {t: partial_curve_evaluator(t) for t in epochs}

    def evaluate(name: str, ranker: Any, fold: Any, seed: int) -> dict[str, Any]:
        row: dict[str, Any] = {"task_id": fold.task_id, "method": name, "seed": seed}
        for t, evaluator in evaluators.items():
            result = evaluator(name, ranker, fold, seed)
            row[f"kendall_tau@{t}"] = result["kendall_tau"]
            row[f"last_value_tau@{t}"] = result["last_value_kendall_tau"]
        return row

    factories = {"lcranknet": lambda train: LCRankNet(**params).fit(train)}
    folds = [f for f in lodo_folds(meta) if f.test.runs.num_rows]
    with stage("curve ranking", total=len(folds), unit="folds") as shown:
        hooks = StageHooks(shown, CsvRows(Path(out) / "curve_ranking_runs.csv")).hooks()
        return lodo_loop(folds, factories, evaluate, [0], hooks=combine_hooks(hooks))


@flow(name="lodo-collection", validate_parameters=False)
def lodo_collection(
    store: str | None = None,
    seeds: int = 5,
    ks: list[int] | None = None,
    pool_methods: list[str] | None = None,
    stopping_methods: list[str] | None = None,
    method_params: dict[str, dict[str, Any]] | None = None,
    out: str | None = None,
    experiment: str = "lodo-collection",
    curve_epochs: list[int] | None = None,
    resume: str | None = None,
) -> dict[str, Any]:
    """Every comparison (see the module docstring); returns the paths written and the summary tables.

    ``resume``: a stopping part's ``lodo_runs.csv`` from an earlier, interrupted run; its finished rows are reused
    (the replay of the LCRankNet variants is the long part, about an hour on 2 CPU cores)."""
    import pandas as pd

    from nasmeta import tracking
    from nasmeta.config import home
    from nasmeta.evaluation.intervals import interval_markdown, interval_table
    from nasmeta.evaluation.pool_lodo import check_ks, check_pool_methods
    from nasmeta.evaluation.tables import completed

    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds must be a positive count, got {seeds!r}")
    ks = list(check_ks(ks or [5, 10, 20]))
    pool = check_pool_methods(POOL_DEFAULT if pool_methods is None else pool_methods)
    stopping = STOPPING_DEFAULT if stopping_methods is None else list(stopping_methods)
    params = {**DEFAULT_PARAMS, **(method_params or {})}
    root, shipped = resolve_store(store)
    tracking.configure()
    out_dir = Path(out) if out else home() / "lodo" / ("collection-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S"))
    out_dir.mkdir(parents=True, exist_ok=True)
    seed_list = list(range(seeds))
    result: dict[str, Any] = {"out": str(out_dir), "store": root}

    if pool:
        with tracking.parent_run(
            experiment, run_name="pool", params={"methods": pool, "seeds": seeds, "ks": ks}
        ) as run:
            run.set_tags({"flow": "lodo_collection", "part": "pool", "store": root})
            rows = pool_part(root, pool, seed_list, ks, {m: params.get(m, {}) for m in pool}, str(out_dir))
            names = {r["task_id"]: r["name"] for r in open_store(root).read("tasks").to_pylist()}
            paths = pool_report(rows, ks, out_dir, names)
            for path in paths.values():
                run.log_artifact(path, "results")
            table = interval_table(completed(pd.DataFrame(rows)), [f"regret_val@{k}" for k in ks])
            for row in table.to_dict("records"):
                run.log_metrics({f"regret_val_at_{k}/{row['method']}": row[f"regret_val@{k}"] for k in ks})
            result["pool"] = {"paths": {k: str(v) for k, v in paths.items()}, "table": table.to_dict("records")}

    if stopping:
        from flows.lodo import lodo_evaluation

        stop_dir = out_dir / "stopping"
        frame = lodo_evaluation(
            store=root,
            methods=stopping,
            seeds=seeds,
            method_params={m: params[m] for m in stopping if m in params},  # only the compared ones
            out=str(stop_dir),
            experiment=experiment,
            write_searches=not shipped,
            lowest_seed=True,
            resume=resume,
        )
        metrics = ["regret_val", "regret_test", "hours", "epochs"]
        table = interval_table(completed(frame), metrics)
        text = (
            f"# Early stopping, LODO replay over {frame['task_id'].nunique()} tasks x {seeds} seeds\n\n"
            "Mean over tasks of the per-task seed means, 95 % Student-t interval over tasks; hours = stored "
            "training time of the epochs the search trained.\n\n" + interval_markdown(table, metrics, digits=3)
        )
        (stop_dir / "stopping_intervals.md").write_text(text)
        table.to_csv(stop_dir / "stopping_intervals.csv", index=False)
        result["stopping"] = {"out": str(stop_dir), "table": table.to_dict("records")}
    curve_epochs = [1, 2, 4] if curve_epochs is None else list(curve_epochs)
    if curve_epochs:
        with tracking.parent_run(experiment, run_name="curve-ranking", params={"epochs": curve_epochs}) as run:
            run.set_tags({"flow": "lodo_collection", "part": "curve-ranking", "store": root})
            rows = curve_part(root, curve_epochs, params.get("lcranknet", {}), str(out_dir))
            frame = completed(pd.DataFrame(rows))
            metrics = [f"{m}@{t}" for t in curve_epochs for m in ("kendall_tau", "last_value_tau")]
            table = interval_table(frame, metrics)
            text = (
                "# Ranking partial curves: LCRankNet's score vs the accuracy at epoch t (Kendall tau with the final "
                "validation accuracy of the held-out task's runs; mean over tasks, 95 % interval)\n\n"
                + interval_markdown(table, metrics)
            )
            (out_dir / "curve_ranking.md").write_text(text)
            run.log_artifact(out_dir / "curve_ranking.md", "results")
            run.log_artifact(out_dir / "curve_ranking_runs.csv", "results")
            for t in curve_epochs:
                run.log_metrics({f"kendall_tau_at_{t}": float(table[f"kendall_tau@{t}"].iloc[0])})
            result["curve_ranking"] = table.to_dict("records")
    return result
