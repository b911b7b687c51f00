"""LCRankNet's stopping policy chosen by an inner leave-tasks-out on the source tasks only."""

from __future__ import annotations

import math

import pytest

from nasmeta.evaluation.runs import runs_from_meta
from nasmeta.evaluation.synthetic import synthetic_meta

GRID = {"min_epochs": (1, 3), "deltas": (0.05, 0.3)}


@pytest.fixture(scope="module")
def runs():
    return runs_from_meta(synthetic_meta(3, 16, 6, seed=2))


def test_the_choice_is_the_cheapest_setting_within_the_tolerance(runs) -> None:
    from nasmeta.transfer.lcranknet_policy import choose_policy

    loose = choose_policy(runs, {"steps": 20}, **GRID, n_runs=None, tolerance=math.inf)
    assert len(loose.rows) == 4 and loose.inner_tasks == ["syn-0", "syn-1", "syn-2"]
    cheapest = min(loose.rows, key=lambda r: (r["cost_ratio"], r["regret"], -r["min_epochs"]))
    assert loose.chosen == (int(cheapest["min_epochs"]), cheapest["delta"])
    strict = choose_policy(runs, {"steps": 20}, **GRID, n_runs=None, tolerance=0.0)
    chosen = next(r for r in strict.rows if (r["min_epochs"], r["delta"]) == strict.chosen)
    qualifying = [r for r in strict.rows if r["regret"] <= strict.reference["regret"] + 1e-12]
    if qualifying:
        assert chosen["regret"] <= strict.reference["regret"] + 1e-12
        assert chosen["cost_ratio"] == min(r["cost_ratio"] for r in qualifying)
    else:  # nothing as good as no stopping: the lowest regret
        assert chosen["regret"] == min(r["regret"] for r in strict.rows)
    # stopping never costs more epochs than no stopping on the same orders
    assert all(r["cost_ratio"] <= 1.0 + 1e-12 for r in strict.rows)
    assert "| min_epochs | delta |" in strict.markdown() and " *" in strict.markdown()


def test_the_tuned_method_uses_the_chosen_policy_and_refuses_bad_input(runs) -> None:
    from nasmeta.evaluation.methods import make_method
    from nasmeta.transfer.lcranknet_policy import choose_policy

    model = make_method(
        "lcranknet-tuned", runs, steps=20, min_epochs_grid=GRID["min_epochs"], deltas=GRID["deltas"], inner_runs=None
    )
    assert (model.config.min_epochs, model.config.delta) == model.policy.chosen
    with pytest.raises(ValueError, match="at least 2 source tasks"):
        choose_policy([r for r in runs if r.task_id == "syn-0"])
    with pytest.raises(ValueError, match="learns from metadata"):
        make_method("lcranknet-tuned", None)


def test_lcranknet_ranks_runs_without_architectures(runs, tmp_path) -> None:
    import dataclasses

    from nasmeta.evaluation.replay import replay
    from nasmeta.transfer.lcranknet import LCRankNet

    bare = [dataclasses.replace(r, arch=None) for r in runs]
    with pytest.raises(ValueError, match="use_architecture=False"):
        LCRankNet(steps=5).fit(bare)
    ranker = LCRankNet(steps=30, use_architecture=False).fit([r for r in bare if r.task_id != "syn-0"])
    outcome = replay([r for r in bare if r.task_id == "syn-0"], ranker, seed=0)
    assert outcome.picked_run_id is not None and outcome.n_runs == 16
    loaded = LCRankNet.load(ranker.save(tmp_path / "bare"))
    from nasmeta.search.context import StopContext

    context = StopContext(epoch=3, max_epochs=6, task_id="syn-0")
    assert loaded.score([50.0, 60.0, 65.0], context) == ranker.score([50.0, 60.0, 65.0], context)
    assert not hasattr(ranker.model, "lstm")
