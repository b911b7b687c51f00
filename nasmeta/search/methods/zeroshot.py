"""``zeroshot``: the budget's proxies score ``zeroshot_samples`` untrained networks, the mean-rank vote's top
``evaluations`` are trained."""

from __future__ import annotations

from nasmeta.search.registry import search_method
from nasmeta.search.target import SearchContext
from nasmeta.search_result import SearchResult


@search_method("zeroshot", family="zero-shot")
def zeroshot_method(ctx: SearchContext) -> SearchResult:
    """Zero-shot proxies vote (mean rank); the top picks are trained."""
    from nasmeta.zeroshot.search import zero_shot_search

    return zero_shot_search(
        ctx.space_obj,
        ctx.data(),
        ctx.budget.zeroshot_proxies,
        n_samples=ctx.budget.zeroshot_samples,
        seed=ctx.seed,
        build_kwargs=ctx.budget.network_size(ctx.space),
        top_k_evaluator=ctx.evaluator(),
        top_k=ctx.budget.evaluations,
    )
