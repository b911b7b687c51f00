"""``blackbox-nao``: Neural Architecture Optimization (Luo et al., NeurIPS 2018; ``nasmeta.blackbox.nao``) —
encoder / predictor / decoder fitted on the evaluations so far, gradient ascent in the embedding, decoded cells
trained with the budget's recipe (under a scheduler if one is named: ``blackbox-nao+sh``)."""

from __future__ import annotations

from nasmeta.search.registry import search_method
from nasmeta.search.target import SearchContext
from nasmeta.search_result import SearchResult


def small_budget_sizes(evaluations: int, n_initial: int, top_k: int) -> dict[str, int]:
    """The initial batch and batch size for ``evaluations``: at most half the budget goes to the initial batch, so a
    6-evaluation search still makes at least one gradient-ascent round."""
    initial = max(2, min(n_initial, evaluations // 2))
    return {"n_initial": initial, "top_k": max(1, min(top_k, evaluations - initial))}


@search_method(
    "blackbox-nao",
    family="black-box",
    spaces=("nb201", "darts", "darts-s1", "darts-s2", "darts-s3", "darts-s4"),
    schedulable=True,
    default=False,
)
def nao_method(ctx: SearchContext) -> SearchResult:
    """NAO: random initial cells, then gradient ascent on the learnt embedding of the best ones, decoded and trained."""
    from nasmeta.blackbox.nao import NAOConfig, NAOSearcher
    from nasmeta.search.loop import run_search

    config = NAOConfig()
    sizes = small_budget_sizes(ctx.budget.evaluations, config.n_initial, config.top_k)
    searcher = NAOSearcher(ctx.space_obj, ctx.seed, config, **sizes)
    result = run_search(
        searcher,
        ctx.evaluator(),
        ctx.budget.evaluations,
        ctx.scheduler(),
        seed=ctx.seed,
        reporter=ctx.reporter,
        method="blackbox-nao",
        **ctx.loop_options(),
    )
    result.extra["nao"] = {**searcher.stats, "valid_share": searcher.valid_share}
    return result
