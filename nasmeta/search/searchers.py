"""Searchers: what to evaluate next.  ``suggest()`` proposes a configuration (None: nothing left) and
``observe(evaluation)`` hears how each finished trial went (completed, stopped or failed).

- :class:`RandomSearcher`: uniform samples of the space (Bergstra & Bengio 2012; the NAS baseline of Li &
  Talwalkar 2019 and NAS-Bench-201), with replacement as NB201's baseline (``distinct=True`` for distinct ids).
- :class:`EvolutionSearcher`: regularised (aging) evolution, Real et al., AAAI 2019, Algorithm 1 (see its doc).
- :class:`FixedOrderSearcher`: a given sequence (replay orders, predictor rankings, portfolios, top-k picks).
"""

from __future__ import annotations

import abc
from collections import deque
from collections.abc import Iterable
from typing import Any

import numpy as np

from nasmeta.evaluators import Evaluation
from nasmeta.spaces.base import SearchSpace


class Searcher(abc.ABC):
    @abc.abstractmethod
    def suggest(self) -> Any | None:
        """The next configuration to evaluate, or None when the searcher has nothing left."""

    def observe(self, evaluation: Evaluation) -> None:
        """A trial this searcher proposed has ended (default: ignored)."""
        return None


class RandomSearcher(Searcher):
    """Uniform samples; ``distinct`` skips ids already proposed (giving up after ``100 x`` tries in a row)."""

    def __init__(self, space: SearchSpace, seed: int | np.random.Generator = 0, distinct: bool = False) -> None:
        self.space = space
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self.distinct = distinct
        self._seen: set[str] = set()

    def suggest(self) -> Any | None:
        for _ in range(100 if self.distinct else 1):
            arch = self.space.sample(self.rng)
            if not self.distinct or arch.arch_id not in self._seen:
                self._seen.add(arch.arch_id)
                return arch
        return None


class EvolutionSearcher(Searcher):
    """Aging evolution (Real et al. 2019, Algorithm 1).

    - Fill a population of ``population_size`` uniformly sampled architectures (each proposed as soon as asked:
      samples are drawn while the population, counting completed trials only, is not full).
    - Then each proposal draws ``sample_size`` members uniformly *with replacement*, takes the one with the highest
      validation accuracy as parent and proposes ``space.mutate(parent)`` (one choice changed).
    - A completed child joins the population and the *oldest* member leaves (aging), not the worst.

    A failed or stopped trial never enters the population (it kills no member).  Defaults (population 10, sample
    3) are NAS-Bench-201's settings for its REA baseline.
    """

    def __init__(
        self, space: SearchSpace, seed: int | np.random.Generator = 0, population_size: int = 10, sample_size: int = 3
    ) -> None:
        for label, value in (("population_size", population_size), ("sample_size", sample_size)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"{label} must be a positive integer, got {value!r}")
        if sample_size > population_size:
            raise ValueError(f"sample_size ({sample_size}) must not exceed population_size ({population_size})")
        self.space = space
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self.population_size, self.sample_size = int(population_size), int(sample_size)
        self.population: deque[Evaluation] = deque()
        self._initialising = True

    def suggest(self) -> Any | None:
        if self._initialising and len(self.population) < self.population_size:
            return self.space.sample(self.rng)
        self._initialising = False
        if not self.population:  # every initial trial failed: keep sampling
            return self.space.sample(self.rng)
        contenders = [self.population[int(i)] for i in self.rng.integers(len(self.population), size=self.sample_size)]
        parent = max(contenders, key=lambda e: e.val_acc)
        return self.space.mutate(parent.arch, self.rng)

    def observe(self, evaluation: Evaluation) -> None:
        if evaluation.status != "completed":
            return
        self.population.append(evaluation)
        if not self._initialising and len(self.population) > self.population_size:
            self.population.popleft()
        elif self._initialising and len(self.population) >= self.population_size:
            self._initialising = False


class FixedOrderSearcher(Searcher):
    """Proposes ``items`` in order, then nothing."""

    def __init__(self, items: Iterable[Any]) -> None:
        self.items = list(items)
        self._next = 0

    def suggest(self) -> Any | None:
        if self._next >= len(self.items):
            return None
        item = self.items[self._next]
        self._next += 1
        return item
