"""Plots: op weights per epoch and cell drawings are written as PNG files from a search trace / architecture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nasmeta.data.types import TaskData
from nasmeta.oneshot import oneshot_search
from nasmeta.oneshot.plots import cell_edges, draw_cell, plot_op_weights, plot_search_curves
from nasmeta.spaces import get_space
from nasmeta.spaces.darts import DARTS_V2

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _toy_task(n: int = 32) -> TaskData:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, 8, 8, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    return TaskData("toy", "toy", x, y, x[:8], y[:8], x[:8], y[:8], 10)


def _is_png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 5_000


def test_plots_from_a_search_trace(tmp_path: Path) -> None:
    result = oneshot_search(
        "darts", "nb201", _toy_task(), epochs=2, batch_size=8, supernet_size={"C": 4, "N": 1}, device="cpu"
    )
    assert set(result.trace[-1]["op_weights"]["cell"]) == {"1<-0", "2<-0", "2<-1", "3<-0", "3<-1", "3<-2"}
    assert _is_png(plot_op_weights(result.trace, tmp_path / "w.png"))
    assert _is_png(plot_search_curves(result.trace, tmp_path / "c.png"))
    assert _is_png(draw_cell(result.best_arch, tmp_path / "cell.png"))
    random = oneshot_search(
        "random",
        "nb201",
        _toy_task(),
        epochs=1,
        batch_size=8,
        supernet_size={"C": 4, "N": 1},
        device="cpu",
        n_candidates=3,
    )
    with pytest.raises(ValueError, match="no 'op_weights'"):
        plot_op_weights(random.trace, tmp_path / "none.png")


def test_cell_drawings_list_the_right_edges(tmp_path: Path) -> None:
    arch = get_space("nb201").parse("|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|none~1|none~2|")
    assert cell_edges(arch) == {"cell": [(0, 1, "nor_conv_3x3"), (1, 2, "skip_connect"), (0, 3, "avg_pool_3x3")]}
    edges = cell_edges(DARTS_V2)
    assert edges["normal"][:2] == [(0, 2, "sep_conv_3x3"), (1, 2, "sep_conv_3x3")]
    assert edges["reduce"][-1] == (1, 5, "max_pool_3x3") and len(edges["reduce"]) == 8
    assert _is_png(draw_cell(DARTS_V2, tmp_path / "darts.png"))
    macro = get_space("macro").sample(np.random.default_rng(0))
    with pytest.raises(ValueError, match="macro"):
        draw_cell(macro, tmp_path / "macro.png")
