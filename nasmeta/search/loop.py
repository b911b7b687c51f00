"""The one search loop (learned from Syne Tune's Tuner): a searcher proposes, a scheduler decides, an evaluator
trains or looks up, and results leave through the reporter.

``run_search`` is the only owner of the trials.  Each step it asks the scheduler what next: start a trial (the
searcher proposes its configuration and the evaluator ``start``s a resumable session) or resume a paused one.  It
then advances the trial's session to the epoch the scheduler names (``milestone``), builds the typed
:class:`~nasmeta.search.context.StopContext` and asks ``on_report``: CONTINUE trains on, PAUSE keeps the session
for a later promotion, STOP ends it; a trial that reaches ``max_epochs`` completes.  Ended trials are recorded
(:class:`~nasmeta.search.recorder.SearchRecorder`) and shown to the searcher; trials still paused when the
scheduler ends the search are ended as ``stopped``.

The same loop serves live training (``TrainingEvaluator``), tables with simulated cost (``TabularEvaluator``) and
the replay of stored curves (``StoredCurveEvaluator``), so a scheduler behaves the same on all three.  One trial
runs at a time (one worker).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from nasmeta.evaluators import Evaluator
from nasmeta.reporting import Reporter
from nasmeta.scheduling import Decision
from nasmeta.search.context import StopContext, stop_context
from nasmeta.search.recorder import SearchRecorder, check_budget
from nasmeta.search.schedulers import FIFOScheduler, ResumeTrial, Scheduler, StartTrial
from nasmeta.search.searchers import Searcher
from nasmeta.search.trial import Trial
from nasmeta.search_result import SearchResult

#: called with (trial, event) for each event of a trial: "started", "paused", "resumed", "completed", "stopped",
#: "failed" (MLflow and progress displays plug in here)
TrialCallback = Callable[[Trial, str], None]


def run_search(
    searcher: Searcher,
    evaluator: Evaluator,
    n_trials: int,
    scheduler: Scheduler | None = None,
    *,
    seed: int = 0,
    max_epochs: int | None = None,
    reporter: Reporter | None = None,
    method: str = "search",
    task_id: str | None = None,
    metric: str = "val_acc",
    on_trial: TrialCallback | None = None,
    require_result: bool = True,
) -> SearchResult:
    """Run ``n_trials`` trials proposed by ``searcher`` under ``scheduler`` (default: every trial to the end).

    ``max_epochs`` is each trial's full length (default ``evaluator.max_epochs``); ``seed`` goes to every
    evaluation.  Returns the best completed trial by ``metric``; ``extra["trials"]`` lists every trial (status,
    epochs, promotions) and ``extra["scheduler_log"]`` the rung decisions of rung-based schedulers.  When no trial
    completes, raises ``RuntimeError`` (``require_result``) or returns a result whose ``best_arch`` is None.
    """
    n_trials = check_budget(n_trials, "n_trials")
    scheduler = scheduler or FIFOScheduler()
    T = int(max_epochs or evaluator.max_epochs)
    if T < 1:
        raise ValueError(f"each trial needs max_epochs >= 1, got {T}")
    scheduler.begin(T, n_trials)
    _check_epochs(scheduler, evaluator, T)
    recorder = SearchRecorder(method, evaluator, reporter)
    trials: list[Trial] = []
    completed = _Completed(T, metric)
    emit = on_trial or (lambda trial, event: None)

    while True:
        suggestion = scheduler.suggest(trials)
        if suggestion is None:
            break
        wall = time.perf_counter()
        if isinstance(suggestion, StartTrial):
            if len(trials) >= n_trials:
                raise RuntimeError(f"{scheduler!r} asked for trial {len(trials) + 1} of a {n_trials}-trial search")
            config = searcher.suggest()
            if config is None:
                break
            trial = Trial(len(trials), config, getattr(config, "arch", config), _start(evaluator, config, seed, T))
            trials.append(trial)
            scheduler.on_trial_start(trial)
            emit(trial, "started")
        elif isinstance(suggestion, ResumeTrial):
            trial = trials[suggestion.trial_id]
            if trial.status != "paused":
                raise RuntimeError(f"{scheduler!r} resumed trial {trial.trial_id}, which is {trial.status}")
            trial.status = "running"
            emit(trial, "resumed")
        else:
            raise TypeError(f"{scheduler!r} suggested {suggestion!r}")
        _drive(trial, scheduler, completed, T, task_id)
        if trial.status == "paused":
            emit(trial, "paused")
            recorder.add_evaluation_time(time.perf_counter() - wall)
            continue
        _end(trial, trial.status, recorder, searcher, scheduler, time.perf_counter() - wall)
        if trial.status == "completed":
            completed.add(trial)
        emit(trial, trial.status)

    for trial in trials:
        if trial.status == "paused":  # never promoted: ended here, charged the epochs it trained
            trial.status = "stopped"
            _end(trial, "stopped", recorder, searcher, scheduler, 0.0)
            emit(trial, "stopped")
    return recorder.result(
        require_result,
        seed=seed,
        scheduler=getattr(scheduler, "name", type(scheduler).__name__),
        n_trials=len(trials),
        n_promotions=sum(t.promotions for t in trials),
        trials=[
            {
                "trial_id": t.trial_id,
                "arch": str(t.arch),
                "run_id": getattr(t.config, "run_id", None),
                "status": t.status,
                "epochs": t.epochs,
                "promotions": t.promotions,
                "val_acc": t.evaluation.val_acc if t.evaluation is not None else None,
            }
            for t in trials
        ],
        scheduler_log=list(getattr(scheduler, "log", [])),
    )


def _start(evaluator: Evaluator, config: Any, seed: int, max_epochs: int) -> Any:
    return evaluator.start(config, seed, max_epochs=max_epochs)


def _check_epochs(scheduler: Scheduler, evaluator: Evaluator, T: int) -> None:
    """Fail before any work when the scheduler needs epochs the evaluator cannot stop at (e.g. a per-epoch rule
    on the NB201 table, which has 12- and 200-epoch results only)."""
    choices = evaluator.epoch_choices()
    if choices is None:
        return
    wanted = scheduler.decision_epochs()
    missing = ["every epoch"] if wanted is None else sorted(set(wanted) - set(choices))
    if missing:
        raise ValueError(
            f"scheduler {getattr(scheduler, 'name', scheduler)!r} decides at epochs {missing}, but "
            f"{type(evaluator).__name__} only has results at {list(choices)} epochs"
        )


def _drive(trial: Trial, scheduler: Scheduler, completed: _Completed, T: int, task_id: str | None) -> None:
    """Advance ``trial`` until it completes, fails, or the scheduler pauses or stops it."""
    session = trial.session
    while True:
        target = min(T, max(scheduler.milestone(trial), session.epochs_done + 1))
        if session.epochs_done < target:
            session.advance(target)
        if session.failed:
            trial.status = "failed"
            return
        if session.epochs_done >= T:
            trial.status = "completed"
            return
        if session.epochs_done < target:  # the evaluator could not go further (a table without that fidelity)
            trial.status = "failed"
            return
        decision = scheduler.on_report(trial, completed.context(trial, task_id))
        if decision is Decision.STOP:
            trial.status = "stopped"
            return
        if decision is Decision.PAUSE:
            trial.status = "paused"
            return
        if decision is not Decision.CONTINUE:
            raise ValueError(f"{scheduler!r} answered {decision!r}; expected a Decision")


class _Completed:
    """The completed trials as a stop context wants them, grown once per completion (not rebuilt per epoch)."""

    def __init__(self, T: int, metric: str) -> None:
        self.T, self.metric = T, metric
        self.curves = np.zeros((0, T))
        self.archs: list[Any] = []
        self.finals: list[float] = []
        self.sizes: list[tuple[int | None, int | None]] = []

    def add(self, trial: Trial) -> None:
        values = trial.values(self.metric)
        if len(values) != self.T:  # a lookup without a per-epoch curve: nothing a curve-based rule can use
            return
        self.curves = np.vstack([self.curves, np.asarray(values, dtype=float)[None, :]])
        self.curves.setflags(write=False)
        self.archs.append(trial.arch)
        self.finals.append(trial.evaluation.val_acc)  # type: ignore[union-attr]
        self.sizes.append((_size(trial, "n_params"), _size(trial, "flops")))

    def context(self, trial: Trial, task_id: str | None) -> StopContext:
        return stop_context(
            epoch=trial.epochs,
            max_epochs=self.T,
            completed_curves=self.curves,
            completed_archs=self.archs,
            completed_finals=self.finals,
            completed_sizes=self.sizes,
            task_id=task_id or getattr(trial.config, "task_id", None),
            run_id=getattr(trial.config, "run_id", None),
            arch=trial.arch,
            n_params=_size(trial, "n_params"),
            flops=_size(trial, "flops"),
        )


def _size(trial: Trial, key: str) -> int | None:
    """The trial's parameter count or FLOPs: measured by its session, else known from its configuration."""
    for source in (trial.extra, vars(trial.session)):
        if source.get(key) is not None:
            return source[key]
    return getattr(trial.config, key, None)


def _end(
    trial: Trial, status: str, recorder: SearchRecorder, searcher: Searcher, scheduler: Scheduler, wall: float
) -> None:
    evaluation = trial.session.finish(status)
    trial.evaluation = evaluation
    trial.status = evaluation.status  # type: ignore[assignment]
    for key in ("n_params", "flops"):
        if evaluation.extra.get(key) is not None:
            trial.extra[key] = evaluation.extra[key]
    recorder.record(evaluation, wall, order=trial.trial_id)
    searcher.observe(evaluation)
    scheduler.on_trial_end(trial)
