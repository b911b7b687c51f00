"""The portfolio baseline (greedy over percentile ranks), the pool search space and stored-arch evaluator, the
equal-evaluation LODO over stored cells, and the 95 % intervals and wins of its report."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from metadata_store import MetaDataset
from nasmeta.evaluation.synthetic import synthetic_tables


def _meta(n_tasks: int = 4, n_runs: int = 30, epochs: int = 6) -> MetaDataset:
    tables = synthetic_tables(n_tasks, n_runs, epochs, seed=3)
    tables["landmarkers"] = [
        {"task_id": t["task_id"], "name": "dcn", "value": 60.0 + 8.0 * i} for i, t in enumerate(tables["tasks"])
    ]
    return MetaDataset.from_tables(**tables)


def test_the_greedy_portfolio_adds_the_cell_that_covers_the_worst_served_tasks() -> None:
    from nasmeta.transfer.portfolio import greedy_portfolio

    scores = np.array(
        [
            [0.9, 0.9, 0.0],  # best mean (0.6), but useless on task 3
            [0.5, 0.5, 0.6],  # mean 0.53
            [0.0, 0.0, 1.0],  # mean 0.33: covers task 3 best
            [0.8, np.nan, np.nan],  # trained on one task in three: below the coverage
        ]
    )
    assert greedy_portfolio(scores, 3, 0.5) == [0, 2, 1]
    assert greedy_portfolio(scores, 1, 0.5) == [0]
    # no gain left after [0, 2]: ties go to the higher mean percentile over the tasks a cell was trained on
    assert greedy_portfolio(scores, 10, 0.3) == [0, 2, 3, 1]


def test_portfolio_fits_on_metadata_saves_loads_and_proposes(tmp_path: Path) -> None:
    from nasmeta.transfer.portfolio import Portfolio
    from nasmeta.transfer.registry import component_class

    meta = _meta()
    portfolio = Portfolio(size=10).fit(meta)
    assert component_class("portfolio") is Portfolio
    assert len(portfolio.cells) == 10 and len({a.arch_id for a in portfolio.cells}) == 10
    # the first cell has the best mean percentile over the source tasks
    runs = meta.runs.to_pylist()
    tasks = sorted({r["task_id"] for r in runs})
    by_task = {t: {r["arch_id"]: r["final_val_acc"] for r in runs if r["task_id"] == t} for t in tasks}
    mean_pct = {
        a: np.mean([(stats.rankdata(list(v.values()))[list(v).index(a)] - 1) / (len(v) - 1) for v in by_task.values()])
        for a in by_task[tasks[0]]
    }
    assert portfolio.cells[0].arch_id == max(mean_pct, key=mean_pct.get)
    assert portfolio.details[0]["mean_percentile"] == pytest.approx(max(mean_pct.values()))
    again = Portfolio.load(portfolio.save(tmp_path / "p"))
    assert [a.arch_id for a in again.propose("any task", 5)] == [a.arch_id for a in portfolio.cells[:5]]
    pool = list(reversed(portfolio.cells[3:])) + [portfolio.cells[1]]
    assert [a.arch_id for a in portfolio.order(pool)][:2] == [portfolio.cells[1].arch_id, portfolio.cells[3].arch_id]
    with pytest.raises(ValueError, match="positive integer"):
        portfolio.propose("t", 0)
    with pytest.raises(RuntimeError, match="empty"):
        Portfolio().propose("t", 1)


def test_the_pool_space_mutates_to_the_nearest_pool_cell() -> None:
    from nasmeta.search.pool import PoolSpace
    from nasmeta.spaces import get_space

    space = get_space("nb201")
    base = space.parse(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    )
    near = space.parse(
        "|nor_conv_1x1~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    )
    far = space.parse("|avg_pool_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|")
    pool = PoolSpace(space, [base, near, far])
    rng = np.random.default_rng(0)
    assert {pool.mutate(base, rng).arch_id for _ in range(20)} == {near.arch_id}
    assert {pool.sample(rng).arch_id for _ in range(60)} == {a.arch_id for a in (base, near, far)}
    with pytest.raises(ValueError, match="at least 2"):
        PoolSpace(space, [base, base])


def test_pool_lodo_rows_regret_falls_with_k_and_transfer_methods_are_seed_independent() -> None:
    from nasmeta.evaluation.pool_lodo import pool_lodo

    meta = _meta()
    rows = pool_lodo(
        meta,
        ["random", "re", "portfolio", "tapas", "tapas-noselect"],
        seeds=[0, 1],
        ks=(1, 5, 30),
        method_params={"tapas": {"epochs": 3}, "tapas-noselect": {"epochs": 3}},
        errors="raise",
    )
    frame = pd.DataFrame(rows)
    assert len(frame) == 4 * 5 * 2 and (frame["status"] == "completed").all()
    assert (frame["regret_val@1"] >= frame["regret_val@5"]).all() and (
        frame["regret_val@5"] >= frame["regret_val@30"]
    ).all()
    # 30 evaluations of a 30-cell pool in an order without repeats find its best cell (evolution may repeat cells)
    assert (frame.loc[frame.method != "re", "regret_val@30"] == 0).all()
    assert (frame["epochs@5"] == 5 * 6).all()
    for method in ("portfolio", "tapas"):
        part = frame[frame.method == method].sort_values(["task_id", "seed"])
        assert (part.groupby("task_id")["regret_val@5"].nunique() == 1).all()
    random = frame[frame.method == "random"]
    assert random.groupby("task_id")["regret_val@1"].nunique().max() > 1
    # DCNs 60, 68, 76, 84 (fractions 0.08 apart): the 0.1 threshold keeps the neighbours, no selection keeps all 3
    kept = frame[frame.method == "tapas"].groupby("task_id")["n_sources"].first()
    assert kept.to_dict() == {"syn-0": 2, "syn-1": 2, "syn-2": 2, "syn-3": 2}
    assert (frame.loc[frame.method == "tapas-noselect", "n_sources"] == 3).all()


def test_pool_lodo_refuses_unknown_methods_and_ks() -> None:
    from nasmeta.evaluation.pool_lodo import check_ks, check_pool_methods

    with pytest.raises(ValueError, match="unknown pool method.*'magic'"):
        check_pool_methods(["random", "magic"])
    with pytest.raises(ValueError, match="positive integers"):
        check_ks([5, 0])
    assert check_ks([20, 5, 5]) == (5, 20)


def test_intervals_are_student_t_over_task_means_and_wins_count_folds() -> None:
    from nasmeta.evaluation.intervals import interval_markdown, interval_table, wins_table

    rows = []
    for task, (a, b) in {"t1": (1.0, 2.0), "t2": (2.0, 2.0), "t3": (4.0, 3.0)}.items():
        for seed, shift in ((0, -0.5), (1, 0.5)):
            rows.append({"task_id": task, "method": "a", "seed": seed, "regret": a + shift, "status": "completed"})
            rows.append({"task_id": task, "method": "b", "seed": seed, "regret": b, "status": "completed"})
    rows.append({"task_id": "t4", "method": "a", "seed": 0, "regret": math.nan, "status": "failed"})
    frame = pd.DataFrame(rows)
    table = interval_table(frame, ["regret"]).set_index("method")
    values = np.array([1.0, 2.0, 4.0])
    half = stats.t.ppf(0.975, 2) * values.std(ddof=1) / math.sqrt(3)
    assert table.loc["a", "regret"] == pytest.approx(values.mean())
    assert table.loc["a", "regret_lo"] == pytest.approx(values.mean() - half)
    assert table.loc["a", "tasks"] == 3
    wins = wins_table(frame, "regret", [("a", "b")]).iloc[0]
    assert (wins["wins"], wins["ties"], wins["losses"]) == (1, 1, 1)
    assert "2.33 [" in interval_markdown(interval_table(frame, ["regret"]), ["regret"])


def test_the_portfolio_search_method_trains_the_first_cells_in_order() -> None:
    from nasmeta.search.registry import default_methods, parse_method
    from nasmeta.search.target import SearchContext, run_method
    from nasmeta.transfer.portfolio import Portfolio

    meta = _meta()
    ctx = SearchContext.create("nb201", "digits-0to4", "micro", meta=meta)
    result = run_method("portfolio", ctx)
    expected = [a.arch_id for a in Portfolio().fit(meta).cells[: ctx.budget.evaluations]]
    assert [e.arch.arch_id for e in result.history] == expected
    assert result.extra["family"] == "transfer" and result.method == "portfolio"
    assert "portfolio" in default_methods("nb201") and parse_method("portfolio+sh", "nb201").scheduler == "sh"


def test_fixed_orders_report_their_rank_correlation_and_evolution_none() -> None:
    from nasmeta.evaluation.pool_lodo import pool_lodo

    frame = pd.DataFrame(pool_lodo(_meta(3, 20, 30), ["random", "re", "portfolio"], seeds=[0], ks=(5,), errors="raise"))
    by = frame.set_index("method")["kendall_tau"]
    assert frame.loc[frame.method == "re", "kendall_tau"].isna().all()
    # the synthetic tasks share one quality function: the portfolio's order agrees with an unseen task's accuracies
    assert (frame.loc[frame.method == "portfolio", "kendall_tau"] > 0.5).all()
    assert by.notna().sum() == 2 * 3
