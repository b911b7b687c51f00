"""Serve the deployments of ``deployments/prefect.yaml`` from one process, without work pools or workers.

``prefect deploy`` + workers is the way to spread runs over machines (deployments/README.md).  On a single
machine ``serve_all()`` does the same job in one process: it reads the same ``prefect.yaml`` (one source of
truth for names, schedules, parameters, tags and concurrency limits), turns each entry into a
``flow.to_deployment(...)`` and hands them all to ``prefect.serve``, which registers them with the Prefect API,
creates their scheduled runs and executes every run in a subprocess of this process.

Work pools, build/push/pull steps and job variables in the file apply to workers only and are ignored here:
served runs start in the current directory, like every ``nasmeta`` command.
"""

from __future__ import annotations

import datetime
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PREFECT_FILE = PROJECT_ROOT / "deployments" / "prefect.yaml"

# keys of a prefect.yaml deployment entry that only concern workers (where and how a run starts)
_WORKER_ONLY = {"work_pool", "build", "push", "pull", "version", "version_type", "job_variables"}
_KNOWN = {"name", "entrypoint", "description", "tags", "parameters", "schedules", "concurrency_limit", "paused"}
_SCHEDULE_KEYS = {"cron", "interval", "rrule", "timezone", "anchor_date", "day_or", "active", "parameters", "slug"}


@dataclass(frozen=True)
class DeploymentSpec:
    """One ``deployments:`` entry of ``prefect.yaml``, reduced to what a served deployment uses."""

    name: str
    entrypoint: str
    description: str | None = None
    tags: list[str] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    schedules: list[dict[str, Any]] = field(default_factory=list)
    concurrency_limit: int | None = None
    paused: bool | None = None
    work_pool: str | None = None

    def load_flow(self) -> Any:
        """The flow object named by ``entrypoint`` (``flows/collect.py:collect_metadata``), imported as a module
        of the installed project so that served runs and worker runs execute the same code."""
        path, sep, attr = self.entrypoint.partition(":")
        if not sep or not path.endswith(".py") or not attr:
            raise ValueError(f"entrypoint {self.entrypoint!r} is not of the form path/to/file.py:flow_function")
        module = importlib.import_module(path[: -len(".py")].replace("/", "."))
        flow = getattr(module, attr, None)
        if flow is None:
            raise ValueError(f"entrypoint {self.entrypoint!r}: module {module.__name__} has no {attr!r}")
        return flow


def load_specs(prefect_file: str | Path = PREFECT_FILE) -> list[DeploymentSpec]:
    """The deployment entries of ``prefect_file``; an entry with an unknown key raises ``ValueError`` naming it."""
    import yaml

    path = Path(prefect_file)
    if not path.is_file():
        raise ValueError(f"prefect file {str(path)!r} does not exist")
    document = yaml.safe_load(path.read_text()) or {}
    entries = document.get("deployments") or []
    if not entries:
        raise ValueError(f"prefect file {str(path)!r} defines no deployments")
    specs = []
    for entry in entries:
        unknown = set(entry) - _KNOWN - _WORKER_ONLY
        if unknown:
            raise ValueError(f"deployment {entry.get('name')!r} in {path}: unsupported key(s) {sorted(unknown)}")
        if not entry.get("name") or not entry.get("entrypoint"):
            raise ValueError(f"every deployment in {path} needs a name and an entrypoint, got {entry}")
        specs.append(
            DeploymentSpec(
                name=entry["name"],
                entrypoint=entry["entrypoint"],
                description=entry.get("description"),
                tags=list(entry.get("tags") or []),
                parameters=dict(entry.get("parameters") or {}),
                schedules=list(entry.get("schedules") or []),
                concurrency_limit=entry.get("concurrency_limit"),
                paused=entry.get("paused"),
                work_pool=(entry.get("work_pool") or {}).get("name"),
            )
        )
    return specs


def to_schedule(config: dict[str, Any]) -> Any:
    """A ``prefect.schedules.Schedule`` from a ``schedules:`` item of ``prefect.yaml`` (cron, interval in
    seconds, or rrule, plus timezone / active / parameters / slug as Prefect reads them)."""
    from prefect.schedules import Schedule

    unknown = set(config) - _SCHEDULE_KEYS
    if unknown:
        raise ValueError(f"schedule {config}: unsupported key(s) {sorted(unknown)}")
    kinds = [k for k in ("cron", "interval", "rrule") if config.get(k) is not None]
    if len(kinds) != 1:
        raise ValueError(f"schedule {config} must have exactly one of cron, interval, rrule")
    options: dict[str, Any] = {
        "timezone": config.get("timezone"),
        "active": config.get("active", True),
        "parameters": config.get("parameters") or {},
        "slug": config.get("slug"),
    }
    if config.get("day_or") is not None:
        options["day_or"] = config["day_or"]
    if config.get("anchor_date") is not None:
        options["anchor_date"] = datetime.datetime.fromisoformat(str(config["anchor_date"]))
    kind = kinds[0]
    value = config[kind]
    if kind == "interval":
        value = datetime.timedelta(seconds=float(value))
    return Schedule(**{kind: value}, **options)


def build_deployments(prefect_file: str | Path = PREFECT_FILE, only: list[str] | None = None) -> list[Any]:
    """``RunnerDeployment`` objects for the entries of ``prefect_file`` (all, or the ``flow/deployment`` names
    in ``only``; an unknown name raises ``ValueError`` listing the known ones)."""
    chosen = []
    for spec in load_specs(prefect_file):
        flow = spec.load_flow()
        chosen.append((f"{flow.name}/{spec.name}", spec, flow))
    if only:
        known = [full for full, _, _ in chosen]
        missing = sorted(set(only) - set(known))
        if missing:
            raise ValueError(f"unknown deployment(s) {missing}; {prefect_file} defines {known}")
        chosen = [item for item in chosen if item[0] in only]
    return [
        flow.to_deployment(
            name=spec.name,
            schedules=[to_schedule(s) for s in spec.schedules],
            parameters=spec.parameters,
            description=spec.description,
            tags=spec.tags,
            concurrency_limit=spec.concurrency_limit,
            paused=spec.paused,
        )
        for _, spec, flow in chosen
    ]


def serve_all(prefect_file: str | Path = PREFECT_FILE, only: list[str] | None = None, limit: int | None = None) -> None:
    """Register the deployments of ``prefect_file`` and run them on their schedules (and on demand) from this
    process until it is interrupted; ``limit`` caps the number of flow runs executing at once."""
    from prefect import serve

    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    serve(*build_deployments(prefect_file, only), limit=limit)
