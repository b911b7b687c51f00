"""The ``nasmeta`` command.  Every module in this package registers its commands on import, so adding a
command group is one new file; heavy imports (torch, prefect, mlflow) happen inside the commands."""

from __future__ import annotations

import importlib
import pkgutil

from flows.cli._app import app

for _module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["app"]


def main() -> None:
    app()
