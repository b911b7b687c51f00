"""Black-box searches over trained candidates: random search (``blackbox-rs``) and regularised evolution
(``blackbox-re``), each under any scheduler (``blackbox-re+hyperband``, ``blackbox-rs+asha``, ...)."""

from __future__ import annotations

from nasmeta.search.registry import search_method
from nasmeta.search.target import SearchContext
from nasmeta.search_result import SearchResult


@search_method("blackbox-rs", family="black-box", schedulable=True, default=False)
def random_search_method(ctx: SearchContext) -> SearchResult:
    """Random search: ``evaluations`` uniform samples, each trained with the budget's recipe."""
    from nasmeta.blackbox import random_search

    return random_search(
        ctx.space_obj,
        ctx.evaluator(),
        ctx.budget.evaluations,
        seed=ctx.seed,
        reporter=ctx.reporter,
        scheduler=ctx.scheduler(),
        **ctx.loop_options(),
    )


@search_method("blackbox-re", family="black-box", schedulable=True)
def evolution_method(ctx: SearchContext) -> SearchResult:
    """Regularised evolution; population max(2, min(10, evaluations // 2)), tournament of 2."""
    from nasmeta.blackbox import regularized_evolution

    population = max(2, min(10, ctx.budget.evaluations // 2))
    return regularized_evolution(
        ctx.space_obj,
        ctx.evaluator(),
        ctx.budget.evaluations,
        population_size=population,
        sample_size=2,
        seed=ctx.seed,
        reporter=ctx.reporter,
        scheduler=ctx.scheduler(),
        **ctx.loop_options(),
    )
