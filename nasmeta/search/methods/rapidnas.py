"""``transfer-rapidnas``: RapidNAS / MetaD2A (``nasmeta.transfer.rapidnas``) generates cells for the target from its
dataset encoding (no training), the meta-predictor ranks them, the top ``evaluations`` are trained (under a
scheduler if one is named: ``transfer-rapidnas+sh``)."""

from __future__ import annotations

from nasmeta.search.registry import search_method
from nasmeta.search.target import SearchContext
from nasmeta.search_result import SearchResult


@search_method(
    "transfer-rapidnas",
    family="transfer",
    spaces=("nb201",),
    schedulable=True,
    order=15,
    components=("rapidnas",),
)
def rapidnas_method(ctx: SearchContext) -> SearchResult:
    """RapidNAS: cells generated from the target's dataset encoding, ranked by the meta-predictor, the top trained."""
    from nasmeta.transfer.rapidnas import rapidnas_search

    return rapidnas_search(
        ctx.component("rapidnas"),
        ctx.space_obj,
        ctx.data(),
        ctx.evaluator(),
        n_evaluations=ctx.budget.evaluations,
        seed=ctx.seed,
        reporter=ctx.reporter,
        scheduler=ctx.scheduler(),
        **ctx.loop_options(),
    )
