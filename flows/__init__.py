"""Prefect flows and the ``nasmeta`` command.

Defaults for Prefect's embedded mode are set here, before Prefect is imported: its ephemeral API server can take
well over its default 20 s to start on a busy 2-core machine, and analytics would try to reach the network.
Values already in the environment win.
"""

import os

os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
