"""``transfer-lcranknet``: random search over distinct architectures whose runs LCRankNet stops early (the setting
of Wistuba & Pedapati 2020's search experiments); the same as ``blackbox-rs+lcranknet`` with distinct samples and
the component fitted by ``train_transfer`` when one is given."""

from __future__ import annotations

from nasmeta.search.registry import search_method
from nasmeta.search.target import SearchContext
from nasmeta.search_result import SearchResult


@search_method("transfer-lcranknet", family="transfer", order=20, components=("lcranknet",))
def lcranknet_method(ctx: SearchContext) -> SearchResult:
    """Random search with LCRankNet's learning-curve ranking stopping runs that will not beat the best so far."""
    from nasmeta.blackbox import random_search
    from nasmeta.search.schedulers import StoppingScheduler

    return random_search(
        ctx.space_obj,
        ctx.evaluator(),
        ctx.budget.evaluations,
        seed=ctx.seed,
        reporter=ctx.reporter,
        scheduler=StoppingScheduler(ctx.component("lcranknet")),
        distinct=True,
        **ctx.loop_options(),
    )
