"""One registry of search methods: ``@search_method("name", family=...)`` on ``fn(ctx: SearchContext) ->
SearchResult``.  ``flows/search.py``, the CLI (``nasmeta search target --methods``) and LODO all look methods up
here, so adding a method is one file and one decorator.

- Families: ``zero-shot``, ``one-shot``, ``black-box``, ``transfer``.
- A method says which spaces it supports (``spaces``; None = any) and whether it runs in the search loop under a
  scheduler (``schedulable``).  Composition: ``"blackbox-re+hyperband"`` runs ``blackbox-re`` with the
  ``hyperband`` scheduler (any name of ``nasmeta.evaluation.methods``: none, median, percentile, sh, hyperband,
  asha, domhan, baker, lcranknet, ...); scheduler parameters go in the budget-free form ``"+asha"`` only (their
  defaults), or through the Python API.
- Built-in methods live in ``nasmeta/search/methods/`` (one file each); other modules register theirs when named in
  ``NASMETA_PLUGINS`` (comma-separated module names, imported on first look-up).
- Contract: the returned ``SearchResult``'s ``best_val_acc`` / ``best_test_acc`` are those of the pick trained with
  the budget's recipe (``ctx.evaluator()``), so methods compare on equal terms.
"""

from __future__ import annotations

import difflib
import importlib
import os
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from nasmeta.search_result import SearchResult

Family = Literal["zero-shot", "one-shot", "black-box", "transfer"]
FAMILIES: tuple[str, ...] = ("zero-shot", "one-shot", "black-box", "transfer")
PLUGINS_VAR = "NASMETA_PLUGINS"


@dataclass(frozen=True)
class MethodInfo:
    name: str
    family: Family
    fn: Callable[..., SearchResult]
    spaces: tuple[str, ...] | None = None
    schedulable: bool = False
    default: bool = True
    description: str = ""
    order: int = 100
    #: transfer components the method uses (``ctx.component(name)``), fitted by the pipeline beforehand
    components: tuple[str, ...] = ()

    def supports(self, space: str) -> bool:
        return self.spaces is None or space in self.spaces


_METHODS: dict[str, MethodInfo] = {}
_loaded = False


def search_method(
    name: str,
    *,
    family: Family,
    spaces: tuple[str, ...] | None = None,
    schedulable: bool = False,
    default: bool = True,
    order: int = 100,
    components: tuple[str, ...] = (),
) -> Callable[[Callable[..., SearchResult]], Callable[..., SearchResult]]:
    """Register ``fn(ctx) -> SearchResult`` as search method ``name`` (see the module docstring); ``default``:
    part of ``nasmeta search target`` when no methods are named; ``order``: its place within its family in
    tables (lower first); ``components``: the transfer components it uses."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; expected one of {', '.join(FAMILIES)}")
    if not name or "+" in name or "," in name or name != name.strip():
        raise ValueError(f"a search method name has no '+', ',' or surrounding spaces, got {name!r}")

    def register(fn: Callable[..., SearchResult]) -> Callable[..., SearchResult]:
        doc = (fn.__doc__ or "").strip().splitlines()
        description = doc[0] if doc else ""
        _METHODS[name] = MethodInfo(name, family, fn, spaces, schedulable, default, description, order, components)
        return fn

    return register


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    import nasmeta.search.methods as builtin

    for module in sorted(pkgutil.iter_modules(builtin.__path__), key=lambda m: m.name):
        importlib.import_module(f"{builtin.__name__}.{module.name}")
    for name in filter(None, (p.strip() for p in os.environ.get(PLUGINS_VAR, "").split(","))):
        try:
            importlib.import_module(name)
        except ImportError as error:
            raise ValueError(f"{PLUGINS_VAR} names module {name!r}, which cannot be imported: {error}") from None


def methods(space: str | None = None) -> dict[str, MethodInfo]:
    """Registered methods (supporting ``space`` when given) in table order: family (zero-shot, one-shot,
    transfer, black-box), then ``order``, then name."""
    _load()
    rank = {"zero-shot": 0, "one-shot": 1, "transfer": 2, "black-box": 3}
    ordered = sorted(_METHODS.values(), key=lambda m: (rank[m.family], m.order, m.name))
    return {m.name: m for m in ordered if space is None or m.supports(space)}


def default_methods(space: str) -> list[str]:
    """The methods ``search target`` runs on ``space`` when none are named: one per default method."""
    return [n for n, m in methods(space).items() if m.default]


def _did_you_mean(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclass(frozen=True)
class MethodSpec:
    """A parsed method name: ``info`` plus the scheduler of ``"method+scheduler"`` (None: the method's own)."""

    text: str
    info: MethodInfo
    scheduler: str | None


def parse_method(text: str, space: str | None = None) -> MethodSpec:
    """``"blackbox-re+hyperband"`` -> its method and scheduler; unknown names, schedulers on methods that take none,
    and methods that do not support ``space`` raise ``ValueError`` with one line naming the value."""
    from nasmeta.evaluation.methods import known_methods, method_factory

    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"a search method name must be a non-empty string, got {text!r}")
    name, _, scheduler = text.strip().partition("+")
    known = methods()
    if name not in known:
        raise ValueError(f"unknown search method {name!r}{_did_you_mean(name, list(known))}; known: {', '.join(known)}")
    info = known[name]
    if scheduler:
        if not info.schedulable:
            raise ValueError(f"search method {name!r} takes no scheduler (it does not train candidates in the loop)")
        try:
            method_factory(scheduler)
        except ValueError:
            names = known_methods()
            hint = _did_you_mean(scheduler, names)
            raise ValueError(f"unknown scheduler {scheduler!r} in {text!r}{hint}; known: {', '.join(names)}") from None
    if space is not None and not info.supports(space):
        raise ValueError(f"search method {name!r} does not support space {space!r}; it supports {list(info.spaces)}")
    return MethodSpec(text.strip(), info, scheduler or None)


def check_methods(names: list[str] | None, space: str) -> list[str]:
    """The methods to run (default: the default methods for ``space``), each validated (unknown names,
    schedulers, spaces) and none repeated; ``ValueError`` with one line naming the bad value otherwise."""
    chosen = list(names or default_methods(space))
    if not chosen:
        raise ValueError("no search method given")
    for name in chosen:
        parse_method(name, space)
    repeated = sorted({n for n in chosen if chosen.count(n) > 1})
    if repeated:
        raise ValueError(f"search methods given twice: {', '.join(repeated)}")
    return chosen


def components_needed(names: list[str]) -> list[str]:
    """Transfer components the methods use, their own and those named as schedulers (``blackbox-rs+lcranknet``)."""
    from nasmeta.transfer.registry import component_names

    known = set(component_names())
    needed: list[str] = []
    for name in names:
        spec = parse_method(name)
        for component in (*spec.info.components, *([spec.scheduler] if spec.scheduler in known else [])):
            if component not in needed:
                needed.append(component)
    return needed
