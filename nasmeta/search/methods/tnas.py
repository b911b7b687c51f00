"""``transfer-tnas``: T-NAS (Lian et al., ICLR 2020) on a target task: the meta-learned supernet (alpha, w), saved by
``nasmeta fewshot --method tnas --save DIR`` and given as component ``tnas``, adapts its few steps on ``shots``
images per class of the target's training split, decodes a cell, and the cell is trained with the budget's recipe
like every pick.  The target must have as many classes as the model's ``ways`` and the same image channels."""

from __future__ import annotations

from nasmeta.search.registry import search_method
from nasmeta.search.target import SearchContext
from nasmeta.search_result import SearchResult


@search_method(
    "transfer-tnas", family="transfer", spaces=("nb201", "darts"), default=False, order=30, components=("tnas",)
)
def tnas_method(ctx: SearchContext) -> SearchResult:
    """T-NAS: the meta-architecture adapted on a few target images per class, the decoded cell trained."""
    import torch

    from nasmeta.transfer.tnas import TNAS, tnas_search

    if "tnas" not in ctx.components:
        raise ValueError(
            "transfer-tnas needs a meta-trained T-NAS model: `nasmeta fewshot --method tnas --save DIR`, then "
            "`--component tnas=DIR`"
        )
    model = TNAS.load(ctx.components["tnas"])
    data = ctx.data()
    cfg = model.config
    if data.num_classes != cfg.ways or data.input_shape[0] != cfg.input_shape[0]:
        raise ValueError(
            f"the T-NAS model is {cfg.ways}-way on {cfg.input_shape[0]}-channel images; task {data.name!r} has "
            f"{data.num_classes} classes and {data.input_shape[0]} channels"
        )
    generator = torch.Generator().manual_seed(ctx.seed)

    def few(x: torch.Tensor, y: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        picks = [torch.nonzero(y == c).flatten() for c in range(cfg.ways)]
        chosen = torch.cat([p[torch.randperm(len(p), generator=generator)[:k]] for p in picks])
        return x[chosen], y[chosen]

    support_x, support_y = few(data.x_train, data.y_train, cfg.shots)
    query_x, query_y = few(data.x_val, data.y_val, cfg.queries)
    task = {"support_x": support_x, "support_y": support_y, "query_x": query_x, "query_y": query_y}
    result = tnas_search(ctx.space, task, model, seed=ctx.seed)
    return ctx.train_pick(result)
