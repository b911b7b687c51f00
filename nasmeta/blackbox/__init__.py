"""Black-box searches: each evaluates whole architectures through an :class:`~nasmeta.evaluators.Evaluator`.

One file per strategy (random search, regularised evolution, bracket arithmetic, stopping rules); all of them run
in the one search loop, ``nasmeta.search.loop``.  Only the two light entry points are
imported here (numpy, no torch), so ``import nasmeta.blackbox`` stays cheap.  ``nasmeta.blackbox.random_search``
names the function; import the module's other names with ``from nasmeta.blackbox.random_search import ...``.
"""

from __future__ import annotations

from nasmeta.blackbox.evolution import regularized_evolution
from nasmeta.blackbox.random_search import random_search

__all__ = ["random_search", "regularized_evolution"]
