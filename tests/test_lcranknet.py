"""LCRankNet on the seeded synthetic meta-dataset: ranking of held-out partial curves, early termination, the live
``should_stop`` adapter, persistence, determinism, the LODO replay through ``make_method``, and bad input."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from nasmeta.evaluation.lodo import Fold, partial_curve_evaluator, replay_lodo
from nasmeta.evaluation.methods import make_method
from nasmeta.evaluation.runs import runs_from_meta
from nasmeta.scheduling import Decision
from nasmeta.search.context import stop_context
from nasmeta.transfer.base import MissingMetadataError
from nasmeta.transfer.lcranknet import LCRankNet, LCRankNetConfig

N_TASKS, N_RUNS, EPOCHS, HELD_OUT = 3, 30, 12, "syn-2"
SMALL = {"steps": 150, "batch_size": 64}  # ~3-8 s on a busy 2-core machine


@pytest.fixture(scope="module")
def meta():
    from nasmeta.evaluation.synthetic import synthetic_meta

    return synthetic_meta(n_tasks=N_TASKS, n_runs=N_RUNS, epochs=EPOCHS, seed=0)


@pytest.fixture(scope="module")
def model(meta):
    return LCRankNet(**SMALL, seed=0).fit(meta.without(HELD_OUT))


@pytest.fixture(scope="module")
def saved(model, tmp_path_factory):
    return model.save(tmp_path_factory.mktemp("lcranknet"))


@pytest.fixture(scope="module")
def held_out(meta):
    """The held-out task's runs, worst final accuracy first."""
    return sorted(runs_from_meta(meta.only(HELD_OUT)), key=lambda r: r.final_val_acc)


def _context(run, t, completed=(), **extra):
    return stop_context(
        epoch=t,
        max_epochs=EPOCHS,
        completed_curves=[c.curve for c in completed] or None,
        completed_archs=[c.arch for c in completed] or None,
        task_id=run.task_id,
        run_id=run.run_id,
        arch=run.arch,
        **extra,
    )


def test_training_reduces_the_pairwise_loss(model):
    assert model.task_ids == ["syn-0", "syn-1"] and model.space == "nb201"
    assert len(model.train_loss) == SMALL["steps"]
    assert model.train_loss[0] == pytest.approx(np.log(2), abs=0.05)  # an untrained ranker is a coin flip
    assert np.mean(model.train_loss[-20:]) < 0.5


def test_ranks_held_out_partial_curves_better_than_chance(meta, model):
    # Kendall tau after 2 of 12 epochs on the unseen dataset, measured with seeds 0-4 of this fit: 0.59-0.67
    # (chance: 0 with sd 0.13 for 30 runs; the last observed value alone reaches 0.39).  Bound 0.45 = chance + 3.5 sd.
    fold = Fold(HELD_OUT, meta.without(HELD_OUT), meta.only(HELD_OUT))
    two = partial_curve_evaluator(2)("lcranknet", model, fold, 0)
    assert two["n_runs"] == N_RUNS and two["epochs_observed"] == 2
    assert two["kendall_tau"] > 0.45
    assert two["kendall_tau"] > two["last_value_kendall_tau"]
    # after one epoch the curve says nothing yet (last-value tau -0.08); the architecture and sources carry it
    one = partial_curve_evaluator(1)("lcranknet", model, fold, 0)
    assert one["kendall_tau"] > 0.2 > one["last_value_kendall_tau"]


def test_stops_a_clearly_bad_run_and_not_the_best(model, held_out):
    completed = held_out[: N_RUNS // 2]  # the worse half has completed; the best so far is the median run
    worst, best = held_out[0], held_out[-1]
    for t in (3, 5):
        assert model.decide(worst.curve[:t], _context(worst, t, completed)) is Decision.STOP
        assert model.decide(best.curve[:t], _context(best, t, completed)) is Decision.CONTINUE
        assert model.probability_better(worst.curve[:t], _context(worst, t, completed)) < 0.1
        assert model.probability_better(best.curve[:t], _context(best, t, completed)) > 0.9
    # no completed run: nothing to compare with; the last epoch and epochs before min_epochs never stop
    assert model.decide(worst.curve[:3], _context(worst, 3)) is Decision.CONTINUE
    assert model.probability_better(worst.curve[:3], _context(worst, 3)) is None
    assert model.decide(worst.curve, _context(worst, EPOCHS, completed)) is Decision.CONTINUE


def test_min_epochs_delays_every_decision(saved, held_out):
    patient = LCRankNet.load(saved)
    with pytest.raises(AttributeError, match="part of the config"):
        patient.min_epochs = 4  # would be ignored: the config is what the stopper reads
    patient.config = patient.config.model_copy(update={"min_epochs": 4})
    worst, completed = held_out[0], held_out[: N_RUNS // 2]
    assert patient.decide(worst.curve[:3], _context(worst, 3, completed)) is Decision.CONTINUE
    assert patient.decide(worst.curve[:4], _context(worst, 4, completed)) is Decision.STOP


def test_lcranknet_stops_real_training_live_in_the_search_loop(saved, held_out):
    from nasmeta.data.types import TaskData
    from nasmeta.evaluation.runs import ReplayRun
    from nasmeta.evaluators import Evaluator
    from nasmeta.search.loop import run_search
    from nasmeta.search.schedulers import StoppingScheduler
    from nasmeta.search.searchers import FixedOrderSearcher
    from nasmeta.search.stored import StoredCurveSession
    from nasmeta.training import TrainConfig, TrainingEvaluator

    # random labels give chance accuracy (~25%), which cannot beat the ~80% of the best three stored runs
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(48, 1, 8, 8, generator=g), torch.randint(0, 4, (48,), generator=g)
    task = TaskData("noise", "noise", x[:32], y[:32], x[32:40], y[32:40], x[40:], y[40:], num_classes=4)
    trainer = TrainingEvaluator("nb201", task, TrainConfig(epochs=4, batch_size=16, device="cpu"), C=4, N=1)

    class StoredThenTrained(Evaluator):
        """The best three held-out runs replayed (4 epochs), then a real training run."""

        max_epochs = 4

        def evaluate(self, arch, epochs=None, seed=0):
            raise AssertionError("the loop uses sessions")

        def start(self, config, seed=0, max_epochs=None):
            if isinstance(config, ReplayRun):
                return StoredCurveSession(config, 4)
            return trainer.start(config, seed, max_epochs)

    completed = held_out[-3:]
    arch = held_out[0].arch
    result = run_search(
        FixedOrderSearcher([*completed, arch]),
        StoredThenTrained(),
        4,
        StoppingScheduler(LCRankNet.load(saved)),  # a copy: a live run's sizes must not leak into `model`
        task_id=HELD_OUT,
        seed=0,
    )
    live = result.extra["trials"][-1]
    # 8 validation images: chance can reach 50 % at one epoch, so the stop may come a little later, never at the end
    assert live["status"] == "stopped" and live["epochs"] < 4, result.extra["trials"]
    assert [t["status"] for t in result.extra["trials"][:3]] == ["completed"] * 3
    assert result.history[-1].status == "stopped" and result.history[-1].curve  # the real curve it trained


def test_target_embedding_is_fitted_to_completed_runs_and_never_carried_over(model, saved, held_out):
    mean = model.dataset_vector(None)
    assert torch.equal(model.dataset_vector("syn-0"), model.model.dataset_embedding.weight[0].detach())
    run = held_out[5]
    assert torch.equal(model.target_vector(_context(run, 2, held_out[:1])), mean)  # one run: nothing to rank
    fitted = model.target_vector(_context(run, 2, held_out[:6]))
    assert not torch.equal(fitted, mean)
    assert torch.equal(model.target_vector(_context(run, 2, held_out[:6])), fitted)
    # a new search on the same task starts again from the mean (no state from the previous search)
    assert torch.equal(model.target_vector(_context(run, 2)), mean)
    assert torch.equal(LCRankNet.load(saved).target_vector(_context(run, 2, held_out[:6])), fitted)
    # source datasets keep their own embedding
    source = dataclasses.replace(_context(run, 2, held_out[:6]), task_id="syn-1")
    assert torch.equal(model.target_vector(source), model.dataset_vector("syn-1"))


def test_save_and_load_give_identical_predictions(model, held_out, tmp_path):
    path = model.save(tmp_path / "lcr")
    loaded = LCRankNet.load(path)
    assert loaded.task_ids == model.task_ids and loaded.delta == model.delta
    assert loaded.config == model.config == LCRankNetConfig(**SMALL, seed=0)
    for t in (1, 4, EPOCHS):
        contexts = [_context(r, t) for r in held_out]
        np.testing.assert_array_equal(
            loaded.scores([r.curve[:t] for r in held_out], contexts),
            model.scores([r.curve[:t] for r in held_out], contexts),
        )
    completed = held_out[:10]
    for run in held_out[::5]:
        ctx = _context(run, 3, completed)
        assert loaded.probability_better(run.curve[:3], ctx) == model.probability_better(run.curve[:3], ctx)
    with pytest.raises(ValueError, match="does not hold a saved lcranknet"):
        LCRankNet.load(tmp_path / "nothing")


def test_scores_do_not_depend_on_padding_or_batch(model, held_out):
    short, long = held_out[3], held_out[20]
    alone = model.scores([short.curve[:2]], [_context(short, 2)])
    together = model.scores([short.curve[:2], long.curve], [_context(short, 2), _context(long, EPOCHS)])
    assert together[0] == pytest.approx(alone[0], abs=1e-6)
    # values after the observed epochs are never read: a curve's prefix scores the same whatever follows
    other = held_out[4].curve.copy()
    other[:2] = short.curve[:2]
    assert model.score(other[:2], _context(short, 2)) == pytest.approx(alone[0], abs=1e-6)


def test_same_seed_same_model_other_seed_other_model(meta, held_out):
    train = meta.without(HELD_OUT)
    a = LCRankNet(steps=20, batch_size=32, seed=3).fit(train)
    b = LCRankNet(steps=20, batch_size=32, seed=3).fit(train)
    c = LCRankNet(steps=20, batch_size=32, seed=4).fit(train)
    contexts = [_context(r, 3) for r in held_out]
    curves = [r.curve[:3] for r in held_out]
    assert a.train_loss == b.train_loss
    np.testing.assert_array_equal(a.scores(curves, contexts), b.scores(curves, contexts))
    assert not np.allclose(a.scores(curves, contexts), c.scores(curves, contexts))
    assert torch.get_num_threads() >= 1  # restored after the single-threaded fit


def test_replay_lodo_builds_lcranknet_through_make_method(meta):
    method = make_method("lcranknet", meta.without(HELD_OUT), steps=10, batch_size=16)
    assert isinstance(method, LCRankNet) and method.model is not None
    quick = {**SMALL, "adapt_steps": 5}  # measured: 143 and 116 of 360 epochs, regret 0 for both seeds
    results = replay_lodo(meta, {"lcranknet": quick, "none": {}}, seeds=[0, 1], tasks=[HELD_OUT])
    by = results.set_index(["method", "seed"])
    for seed in (0, 1):
        assert by.loc[("none", seed), "epochs"] == N_RUNS * EPOCHS
        assert by.loc[("lcranknet", seed), "epochs"] < by.loc[("none", seed), "epochs"] / 2
        assert by.loc[("lcranknet", seed), "n_stopped"] > 0
        assert by.loc[("lcranknet", seed), "regret_val"] >= 0.0


def test_bad_input_raises_value_errors_naming_it(meta, model, held_out):
    with pytest.raises(ValueError, match="delta"):
        LCRankNet(delta=1.0)
    with pytest.raises(ValueError, match="kernel_sizes"):
        LCRankNet(kernel_sizes=())
    with pytest.raises(ValueError, match="min_epochs"):
        LCRankNet(min_epochs=0)
    with pytest.raises(ValueError, match="steps"):
        LCRankNetConfig(steps=True)  # a bool is not a step count
    with pytest.raises(ValueError, match="not both"):
        LCRankNet(LCRankNetConfig(), steps=3)
    with pytest.raises(ValueError, match="nosuch"):
        LCRankNet(nosuch=1)
    with pytest.raises(ValueError, match="not fitted"):
        LCRankNet().decide([50.0], _context(held_out[0], 1))
    with pytest.raises(ValueError, match="completed runs"):
        LCRankNet().fit([])
    run = held_out[0]
    with pytest.raises(ValueError, match="architecture"):
        model.decide(run.curve[:2], dataclasses.replace(_context(run, 2, held_out[:3]), arch=None))
    from nasmeta.spaces import get_space

    macro = get_space("macro").sample(np.random.default_rng(0))
    with pytest.raises(ValueError, match="fitted on space 'nb201'"):
        model.score(run.curve[:2], dataclasses.replace(_context(run, 2), arch=macro))
    with pytest.raises(ValueError, match="exceeds its max_epochs"):
        model.score(run.curve, dataclasses.replace(_context(run, 2), max_epochs=3))
    with pytest.raises(ValueError, match="non-empty"):
        model.decide([], _context(run, 1))
    with pytest.raises(MissingMetadataError, match="curves"):
        LCRankNet().check_requirements({"runs", "architectures"})
    with pytest.raises(ValueError, match="unknown method"):
        make_method("lcranknett", meta)
