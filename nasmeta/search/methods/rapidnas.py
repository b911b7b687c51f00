"""``transfer-rapidnas``: RapidNAS / MetaD2A (``nasmeta.transfer.rapidnas``) generates cells for the target from its
dataset encoding (no training), the meta-predictor ranks them, the top ``evaluations`` are trained (under a
scheduler if one is named: ``transfer-rapidnas+sh``).

Not a default method (``default=False``): meta-training loads every source task's images (MNIST / CIFAR-10 files
from ``NASMETA_DATA_DIR`` for the shipped collection) and takes about a CPU-minute, so ``search target`` and the
main job run it only when it is named (``--methods transfer-rapidnas``) or a saved component is given."""

from __future__ import annotations

from nasmeta.search.registry import search_method
from nasmeta.search.target import SearchContext
from nasmeta.search_result import SearchResult


@search_method(
    "transfer-rapidnas",
    family="transfer",
    spaces=("nb201",),
    schedulable=True,
    default=False,
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
