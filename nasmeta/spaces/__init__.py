"""Search spaces: ``get_space(name)`` for ``nb201``, ``darts``, ``darts-s1``..``darts-s4``, ``macro``, ``ofa``
and ``ofa-small``.

Spaces register themselves with :func:`register_space`; adding a space is one new module plus one entry
in ``_SPACE_MODULES`` (imported lazily so ``import nasmeta.spaces`` stays free of torch).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from nasmeta.spaces.base import Architecture, SearchSpace, stable_hash

__all__ = ["Architecture", "SearchSpace", "get_space", "list_spaces", "register_space", "stable_hash"]

_REGISTRY: dict[str, Callable[[], SearchSpace]] = {}
_INSTANCES: dict[str, SearchSpace] = {}
# space name -> module that registers it
_SPACE_MODULES = {
    "nb201": "nasmeta.spaces.nb201",
    "darts": "nasmeta.spaces.darts",
    "darts-s1": "nasmeta.spaces.darts",
    "darts-s2": "nasmeta.spaces.darts",
    "darts-s3": "nasmeta.spaces.darts",
    "darts-s4": "nasmeta.spaces.darts",
    "macro": "nasmeta.spaces.macro",
    "ofa": "nasmeta.spaces.ofa",
    "ofa-small": "nasmeta.spaces.ofa",
}


def register_space(name: str) -> Callable:
    """Class/factory decorator: ``@register_space("nb201")``."""

    def deco(factory: Callable[[], SearchSpace]) -> Callable[[], SearchSpace]:
        _REGISTRY[name] = factory
        return factory

    return deco


def list_spaces() -> list[str]:
    return sorted(_SPACE_MODULES)


def get_space(name: str) -> SearchSpace:
    """The (cached) space called ``name``; unknown names raise ``ValueError`` listing the known ones."""
    if name in _INSTANCES:
        return _INSTANCES[name]
    if name not in _REGISTRY:
        module = _SPACE_MODULES.get(name)
        if module is None:
            raise ValueError(f"unknown search space {name!r}; known spaces: {', '.join(list_spaces())}")
        importlib.import_module(module)
    if name not in _REGISTRY:
        raise ValueError(f"module {_SPACE_MODULES[name]} did not register space {name!r}")
    _INSTANCES[name] = _REGISTRY[name]()
    return _INSTANCES[name]
