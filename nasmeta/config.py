"""Where nasmeta reads data and writes its state; every location can be overridden by environment variable.

- ``NASMETA_DATA_DIR``: folder with ``images/`` (mnist.npz, cifar10_10k.npz) and ``benchmarks/`` (NB201, Macro).
- ``NASMETA_HOME``: folder for the metadata store, the MLflow database and artefacts (default ``./.nasmeta``).
- ``NASMETA_STORE``: the store root (a path or URL) when it is not ``$NASMETA_HOME/store``.
- ``MLFLOW_TRACKING_URI``: overrides the embedded sqlite tracking store.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_VAR = "NASMETA_DATA_DIR"
HOME_VAR = "NASMETA_HOME"


class DataNotFoundError(FileNotFoundError):
    """A data file is missing; the message names the file and the variable to set."""


def data_dir(required: bool = True) -> Path | None:
    """The data folder from ``NASMETA_DATA_DIR`` (``None`` when unset and not ``required``)."""
    value = os.environ.get(DATA_DIR_VAR)
    if not value:
        if required:
            raise DataNotFoundError(
                f"{DATA_DIR_VAR} is not set; point it at the data folder (e.g. ../shared/data) that holds "
                "images/ and benchmarks/"
            )
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        raise DataNotFoundError(f"{DATA_DIR_VAR}={value!r} is not a folder")
    return path


def data_file(relative: str) -> Path:
    """A file under the data folder; a clear error names the file and the variable when it is missing."""
    path = data_dir(required=True) / relative  # type: ignore[operator]
    if not path.is_file():
        raise DataNotFoundError(
            f"data file {relative!r} not found at {path}; set {DATA_DIR_VAR} to the folder holding it"
        )
    return path


def home() -> Path:
    """The project's state folder (``NASMETA_HOME``, default ``./.nasmeta``), created on demand."""
    path = Path(os.environ.get(HOME_VAR, ".nasmeta")).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


STORE_VAR = "NASMETA_STORE"


def default_store_root() -> str:
    """``NASMETA_STORE`` (a path or URL shared by many workers, e.g. ``s3://bucket/store``) when set, else
    ``$NASMETA_HOME/store``."""
    return os.environ.get(STORE_VAR) or str(home() / "store")


def default_tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` when set, else sqlite under ``NASMETA_HOME`` (MLflow's file store is deprecated)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home() / 'mlflow.db'}"


def default_artifact_root() -> str:
    return str(home() / "mlartifacts")
