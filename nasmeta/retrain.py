"""Retraining a found architecture from scratch, next to the trainer: ``retrain`` trains it through the one
training path (:func:`nasmeta.training.train_architecture`) and keeps the model for export; ``with_retrain`` puts the
outcome into a search's result.  Used for every winner, whichever search found it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from torch import nn

from nasmeta.data.types import TaskData
from nasmeta.evaluators import Evaluation
from nasmeta.reporting import CallbackReporter, Reporter
from nasmeta.search_result import SearchResult
from nasmeta.spaces.base import Architecture


@dataclass
class Retrained:
    """A retrained architecture: the trained model, the trainer's result and the matching ``Evaluation``."""

    model: nn.Module
    result: Any  # nasmeta.training.TrainResult
    evaluation: Evaluation
    build: dict[str, Any]


def retrain(
    arch: Architecture,
    task: TaskData | str,
    epochs: int,
    seed: int = 0,
    reporter: Reporter | None = None,
    config: Any = None,
    **size: Any,
) -> Retrained:
    """Build ``arch`` (``size`` goes to ``space.build``) and train it from scratch for ``epochs`` epochs, through
    the one training path (:func:`nasmeta.training.train_architecture`).

    ``config`` is a :class:`nasmeta.training.TrainConfig` (default recipe) whose epochs and seed are replaced.
    Reports go to ``reporter`` as ``retrain_<metric>`` with ``step = epoch``; a build error raises ``ValueError``.
    """
    from nasmeta.training import TrainConfig, load_task, train_architecture

    data = load_task(task)
    config = (config or TrainConfig()).with_(epochs=epochs, seed=seed)
    prefixed = None
    if reporter is not None:
        prefixed = CallbackReporter(lambda step, m: reporter.report(step, **{f"retrain_{k}": v for k, v in m.items()}))
    trained = train_architecture(arch, data, config, size=size, reporter=prefixed)
    if trained.model is None:
        raise ValueError(f"cannot retrain {arch}: {trained.result.error}")
    evaluation = replace(trained.evaluation, extra={**trained.evaluation.extra, "estimator": "retrain"})
    build = {"num_classes": data.num_classes, "input_shape": list(data.input_shape), "size": dict(size)}
    return Retrained(trained.model, trained.result, evaluation, build)


def with_retrain(result: SearchResult, retrained: Retrained) -> SearchResult:
    """``result`` with the retrained accuracies as ``best_val_acc`` / ``best_test_acc``, the retraining appended
    to ``history`` and its summary in ``extra["retrain"]``; ``cost_seconds`` includes the retraining."""
    summary = {k: v for k, v in retrained.result.to_dict().items() if k != "curve"}
    return result.with_pick_evaluated(retrained.evaluation, retrain={**summary, "build": retrained.build})
