"""Leases: a collector claims a run before training it, so a second collector working on the same store skips it.

A lease is a small JSON file ``<root>/_leases/<key>.json`` (owner, host, pid, process start, expiry).  Claiming
takes an exclusive ``fcntl`` lock on ``<root>/_leases/.lock`` for the check-and-write, so two processes on one
machine (or on machines sharing a filesystem with working ``flock``, e.g. NFSv4) cannot both win.  A held lease is
renewed by a daemon thread every third of its time to live, so a long training run keeps it; a lease is free again
when it expires (its holder stopped renewing: it died or hung) or, at once, when its holder was a process on this
machine that no longer exists (killed with SIGKILL).  Stores on object storage (``s3://``) have no lock: claiming
there is best-effort (read, then write), and two collectors can both claim in a narrow race; de-duplicating reads
keep the results correct either way, only the compute is spent twice.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from metadata_store.store import MetadataStore

LEASES = "_leases"
DEFAULT_TTL = 600.0


def _process_start(pid: int) -> str | None:
    """Start time of ``pid`` in clock ticks since boot (Linux); with the pid it identifies a process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return start is None or _process_start(pid) in (None, start)


def _safe_key(key: str) -> str:
    if not key or not all(c.isalnum() or c in "-_." for c in key) or key.startswith("."):
        raise ValueError(f"lease key {key!r} must be a non-empty id of letters, digits, '-', '_', '.'")
    return key


class Lease:
    """A claimed key; renewed in the background until :meth:`release` (or the end of a ``with`` block)."""

    def __init__(self, store: MetadataStore, key: str, owner: str, ttl: float) -> None:
        self.store, self.key, self.owner, self.ttl = store, key, owner, ttl
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew_loop, name=f"lease-{key}", daemon=True)
        self._thread.start()

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.ttl / 3.0):
            with contextlib.suppress(OSError):
                _write(self.store, self.key, _record(self.owner, self.ttl))

    def release(self) -> None:
        """Stop renewing and remove the lease file if it is still this owner's."""
        self._stop.set()
        self._thread.join(timeout=5.0)
        with _locked(self.store):
            current = _read(self.store, self.key)
            if current is not None and current.get("owner") == self.owner:
                with contextlib.suppress(FileNotFoundError):
                    self.store.fs.delete_file(_path(self.store, self.key))

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _path(store: MetadataStore, key: str) -> str:
    return f"{store.root}/{LEASES}/{_safe_key(key)}.json"


def _record(owner: str, ttl: float) -> dict[str, Any]:
    pid = os.getpid()
    return {
        "owner": owner,
        "host": socket.gethostname(),
        "pid": pid,
        "pid_start": _process_start(pid),
        "expires_at": time.time() + ttl,
    }


def _read(store: MetadataStore, key: str) -> dict[str, Any] | None:
    try:
        with store.fs.open_input_stream(_path(store, key)) as handle:
            return json.loads(handle.read().decode())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # torn or unreadable: treated as expired


def _write(store: MetadataStore, key: str, record: dict[str, Any]) -> None:
    store.fs.create_dir(f"{store.root}/{LEASES}", recursive=True)
    final = _path(store, key)
    tmp = f"{final}.{uuid.uuid4().hex}.tmp"
    with store.fs.open_output_stream(tmp) as handle:
        handle.write(json.dumps(record).encode())
    store.fs.move(tmp, final)


@contextlib.contextmanager
def _locked(store: MetadataStore) -> Iterator[None]:
    if not store._local:
        yield
        return
    import fcntl

    folder = Path(store.root, LEASES)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def holder(store: MetadataStore, key: str) -> dict[str, Any] | None:
    """The live lease on ``key`` (its record), or ``None`` when nobody holds it."""
    record = _read(store, key)
    if not record:
        return None
    if float(record.get("expires_at", 0.0)) < time.time():
        return None
    if record.get("host") == socket.gethostname() and not _alive(int(record.get("pid", -1)), record.get("pid_start")):
        return None
    return record


def claim(store: MetadataStore, key: str, ttl: float = DEFAULT_TTL, owner: str | None = None) -> Lease | None:
    """Claim ``key`` (a run id) for ``ttl`` seconds, renewed until released; ``None`` when another live owner
    holds it."""
    if not ttl > 0:
        raise ValueError(f"lease ttl must be positive seconds, got {ttl!r}")
    owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    with _locked(store):
        current = holder(store, key)
        if current is not None and current.get("owner") != owner:
            return None
        _write(store, key, _record(owner, ttl))
    return Lease(store, key, owner, ttl)
