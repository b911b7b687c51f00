"""The one search loop: live schedulers (successive halving, Hyperband, ASHA) against an independent bracket
computation on the same curves, pause / resume on real training, searchers, and failing early."""

from __future__ import annotations

import numpy as np
import pytest

from nasmeta.blackbox.hyperband import resource_to_epochs, successive_halving
from nasmeta.evaluation.runs import group_by_task, runs_from_meta
from nasmeta.search.loop import run_search
from nasmeta.search.schedulers import ASHAScheduler, Hyperband, SuccessiveHalving
from nasmeta.search.searchers import FixedOrderSearcher
from nasmeta.search.stored import StoredCurveEvaluator

EPOCHS = 12


@pytest.fixture(scope="module")
def task_runs():
    from nasmeta.evaluation.synthetic import synthetic_meta

    meta = synthetic_meta(n_tasks=1, n_runs=40, epochs=EPOCHS, seed=3)
    return next(iter(group_by_task(runs_from_meta(meta)).values()))


def reference_hyperband(order, scheduler):
    """Brackets computed with the pure bracket function: each takes the next ``n`` runs of the order."""
    brackets = scheduler.schedule(EPOCHS)
    R = scheduler.resolve_max_resource(EPOCHS)
    trained, rungs, position, k = {}, [], 0, 0
    while position < len(order):
        bracket = brackets[k % len(brackets)]
        k += 1
        members = order[position : position + bracket.n]
        position += len(members)

        def evaluate(run, r):
            epochs = resource_to_epochs(r, R, EPOCHS)
            trained[run.run_id] = max(trained.get(run.run_id, 0), epochs)
            return float(run.curve[epochs - 1])

        result = successive_halving(members, bracket, evaluate)
        rungs.extend([[m.run_id for m in rung] for rung in result.members])
    finished = [rid for rid, e in trained.items() if e == EPOCHS]
    by_id = {r.run_id: r for r in order}
    pick = max(finished, key=lambda rid: by_id[rid].final_val_acc)  # earliest trained wins ties
    return trained, rungs, pick


@pytest.mark.parametrize("scheduler", [Hyperband(eta=3), SuccessiveHalving(eta=3), SuccessiveHalving(eta=2, s=1)])
def test_live_brackets_and_pick_equal_the_reference_on_the_same_curves(task_runs, scheduler):
    order = list(np.random.default_rng(0).permutation(task_runs))
    result = run_search(FixedOrderSearcher(order), StoredCurveEvaluator(order), len(order), scheduler)
    trained, rungs, pick = reference_hyperband(order, scheduler)
    assert {t["run_id"]: t["epochs"] for t in result.extra["trials"]} == trained
    run_ids = [r.run_id for r in order]
    assert [[run_ids[i] for i in row["members"]] for row in result.extra["scheduler_log"]] == rungs
    assert result.history[result.extra["best_index"]].extra["run_id"] == pick
    statuses = {t["status"] for t in result.extra["trials"]}
    assert statuses == {"completed", "stopped"} and result.extra["n_promotions"] > 0


def test_asha_promotes_only_the_top_third_of_a_rung_and_never_twice(task_runs):
    order = list(task_runs)
    scheduler = ASHAScheduler(eta=3)
    result = run_search(FixedOrderSearcher(order), StoredCurveEvaluator(order), len(order), scheduler)
    assert scheduler._epochs == [1, 3, 9, 12]
    trials = result.extra["trials"]
    # each promotion took a trial ranked in the top floor(n / eta) of its rung at that moment, once per rung
    regular = [e for e in scheduler.log if not e.get("finishing")]
    assert regular and all(e["rank"] < e["rung_size"] // 3 for e in regular)
    keys = [(e["trial"], e["from_epochs"]) for e in scheduler.log]
    assert len(keys) == len(set(keys))
    reached = [sum(t["epochs"] >= e for t in trials) for e in (1, 3, 9, 12)]
    assert reached[0] == 40 and reached[0] > reached[1] > reached[2] >= reached[3] >= 1
    # a trial reaches a rung only by promotion from the rung below
    for k, (lo, hi) in enumerate(((1, 3), (3, 9), (9, 12)), start=1):
        assert reached[k] == sum(x["from_epochs"] == lo and x["to_epochs"] == hi for x in scheduler.log)
    assert sum(t["status"] == "completed" for t in trials) == reached[3]


def test_asha_with_a_small_trial_budget_still_trains_one_trial_to_the_end(task_runs):
    order = list(task_runs[:5])
    scheduler = ASHAScheduler(eta=3)
    result = run_search(FixedOrderSearcher(order), StoredCurveEvaluator(order), 5, scheduler)
    # rungs 1, 3, 9, 12 epochs: 5 trials promote one to 3 epochs, which alone can never be in a top third
    assert [e.get("finishing", False) for e in scheduler.log] == [False, True, True]
    assert [t["status"] for t in result.extra["trials"]].count("completed") == 1
    assert result.best_val_acc is not None


def test_hyperband_pauses_and_resumes_real_training(tmp_path):
    from nasmeta.blackbox import random_search
    from nasmeta.data.tasks import get_task
    from nasmeta.spaces import get_space
    from nasmeta.training import TrainConfig, TrainingEvaluator, train_architecture

    task = get_task("digits").small(20).load()
    config = TrainConfig(epochs=4, batch_size=32, lr=0.05, device="cpu", num_threads=1)
    evaluator = TrainingEvaluator("nb201", task, config, C=4, N=1)
    events = []
    result = random_search(
        get_space("nb201"),
        evaluator,
        5,
        seed=1,
        scheduler=Hyperband(eta=3),
        on_trial=lambda trial, event: events.append((trial.trial_id, event, trial.epochs)),
    )
    # R = 4 epochs, eta 3: bracket s=1 starts 3 trials for 1 epoch and promotes the best to 4; bracket s=0: 2 x 4
    assert [e for e in events if e[1] == "paused"] == [(0, "paused", 1), (1, "paused", 1), (2, "paused", 1)]
    resumed = [e for e in events if e[1] == "resumed"]
    assert len(resumed) == 1 and resumed[0][2] == 1
    statuses = [t["status"] for t in result.extra["trials"]]
    assert statuses.count("stopped") == 2 and statuses.count("completed") == 3
    # the promoted run, paused after 1 epoch and resumed, equals an uninterrupted 4-epoch run of that arch
    promoted = result.extra["trials"][resumed[0][0]]
    ev = next(e for e in result.history if str(e.arch) == promoted["arch"] and e.status == "completed")
    whole = train_architecture(ev.arch, task, config, size={"C": 4, "N": 1}, seed=1).evaluation
    assert [r["val_acc"] for r in ev.curve] == [r["val_acc"] for r in whole.curve]


def test_a_per_epoch_rule_on_a_table_without_epochs_fails_before_any_work():
    from nasmeta.blackbox.stopping import MedianStoppingRule
    from nasmeta.evaluators import Evaluation, Evaluator
    from nasmeta.search.schedulers import StoppingScheduler
    from nasmeta.search.searchers import RandomSearcher
    from nasmeta.spaces import get_space

    class Table(Evaluator):
        max_epochs, fidelities = 200, (12, 200)
        calls = 0

        def evaluate(self, arch, epochs=None, seed=0):
            Table.calls += 1
            return Evaluation(arch, 50.0, 50.0, 1.0, epochs or 200)

    with pytest.raises(ValueError, match=r"decides at epochs \['every epoch'\].*only has results at \[12, 200\]"):
        run_search(RandomSearcher(get_space("nb201")), Table(), 3, StoppingScheduler(MedianStoppingRule()))
    assert Table.calls == 0
    with pytest.raises(ValueError, match="n_trials"):
        run_search(RandomSearcher(get_space("nb201")), Table(), 0)
