"""``oneshot-<strategy>`` for every one-shot strategy registered with ``@register_strategy`` in ``nasmeta/oneshot/``
(DARTS, ENAS, random one-shot, ...): the supernet is searched for ``oneshot_epochs``, the derived architecture is
trained with the budget's recipe.  ``oneshot-darts`` is part of the default comparison."""

from __future__ import annotations

from nasmeta.search.registry import search_method
from nasmeta.search.target import SearchContext
from nasmeta.search_result import SearchResult

#: strategies in the default comparison (the others run when named)
DEFAULT = {"darts"}


def _method(strategy: str):  # noqa: ANN202 - a factory of registered functions
    def oneshot_method(ctx: SearchContext) -> SearchResult:
        from nasmeta.oneshot.api import oneshot_search

        result = oneshot_search(
            strategy,
            ctx.space_obj,
            ctx.data(),
            epochs=ctx.budget.oneshot_epochs,
            seed=ctx.seed,
            supernet_size=ctx.budget.supernet_size(ctx.space),
        )
        return ctx.train_pick(result)

    oneshot_method.__doc__ = f"One-shot {strategy} over the space's supernet; the derived architecture is trained."
    return oneshot_method


def _register() -> None:
    from nasmeta.oneshot.api import strategy_names, supernet_spaces

    spaces = supernet_spaces()
    for strategy in strategy_names(imported=False):
        search_method(f"oneshot-{strategy}", family="one-shot", spaces=spaces, default=strategy in DEFAULT)(
            _method(strategy)
        )


_register()
