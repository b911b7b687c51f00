"""LODO harness and replay of stored runs on a seeded synthetic meta-dataset."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from metadata_store import MetaDataset
from nasmeta.evaluation.lodo import lodo, lodo_folds, partial_curve_evaluator, predictor_evaluator, replay_lodo
from nasmeta.evaluation.methods import make_method, method_factory, register_method
from nasmeta.evaluation.metrics import rank_correlations
from nasmeta.evaluation.replay import replay, replay_order
from nasmeta.evaluation.runs import ReplayRun, group_by_task, runs_from_meta
from nasmeta.evaluation.tables import markdown_table, write_results
from nasmeta.scheduling import Decision
from nasmeta.search.schedulers import SuccessiveHalving

N_TASKS, N_RUNS, EPOCHS = 3, 27, 12


@pytest.fixture(scope="module")
def meta():
    from nasmeta.evaluation.synthetic import synthetic_meta

    return synthetic_meta(n_tasks=N_TASKS, n_runs=N_RUNS, epochs=EPOCHS, seed=0)


@pytest.fixture(scope="module")
def results(meta):
    return replay_lodo(meta, ["none", "median", "sh", "hyperband"], seeds=[0, 1])


def _run(rid: str, curve: list[float], seconds: float = 1.0, test: float | None = None) -> ReplayRun:
    return ReplayRun(rid, "t", rid, np.array(curve), np.full(len(curve), seconds), curve[-1], test)


def test_runs_from_meta_reads_the_store_tables(meta):
    runs = runs_from_meta(meta)
    assert len(runs) == N_TASKS * N_RUNS
    assert all(r.max_epochs == EPOCHS and r.arch is not None and r.arch.space == "nb201" for r in runs)
    row = meta.runs.to_pylist()[0]
    run = next(r for r in runs if r.run_id == row["run_id"])
    assert run.seconds_until(EPOCHS) == pytest.approx(row["seconds"])  # per-epoch from cumulative seconds
    assert run.final_val_acc == row["final_val_acc"]
    assert sorted(group_by_task(runs)) == [f"syn-{k}" for k in range(N_TASKS)]


def test_no_termination_has_zero_regret_and_the_highest_cost(meta, results):
    assert set(results["method"]) == {"none", "median", "sh", "hyperband"}
    assert len(results) == N_TASKS * 4 * 2
    total_seconds = {
        t: sum(r.seconds_until(EPOCHS) for r in rs) for t, rs in group_by_task(runs_from_meta(meta)).items()
    }
    for (task, _seed), group in results.groupby(["task_id", "seed"]):
        by = group.set_index("method")
        assert by.loc["none", "regret_val"] == 0.0
        assert by.loc["none", "n_completed"] == N_RUNS
        assert by.loc["none", "epochs"] == N_RUNS * EPOCHS
        assert by.loc["none", "seconds"] == pytest.approx(total_seconds[task])
        for method in ("median", "sh", "hyperband"):
            assert by.loc[method, "seconds"] <= by.loc["none", "seconds"]
            assert by.loc[method, "regret_val"] >= 0.0
        for method in ("sh", "hyperband"):  # rung-based methods always spend less
            assert by.loc[method, "epochs"] < by.loc["none", "epochs"]
    # SH with eta=3, R=12 epochs: brackets (9, 1 epoch) (3, 4 epochs) (1, 12 epochs) -> 9 + 3*3 + 8 = 26 epochs each
    sh = results[results["method"] == "sh"]
    assert set(sh["epochs"]) == {3 * 26}
    assert (sh["n_completed"] == 3).all()


def test_replay_is_deterministic_given_seeds(meta, results):
    again = replay_lodo(meta, ["none", "median", "sh", "hyperband"], seeds=[0, 1])
    pd.testing.assert_frame_equal(results, again)
    runs = group_by_task(runs_from_meta(meta))["syn-0"]
    assert [r.run_id for r in replay_order(runs, 0)] == [r.run_id for r in replay_order(runs, 0)]
    assert [r.run_id for r in replay_order(runs, 0)] != [r.run_id for r in replay_order(runs, 1)]
    assert len(replay_order(runs, 0, n_runs=5)) == 5


def test_results_tables_and_plot_are_written(results, tmp_path):
    paths = write_results(results, tmp_path / "out", name="replay")
    for kind in ("runs_csv", "summary_csv", "markdown", "plot"):
        assert paths[kind].is_file() and paths[kind].stat().st_size > 0
    back = pd.read_csv(paths["runs_csv"])
    assert len(back) == len(results) and {"regret_val", "regret_test", "epochs", "hours"} <= set(back.columns)
    summary = pd.read_csv(paths["summary_csv"])
    none_mean = summary[(summary.method == "none") & (summary.task_id == "mean") & (summary.metric == "regret_val")]
    assert none_mean["mean"].item() == 0.0 and none_mean["n"].item() == 2
    text = paths["markdown"].read_text()
    assert "| method | syn-0 | syn-1 | syn-2 | mean |" in text
    assert text.count("\n| ") == 1 + 4  # header + one row per method
    assert "| none | 0.00 ± 0.00 / " in text


def test_sequential_replay_charges_exactly_the_epochs_trained():
    runs = [_run("a", [10, 20, 30, 40], 2.0, 39.0), _run("b", [50, 60, 70, 80], 3.0, 79.0), _run("c", [5, 6, 7, 8])]

    class StopAfterTwoOnceABestExists:
        def decide(self, curve, context):
            return Decision.STOP if context.best_so_far is not None and len(curve) >= 2 else Decision.CONTINUE

    order = [r.run_id for r in replay_order(runs, seed=4)]
    out = replay(runs, StopAfterTwoOnceABestExists(), seed=4, name="x")
    first = next(r for r in runs if r.run_id == order[0])
    assert out.picked_run_id == first.run_id and out.n_completed == 1 and out.n_stopped == 2
    assert out.epochs == 4 + 2 + 2
    assert out.seconds == pytest.approx(sum(r.seconds_until(4 if r is first else 2) for r in runs))
    assert out.regret_val == pytest.approx(80.0 - first.final_val_acc)
    none = replay(runs, make_method("none"), seed=4)
    assert none.picked_run_id == "b" and none.regret_val == 0.0 and none.regret_test == 0.0
    assert none.epochs == 12 and none.hours == pytest.approx((4 * 2 + 4 * 3 + 4 * 1) / 3600)


def test_rung_replay_promotes_by_stored_values_and_resumes():
    # 9 runs of 9 epochs; SH bracket (9, 1) (3, 3) (1, 9): the best at epoch 1 is not the best at epoch 9
    finals = [50, 51, 52, 53, 54, 55, 90, 56, 57]
    starts = [10, 11, 12, 13, 14, 15, 1, 16, 17]
    runs = [_run(f"r{i}", list(np.linspace(s, f, 9))) for i, (s, f) in enumerate(zip(starts, finals, strict=True))]
    out = replay(runs, SuccessiveHalving(eta=3), seed=0)
    assert out.epochs == 9 * 1 + 3 * 2 + 1 * 6  # promoted runs resume: only the extra epochs are charged
    assert out.picked_run_id == "r8" and out.regret_val == pytest.approx(90 - 57)
    assert out.n_completed == 1 and out.n_runs == 9


def test_baker_plugs_into_lodo_and_fits_per_fold(meta):
    out = replay_lodo(meta, {"baker": {"every": 2}, "none": {}}, seeds=[0], tasks=["syn-0"])
    by = out.set_index("method")
    assert by.loc["baker", "epochs"] < by.loc["none", "epochs"]
    assert 0.0 <= by.loc["baker", "regret_val"] <= 5.0
    # as a curve predictor on the held-out task: ranks runs from half their curve
    corr = lodo(
        meta, {"baker": lambda train: make_method("baker", train)}, partial_curve_evaluator(0.5), [0], ["syn-0"]
    )
    row = corr.iloc[0]
    assert row["epochs_observed"] == EPOCHS // 2 and row["n_runs"] == N_RUNS
    assert row["kendall_tau"] > 0.5 and -1.0 <= row["last_value_kendall_tau"] <= 1.0
    with pytest.raises(ValueError, match="epochs"):
        partial_curve_evaluator(1.5)


def test_registered_methods_plug_in():
    class GreedyStopper:
        name = "greedy"

        def decide(self, curve, context):
            return Decision.STOP if context.best_so_far is not None else Decision.CONTINUE

    register_method("greedy-test")(lambda train=None, **params: GreedyStopper())
    runs = [_run("a", [1, 2]), _run("b", [3, 4]), _run("c", [5, 6])]
    out = replay(runs, make_method("greedy-test"), seed=0)
    assert out.n_completed == 1 and out.epochs == 2 + 1 + 1


def test_lodo_folds_and_predictor_correlations(meta):
    folds = lodo_folds(meta)
    assert [f.task_id for f in folds] == ["syn-0", "syn-1", "syn-2"]
    for fold in folds:
        assert fold.task_id not in fold.train.task_ids and fold.test.task_ids == [fold.task_id]
    finals = {(r["task_id"], r["arch_id"]): r["final_val_acc"] for r in meta.runs.to_pylist()}

    class Oracle:
        def __init__(self, sign):
            self.sign = sign

        def predict(self, archs, task):
            return np.array([self.sign * finals[(task["task_id"], a.arch_id)] for a in archs])

    fitted = []
    frame = lodo(
        meta,
        {"oracle": lambda train: fitted.append(train) or Oracle(1), "reversed": lambda train: Oracle(-1)},
        predictor_evaluator(),
        seeds=[0, 1],
    )
    assert len(fitted) == N_TASKS  # fitted once per fold, reused across seeds
    assert len(frame) == N_TASKS * 2 * 2
    assert np.allclose(frame[frame.method == "oracle"][["kendall_tau", "spearman_rho"]], 1.0)
    assert np.allclose(frame[frame.method == "reversed"][["kendall_tau", "spearman_rho"]], -1.0)
    assert (frame["n_archs"] == N_RUNS).all()


def test_rank_correlations_match_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=30), rng.normal(size=30)
    out = rank_correlations(a, b)
    assert out["kendall_tau"] == pytest.approx(stats.kendalltau(a, b).statistic)
    assert out["spearman_rho"] == pytest.approx(stats.spearmanr(a, b).statistic)
    with pytest.raises(ValueError, match="at least 2"):
        rank_correlations([1.0], [1.0])
    with pytest.raises(ValueError, match="equal length"):
        rank_correlations([1.0, 2.0], [1.0, 2.0, 3.0])


def test_bad_input_raises_value_error_naming_it(meta):
    with pytest.raises(ValueError, match="nosuch"):
        replay_lodo(meta, ["none", "nosuch"], seeds=[0])
    with pytest.raises(ValueError, match="nosuch"):
        method_factory("nosuch")
    with pytest.raises(ValueError, match="eta"):
        replay_lodo(meta, {"hyperband": {"eta": 1}}, seeds=[0])
    with pytest.raises(ValueError, match="R"):
        replay_lodo(meta, {"sh": {"R": 0}}, seeds=[0])
    with pytest.raises(ValueError, match="seeds"):
        replay_lodo(meta, ["none"], seeds=[])
    with pytest.raises(ValueError, match="n_runs"):
        replay_order(runs_from_meta(meta.only("syn-0")), 0, n_runs=0)
    with pytest.raises(ValueError, match="empty dataset"):
        replay([], make_method("none"), seed=0)
    with pytest.raises(ValueError, match="at least 2 tasks"):
        lodo_folds(meta.only("syn-0"))
    with pytest.raises(ValueError, match="unknown task"):
        lodo_folds(meta, tasks=["syn-9"])
    with pytest.raises(ValueError, match="baker"):
        make_method("baker")  # learns from metadata: needs training data
    empty = MetaDataset.from_tables(
        tasks=[{"task_id": "a", "name": "a"}, {"task_id": "b", "name": "b"}], runs=meta.runs.to_pylist()[:1]
    )
    with pytest.raises(ValueError, match="empty dataset"):
        replay_lodo(empty, ["none"], seeds=[0], tasks=["a"])
    with pytest.raises(ValueError, match="different numbers of epochs"):
        replay([_run("a", [1, 2]), _run("b", [1, 2, 3])], make_method("none"), seed=0)

    class Pauser:
        def decide(self, curve, context):
            return Decision.PAUSE

    with pytest.raises(ValueError, match="PAUSE"):
        replay([_run("a", [1, 2])], Pauser(), seed=0)
    with pytest.raises(ValueError, match="empty results"):
        markdown_table(pd.DataFrame(columns=["method", "task_id", "seed", "regret_val", "hours"]))
