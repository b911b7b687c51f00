"""Helpers every command shares: one error style (``error: ...`` on stderr, exit code 2, no traceback), list and
``KEY=VALUE`` parsing, and the budget options.  Commands call one library function or one flow; everything here
only turns command-line text into their arguments."""

from __future__ import annotations

import json
from typing import Any, NoReturn

import typer

#: messages are shortened to this many characters (a huge input must not flood the terminal)
MAX_MESSAGE = 400


def fail(message: str) -> NoReturn:
    """Print ``error: message`` (one line, shortened) to stderr and exit with status 2 (bad input)."""
    text = " ".join(str(message).split())
    if len(text) > MAX_MESSAGE:
        text = text[: MAX_MESSAGE - 3] + "..."
    typer.echo(f"error: {text}", err=True)
    raise typer.Exit(2)


def failed_run(error: BaseException) -> NoReturn:
    """A run that failed (not bad input): ``error: ...`` on one line, exit code 1; the reasons per run are in the
    store and MLflow."""
    typer.echo(f"error: {' '.join(str(error).split())[:600]}", err=True)
    raise typer.Exit(1)


def csv_list(text: str | None, option: str = "the list") -> list[str] | None:
    """``"a, b,c"`` -> ``["a", "b", "c"]`` (None for None); an empty list is an error naming ``option``."""
    if text is None:
        return None
    items = [part.strip() for part in text.split(",") if part.strip()]
    if not items:
        fail(f"{option} is empty")
    return items


def json_value(text: str) -> Any:
    """``text`` as JSON where it parses (``0.3``, ``true``, ``[2, 3]``), else the string itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_sizes(items: list[str] | None, option: str = "--size") -> dict[str, int]:
    """``["C=16", "N=5"]`` -> ``{"C": 16, "N": 5}`` (network size keywords of ``space.build``)."""
    out: dict[str, int] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            fail(f"{option} takes KEY=INT (e.g. C=16), got {item!r}")
        try:
            out[key.strip()] = int(value)
        except ValueError:
            fail(f"{option} {item!r}: {value!r} is not an integer")
    return out


def parse_sets(items: list[str] | None, option: str = "--set") -> dict[str, Any]:
    """``["evaluations=6", "network.nb201.C=16"]`` -> ``{"evaluations": 6, "network": {"nb201": {"C": 16}}}``;
    values are JSON where they parse, else strings."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            fail(f"{option} takes KEY=VALUE (e.g. evaluations=6), got {item!r}")
        *groups, name = key.strip().split(".")
        node = out
        for group in groups:
            node = node.setdefault(group, {})
            if not isinstance(node, dict):
                fail(f"{option} {item!r}: {group!r} is set both as a value and as a group")
        node[name] = json_value(raw)
    return out


def resolve_budget_options(budget: str, sets: list[str] | None) -> Any:
    """The ``Budget`` of ``--budget NAME`` with ``--set KEY=VALUE`` overrides; a bad name or field exits 2."""
    from pydantic import ValidationError

    from nasmeta.budget import resolve_budget

    try:
        overrides = parse_sets(sets)
        return resolve_budget({"preset": budget, **overrides} if overrides else budget)
    except (ValueError, ValidationError) as error:
        fail(_pydantic_message(error))


def _pydantic_message(error: Exception) -> str:
    errors = getattr(error, "errors", None)
    if callable(errors):
        parts = []
        for item in errors():
            where = ".".join(str(p) for p in item.get("loc", ()))
            parts.append(f"{where}: {item.get('msg')} (got {item.get('input')!r})")
        return "budget " + "; ".join(parts)
    return str(error)


def cli_store(store: str | None, must_exist: bool = False) -> Any:
    """The metadata store for a command (default ``$NASMETA_HOME/store``); ``must_exist`` (read commands): a local
    root that is not a folder is an error instead of an empty store."""
    from pathlib import Path

    from flows.common import open_store
    from nasmeta.config import default_store_root

    root = store or default_store_root()
    if must_exist and "://" not in root and not Path(root).is_dir():
        fail(f"no metadata store at {root} (give --store, or collect first: nasmeta collect)")
    try:
        return open_store(root)
    except ValueError as error:
        fail(str(error))
