"""Issue 19, fault 6: overlapping collectors.  A run is claimed (a lease with expiry in the store) before it is
trained, so a second collector skips it while the first is alive; expired leases and those of dead processes are
taken over."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from metadata_store import MetadataStore

ROOT = Path(__file__).resolve().parents[1]


def test_a_held_lease_blocks_others_until_released(tmp_path: Path) -> None:
    store = MetadataStore(tmp_path / "store")
    first = store.claim("run-1", ttl=30.0, owner="collector-a")
    assert first is not None
    assert store.claim("run-1", ttl=30.0, owner="collector-b") is None
    assert store.claim("run-2", ttl=30.0, owner="collector-b") is not None  # other runs are free
    first.release()
    second = store.claim("run-1", ttl=30.0, owner="collector-b")
    assert second is not None
    second.release()
    assert store.files("runs") == []  # leases live outside the tables


def test_a_lease_is_renewed_while_held(tmp_path: Path) -> None:
    store = MetadataStore(tmp_path / "store")
    with store.claim("run-1", ttl=0.6, owner="slow-trainer"):
        time.sleep(1.5)  # more than twice the time to live
        assert store.claim("run-1", ttl=0.6, owner="other") is None


def test_expired_and_dead_holders_are_taken_over(tmp_path: Path) -> None:
    store = MetadataStore(tmp_path / "store")
    folder = tmp_path / "store" / "_leases"
    folder.mkdir(parents=True)
    far = {"owner": "x", "host": "another-machine", "pid": 1, "pid_start": None}
    (folder / "live.json").write_text(json.dumps({**far, "expires_at": time.time() + 3600}))
    (folder / "expired.json").write_text(json.dumps({**far, "expires_at": time.time() - 1}))
    assert store.claim("live", owner="me") is None
    taken = store.claim("expired", owner="me")
    assert taken is not None
    taken.release()

    # a collector on this machine killed with SIGKILL: its lease is free at once, not after the hour
    code = f"""
from metadata_store import MetadataStore
lease = MetadataStore({str(tmp_path / "store")!r}).claim("held", ttl=3600.0, owner="killed")
print("claimed", flush=True)
import time; time.sleep(120)
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "claimed"
        assert store.claim("held", owner="me") is None
        record = json.loads((folder / "held.json").read_text())
        assert record["host"] == socket.gethostname() and record["pid"] == proc.pid
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    lease = store.claim("held", owner="me")
    assert lease is not None
    lease.release()


def test_collect_skips_a_run_another_collector_holds(tmp_path: Path) -> None:
    from flows.collect import train_run
    from flows.common import resolve_task_spec
    from metadata_store import run_id
    from nasmeta.spaces import get_space
    from nasmeta.training import TrainConfig

    store_root = str(tmp_path / "store")
    store = MetadataStore(store_root)
    arch = get_space("nb201").parse("|nor_conv_3x3~0|+|skip_connect~0|none~1|+|skip_connect~0|none~1|avg_pool_3x3~2|")
    config = TrainConfig(epochs=1, batch_size=32, num_threads=1)
    task_id = resolve_task_spec("digits", 10).task_id
    args = ("digits", 10, arch.to_json(), 0, config.model_dump(mode="json"), {"C": 4, "N": 1}, store_root)
    rid = run_id(task_id, arch.arch_id, 0, config.config_hash())

    held = store.claim(rid, ttl=600.0, owner="the-other-collector")
    try:
        outcome = train_run.fn(*args)
    finally:
        held.release()
    assert outcome["run_id"] == rid and outcome["status"] == "skipped"
    assert store.read("runs").num_rows == 0  # nothing trained

    outcome = train_run.fn(*args)  # free again: trained and stored
    assert outcome["status"] == "completed" and store.has_completed(rid)
    assert not list((tmp_path / "store" / "_leases").glob("*.json"))  # released after training
    assert train_run.fn(*args)["status"] == "skipped"  # completed meanwhile: not trained twice
