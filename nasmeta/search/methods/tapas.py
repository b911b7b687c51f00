"""``transfer-tapas``: TAP-scored evolution picks the candidates (no training), the best ``evaluations`` of them are
trained (under a scheduler if one is named: ``transfer-tapas+sh``)."""

from __future__ import annotations

from nasmeta.search.registry import search_method
from nasmeta.search.target import SearchContext
from nasmeta.search_result import SearchResult


@search_method(
    "transfer-tapas",
    family="transfer",
    spaces=("nb201", "macro"),
    schedulable=True,
    order=10,
    components=("tapas",),
)
def tapas_method(ctx: SearchContext) -> SearchResult:
    """TAPAS: DCN-selected sources, TAP-predicted accuracy, the top predictions trained."""
    from nasmeta.transfer.tapas import tapas_search

    # TAPAS takes the DCN as a fraction; landmarkers (like every accuracy here) are in percent
    target = {"task_id": ctx.task.task_id, "dcn": ctx.landmarkers()["dcn"] / 100.0}
    return tapas_search(
        ctx.component("tapas"),
        ctx.space_obj,
        target,
        ctx.evaluator(),
        n_evaluations=ctx.budget.evaluations,
        n_predictions=ctx.budget.tapas_predictions,
        seed=ctx.seed,
        reporter=ctx.reporter,
        scheduler=ctx.scheduler(),
        on_trial=ctx.on_trial,
    )
