"""OFA's deployment search: evolution over sub-networks under a latency or FLOPs constraint, scored by the
accuracy predictor (Cai et al. 2020, Sec. 3.3; reference code ``EvolutionFinder``).

Per generation the population (``population_size``, default 100) is sorted by predicted accuracy; the best
``parent_ratio`` (0.25) are kept, ``mutation_ratio`` (0.5) of the population are mutants of random parents (each
choice -- resolution, each depth, each block's kernel and expansion -- redrawn with ``mutate_prob`` 0.1) and the
rest are uniform crossovers of two random parents.  A candidate over the constraint is redrawn (rejection, as the
reference does).  Defaults are the reference's except ``generations`` (500 there).

The cost function is any ``arch -> float``: :class:`~nasmeta.ofa.latency.OFALatencyPredictor` (latency lookup
table, ms) or :class:`FlopsCost` (``torch.utils.flop_counter`` via :func:`nasmeta.cost.count_flops`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from nasmeta.cost import count_flops
from nasmeta.spaces.base import Architecture
from nasmeta.spaces.ofa import OFASpace


class EvolutionConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    population_size: int = Field(100, ge=2)
    generations: int = Field(500, ge=1)
    parent_ratio: float = Field(0.25, gt=0.0, le=1.0)
    mutation_ratio: float = Field(0.5, ge=0.0, le=1.0)
    mutate_prob: float = Field(0.1, gt=0.0, le=1.0)
    #: draws allowed per feasible candidate before the constraint is declared unreachable
    max_tries: int = Field(1000, ge=1)
    seed: int = 0


class FlopsCost:
    """Forward FLOPs of a sub-network as built for ``input_shape`` / ``num_classes`` (cached by id)."""

    def __init__(self, space: OFASpace, num_classes: int, input_shape: tuple[int, int, int]) -> None:
        self.space, self.num_classes, self.input_shape = space, num_classes, tuple(input_shape)
        self.cache: dict[str, int] = {}

    def __call__(self, arch: Architecture) -> float:
        key = arch.arch_id
        if key not in self.cache:
            self.cache[key] = count_flops(self.space.build(arch, self.num_classes, self.input_shape), self.input_shape)
        return float(self.cache[key])


@dataclass
class EvolutionResult:
    best: Architecture
    predicted_acc: float
    cost: float
    limit: float
    #: per generation: best predicted accuracy and its cost
    history: list[dict[str, Any]] = field(default_factory=list)
    evaluated: int = 0


def evolution_search(
    space: OFASpace,
    accuracy: Callable[[Architecture], float],
    cost: Callable[[Architecture], float],
    limit: float,
    config: EvolutionConfig | None = None,
) -> EvolutionResult:
    """The sub-network of highest predicted accuracy among those evolved with ``cost(arch) <= limit``."""
    config = config or EvolutionConfig()
    if not isinstance(space, OFASpace):
        raise ValueError(f"OFA evolution needs an OFA space, got {space!r}")
    if not np.isfinite(limit) or limit <= 0:
        raise ValueError(f"the constraint limit must be a positive number, got {limit!r}")
    rng = np.random.default_rng(config.seed)
    cfg = space.config
    s, n = cfg.n_stages, cfg.n_slots
    allowed = [cfg.resolutions, *([cfg.depths] * s), *([cfg.kernels] * n), *([cfg.expands] * n)]
    costs: dict[str, float] = {}
    scores: dict[str, float] = {}

    def cost_of(arch: Architecture) -> float:
        if arch.arch_id not in costs:
            costs[arch.arch_id] = float(cost(arch))
        return costs[arch.arch_id]

    def feasible(draw: Callable[[], Architecture], what: str) -> Architecture:
        for _ in range(config.max_tries):
            arch = draw()
            if cost_of(arch) <= limit:
                return arch
        cheapest = min(costs.values())
        raise ValueError(
            f"no {what} sub-network meets the limit {limit:.4g} in {config.max_tries} draws "
            f"(cheapest seen {cheapest:.4g})"
        )

    def mutate(arch: Architecture) -> Architecture:
        values = list(arch.encoding)
        for i, choices in enumerate(allowed):
            if rng.random() < config.mutate_prob:
                values[i] = int(choices[int(rng.integers(len(choices)))])
        return space.from_encoding(values)

    def crossover(a: Architecture, b: Architecture) -> Architecture:
        pick = rng.random(len(a.encoding)) < 0.5
        return space.from_encoding([x if p else y for x, y, p in zip(a.encoding, b.encoding, pick, strict=True)])

    def pick(parents: list[Architecture]) -> Architecture:
        return parents[int(rng.integers(len(parents)))]

    def _mutant(parents: list[Architecture]) -> Callable[[], Architecture]:
        return lambda: mutate(pick(parents))

    def _cross(parents: list[Architecture]) -> Callable[[], Architecture]:
        return lambda: crossover(pick(parents), pick(parents))

    def score(arch: Architecture) -> float:
        if arch.arch_id not in scores:
            scores[arch.arch_id] = float(accuracy(arch))
        return scores[arch.arch_id]

    population = [feasible(lambda: space.sample(rng), "sampled") for _ in range(config.population_size)]
    n_parents = max(1, int(round(config.parent_ratio * config.population_size)))
    n_mutants = int(round(config.mutation_ratio * config.population_size))
    history = []
    best = max(population, key=score)
    for generation in range(config.generations):
        ranked = sorted(population, key=lambda a: (-score(a), a.arch_id))
        parents = ranked[:n_parents]
        if score(parents[0]) > score(best):
            best = parents[0]
        history.append({"generation": generation, "best_predicted_acc": score(best), "best_cost": cost_of(best)})
        children = [feasible(_mutant(parents), "mutated") for _ in range(n_mutants)]
        while len(parents) + len(children) < config.population_size:
            children.append(feasible(_cross(parents), "crossed-over"))
        population = parents + children
    final = max(population, key=lambda a: (score(a), a.arch_id))
    if score(final) > score(best):
        best = final
    return EvolutionResult(best, score(best), cost_of(best), float(limit), history, len(scores))
