"""The one way nasmeta scopes torch's intra-op thread count: :func:`torch_threads`.

``torch.set_num_threads`` changes a process-wide setting.  A flow that trains in several threads at once must not
have each run flip it back and forth (a run finishing would reset the count under a run still going), so the
scopes are reference-counted: the first scope to enter sets the count, later ones (nested or from other threads)
run under it, and the last to leave restores the original.  A later scope asking for a different count while one
is active keeps the active count: thread counts change speed, never results, and one setting per process is all
torch offers.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import torch

_lock = threading.Lock()
_depth = 0
_saved: int | None = None


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch threads (None: leave the setting alone); see the module docstring."""
    global _depth, _saved
    if n is None:
        yield
        return
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"the number of torch threads must be a positive integer, got {n!r}")
    with _lock:
        if _depth == 0:
            _saved = torch.get_num_threads()
            torch.set_num_threads(n)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved is not None:
                torch.set_num_threads(_saved)
                _saved = None
