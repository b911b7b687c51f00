"""A finite pool of architectures as a search space: searches over the cells a collection trained.

Evaluating a search method on stored metadata (no training) needs the method to propose only cells whose results
are stored.  ``PoolSpace`` gives searchers written for a whole space the same interface on a pool: ``sample`` is a
uniform draw from the pool; ``mutate`` (regularised evolution's step) moves to a pool cell at the smallest token
Hamming distance from the parent (1 when the pool holds a one-edit neighbour, as the space's own mutation would
reach; more when it does not), uniformly among ties.  Deviation from evolution on the full space: when no one-edit
neighbour is in the pool, the child differs from its parent in more than one choice.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nasmeta.spaces.base import Architecture, SearchSpace


class PoolSpace:
    """The architectures ``pool`` of ``space`` (distinct ids) with the sample / mutate interface of a space."""

    def __init__(self, space: SearchSpace, pool: Sequence[Architecture]) -> None:
        unique = list({a.arch_id: a for a in pool}.values())
        if len(unique) < 2:
            raise ValueError(f"a pool needs at least 2 distinct architectures, got {len(unique)}")
        self.space, self.pool = space, sorted(unique, key=lambda a: a.arch_id)
        self.name = space.name
        self._tokens = np.array([space.tokens(a) for a in self.pool])
        self._index = {a.arch_id: i for i, a in enumerate(self.pool)}

    def __len__(self) -> int:
        return len(self.pool)

    def sample(self, rng: np.random.Generator) -> Architecture:
        return self.pool[int(rng.integers(len(self.pool)))]

    def mutate(self, arch: Architecture, rng: np.random.Generator) -> Architecture:
        own = self._index.get(arch.arch_id)
        tokens = np.array(self.space.tokens(arch))
        distance = (self._tokens != tokens).sum(axis=1).astype(float)
        if own is not None:
            distance[own] = np.inf
        distance[distance == 0] = np.inf  # isomorphic duplicates are not a move
        nearest = np.flatnonzero(distance == distance.min())
        return self.pool[int(rng.choice(nearest))]
