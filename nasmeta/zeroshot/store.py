"""Persisting zero-shot scores to the metadata store (``proxy_scores`` and ``architectures`` tables).

Library code returns rows (``SearchResult.extra["rows"]``, :func:`nasmeta.zeroshot.search.score_architectures`);
a flow writes them here.  Values are the signed scores (higher is better, see the proxy registry), so every
consumer of the table ranks them the same way.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from metadata_store import MetadataStore
from nasmeta.data.store_import import architecture_row
from nasmeta.zeroshot.search import ScoredArch

_SCORE_COLUMNS = ("arch_id", "proxy", "seed", "value", "seconds")


def write_scores(store: MetadataStore, task_id: str, rows: Iterable[Mapping[str, Any]]) -> int:
    """Append proxy-score rows (``arch_id, proxy, value, seconds`` and optional ``seed``, default 0) for
    ``task_id``; other keys (``arch``) are dropped.  Non-finite values (not applicable) are stored as null.
    Returns the number of rows written."""
    if not task_id:
        raise ValueError(f"task_id must be a non-empty string, got {task_id!r}")
    out = []
    for row in rows:
        missing = [c for c in ("arch_id", "proxy", "value") if c not in row]
        if missing:
            raise ValueError(f"proxy-score row {dict(row)!r} lacks {missing}")
        record = {c: row[c] for c in _SCORE_COLUMNS if c in row}
        record.setdefault("seed", 0)
        value = float(record["value"])
        record["value"] = value if math.isfinite(value) else None
        record["task_id"] = task_id
        out.append(record)
    return store.append("proxy_scores", out)


def write_architectures(store: MetadataStore, scored: Iterable[ScoredArch]) -> int:
    """Append the scored architectures (id, space, encoding, string, params, FLOPs) to ``architectures``.

    ``n_params`` / ``flops`` are those of the network as built for the search (its classes and input shape);
    ``flops`` is null unless the search counted it (a FLOPs constraint).
    """
    rows = [architecture_row(s.arch, n_params=int(s.params), flops=s.flops) for s in scored]
    return store.append("architectures", rows)


def store_scored(store: MetadataStore, task_id: str, scored: Iterable[ScoredArch], seed: int = 0) -> int:
    """Both tables for one scoring run: the architectures, then every (architecture, proxy) score with ``seed``.
    Returns the number of score rows written."""
    scored = list(scored)
    write_architectures(store, scored)
    rows = [
        {"arch_id": s.arch_id, "proxy": p, "seed": seed, "value": v, "seconds": s.seconds[p]}
        for s in scored
        for p, v in s.scores.items()
    ]
    return write_scores(store, task_id, rows)
