"""Deterministic keys: the same work always gets the same id, in any process, so a rerun can find and skip it."""

from __future__ import annotations

import hashlib
import json
import numbers
from collections.abc import Mapping
from typing import Any


def _digest(payload: Any, length: int) -> str:
    # sorted keys and fixed separators: the text (and so the hash) does not depend on dict order or Python's
    # salted hash()
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def config_hash(config: Mapping[str, Any]) -> str:
    """A 16-hex-digit hash of a training configuration (any JSON-serialisable mapping)."""
    if not isinstance(config, Mapping):
        raise ValueError(f"config must be a mapping, got {type(config).__name__}")
    return _digest(dict(config), 16)


def run_id(task_id: str, arch_id: str, seed: int, config_hash: str) -> str:
    """The key of one training run: a 20-hex-digit hash of (task_id, arch_id, seed, config_hash)."""
    for name, value in (("task_id", task_id), ("arch_id", arch_id), ("config_hash", config_hash)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ValueError(f"seed must be an int, got {seed!r}")
    return _digest(["run", task_id, arch_id, int(seed), config_hash], 20)
