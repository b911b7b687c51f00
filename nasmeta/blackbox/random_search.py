"""Random search (Bergstra & Bengio 2012; the NAS baseline of Li & Talwalkar 2019 and of NAS-Bench-201).

Architectures are drawn uniformly and independently from the space (with replacement: a repeated draw is
evaluated and charged again, as in NB201's baseline) and the one with the best validation accuracy is returned.
This is the search loop with a :class:`~nasmeta.search.searchers.RandomSearcher`; pass a ``scheduler`` to stop or
pause runs early (median, successive halving, Hyperband, ASHA, LCRankNet, ...).
"""

from __future__ import annotations

from typing import Any

from nasmeta.evaluators import Evaluator
from nasmeta.reporting import Reporter
from nasmeta.search.recorder import check_budget
from nasmeta.search_result import SearchResult
from nasmeta.spaces.base import SearchSpace


def random_search(
    space: SearchSpace,
    evaluator: Evaluator,
    n_evaluations: int,
    seed: int = 0,
    reporter: Reporter | None = None,
    epochs: int | None = None,
    scheduler: Any = None,
    distinct: bool = False,
    **loop: Any,
) -> SearchResult:
    """Evaluate ``n_evaluations`` uniform samples of ``space``; return the best by validation accuracy.

    ``epochs`` is each run's length (the evaluator's ``max_epochs`` when ``None``); ``seed`` seeds the sampler and
    is passed to every evaluation; ``distinct`` draws distinct architectures; ``loop`` goes to ``run_search``.
    """
    from nasmeta.search.loop import run_search
    from nasmeta.search.searchers import RandomSearcher

    n_evaluations = check_budget(n_evaluations)
    searcher = RandomSearcher(space, seed, distinct=distinct)
    return run_search(
        searcher,
        evaluator,
        n_evaluations,
        scheduler,
        seed=seed,
        max_epochs=epochs,
        reporter=reporter,
        method="random_search",
        **loop,
    )
