"""Successive halving and Hyperband (Li, Jamieson, DeSalvo, Rostamizadeh, Talwalkar, "Hyperband: A Novel
Bandit-Based Approach to Hyperparameter Optimization", JMLR 18(185), 2018; successive halving after Jamieson &
Talwalkar, AISTATS 2016).

Hyperband (Algorithm 1 of Li et al.), with ``R`` the maximum resource in units of the minimum resource and
``eta`` the downsampling rate: ``s_max = floor(log_eta R)``, ``B = (s_max + 1) R``; bracket ``s`` starts
``n = ceil(B / R * eta^s / (s + 1))`` configurations with ``r = R eta^-s`` each, and its rung ``i`` runs
``n_i = floor(n eta^-i)`` configurations with ``r_i = r eta^i``, keeping the top ``floor(n_i / eta)``.  For
``R = 81, eta = 3`` this gives exactly the table of the paper (and METHODS.md).

The integer parts are computed in integer arithmetic (``s_max`` as the largest ``s`` with ``eta^s <= R``) so
that ``log_3(81)`` cannot round to 3.999...

Deviations / choices, all documented where they matter:
- ``eta`` must be an integer >= 2 (the paper's experiments use 3; real-valued eta would make ``n_i`` depend on
  floating point floor).
- A bracket started with fewer configurations than its ``n`` (the tail of a finite pool in replay) keeps
  ``max(1, floor(m eta^-i))`` at rung ``i`` so that the bracket still trains one configuration to ``R``.
- Promoted configurations resume training (Syne Tune's "pause and resume"); only the extra epochs are charged.
  Li et al. count each rung's budget separately; resuming makes SH/Hyperband cheaper, never dearer.

This module is the bracket arithmetic; the schedulers that run brackets live, on tables and in replay are
``nasmeta.search.schedulers.SuccessiveHalving`` / ``Hyperband`` / ``ASHAScheduler``.  :func:`successive_halving`
runs one bracket over a pure ``evaluate(candidate, r)`` function: the reference the schedulers are tested against.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import TypeVar

H = TypeVar("H", bound=Hashable)


def _check_eta(eta: int) -> int:
    if isinstance(eta, bool) or not isinstance(eta, int | float) or eta != int(eta) or eta < 2:
        raise ValueError(f"eta must be an integer >= 2, got eta={eta!r}")
    return int(eta)


def _check_max_resource(R: float) -> float:
    if isinstance(R, bool) or not isinstance(R, int | float) or not math.isfinite(R) or R < 1:
        raise ValueError(f"R (maximum resource in units of the minimum resource) must be >= 1, got R={R!r}")
    return R


@dataclass(frozen=True)
class Rung:
    """``n`` configurations trained with resource ``r`` (in units of the minimum resource)."""

    n: int
    r: float

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"a rung needs n >= 1 configurations, got n={self.n}")
        if not self.r > 0:
            raise ValueError(f"a rung needs resource r > 0, got r={self.r}")


@dataclass(frozen=True)
class Bracket:
    """One call of successive halving inside Hyperband: bracket ``s`` with ``s + 1`` rungs."""

    s: int
    eta: int
    rungs: tuple[Rung, ...]

    @property
    def n(self) -> int:
        return self.rungs[0].n

    def pairs(self) -> list[tuple[int, float]]:
        """``[(n_i, r_i), ...]`` as printed in Li et al. 2018."""
        return [(rung.n, rung.r) for rung in self.rungs]

    def counts_for(self, m: int) -> list[int]:
        """Configurations per rung when the bracket starts with ``m`` candidates (``m == n``: the paper's)."""
        if m < 1:
            raise ValueError(f"a bracket needs at least one candidate, got {m}")
        if m >= self.n:
            return [rung.n for rung in self.rungs]
        return [max(1, m // self.eta**i) for i in range(len(self.rungs))]


def s_max(R: float, eta: int) -> int:
    """``floor(log_eta R)`` computed exactly: the largest ``s`` with ``eta^s <= R``."""
    eta, R = _check_eta(eta), _check_max_resource(R)
    s = 0
    while eta ** (s + 1) <= R:
        s += 1
    return s


def bracket(s: int, R: float, eta: int) -> Bracket:
    """Bracket ``s`` of Hyperband(R, eta) (Li et al. 2018, Algorithm 1)."""
    eta, R = _check_eta(eta), _check_max_resource(R)
    top = s_max(R, eta)
    if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= top:
        raise ValueError(f"bracket s must be an integer in [0, {top}] for R={R}, eta={eta}; got s={s!r}")
    # n = ceil((s_max + 1) * eta^s / (s + 1)), in integers
    n = -(-(top + 1) * eta**s // (s + 1))
    r = R / eta**s
    rungs = tuple(Rung(n // eta**i, r * eta**i) for i in range(s + 1))
    return Bracket(s=s, eta=eta, rungs=rungs)


def hyperband_brackets(R: float, eta: int = 3) -> list[Bracket]:
    """All brackets, most exploratory first (``s = s_max, ..., 0``)."""
    return [bracket(s, R, eta) for s in range(s_max(R, eta), -1, -1)]


@dataclass(frozen=True)
class HalvingResult:
    """What one bracket did: the members and their values at each rung (best first)."""

    bracket: Bracket
    members: tuple[tuple[Hashable, ...], ...]
    values: tuple[tuple[float, ...], ...]

    @property
    def finalists(self) -> tuple[Hashable, ...]:
        return self.members[-1]


def successive_halving(
    candidates: Sequence[H], bracket: Bracket, evaluate: Callable[[H, float], float]
) -> HalvingResult:
    """Run one bracket: evaluate every member of rung ``i`` at ``r_i`` (``evaluate(c, r)``, higher is better)
    and promote exactly the best ``n_{i+1}`` (``floor(n_i / eta)`` for a full bracket) to the next rung.

    Ties keep the earlier candidate (a stable sort), so the result depends only on the inputs."""
    if len(candidates) == 0:
        raise ValueError("successive halving needs at least one candidate, got an empty sequence")
    if len(set(candidates)) != len(candidates):
        raise ValueError("successive halving candidates must be distinct")
    counts = bracket.counts_for(len(candidates))
    current = list(candidates[: counts[0]])
    members, values = [], []
    for i, rung in enumerate(bracket.rungs):
        scores = [float(evaluate(c, rung.r)) for c in current]
        if any(math.isnan(v) for v in scores):
            raise ValueError(f"evaluate returned NaN at rung {i} (r={rung.r})")
        order = sorted(range(len(current)), key=lambda j: -scores[j])
        members.append(tuple(current[j] for j in order))
        values.append(tuple(scores[j] for j in order))
        if i + 1 < len(bracket.rungs):
            current = [current[j] for j in order[: counts[i + 1]]]
    return HalvingResult(bracket=bracket, members=tuple(members), values=tuple(values))


def resource_to_epochs(r: float, R: float, max_epochs: int) -> int:
    """Epochs for resource ``r`` when ``R`` stands for ``max_epochs`` (round half up, at least 1)."""
    if max_epochs < 1:
        raise ValueError(f"max_epochs must be >= 1, got {max_epochs}")
    return int(min(max_epochs, max(1, math.floor(r * max_epochs / R + 0.5))))
