"""``nasmeta ui``: the MLflow UI on the embedded tracking store (compare searches side by side).

Starts ``mlflow server`` against ``nasmeta.config.default_tracking_uri()`` (sqlite under ``NASMETA_HOME`` unless
``MLFLOW_TRACKING_URI`` says otherwise) with artefacts under ``nasmeta.config.default_artifact_root()``, bound to
127.0.0.1.  The MLflow server has no authentication, so binding to any other address is refused unless
``--allow-remote`` is given, and then warned about.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
from pathlib import Path
from typing import Annotated

import typer

from flows.cli._app import app
from flows.cli._common import fail


def is_loopback(host: str) -> bool:
    """True when every address ``host`` names is a loopback address (127.0.0.0/8, ::1)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)


def _port_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def server_command(host: str, port: int, workers: int, tracking_uri: str, artifact_root: str) -> list[str]:
    """The ``mlflow server`` command line that ``nasmeta ui`` runs."""
    return [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        tracking_uri,
        # runs logged through this server (http tracking URI) keep their artefacts beside the embedded ones;
        # experiments created by nasmeta.tracking carry their own file:// location, which the server reads
        "--artifacts-destination",
        artifact_root,
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]


@app.command("ui")
def ui(
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 5000,
    host: Annotated[str, typer.Option(help="Address to bind; loopback only unless --allow-remote.")] = "127.0.0.1",
    allow_remote: Annotated[
        bool,
        typer.Option("--allow-remote", help="Allow a non-loopback --host (the MLflow server has no authentication)."),
    ] = False,
    workers: Annotated[int, typer.Option(min=1, help="Server worker processes.")] = 1,
) -> None:
    """Start the MLflow UI on the embedded tracking store and print its URL (Ctrl-C stops it).

    Example: nasmeta ui --port 5000
    """
    from nasmeta import config

    tracking_uri = config.default_tracking_uri()
    if tracking_uri.startswith(("http://", "https://")):
        typer.echo(f"MLFLOW_TRACKING_URI points at a tracking server; its UI is at {tracking_uri}")
        return
    if tracking_uri.startswith("file:") or "://" not in tracking_uri:
        fail(f"tracking URI {tracking_uri!r} is MLflow's deprecated file store; use sqlite:///path/mlflow.db")
    if not is_loopback(host):
        if not allow_remote:
            fail(
                f"--host {host!r} is not a loopback address: the MLflow server has no authentication, so anyone "
                "who can reach it could read and delete runs. Use an SSH tunnel "
                f"(ssh -L {port}:127.0.0.1:{port} HOST), or pass --allow-remote to bind it anyway."
            )
        typer.secho(
            f"WARNING: binding the MLflow server to {host}:{port} without authentication; every host that can "
            "reach this address can read, change and delete the tracked runs.",
            fg=typer.colors.RED,
            bold=True,
            err=True,
        )
    if not _port_free(host, port):
        fail(f"port {port} on {host} is in use; choose another with --port")
    artifact_root = config.default_artifact_root()
    Path(artifact_root).mkdir(parents=True, exist_ok=True)
    command = server_command(host, port, workers, tracking_uri, artifact_root)
    shown = f"[{host}]" if ":" in host else host
    typer.echo(f"MLflow UI on {tracking_uri}\n  http://{shown}:{port}\n(Ctrl-C to stop)")
    sys.stdout.flush()
    env = dict(os.environ)
    # MLflow's job runner serves its GenAI evaluation jobs, which nasmeta does not use; it would add processes
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    # replace this process, so Ctrl-C and a terminating signal reach the server directly
    os.execve(command[0], command, env)
