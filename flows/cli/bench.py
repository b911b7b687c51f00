"""``nasmeta bench search``: random search or regularised evolution on a tabular benchmark (NB201, Macro)."""

from __future__ import annotations

from typing import Annotated

import typer

from flows.cli._app import bench_app
from flows.cli._common import fail

METHODS = {"re": "regularized_evolution", "rs": "random_search"}


@bench_app.command("search")
def search(
    space: Annotated[str, typer.Option(help="Benchmark space: nb201 or macro.")] = "nb201",
    dataset: Annotated[str, typer.Option(help="nb201: cifar10, cifar100, imagenet16-120; macro: cifar10.")] = "cifar10",
    method: Annotated[str, typer.Option(help="re (regularised evolution) or rs (random search).")] = "re",
    evaluations: Annotated[int, typer.Option(min=1, help="Number of architectures evaluated.")] = 100,
    seed: Annotated[int, typer.Option(help="Seed of the search.")] = 0,
    fidelity: Annotated[
        int | None, typer.Option(help="Epochs of each evaluation (nb201: 12 or 200; macro: 50); default the max.")
    ] = None,
    population: Annotated[int, typer.Option(min=1, help="re: population size.")] = 10,
    sample_size: Annotated[int, typer.Option(min=1, help="re: tournament sample size.")] = 3,
    val_at_200: Annotated[
        str, typer.Option(help="nb201 at 200 epochs: select on 'val12' (12-epoch val) or 'test' (oracle).")
    ] = "val12",
    no_track: Annotated[bool, typer.Option("--no-track", help="Do not log to MLflow.")] = False,
) -> None:
    """Search a benchmark table with simulated training cost; print the best architecture and its accuracy.

    Example: nasmeta bench search --space nb201 --dataset cifar10 --method re --evaluations 100 --no-track
    """
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from nasmeta.blackbox import random_search, regularized_evolution
    from nasmeta.config import DataNotFoundError
    from nasmeta.data.benchmarks import TabularEvaluator, best_accuracy
    from nasmeta.spaces import get_space

    if method not in METHODS:
        fail(f"unknown method {method!r}; expected one of {sorted(METHODS)} ({', '.join(METHODS.values())})")
    from flows.common import log_search_result, tracked_command

    try:
        evaluator = TabularEvaluator(space, dataset, max_epochs=fidelity, val_at_200=val_at_200)  # type: ignore[arg-type]
        search_space = get_space(space)
        tags = {"task": dataset, "space": space, "method": f"bench-{method}", "evaluator": "table"}
        params = {"evaluations": evaluations, "seed": seed, "fidelity": evaluator.max_epochs}
        with tracked_command("nasmeta-search", f"bench/{space}/{dataset}/{method}", tags, params, not no_track) as run:
            if method == "re":
                result = regularized_evolution(search_space, evaluator, evaluations, population, sample_size, seed=seed)
            else:
                result = random_search(search_space, evaluator, evaluations, seed=seed)
            optimum = best_accuracy(space, evaluator.dataset, evaluator.max_epochs)
            log_search_result(run, result)
    except (ValueError, DataNotFoundError, RuntimeError) as err:
        fail(str(err))
    val_column, test_column = evaluator.columns()
    table = Table(title=f"{METHODS[method]} on {space} / {evaluator.dataset}", show_header=False, title_justify="left")
    table.add_column("property", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("best architecture", escape(str(result.best_arch)))
    table.add_row("arch_id", result.best_arch.arch_id)
    table.add_row(escape(f"val acc ({val_column})"), f"{result.best_val_acc:.2f}")
    table.add_row(escape(f"test acc ({test_column})"), f"{result.best_test_acc:.2f}")
    table.add_row("best test acc in table / regret", f"{optimum:.2f} / {optimum - result.best_test_acc:.2f}")
    table.add_row("evaluations / fidelity", f"{result.n_evaluations} / {evaluator.max_epochs} epochs")
    table.add_row("simulated cost", f"{result.cost_seconds / 3600:.2f} GPU-hours (FLOPs cost model)")
    table.add_row("wall time", f"{result.extra['wall_seconds']:.2f} s")
    table.add_row("seed", str(seed))
    Console().print(table)
