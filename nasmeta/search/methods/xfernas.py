"""``transfer-xfernas``: XferNAS (Wistuba, ECML-PKDD 2020; ``nasmeta.transfer.xfernas``) — NAO's search with the
surrogate ``g_u + r_t``: the universal part fitted on the source tasks' runs, the task residual on the target's
own evaluations; the first cells are those ``g_u`` ranks highest (under a scheduler if one is named:
``transfer-xfernas+sh``)."""

from __future__ import annotations

from nasmeta.search.registry import search_method
from nasmeta.search.target import SearchContext
from nasmeta.search_result import SearchResult


@search_method(
    "transfer-xfernas",
    family="transfer",
    spaces=("nb201", "darts", "darts-s1", "darts-s2", "darts-s3", "darts-s4"),
    schedulable=True,
    default=False,
    order=20,
    components=("xfernas",),
)
def xfernas_method(ctx: SearchContext) -> SearchResult:
    """XferNAS: a universal NAO surrogate from the sources plus a target residual, gradient ascent, decoded cells."""
    from nasmeta.search.loop import run_search

    xfernas = ctx.component("xfernas")
    if xfernas.space != ctx.space:
        raise ValueError(
            f"the xfernas component was fitted on space {xfernas.space!r} runs, but the search is in {ctx.space!r}"
        )
    evaluations = ctx.budget.evaluations
    initial = max(1, min(xfernas.config.n_initial, evaluations // 2))
    top_k = max(1, min(xfernas.config.nao.top_k, evaluations - initial))
    searcher = xfernas.searcher(ctx.seed, n_initial=initial, top_k=top_k)
    result = run_search(
        searcher,
        ctx.evaluator(),
        evaluations,
        ctx.scheduler(),
        seed=ctx.seed,
        reporter=ctx.reporter,
        method="transfer-xfernas",
        **ctx.loop_options(),
    )
    result.extra["xfernas"] = {
        **searcher.stats,
        "valid_share": searcher.valid_share,
        "source_tasks": xfernas.source_tasks,
        "n_source_archs": len(xfernas.source_archs),
    }
    return result
