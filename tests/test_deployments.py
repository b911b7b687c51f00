"""Deployments: a real ``prefect server`` on 127.0.0.1, every deployment of deployments/prefect.yaml registered with
``prefect deploy``, and a micro-budget pipeline run executed by a process worker started with ``--run-once``.

The server, the CLI calls and the worker are subprocesses with their own PREFECT_HOME and NASMETA_HOME under a
temporary folder; the server's scheduler service is off so that no scheduled run of the nightly / weekly
deployments can reach the worker (the schedules themselves are checked through the API).  Every process group
started here is terminated in the fixture teardown.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
PREFECT_FILE = ROOT / "deployments" / "prefect.yaml"
PREFECT = str(Path(sys.executable).parent / "prefect")
PULL_STEP = "prefect.deployments.steps.set_working_directory"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _stop(proc: subprocess.Popen, grace: float = 20.0) -> None:
    """Terminate ``proc``'s whole process group (it was started in a new session), then kill what is left."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            # the leader is gone; a straggler in its group (a flow-run subprocess) still gets the signal
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue
        return


def _run(cmd: list[str], env: dict[str, str], cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    """Run a CLI command in its own process group; on timeout the whole group is killed."""
    proc = subprocess.Popen(
        cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _stop(proc)
        out, _ = proc.communicate()
        pytest.fail(f"{' '.join(cmd)} did not finish in {timeout} s:\n{out[-6000:]}")
    finally:
        _stop(proc, grace=5.0)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, "")


class Server:
    """A running ``prefect server``: its URL, the environment that points CLI calls at it, its temp folder."""

    def __init__(self, port: int, env: dict[str, str], root: Path) -> None:
        self.url = f"http://127.0.0.1:{port}/api"
        self.env = env
        self.root = root

    def api(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")

    def prefect(self, *args: str, cwd: Path | None = None, timeout: float = 240.0) -> subprocess.CompletedProcess:
        result = _run([PREFECT, *args], self.env, cwd or ROOT, timeout)
        assert result.returncode == 0, f"prefect {' '.join(args)} failed ({result.returncode}):\n{result.stdout}"
        return result


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Server:
    root = tmp_path_factory.mktemp("prefect_server")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    env.update(
        PREFECT_HOME=str(root / "prefect_home"),
        PREFECT_API_URL=f"http://127.0.0.1:{port}/api",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_UI_ENABLED="false",
        # no scheduled runs: only the run this test creates may reach the worker
        PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED="false",
        PREFECT_LOGGING_LEVEL="INFO",
        NASMETA_HOME=str(root / "nasmeta_home"),
    )
    log = (root / "server.log").open("w")
    proc = subprocess.Popen(
        [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=root,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                pytest.fail(f"prefect server exited ({proc.returncode}):\n{(root / 'server.log').read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"prefect server not healthy after 300 s:\n{(root / 'server.log').read_text()[-4000:]}")
            time.sleep(0.5)
        yield Server(port, env, root)
    finally:
        _stop(proc)
        log.close()


@pytest.fixture(scope="module")
def deployed(server: Server) -> dict[str, dict[str, Any]]:
    """Create the two process work pools and register every deployment of prefect.yaml, exactly as the README
    says (from the project root); returns the registered deployments by ``flow/deployment`` name."""
    pools = [
        subprocess.Popen(
            [PREFECT, "work-pool", "create", name, "--type", "process"],
            env=server.env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        for name in ("cpu", "gpu")
    ]
    for proc in pools:
        try:
            out, _ = proc.communicate(timeout=240)
        finally:
            _stop(proc, grace=5.0)
        assert proc.returncode == 0, out
    server.prefect("--no-prompt", "deploy", "--all", "--prefect-file", os.path.relpath(PREFECT_FILE, ROOT))
    flows = {f["id"]: f["name"] for f in server.api("POST", "/flows/filter", {})}
    return {f"{flows[d['flow_id']]}/{d['name']}": d for d in server.api("POST", "/deployments/filter", {})}


def _flow_names() -> dict[str, str]:
    from flows.collect import collect_metadata
    from flows.lodo import lodo_evaluation
    from flows.pipeline import pipeline
    from flows.search import search_target

    return {
        "collect": collect_metadata.name,
        "lodo": lodo_evaluation.name,
        "search": search_target.name,
        "pipeline": pipeline.name,
    }


def test_prefect_yaml_deployments_register_with_their_pools_and_schedules(deployed: dict[str, dict]) -> None:
    names = _flow_names()
    expected = {
        f"{names['collect']}/nightly": ("gpu", [("0 2 * * *", "UTC")]),
        f"{names['lodo']}/weekly": ("cpu", [("0 6 * * 0", "UTC")]),
        f"{names['search']}/on-demand": ("gpu", []),
        f"{names['pipeline']}/cpu": ("cpu", []),
        f"{names['pipeline']}/gpu": ("gpu", []),
    }
    assert sorted(deployed) == sorted(expected)
    for full_name, (pool, schedules) in expected.items():
        deployment = deployed[full_name]
        assert deployment["work_pool_name"] == pool, full_name
        got = [(s["schedule"]["cron"], s["schedule"]["timezone"]) for s in deployment["schedules"]]
        assert got == schedules, full_name
        assert all(s["active"] for s in deployment["schedules"]), full_name
        # every run starts in the directory `prefect deploy` ran in: the project root
        assert deployment["pull_steps"] == [{PULL_STEP: {"directory": str(ROOT)}}], full_name
    # scheduled jobs never overlap themselves
    assert deployed[f"{names['collect']}/nightly"]["global_concurrency_limit"]["limit"] == 1
    assert deployed[f"{names['lodo']}/weekly"]["global_concurrency_limit"]["limit"] == 1
    assert deployed[f"{names['pipeline']}/gpu"]["parameters"] == {"budget": "paper"}
    assert deployed[f"{names['pipeline']}/cpu"]["parameters"] == {}
    nightly = deployed[f"{names['collect']}/nightly"]
    assert nightly["parameters"]["space"] == "nb201" and len(nightly["parameters"]["tasks"]) >= 2
    # a deployment run would otherwise train every planned run at once (Prefect's thread pool is unbounded)
    assert nightly["job_variables"]["env"]["PREFECT_TASKS_RUNNER_THREAD_POOL_MAX_WORKERS"] == "1"


def test_serve_builds_the_same_deployments_as_prefect_deploy(deployed: dict[str, dict]) -> None:
    from flows.serve import build_deployments

    served = {f"{d.flow_name}/{d.name}": d for d in build_deployments()}
    assert sorted(served) == sorted(deployed)
    for full_name, runner in served.items():
        registered = deployed[full_name]
        assert runner.work_pool_name is None  # served runs execute in the serving process
        assert runner.parameters == registered["parameters"], full_name
        assert sorted(runner.tags) == sorted(registered["tags"]), full_name
        assert runner.description == registered["description"], full_name
        limit = registered["global_concurrency_limit"]
        assert runner.concurrency_limit == (limit["limit"] if limit else None), full_name
        mine = [(s.schedule.cron, s.schedule.timezone, s.active) for s in runner.schedules]
        theirs = [(s["schedule"]["cron"], s["schedule"]["timezone"], s["active"]) for s in registered["schedules"]]
        assert mine == theirs, full_name


def test_process_worker_runs_a_micro_pipeline_to_completion(server: Server, deployed: dict[str, dict]) -> None:
    from metadata_store import MetadataStore

    pipeline_name = _flow_names()["pipeline"]
    assert f"{pipeline_name}/cpu" in deployed
    store = server.root / "store"
    created = server.prefect(
        "deployment",
        "run",
        f"{pipeline_name}/cpu",
        "--param",
        "budget=micro",
        "--param",
        f"store={store}",
    )
    match = re.search(r"UUID:\s*([0-9a-f-]{36})", created.stdout)
    assert match, created.stdout
    flow_run_id = match.group(1)

    # the worker starts outside the project: the deployment's pull step must bring the run to the project root
    elsewhere = server.root / "worker_cwd"
    elsewhere.mkdir()
    worker = _run(
        [PREFECT, "worker", "start", "--pool", "cpu", "--run-once", "--limit", "1"], server.env, elsewhere, 900
    )
    run = server.api("GET", f"/flow_runs/{flow_run_id}")
    assert run["state_type"] == "COMPLETED", (
        f"flow run ended {run['state_type']}: {run['state'].get('message')}\nworker output:\n{worker.stdout[-8000:]}"
    )
    assert run["work_pool_name"] == "cpu"
    # the run wrote where its parameters and the worker's environment said
    written = MetadataStore(str(store))
    assert written.read("runs").num_rows > 0
    assert written.read("searches").num_rows > 0
    assert written.read("proxy_scores").num_rows > 0  # the zero-shot method's scores, one row per (arch, proxy)
    assert (Path(server.env["NASMETA_HOME"]) / "mlflow.db").is_file()


def test_prefect_yaml_parameters_are_flow_parameters() -> None:
    """Cheap guard without a server: every parameter a deployment sets is an argument of its flow."""
    import inspect

    from flows.serve import load_specs

    document = yaml.safe_load(PREFECT_FILE.read_text())
    specs = load_specs(PREFECT_FILE)
    assert [s.name for s in specs] == [d["name"] for d in document["deployments"]]
    for spec in specs:
        flow = spec.load_flow()
        accepted = set(inspect.signature(flow.fn).parameters)
        assert set(spec.parameters) <= accepted, (spec.entrypoint, set(spec.parameters) - accepted)
        assert spec.work_pool in {"cpu", "gpu"}


def test_schedule_conversion_rejects_ambiguous_and_unknown_entries() -> None:
    from flows.serve import to_schedule

    cron = to_schedule({"cron": "0 2 * * *", "timezone": "UTC"})
    assert (cron.cron, cron.timezone, cron.active) == ("0 2 * * *", "UTC", True)
    hourly = to_schedule({"interval": 3600, "active": False})
    assert hourly.interval.total_seconds() == 3600 and hourly.active is False
    with pytest.raises(ValueError, match="exactly one of"):
        to_schedule({"cron": "0 2 * * *", "interval": 60})
    with pytest.raises(ValueError, match="unsupported key"):
        to_schedule({"cron": "0 2 * * *", "every": "night"})


def test_load_specs_rejects_a_missing_file_and_unknown_keys(tmp_path: Path) -> None:
    from flows.serve import load_specs

    with pytest.raises(ValueError, match="does not exist"):
        load_specs(tmp_path / "nope.yaml")
    bad = tmp_path / "prefect.yaml"
    bad.write_text(
        yaml.safe_dump({"deployments": [{"name": "x", "entrypoint": "flows/lodo.py:lodo_evaluation", "cronn": 1}]})
    )
    with pytest.raises(ValueError, match="cronn"):
        load_specs(bad)


def test_serve_cli_lists_and_rejects_unknown_deployments() -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    runner = CliRunner()
    listed = runner.invoke(app, ["serve", "--list"])
    assert listed.exit_code == 0, listed.output
    assert "0 2 * * *" in listed.output and "0 6 * * 0" in listed.output and "on demand" in listed.output
    wrong = runner.invoke(app, ["serve", "--only", "no-such-flow/never"])
    assert wrong.exit_code == 2
    assert "no-such-flow/never" in wrong.output


GPU_TEMPLATES = [("docker-gpu-job-template.json", "docker"), ("k8s-gpu-job-template.json", "kubernetes")]


def _gpu_request(kind: str, rendered: dict[str, Any]) -> Any:
    if kind == "docker":
        (request,) = rendered["container_create_kwargs"]["device_requests"]
        assert request["driver"] == "nvidia" and request["capabilities"] == [["gpu"]]
        return request["count"]
    (container,) = rendered["job_manifest"]["spec"]["template"]["spec"]["containers"]
    return container["resources"]["limits"]["nvidia.com/gpu"]


@pytest.mark.parametrize(("name", "kind"), GPU_TEMPLATES)
def test_gpu_job_templates_render_the_gpu_request(name: str, kind: str) -> None:
    from prefect.utilities.templating import apply_values, find_placeholders

    template = json.loads((ROOT / "deployments" / name).read_text())
    variables = template["variables"]["properties"]
    # every placeholder of the job configuration is a declared variable (what a worker can fill in)
    used = {p.name for p in find_placeholders(template["job_configuration"])}
    assert used <= set(variables), used - set(variables)
    defaults = {k: v["default"] for k, v in variables.items() if "default" in v}
    assert _gpu_request(kind, apply_values(template["job_configuration"], defaults)) == defaults["gpu_count"]
    assert _gpu_request(kind, apply_values(template["job_configuration"], {**defaults, "gpu_count": 2})) == 2


@pytest.mark.parametrize(("name", "kind"), GPU_TEMPLATES)
def test_gpu_job_templates_are_accepted_by_the_server(server: Server, name: str, kind: str) -> None:
    template = json.loads((ROOT / "deployments" / name).read_text())
    pool = server.api("POST", "/work_pools/", {"name": f"check-{kind}", "type": kind, "base_job_template": template})
    assert pool["base_job_template"] == template
    server.api("DELETE", f"/work_pools/check-{kind}")
