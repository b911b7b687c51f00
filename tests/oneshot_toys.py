"""Toy inputs shared by the one-shot strategy tests: a random 8x8, 10-class task and a 4-image search split."""

from __future__ import annotations

import torch

from nasmeta.data.types import TaskData
from nasmeta.oneshot.loop import SearchData


def toy_task(n: int = 32) -> TaskData:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, 8, 8, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    return TaskData("toy", "toy", x, y, x[:8], y[:8], x[:8], y[:8], 10)


def toy_search_data() -> SearchData:
    x, y = torch.randn(4, 3, 8, 8), torch.randint(0, 10, (4,))
    return SearchData(x, y, x, y, 10)
