"""``portfolio``: the warm-start baseline every transfer method must beat — the source tasks' best cells
(``nasmeta.transfer.portfolio``, greedy over percentile ranks), the first ``evaluations`` of them trained in
portfolio order (under a scheduler if one is named: ``portfolio+sh``)."""

from __future__ import annotations

from nasmeta.search.registry import search_method
from nasmeta.search.target import SearchContext
from nasmeta.search_result import SearchResult


@search_method("portfolio", family="transfer", schedulable=True, order=5, components=("portfolio",))
def portfolio_method(ctx: SearchContext) -> SearchResult:
    """Portfolio: the cells that did best on the source tasks, trained first."""
    from nasmeta.search.loop import run_search
    from nasmeta.search.searchers import FixedOrderSearcher

    portfolio = ctx.component("portfolio")
    cells = [a for a in portfolio.cells if a.space == ctx.space][: ctx.budget.evaluations]
    if not cells:
        raise ValueError(f"the portfolio holds no {ctx.space} cells (its sources: {portfolio.source_tasks})")
    return run_search(
        FixedOrderSearcher(cells),
        ctx.evaluator(),
        len(cells),
        ctx.scheduler(),
        seed=ctx.seed,
        reporter=ctx.reporter,
        method="portfolio",
        **ctx.loop_options(),
    )
