"""Which transfer components exist: component ``x`` is the ``TransferComponent`` subclass named ``"x"`` in module
``nasmeta.transfer.x`` (one file per component, as DESIGN.md lays out).  ``flows/transfer.py``, the search methods,
the LODO methods and MLflow model loading all find components here, and only here: a name that is not such a
class is refused, so no stored artefact can make nasmeta import an arbitrary class.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import pkgutil

_CACHE: dict[str, type] = {}


def _find(name: str) -> type | None:
    if name in _CACHE:
        return _CACHE[name]
    from nasmeta.transfer.base import TransferComponent

    module_name = f"nasmeta.transfer.{name}"
    if not isinstance(name, str) or not name.isidentifier() or importlib.util.find_spec(module_name) is None:
        return None
    module = importlib.import_module(module_name)
    found = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj)
        and issubclass(obj, TransferComponent)
        and not inspect.isabstract(obj)
        and getattr(obj, "name", None) == name
    ]
    if len(found) != 1:
        return None
    _CACHE[name] = found[0]
    return found[0]


def component_class(name: str) -> type:
    """The component class called ``name``; ``ValueError`` naming the known ones otherwise."""
    cls = _find(name)
    if cls is None:
        raise ValueError(f"unknown transfer component {name!r}; known: {', '.join(component_names())}")
    return cls


def component_names() -> list[str]:
    """Every component of ``nasmeta/transfer/`` (modules whose name is a component's name)."""
    import nasmeta.transfer as package

    skip = {"base", "registry"}
    modules = [m.name for m in pkgutil.iter_modules(package.__path__) if m.name not in skip]
    return sorted(name for name in modules if not name.startswith("_") and _find(name) is not None)
