"""How results leave training and search code (Syne Tune's ``report()``): a reporter callback.

Library code calls ``reporter.report(step, **metrics)`` and knows nothing of MLflow, Prefect or the store;
those plug in from above by passing their own reporter.  ``should_stop`` callbacks are the other direction:
a scheduler / stopper answers "continue or stop?" after each report.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Reporter(Protocol):
    def report(self, step: int, **metrics: Any) -> None: ...


class NullReporter:
    """Drops everything (the default)."""

    def report(self, step: int, **metrics: Any) -> None:
        return None


class ListReporter:
    """Keeps every report in memory: ``rows`` is a list of ``{"step": ..., **metrics}``."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def report(self, step: int, **metrics: Any) -> None:
        self.rows.append({"step": step, **metrics})


class CallbackReporter:
    """Adapts a plain function ``fn(step, metrics_dict)``."""

    def __init__(self, fn: Callable[[int, dict[str, Any]], None]) -> None:
        self.fn = fn

    def report(self, step: int, **metrics: Any) -> None:
        self.fn(step, metrics)


#: ``should_stop(curve_so_far) -> bool``: asked after every epoch; ``curve_so_far`` is a list of per-epoch dicts.
ShouldStop = Callable[[list[dict[str, Any]]], bool]
