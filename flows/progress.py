"""Progress of long commands on the console: the stage, work done / planned, an ETA and per-stage seconds.

A rich progress bar on a terminal; plain lines on stderr otherwise (a log file or CI), at most one every
``PLAIN_EVERY`` seconds per stage plus its first and last.  Flows report through :func:`stage`; a stage opened
inside another (the collection inside the pipeline) is shown as ``pipeline > collect``.  Nothing is shown when
``NASMETA_PROGRESS=0``.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator

PLAIN_EVERY = 10.0
_stack: list[str] = []


def _enabled() -> bool:
    return os.environ.get("NASMETA_PROGRESS", "1") not in {"0", "false", "no"}


def _line(text: str) -> None:
    # not print(): inside a Prefect flow run with log_prints=True, print() becomes an INFO log record, which the
    # usual PREFECT_LOGGING_LEVEL=WARNING drops
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class Stage:
    """One stage: ``advance()`` after each unit of work (a training run, a method)."""

    def __init__(self, name: str, total: int | None, unit: str) -> None:
        self.name, self.total, self.unit = name, total, unit
        self.done = 0
        self.start = time.perf_counter()
        self._last_line = 0.0
        self._bar = None
        if _enabled() and sys.stderr.isatty():
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(name, total=total)

    def eta(self) -> str:
        if not self.total or not self.done:
            return "?"
        elapsed = time.perf_counter() - self.start
        return _duration(elapsed / self.done * (self.total - self.done))

    def advance(self, note: str = "") -> None:
        self.done += 1
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done, description=f"{self.name} {note}".strip())
            return
        now = time.perf_counter()
        if _enabled() and (self.done == 1 or self.done == self.total or now - self._last_line >= PLAIN_EVERY):
            self._last_line = now
            total = f"/{self.total}" if self.total else ""
            elapsed = _duration(now - self.start)
            line = f"[{self.name}] {self.done}{total} {self.unit}, {elapsed} elapsed, ETA {self.eta()}"
            _line(line + (f"  {note}" if note else ""))

    def close(self) -> float:
        seconds = time.perf_counter() - self.start
        if self._bar is not None:
            self._bar.stop()
        if _enabled():
            _line(f"[{self.name}] done in {_duration(seconds)}")
        return seconds


def note(text: str) -> None:
    """One line of information on stderr (shown unless ``NASMETA_PROGRESS=0``), inside a flow run too."""
    if _enabled():
        _line(text)


class StageHooks:
    """LODO-loop hooks that advance a stage per finished row (``nasmeta.evaluation.lodo.LodoHooks``), combined
    with a sink's hooks: ``hooks()`` as a ``CsvRows`` has, so a flow can pass it where it passes a sink."""

    def __init__(self, shown: Stage, sink: object | None = None) -> None:
        self.shown, self.sink = shown, sink

    def hooks(self) -> object:
        from nasmeta.evaluation.lodo import LodoHooks, combine_hooks

        def advance(fold: object, method: str, seed: int, row: dict) -> None:
            self.shown.advance(f"{method} on {getattr(fold, 'task_id', fold)} seed {seed} {row.get('status', '')}")

        own = LodoHooks(on_result=advance)
        return combine_hooks(self.sink.hooks(), own) if self.sink is not None else own  # type: ignore[attr-defined]


@contextlib.contextmanager
def stage(name: str, total: int | None = None, unit: str = "done") -> Iterator[Stage]:
    """Show ``name`` while the block runs (``total`` units of work when known)."""
    label = " > ".join([*_stack, name])
    if _enabled() and total is None and not sys.stderr.isatty():
        _line(f"[{label}] started")
    _stack.append(name)
    current = Stage(label, total, unit)
    try:
        yield current
    finally:
        _stack.pop()
        current.close()
