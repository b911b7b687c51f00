"""``nasmeta lodo``: leave-one-dataset-out evaluations.

- ``nasmeta lodo --methods lcranknet,hyperband,sh,median,domhan,baker,none --store PATH``: the early-termination
  comparison, a random search replayed over each held-out task's stored runs (``nasmeta.evaluation.lodo``);
  prints the regret / hours table and writes ``lodo.md``, CSVs and a regret-vs-cost plot.  ``--flow`` runs the
  same as the Prefect flow ``flows.lodo.lodo_evaluation`` (MLflow runs per fold, rows in the store's
  ``searches`` table).
- ``nasmeta lodo --methods tapas,random --space nb201``: TAPAS on NAS-Bench-201, fitted on two of cifar10 /
  cifar100 / imagenet16-120 and evaluated on the third, against random search at equal evaluations
  (``nasmeta.transfer.tapas_lodo``).

Both go through the one LODO loop (``nasmeta.evaluation.lodo``): a line is printed as each (task, method, seed)
row finishes and the runs CSV in ``--out`` is rewritten after every row; ``--resume CSV`` reuses the finished
rows of an interrupted run.  A method that fails on a fold is recorded as failed rows (with the reason in the
CSV's ``error`` column) and the others go on.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from flows.cli._app import app
from flows.cli._common import fail, json_value
from flows.cli.store import StoreOption

REPLAY_DEFAULT = "lcranknet,hyperband,sh,median,domhan,baker,none"
TABLE_METHODS = ("tapas", "random")


def _split(text: str | None) -> list[str] | None:
    if text is None:
        return None
    items = [part.strip() for part in text.split(",") if part.strip()]
    return items


def parse_params(items: list[str] | None, scoped: bool) -> dict[str, Any]:
    """``--param`` values: ``METHOD.KEY=VALUE`` when ``scoped`` (-> ``{method: {key: value}}``), else
    ``KEY=VALUE`` or ``GROUP.KEY=VALUE`` (-> ``{key: value}`` / ``{group: {key: value}}``); values are JSON
    where they parse as JSON (``0.3``, ``true``, ``[2, 3]``), else strings."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--param {item!r} is not KEY=VALUE")
        group, dot, name = key.partition(".")
        if scoped and not dot:
            raise ValueError(f"--param {item!r} must name its method: METHOD.KEY=VALUE (e.g. lcranknet.delta=0.3)")
        if dot:
            out.setdefault(group, {})[name] = json_value(raw)
        else:
            out[key] = json_value(raw)
    return out


def _default_out(prefix: str) -> Path:
    from nasmeta.config import home

    return home() / "lodo" / f"{prefix}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}"


def _hours(value: float) -> str:
    return f"{value:.3g}" if value == value else "n/a"


def print_replay_table(results: Any, names: dict[str, str] | None = None) -> None:
    """Rows = methods, columns = held-out tasks (labelled by ``names`` where given) and their mean:
    ``regret / hours`` (means over seeds)."""
    from rich.console import Console
    from rich.table import Table

    from nasmeta.evaluation.tables import ALL, summarize

    summary = summarize(results, ("regret_val", "hours"))
    index = {(r.metric, r.method, r.task_id): r.mean for r in summary.itertuples()}
    tasks = sorted(dict.fromkeys(results["task_id"])) + [ALL]
    methods = list(dict.fromkeys(results["method"]))
    table = Table(title="LODO replay: regret (val acc, points) / training hours, mean over seeds")
    table.add_column("method")
    for task_id in tasks:
        table.add_column((names or {}).get(task_id) or task_id, justify="right")
    reference = index.get(("hours", "none", ALL))
    if reference:
        table.add_column("speed-up vs none", justify="right")
    for method in methods:
        # a method that failed on a task has no cell there (its rows and reasons are in the runs CSV)
        cells = [
            f"{index[('regret_val', method, t)]:.2f} / {_hours(index[('hours', method, t)])}"
            if ("regret_val", method, t) in index
            else "failed"
            for t in tasks
        ]
        if reference:
            cells.append(f"{reference / index[('hours', method, ALL)]:.1f}x")
        table.add_row(method, *cells)
    console = Console()
    if not console.is_terminal:  # a pipe or a file gets the whole table, not 80 wrapped columns
        console = Console(width=max(80, 14 + 18 * (len(tasks) + 1)))
    console.print(table)


class Progress:
    """LODO hooks that print one line per finished (task, method, seed) row, with its place in the plan and the
    time so far: ``[3/42 12s] syn-0 sh seed 2: regret 0.12, 3.4 h``."""

    def __init__(self, total: int, reused: int, describe: Any) -> None:
        self.total, self.count, self.describe = total, reused, describe
        self.start = time.perf_counter()

    def hooks(self) -> Any:
        from nasmeta.evaluation.lodo import LodoHooks

        return LodoHooks(on_method_fitted=self.fitted, on_result=self.result)

    def fitted(self, fold: Any, method: str, built: Any, fit_seconds: float) -> None:
        if fit_seconds >= 1.0:  # methods that learn from the other tasks (LCRankNet, Baker) take a while
            typer.echo(f"  {fold.task_id} {method}: fitted on the other tasks in {fit_seconds:.1f} s")

    def result(self, fold: Any, method: str, seed: int, row: dict[str, Any]) -> None:
        self.count += 1
        what = self.describe(row) if row["status"] == "completed" else f"FAILED: {row['error']}"
        elapsed = time.perf_counter() - self.start
        typer.echo(f"[{self.count}/{self.total} {elapsed:.0f}s] {fold.task_id} {method} seed {seed}: {what}")


def _previous(resume: Path | None) -> list[dict[str, Any]]:
    """Finished rows of ``--resume`` (failed ones are computed again)."""
    from nasmeta.evaluation.lodo import finished_rows, read_rows

    if resume is None:
        return []
    return [row for rows in finished_rows(read_rows(resume)).values() for row in rows]


def _announce(keys: list[tuple[str, str, int]], previous: list[dict[str, Any]], resume: Path | None) -> int:
    """Print the plan and how much of it ``--resume`` covers; returns the number of rows reused."""
    from nasmeta.evaluation.lodo import row_key

    finished = {row_key(r) for r in previous}
    reused = sum(1 for k in keys if k in finished)
    line = f"LODO: {len(keys)} (task, method, seed) rows"
    if resume is not None:
        line += f"; {reused} already finished in {resume}"
        ignored = len(finished - set(keys))
        if ignored:
            line += f" ({ignored} of its rows are not in this plan and are ignored)"
    typer.echo(line)
    return reused


def _report_failures(frame: Any, path: Path) -> Any:
    """The completed rows; failed ones are counted on stdout (their reasons are in ``path``); none completed
    exits with the first reason."""
    from nasmeta.evaluation.tables import completed

    ok = completed(frame)
    failed = frame.loc[frame.index.difference(ok.index)]
    if len(ok) == 0:
        fail(f"every (task, method, seed) failed; the first: {failed['error'].iloc[0]} (rows in {path})")
    if len(failed):
        reasons = sorted(set(failed["error"]))
        typer.echo(f"{len(failed)} row(s) failed ({'; '.join(reasons)[:300]}); see the error column of {path}")
    return ok


def _replay(
    methods: list[str],
    store: str | None,
    seeds: int,
    n_runs: int | None,
    tasks: list[str] | None,
    params: dict[str, Any],
    out: Path,
    use_flow: bool,
    resume: Path | None,
) -> None:
    from flows.cli.store import open_store
    from nasmeta.evaluation.lodo import CsvRows, combine_hooks, replay_lodo
    from nasmeta.evaluation.tables import write_results

    target = open_store(store)
    unknown = sorted(set(params) - set(methods))
    if unknown:
        fail(f"--param names method(s) {unknown} that are not in --methods {','.join(methods)}")
    names: dict[str, str] = {}
    runs_csv = out / "lodo_runs.csv"
    try:
        names = {r["task_id"]: r["name"] for r in target.meta().tasks.to_pylist() if r["name"]}
        previous = _previous(resume)
        if use_flow:
            from flows.lodo import lodo_evaluation

            results = lodo_evaluation(
                store=target.uri,
                methods=methods,
                seeds=seeds,
                n_runs=n_runs,
                tasks=tasks,
                method_params=params,
                out=str(out),
                resume=None if resume is None else str(resume),
            )
            results = results.drop(columns=["mlflow_run_id", "fit_seconds"])
        else:
            from flows.lodo import tasks_with_runs
            from nasmeta.evaluation.lodo import lodo_folds

            meta = target.meta()
            if tasks is None:
                tasks = tasks_with_runs(meta)
                skipped = sorted(set(meta.task_ids) - set(tasks))
                if skipped:
                    typer.echo(f"skipping task(s) without completed runs: {', '.join(skipped)}")
            keys = [(f.task_id, m, s) for f in lodo_folds(meta, tasks) for m in methods for s in range(seeds)]
            progress = Progress(len(keys), _announce(keys, previous, resume), _describe_replay)
            sink = CsvRows(runs_csv, previous)
            spec = {name: params.get(name, {}) for name in methods}
            results = replay_lodo(
                meta,
                spec,
                seeds=range(seeds),
                n_runs=n_runs,
                tasks=tasks,
                hooks=combine_hooks(sink.hooks(), progress.hooks()),
                done=previous,
                errors="record",
            )
            ok = _report_failures(results, runs_csv)
            write_results(results, out, name="lodo")
            results = ok
    except ValueError as error:
        fail(str(error))
    print_replay_table(results, names)
    typer.echo(f"results written to {out}")


def _describe_replay(row: dict[str, Any]) -> str:
    return (
        f"regret {row['regret_val']:.2f}, {_hours(row['hours'])} h, {row['n_completed']}/{row['n_runs']} runs completed"
    )


def _describe_nb201(row: dict[str, Any]) -> str:
    return (
        f"TAPAS {row['tapas_test_acc']:.2f} vs random {row['random_test_acc']:.2f} test acc, "
        f"tau {row['kendall_tau']:.3f}"
    )


def _nb201(
    methods: list[str], seeds: int, tasks: list[str] | None, params: dict[str, Any], out: Path, resume: Path | None
) -> None:
    from rich.console import Console
    from rich.table import Table

    from nasmeta.config import DataNotFoundError
    from nasmeta.evaluation.lodo import CsvRows, combine_hooks
    from nasmeta.transfer.tapas import TAPASConfig
    from nasmeta.transfer.tapas_lodo import METHOD, NB201LodoConfig, nb201_folds, nb201_lodo, summarize_nb201_lodo

    if sorted(methods) != sorted(TABLE_METHODS):
        fail(f"--space nb201 compares exactly the methods tapas,random (evaluated together), got {','.join(methods)}")
    runs_csv = out / "tapas_nb201_runs.csv"
    try:
        tapas_params = params.pop("tapas", {})
        config = NB201LodoConfig(**params, tapas=TAPASConfig(**tapas_params))
        previous = _previous(resume)
        keys = [(f.task_id, METHOD, s) for f in nb201_folds(tasks) for s in range(seeds)]
        progress = Progress(len(keys), _announce(keys, previous, resume), _describe_nb201)
        sink = CsvRows(runs_csv, previous)
        frame = nb201_lodo(
            held_out=tasks,
            seeds=range(seeds),
            config=config,
            hooks=combine_hooks(sink.hooks(), progress.hooks()),
            done=previous,
            errors="record",
        )
    except (ValueError, DataNotFoundError) as error:
        fail(str(error))
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(runs_csv, index=False)
    frame = _report_failures(frame, runs_csv)
    summary = summarize_nb201_lodo(frame)
    summary.to_csv(out / "tapas_nb201_summary.csv", index=False)
    (out / "tapas_nb201.md").write_text(_markdown(summary))
    table = Table(title=f"TAPAS vs random search on NB201, LODO, k={config.k} evaluations, {seeds} seeds")
    columns = ("held out", "Kendall tau", "TAPAS acc", "random acc", "TAPAS regret", "random regret", "TAPAS wins")
    for column in columns:
        table.add_column(column, justify="left" if column == "held out" else "right")
    for r in summary.itertuples():
        table.add_row(
            r.held_out,
            f"{r.kendall_tau:.3f}",
            f"{r.tapas_acc:.2f} ± {r.tapas_acc_std:.2f}",
            f"{r.random_acc:.2f} ± {r.random_acc_std:.2f}",
            f"{r.tapas_regret:.2f}",
            f"{r.random_regret:.2f}",
            f"{r.tapas_wins}/{r.seeds} ({r.ties} ties)",
        )
    Console().print(table)
    typer.echo(f"results written to {out}")


def _markdown(frame: Any) -> str:
    def cell(value: Any) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines) + "\n"


@app.command("lodo")
def lodo(
    methods: Annotated[
        str, typer.Option(help="Comma-separated methods: replay stoppers, or tapas,random with --space nb201.")
    ] = REPLAY_DEFAULT,
    store: StoreOption = None,
    space: Annotated[
        str | None, typer.Option(help="'nb201': TAPAS LODO on the NAS-Bench-201 table instead of a store replay.")
    ] = None,
    seeds: Annotated[
        int | None, typer.Option(min=1, help="Random orders of the replay (default 3) / TAPAS seeds (default 10).")
    ] = None,
    n_runs: Annotated[int | None, typer.Option(min=1, help="Replay only the first N runs of each order.")] = None,
    tasks: Annotated[
        str | None, typer.Option(help="Comma-separated held-out tasks (NB201: datasets); default all.")
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(help="METHOD.KEY=VALUE for the replay (lcranknet.delta=0.3); KEY=VALUE for NB201 (k=10)."),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (default $NASMETA_HOME/lodo/<time>).")] = None,
    flow: Annotated[
        bool, typer.Option("--flow", help="Run the replay as the Prefect flow, tracked in MLflow.")
    ] = False,
    resume: Annotated[
        Path | None,
        typer.Option(
            help="Results CSV of an interrupted run (its lodo_runs.csv / tapas_nb201_runs.csv): finished rows "
            "are reused, failed ones recomputed; --out defaults to its folder."
        ),
    ] = None,
) -> None:
    """Leave-one-dataset-out evaluation: fit on all tasks but one, evaluate on it, for every task.

    Example: nasmeta lodo --methods lcranknet,hyperband,sh,median,none --store ./collection/store
    """
    names = _split(methods)
    if not names:
        fail("--methods is empty")
    if len(set(names)) != len(names):
        fail(f"--methods lists a method twice: {methods}")
    held_out = _split(tasks)
    if held_out is not None and not held_out:
        fail("--tasks is empty")
    try:
        params = parse_params(param, scoped=space is None)
    except ValueError as error:
        fail(str(error))
    if resume is not None:
        if not resume.is_file():
            fail(f"--resume {resume}: no such results CSV")
        out = out or resume.parent
    if space is None:
        if set(names) & set(TABLE_METHODS):
            fail("tapas and random are evaluated on a benchmark table: add --space nb201")
        _replay(names, store, seeds or 3, n_runs, held_out, params, out or _default_out("replay"), flow, resume)
    elif space == "nb201":
        if flow or store is not None or n_runs is not None:
            fail("--space nb201 reads the NB201 table: --flow, --store and --n-runs do not apply")
        _nb201(names, seeds or 10, held_out, params, out or _default_out("nb201"), resume)
    else:
        fail(f"--space {space!r}: only 'nb201' has a table-based LODO (TAPAS); omit --space to replay a store")


@app.command("lodo-collection")
def lodo_collection_command(
    store: Annotated[
        str, typer.Option(help="A shipped collection's name (read only) or a store root.")
    ] = "nasmeta-meta-v1",
    seeds: Annotated[int, typer.Option(min=1, help="Seeds per (task, method).")] = 5,
    ks: Annotated[str, typer.Option(help="Comma-separated numbers of evaluated cells.")] = "5,10,20",
    pool_methods: Annotated[
        str, typer.Option(help="Searches at equal evaluations ('' for none).")
    ] = "random,re,portfolio,tapas,tapas-noselect,nao,xfernas,rapidnas",
    stopping_methods: Annotated[
        str, typer.Option(help="Early-stopping methods replayed ('' for none).")
    ] = "none,median,sh,hyperband,asha,domhan,baker,lcranknet,lcranknet-tuned",
    param: Annotated[
        list[str] | None, typer.Option(help="METHOD.KEY=VALUE, e.g. tapas.epochs=30 or lcranknet.steps=200.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Output folder (default $NASMETA_HOME/lodo/collection-<time>).")
    ] = None,
    curve_epochs: Annotated[
        str, typer.Option(help="Epochs t at which LCRankNet's ranking of partial curves is scored ('' for none).")
    ] = "1,2,4",
    resume: Annotated[
        Path | None,
        typer.Option(help="The stopping part's lodo_runs.csv from an interrupted run: its finished rows are reused."),
    ] = None,
) -> None:
    """Every LODO comparison of a collection as one Prefect flow tracked in MLflow: searches at equal evaluations
    (random, evolution, portfolio, TAPAS with and without DCN selection, NAO, XferNAS, RapidNAS) and early stopping
    (none, median, SH, Hyperband, ASHA, Domhan, Baker, LCRankNet), means with 95 % intervals, markdown, CSV and
    plots.

    Example: nasmeta lodo-collection --seeds 5 --out lodo-meta-v1
    """
    from flows.lodo_collection import resolve_store
    from nasmeta.evaluation.pool_lodo import check_ks, check_pool_methods

    try:
        k_list = list(check_ks([int(k) for k in _split(ks) or []]))
        pool = check_pool_methods(_split(pool_methods) or [])
        stopping = _split(stopping_methods) or []
        epochs = [int(t) for t in _split(curve_epochs) or []]
        if any(t < 1 for t in epochs):
            raise ValueError(f"--curve-epochs must be positive, got {curve_epochs!r}")
        from nasmeta.evaluation.methods import method_factory

        for name in stopping:
            method_factory(name)
        params = parse_params(param, scoped=True)
        unknown = sorted(set(params) - set(pool) - set(stopping))
        if unknown:
            raise ValueError(f"--param names method(s) {unknown} that are not compared")
        root, _ = resolve_store(store)
        if not (Path(root) / "runs").is_dir() and "://" not in root:
            raise ValueError(f"--store {store!r}: no metadata store at {root}")
        if resume is not None and not resume.is_file():
            raise ValueError(f"--resume {resume}: no such results CSV")
    except ValueError as error:
        fail(str(error))
    if not pool and not stopping and not epochs:
        fail("nothing to compare: --pool-methods, --stopping-methods and --curve-epochs are all empty")
    from flows.lodo_collection import lodo_collection

    result = lodo_collection(
        store=store,
        seeds=seeds,
        ks=k_list,
        pool_methods=pool,
        stopping_methods=stopping,
        method_params=params,
        out=str(out) if out else None,
        curve_epochs=epochs,
        resume=None if resume is None else str(resume),
    )
    for part in ("pool", "stopping"):
        if part in result:
            folder = result["out"] if part == "pool" else result[part]["out"]
            typer.echo(f"{part}: {folder}")
    pool_md = Path(result["out"]) / "pool.md"
    if pool_md.is_file():
        typer.echo(pool_md.read_text())
    for extra in (Path(result["out"]) / "stopping" / "stopping_intervals.md", Path(result["out"]) / "curve_ranking.md"):
        if extra.is_file():
            typer.echo(extra.read_text())
