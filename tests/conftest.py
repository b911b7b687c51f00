"""Shared fixtures: an isolated NASMETA_HOME, the data folder (skip when unset), one Prefect harness."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")

import torch  # noqa: E402

# Tests use tiny networks, for which intra-op threads only add synchronisation: measured 30x slower per forward
# pass with 2 threads on a busy 2-core machine.  Subprocesses the tests start keep their own setting.
torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def nasmeta_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every test session writes its store, MLflow database and artefacts under a fresh folder."""
    home = tmp_path_factory.mktemp("nasmeta_home")
    old = {k: os.environ.get(k) for k in ("NASMETA_HOME", "MLFLOW_TRACKING_URI")}
    os.environ["NASMETA_HOME"] = str(home)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    yield home
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real data folder (``NASMETA_DATA_DIR``); tests that need it skip cleanly when it is unset."""
    value = os.environ.get("NASMETA_DATA_DIR")
    if not value or not Path(value).is_dir():
        pytest.skip("NASMETA_DATA_DIR is not set (real data tests skipped)")
    return Path(value)


@pytest.fixture(scope="session")
def prefect_harness():
    """One ephemeral Prefect API for the whole session (it takes 10-20 s to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
