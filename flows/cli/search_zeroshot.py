"""``nasmeta search zeroshot``: rank sampled architectures by training-free proxies on a task's batch."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from flows.cli._app import search_app
from flows.cli._common import fail, parse_sizes
from flows.cli.proxies import check_proxies, load_batch


@search_app.command("zeroshot")
def zeroshot(
    space: Annotated[str, typer.Option(help="Search space (nb201, darts, macro, ...).")] = "nb201",
    task: Annotated[str, typer.Option(help="Task giving the batch (e.g. cifar10, npz:PATH).")] = "digits",
    sample: Annotated[int, typer.Option(min=1, help="Number of distinct sampled architectures.")] = 100,
    proxy: Annotated[
        list[str] | None, typer.Option(help="Proxy of the vote (repeat); default naswot, synflow, params.")
    ] = None,
    max_params: Annotated[
        int | None, typer.Option(min=1, help="Keep only networks with at most this many params.")
    ] = None,
    max_flops: Annotated[
        float | None, typer.Option(help="Keep only networks with at most these forward FLOPs.")
    ] = None,
    max_latency_ms: Annotated[float | None, typer.Option(help="Keep only networks this fast (CPU, batch 1).")] = None,
    measured_latency: Annotated[
        bool,
        typer.Option(
            help="Take latency from the store's measured-latency table (measuring and recording what is missing) "
            "for --max-latency-ms and for the 'latency' objective (--proxy latency)."
        ),
    ] = False,
    store: Annotated[str | None, typer.Option(help="Metadata store root for --measured-latency.")] = None,
    top_k: Annotated[int, typer.Option(min=1, help="Evaluate the top k on the benchmark table when it has one.")] = 1,
    table_dataset: Annotated[
        str | None, typer.Option(help="Benchmark dataset for evaluating the top k (default: the task if known).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the sample, the batch, the init and the proxies.")] = 42,
    size: Annotated[list[str] | None, typer.Option(help="Network size KEY=INT for space.build, e.g. C=16.")] = None,
    show: Annotated[int, typer.Option(min=1, help="Rows of the ranking to print.")] = 10,
    no_track: Annotated[bool, typer.Option("--no-track", help="Do not log to MLflow.")] = False,
) -> None:
    """Zero-shot search: sample, filter by constraints, rank by the proxies' mean rank, evaluate the top k.

    Example: nasmeta search zeroshot --task digits --sample 20 --size C=4 --size N=1 --no-track
    """

    from nasmeta.config import DataNotFoundError
    from nasmeta.data.benchmarks import BENCHMARK_SPACES, TabularEvaluator
    from nasmeta.spaces import get_space
    from nasmeta.zeroshot.search import DEFAULT_PROXIES, Constraints, zero_shot_search

    try:
        get_space(space)
    except ValueError as err:
        fail(str(err))
    asked = [part.strip() for item in proxy or list(DEFAULT_PROXIES) for part in item.split(",") if part.strip()]
    wants_latency = "latency" in asked
    if wants_latency and not measured_latency:
        fail("--proxy latency needs --measured-latency (the measured latency is the objective)")
    registered = [n for n in asked if n != "latency"]
    names = (check_proxies(registered) if registered or not wants_latency else []) + ["latency"] * wants_latency
    try:
        constraints = Constraints(max_params=max_params, max_flops=max_flops, max_latency_ms=max_latency_ms)
    except ValueError as err:
        fail(str(err))
    evaluator = None
    if space in BENCHMARK_SPACES:
        try:
            evaluator = TabularEvaluator(space, table_dataset or task)
        except (ValueError, DataNotFoundError) as err:
            if table_dataset is not None:
                fail(str(err))
    batch, _ = load_batch(task, 128, seed)
    from flows.common import log_search_result, open_store, tracked_command

    latency = table = db = None
    if measured_latency:
        from nasmeta.latency import LatencyTable, MeasuredLatency, device_label

        db = open_store(store)
        table = LatencyTable.from_store(db, device_label("cpu"), space)
        latency = MeasuredLatency(table, batch.num_classes, "cpu")

    tags = {"task": task, "space": space, "method": "zeroshot", "proxies": ",".join(names)}
    params = {"sample": sample, "seed": seed, "top_k": top_k, **parse_sizes(size)}
    try:
        with tracked_command("nasmeta-search", f"zeroshot/{task}/{space}", tags, params, not no_track) as run:
            result = zero_shot_search(
                space,
                batch,
                names,
                n_samples=sample,
                seed=seed,
                build_kwargs=parse_sizes(size),
                constraints=constraints,
                top_k_evaluator=evaluator,
                top_k=top_k,
                latency=latency,
            )
            if table is not None:
                written = table.to_store(db)
                typer.echo(f"measured latency: {written} new networks measured and stored ({table.device})")
            log_search_result(run, result)
            if run is not None:
                from nasmeta import tracking

                tracking.log_table("ranking", result.extra["ranking"], run=run)
    except (ValueError, TypeError, RuntimeError) as err:
        fail(str(err))
    _print(result, space, task, sample, show, top_k, evaluator)


def _print(result: Any, space: str, task: str, sample: int, show: int, top_k: int, evaluator: Any) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    used = result.extra["proxies_used"]
    table = Table(title=f"zero-shot search on {space} / {task}: vote of {', '.join(used)}", title_justify="left")
    table.add_column("rank")
    table.add_column("arch", overflow="fold")
    for column in ("vote", *used, "params"):
        table.add_column(column)
    for i, row in enumerate(result.extra["ranking"][:show], start=1):
        scores = [f"{row[f'score/{p}']:.4g}" for p in used]
        table.add_row(str(i), escape(row["arch"]), f"{row['vote']:.1f}", *scores, str(row["params"]))
    Console().print(table)
    typer.echo(f"best: {result.best_arch}  (arch_id {result.best_arch.arch_id})")
    typer.echo(
        f"{len(result.extra['ranking'])} feasible of {sample}; proxy time {result.extra['proxy_seconds']:.1f} s; "
        f"wall {result.extra['wall_seconds']:.1f} s"
    )
    if result.best_test_acc is not None:
        val_column, test_column = evaluator.columns()
        typer.echo(
            f"best of the top {top_k} by {val_column} ({result.best_val_acc:.2f}): {test_column} "
            f"{result.best_test_acc:.2f}"
        )
