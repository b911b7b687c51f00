"""Schedulers: after each reported epoch of a trial, CONTINUE, PAUSE or STOP; between trials, what runs next.

The loop (:mod:`nasmeta.search.loop`) owns the trials; a scheduler only answers two questions (Syne Tune's split):

- ``suggest(trials)``: start a new trial (the searcher proposes its configuration), resume a paused one, or end;
- ``on_report(trial, context)`` at the epochs ``milestone(trial)`` names: ``Decision.CONTINUE`` (train on),
  ``Decision.PAUSE`` (stop *for now*, keep the state: the scheduler may resume it later with more epochs) or
  ``Decision.STOP`` (finished for good, never resumed; it is never chosen as the result).

Schedulers here:
- :class:`FIFOScheduler` (``none``): every trial trains to the end.
- :class:`StoppingScheduler`: any per-epoch stopping rule with ``decide(curve, context)`` (median, percentile,
  Domhan, Baker, LCRankNet), asked after every epoch before the last.
- :class:`SuccessiveHalving` (``sh``) and :class:`Hyperband` (``hyperband``): Li et al., JMLR 2018, brackets from
  :mod:`nasmeta.blackbox.hyperband`; each bracket starts its ``n`` trials, pauses them at the rung's epochs,
  resumes the top ``n_{i+1}`` (stable order: earlier trial first on ties), and so on; Hyperband cycles brackets.
- :class:`ASHAScheduler` (``asha``): Li et al., MLSys 2020, asynchronous successive halving: whenever the worker is
  free, promote a trial in the top ``1/eta`` of its rung not yet promoted (highest rung first), else start one.

Deviations: the loop runs one trial at a time (one worker), which makes ASHA's "free worker" every decision point;
paused trials that are never promoted end as ``stopped`` and are charged the epochs they trained.  ASHA is defined
for an open-ended stream of trials; with a finite trial budget it may end with no trial trained to the end, so
once the budget is spent and no promotion is due, the best paused trial of the highest rung is promoted (logged as
``finishing``) until one trial completes.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, ClassVar

from nasmeta.blackbox.hyperband import (
    Bracket,
    _check_eta,
    _check_max_resource,
    hyperband_brackets,
    resource_to_epochs,
    s_max,
)
from nasmeta.blackbox.hyperband import bracket as make_bracket
from nasmeta.scheduling import Decision
from nasmeta.search.context import StopContext
from nasmeta.search.trial import Trial


@dataclass(frozen=True)
class StartTrial:
    """Ask the searcher for a new configuration and train it from epoch 0."""


@dataclass(frozen=True)
class ResumeTrial:
    """Resume the paused trial ``trial_id`` (a promotion)."""

    trial_id: int


Suggestion = StartTrial | ResumeTrial | None


class Scheduler(abc.ABC):
    """Base of every scheduler; ``begin`` is called once by the loop before the first ``suggest``."""

    name: ClassVar[str]
    max_epochs: int = 0
    n_trials: int = 0

    def fit(self, meta: Any = None) -> Scheduler:
        """Learn from metadata (learned stoppers); the rule-based schedulers return ``self``."""
        return self

    def begin(self, max_epochs: int, n_trials: int) -> None:
        self.max_epochs, self.n_trials = int(max_epochs), int(n_trials)
        self._started = 0

    def suggest(self, trials: list[Trial]) -> Suggestion:
        """Default: start trials until ``n_trials`` have started."""
        return StartTrial() if len(trials) < self.n_trials else None

    def milestone(self, trial: Trial) -> int:
        """The epoch ``trial`` trains to before the next ``on_report`` (default: the end)."""
        return self.max_epochs

    def decision_epochs(self) -> list[int] | None:
        """Every epoch at which this scheduler may decide (None: any epoch); checked against the evaluator."""
        return [self.max_epochs]

    def on_report(self, trial: Trial, context: StopContext) -> Decision:
        return Decision.CONTINUE

    def on_trial_start(self, trial: Trial) -> None:
        """Called once when ``trial`` has been created, before it trains."""
        return None

    def on_trial_end(self, trial: Trial) -> None:
        """Called once when ``trial`` completes, stops or fails."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class FIFOScheduler(Scheduler):
    """No early termination: every trial trains to ``max_epochs`` (the reference of the LCRankNet table)."""

    name = "none"


class StoppingScheduler(Scheduler):
    """A per-epoch stopping rule (``rule.decide(curve, context) -> CONTINUE | STOP``) as a scheduler."""

    name = "stopping"

    def __init__(self, rule: Any, name: str | None = None) -> None:
        if not callable(getattr(rule, "decide", None)):
            raise ValueError(f"{type(rule).__name__} has no decide(curve, context); it cannot stop runs")
        self.rule = rule
        self.name = name or getattr(rule, "name", type(rule).__name__)  # type: ignore[misc]

    def fit(self, meta: Any = None) -> StoppingScheduler:
        fit = getattr(self.rule, "fit", None)
        if fit is not None:
            self.rule = fit(meta) or self.rule
        return self

    def milestone(self, trial: Trial) -> int:
        return trial.epochs + 1

    def decision_epochs(self) -> list[int] | None:
        return None

    def on_report(self, trial: Trial, context: StopContext) -> Decision:
        decision = self.rule.decide(trial.values(), context)
        if decision not in (Decision.CONTINUE, Decision.STOP):
            raise ValueError(f"a stopping rule answers CONTINUE or STOP, got {decision!r} from {self.name}")
        return decision

    def __repr__(self) -> str:
        return f"StoppingScheduler({self.rule!r})"


def rung_epochs(resources: list[float], R: float, max_epochs: int) -> list[int]:
    """Epochs of each rung when ``R`` stands for ``max_epochs`` (round half up, at least 1, at most the end)."""
    return [resource_to_epochs(r, R, max_epochs) for r in resources]


class SynchronousHalving(Scheduler):
    """Brackets of successive halving run live (see the module docstring): :class:`SuccessiveHalving` repeats one
    bracket, :class:`Hyperband` cycles all.  ``R=None``: the run length in epochs (minimum resource one epoch).  A
    bracket opened with fewer than its ``n`` trials left keeps ``Bracket.counts_for(m)`` per rung."""

    def __init__(self, eta: int = 3, R: float | None = None) -> None:
        self.eta = _check_eta(eta)
        self.R = None if R is None else _check_max_resource(R)

    def resolve_max_resource(self, max_epochs: int) -> float:
        return float(max_epochs) if self.R is None else float(self.R)

    @abc.abstractmethod
    def schedule(self, max_epochs: int) -> list[Bracket]:
        """Brackets to cycle through over trials of ``max_epochs`` epochs."""

    def brackets(self, max_epochs: int) -> list[Bracket]:
        return self.schedule(max_epochs)

    def begin(self, max_epochs: int, n_trials: int) -> None:
        super().begin(max_epochs, n_trials)
        self._R = self.resolve_max_resource(max_epochs)
        self._brackets = self.brackets(max_epochs)
        self._k = 0  # brackets opened
        self._members: list[int] = []  # trial ids of the open bracket's rung 0, in start order
        self._counts: list[int] = []
        self._epochs: list[int] = []
        self._rung = 0
        self._queue: list[int] = []  # promoted trials still to resume, in rank order
        self._current: list[int] = []  # members of the open rung
        self.log: list[dict[str, Any]] = []  # one row per rung: bracket, rung, epochs, members ranked, values

    def decision_epochs(self) -> list[int] | None:
        epochs = set()
        for b in self.brackets(self.max_epochs):
            epochs.update(rung_epochs([r.r for r in b.rungs], self._R, self.max_epochs))
        return sorted(epochs)

    def _open_bracket(self, started: int) -> bool:
        left = self.n_trials - started
        if left <= 0:
            return False
        b = self._brackets[self._k % len(self._brackets)]
        self._k += 1
        m = min(b.n, left)
        self._bracket = b
        self._counts = b.counts_for(m)
        self._epochs = rung_epochs([r.r for r in b.rungs], self._R, self.max_epochs)
        self._members, self._current, self._rung = [], [], 0
        return True

    def suggest(self, trials: list[Trial]) -> Suggestion:
        while True:
            if self._queue:
                return ResumeTrial(self._queue.pop(0))
            if not self._counts and not self._open_bracket(len(trials)):
                return None
            if self._rung == 0 and len(self._members) < self._counts[0]:
                return StartTrial()
            # the open rung is full: wait until every member has ended its rung, then promote
            by_id = {t.trial_id: t for t in trials}
            members = [by_id[i] for i in self._current]
            if any(t.status == "running" for t in members):  # cannot happen with one worker; kept for safety
                raise RuntimeError("a rung member is still running while the scheduler is asked what next")
            epochs = self._epochs[self._rung]
            order = sorted(range(len(members)), key=lambda j: -members[j].value_at(epochs))
            ranked = [members[j] for j in order]
            self.log.append(
                {
                    "bracket": self._k - 1,
                    "s": self._bracket.s,
                    "rung": self._rung,
                    "epochs": epochs,
                    "members": [t.trial_id for t in ranked],
                    "values": [t.value_at(epochs) for t in ranked],
                }
            )
            if self._rung + 1 >= len(self._counts):
                self._counts = []  # bracket done; the next call opens the next one
                continue
            keep = [t for t in ranked[: self._counts[self._rung + 1]] if t.status != "failed"]
            self._rung += 1
            self._current = [t.trial_id for t in keep]
            for t in keep:
                t.rung = self._rung
                t.promotions += 1
            self._queue = [t.trial_id for t in keep]

    def on_trial_start(self, trial: Trial) -> None:
        trial.rung = 0
        self._members.append(trial.trial_id)
        self._current.append(trial.trial_id)

    def milestone(self, trial: Trial) -> int:
        return self._epochs[trial.rung]

    def on_report(self, trial: Trial, context: StopContext) -> Decision:
        return Decision.PAUSE if trial.epochs >= self._epochs[trial.rung] else Decision.CONTINUE

    def __repr__(self) -> str:
        return f"{type(self).__name__}(eta={self.eta}, R={self.R})"


class SuccessiveHalving(SynchronousHalving):
    """Successive halving (Jamieson & Talwalkar 2016) as a search baseline: bracket ``s`` (default ``s_max``, the
    most aggressive) repeated over consecutive groups of trials."""

    name = "sh"

    def __init__(self, eta: int = 3, R: float | None = None, s: int | None = None) -> None:
        super().__init__(eta, R)
        if s is not None and (isinstance(s, bool) or not isinstance(s, int) or s < 0):
            raise ValueError(f"bracket s must be a non-negative integer, got s={s!r}")
        if s is not None and self.R is not None and s > s_max(self.R, self.eta):
            raise ValueError(f"bracket s={s} exceeds s_max={s_max(self.R, self.eta)} for R={self.R}")
        self.s = s

    def schedule(self, max_epochs: int) -> list[Bracket]:
        R = self.resolve_max_resource(max_epochs)
        top = s_max(R, self.eta)
        if self.s is not None and self.s > top:
            raise ValueError(f"bracket s={self.s} exceeds s_max={top} for R={R}")
        return [make_bracket(top if self.s is None else self.s, R, self.eta)]


class Hyperband(SynchronousHalving):
    """Hyperband (Li et al. 2018): brackets ``s_max, ..., 0`` cycled over consecutive groups of trials."""

    name = "hyperband"

    def schedule(self, max_epochs: int) -> list[Bracket]:
        return hyperband_brackets(self.resolve_max_resource(max_epochs), self.eta)


class ASHAScheduler(Scheduler):
    """Asynchronous successive halving (Li et al., MLSys 2020) with one worker: rungs at ``r_min * eta^k`` epochs
    (``R`` = the run length unless given) and the end; see the module docstring."""

    name = "asha"

    def __init__(self, eta: int = 3, r_min: float = 1.0, R: float | None = None) -> None:
        self.eta = _check_eta(eta)
        if isinstance(r_min, bool) or not isinstance(r_min, int | float) or not r_min > 0:
            raise ValueError(f"r_min must be a positive number of epochs, got {r_min!r}")
        self.r_min = float(r_min)
        self.R = None if R is None else _check_max_resource(R)

    def begin(self, max_epochs: int, n_trials: int) -> None:
        super().begin(max_epochs, n_trials)
        R = float(max_epochs) if self.R is None else float(self.R)
        resources, r = [], self.r_min
        while r < R:
            resources.append(r)
            r *= self.eta
        self._epochs = sorted(set(rung_epochs(resources, R, max_epochs)) | {max_epochs})
        self._rungs: list[list[int]] = [[] for _ in self._epochs]  # trial ids that reached each rung
        self._promoted: list[set[int]] = [set() for _ in self._epochs]
        self.log: list[dict[str, Any]] = []

    def decision_epochs(self) -> list[int] | None:
        return list(self._epochs)

    def on_trial_start(self, trial: Trial) -> None:
        trial.rung = 0

    def suggest(self, trials: list[Trial]) -> Suggestion:
        by_id = {t.trial_id: t for t in trials}
        for k in range(len(self._epochs) - 2, -1, -1):
            members = [by_id[i] for i in self._rungs[k] if by_id[i].status == "paused"]
            reached = [by_id[i] for i in self._rungs[k]]
            top = sorted(reached, key=lambda t: (-t.value_at(self._epochs[k]), t.trial_id))[: len(reached) // self.eta]
            for rank, t in enumerate(top):
                if t in members and t.trial_id not in self._promoted[k]:
                    return self._promote(t, k, rank, len(reached))
        if len(trials) < self.n_trials:
            return StartTrial()
        return self._finish(trials)

    def _promote(self, trial: Trial, k: int, rank: int, rung_size: int, finishing: bool = False) -> ResumeTrial:
        self._promoted[k].add(trial.trial_id)
        trial.rung, trial.promotions = k + 1, trial.promotions + 1
        entry = {"trial": trial.trial_id, "from_epochs": self._epochs[k], "to_epochs": self._epochs[k + 1]}
        self.log.append({**entry, "rank": rank, "rung_size": rung_size, **({"finishing": True} if finishing else {})})
        return ResumeTrial(trial.trial_id)

    def _finish(self, trials: list[Trial]) -> Suggestion:
        """The trial budget is spent and no promotion is due: if no trial has completed, promote the best paused
        trial of the highest rung reached, so that a finite search ends with a fully trained pick."""
        if any(t.status == "completed" for t in trials):
            return None
        for k in range(len(self._epochs) - 2, -1, -1):
            paused = [t for t in trials if t.status == "paused" and t.rung == k]
            if paused:
                best = min(paused, key=lambda t: (-t.value_at(self._epochs[k]), t.trial_id))
                return self._promote(best, k, 0, len(self._rungs[k]), finishing=True)
        return None

    def milestone(self, trial: Trial) -> int:
        return self._epochs[trial.rung]

    def on_report(self, trial: Trial, context: StopContext) -> Decision:
        if trial.epochs >= self._epochs[trial.rung]:
            self._rungs[trial.rung].append(trial.trial_id)
            return Decision.PAUSE
        return Decision.CONTINUE

    def __repr__(self) -> str:
        return f"ASHAScheduler(eta={self.eta}, r_min={self.r_min}, R={self.R})"


def as_scheduler(method: Any) -> Scheduler:
    """``method`` as a scheduler: a ``Scheduler`` as it is, a stopping rule (``decide``) wrapped per epoch."""
    if isinstance(method, Scheduler):
        return method
    if callable(getattr(method, "decide", None)):
        return StoppingScheduler(method)
    raise ValueError(f"{type(method).__name__} is neither a Scheduler nor a stopping rule with decide()")
