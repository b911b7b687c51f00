"""Stopping rules: median / percentile rules, Domhan et al. curve extrapolation, Baker et al. nu-SVR."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from nasmeta.blackbox.domhan import CURVE_MODELS, DomhanStopper, extrapolate
from nasmeta.blackbox.stopping import MedianStoppingRule, NoTermination, PercentileRule
from nasmeta.scheduling import Decision
from nasmeta.search.context import stop_context

STOP, GO = Decision.STOP, Decision.CONTINUE


def _others(T: int = 10) -> np.ndarray:
    # three completed runs, flat at 50, 60, 70: running means at any epoch are 50, 60, 70 (median 60)
    return np.array([[50.0] * T, [60.0] * T, [70.0] * T])


def test_median_rule_stops_below_the_median_of_others_at_the_same_epoch():
    rule = MedianStoppingRule(grace_period=1, min_samples=3)
    ctx = stop_context(epoch=3, max_epochs=10, completed_curves=_others())
    assert rule.decide([40.0, 50.0, 55.0], ctx) is STOP  # best 55 < median 60
    assert rule.decide([40.0, 50.0, 65.0], ctx) is GO
    assert rule.decide([60.0, 10.0, 10.0], ctx) is GO  # Golovin et al.: the run's *best* value counts; 60 is not
    # strictly worse than 60


def test_median_rule_uses_running_averages_of_completed_runs():
    others = np.array([[10.0, 90.0, 90.0], [10.0, 90.0, 90.0], [10.0, 90.0, 90.0]])
    ctx = stop_context(epoch=2, max_epochs=3, completed_curves=others)
    rule = MedianStoppingRule(min_samples=3)
    assert rule.decide([20.0, 49.0], ctx) is STOP  # median running mean at epoch 2 = 50
    assert rule.decide([20.0, 51.0], ctx) is GO


def test_median_rule_grace_period_and_min_samples():
    ctx = stop_context(epoch=2, max_epochs=10, completed_curves=_others())
    assert MedianStoppingRule(grace_period=3).decide([1.0, 1.0], ctx) is GO
    assert MedianStoppingRule(grace_period=2).decide([1.0, 1.0], ctx) is STOP
    assert MedianStoppingRule(min_samples=4).decide([1.0, 1.0], ctx) is GO
    empty = stop_context(epoch=2, max_epochs=10)
    assert MedianStoppingRule(min_samples=1).decide([1.0, 1.0], empty) is GO


def test_percentile_rule_compares_last_value_at_equal_epochs():
    others = np.array([[10.0, 50.0, 50.0], [20.0, 60.0, 60.0], [30.0, 70.0, 70.0]])
    ctx = stop_context(epoch=2, max_epochs=3, completed_curves=others)
    assert PercentileRule(50).decide([99.0, 59.0], ctx) is STOP  # last value 59 < 60; earlier best ignored
    assert PercentileRule(50).decide([0.0, 60.0], ctx) is GO
    assert PercentileRule(100).decide([0.0, 69.0], ctx) is STOP
    assert PercentileRule(0).decide([0.0, 51.0], ctx) is GO


def test_no_termination_never_stops():
    ctx = stop_context(epoch=2, max_epochs=10, completed_curves=_others())
    assert NoTermination().decide([0.0, 0.0], ctx) is GO


def test_stop_context_best_and_validation():
    ctx = stop_context(epoch=1, max_epochs=3, completed_curves=[[1, 2, 3], [1, 2, 9]], completed_archs=["a", "b"])
    assert ctx.best_so_far == 9.0 and ctx.best_arch == "b" and list(ctx.best_curve) == [1, 2, 9]
    assert stop_context(epoch=1, max_epochs=3).best_so_far is None
    with pytest.raises(ValueError, match="epoch"):
        stop_context(epoch=4, max_epochs=3)
    with pytest.raises(ValueError, match="shape"):
        stop_context(epoch=1, max_epochs=3, completed_curves=[[1, 2]])


@pytest.mark.parametrize("kwargs", [{"grace_period": 0}, {"min_samples": 0}, {"grace_period": 1.5}])
def test_rules_reject_bad_parameters(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        MedianStoppingRule(**kwargs)


def test_rules_reject_bad_curves():
    ctx = stop_context(epoch=1, max_epochs=3)
    with pytest.raises(ValueError, match="non-empty"):
        MedianStoppingRule().decide([], ctx)
    with pytest.raises(ValueError, match="finite"):
        NoTermination().decide([float("nan")], ctx)
    with pytest.raises(ValueError, match="percentile"):
        PercentileRule(101)


# -- Domhan et al. 2015 ----------------------------------------------------------------------------------------------
def _pow3_curve(T: int = 50, noise: float = 0.2, seed: int = 0) -> tuple[np.ndarray, float]:
    x = np.arange(1, T + 1)
    clean = 100 * CURVE_MODELS["pow3"](x, (0.9, 0.5, 0.7))  # c - a x^-alpha, in percent
    rng = np.random.default_rng(seed)
    return clean + rng.normal(0.0, noise, size=T), float(clean[-1])


def test_domhan_has_the_papers_families():
    expected = {"vap", "pow3", "loglog_linear", "hill3", "log_power", "pow4", "mmf", "exp4", "janoschek"}
    assert expected | {"weibull", "ilog2", "exp3"} == set(CURVE_MODELS)


def test_domhan_extrapolates_a_known_family():
    curve, final = _pow3_curve()
    ex = extrapolate(curve[:20], max_epochs=50)
    assert ex is not None
    assert abs(ex.mean * 100 - final) < 1.0
    assert abs(sum(ex.weights) - 1.0) < 1e-9
    # the predictive distribution brackets the truth
    assert ex.prob_greater((final - 2.0) / 100) > 0.9
    assert ex.prob_greater((final + 2.0) / 100) < 0.1
    assert ex.prob_greater(1.0) == 0.0


def test_domhan_stops_a_bad_curve_but_not_a_good_one():
    good, final = _pow3_curve()
    x = np.arange(1, 51)
    bad = 100 * CURVE_MODELS["exp3"](x, (0.55, 0.3, np.log(0.4))) + np.random.default_rng(1).normal(0, 0.2, 50)
    stopper = DomhanStopper(threshold=0.05, min_epochs=5)
    best = final - 1.0  # an incumbent slightly worse than the good run's true final value
    ctx = stop_context(epoch=15, max_epochs=50, completed_curves=[np.full(50, best)])
    assert stopper.decide(bad[:15], ctx) is STOP
    assert stopper.decide(good[:15], ctx) is GO
    # no decision before min_epochs, nor without a completed run
    assert stopper.decide(bad[:4], ctx) is GO
    assert stopper.decide(bad[:15], stop_context(epoch=15, max_epochs=50)) is GO
    # cached by prefix: the same answer without refitting
    assert stopper.extrapolation(bad[:15], 50) is stopper.extrapolation(bad[:15], 50)


def test_domhan_bad_input():
    with pytest.raises(ValueError, match="threshold"):
        DomhanStopper(threshold=0.0)
    with pytest.raises(ValueError, match="min_epochs"):
        DomhanStopper(min_epochs=1)
    with pytest.raises(ValueError, match="nosuch"):
        extrapolate([1.0, 2.0, 3.0], 10, models=["nosuch"])
    with pytest.raises(ValueError, match="max_epochs"):
        extrapolate([1.0, 2.0, 3.0], 2)


# -- Baker et al. 2018 -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def baker_runs():
    from nasmeta.evaluation.runs import runs_from_meta
    from nasmeta.evaluation.synthetic import synthetic_meta

    return runs_from_meta(synthetic_meta(n_tasks=2, n_runs=27, epochs=12, seed=3))


@pytest.fixture(scope="module")
def baker(baker_runs):
    from nasmeta.blackbox.baker import BakerStopper

    return BakerStopper(threshold=0.05, min_epochs=3).fit(baker_runs)


def test_baker_fits_and_stops_clearly_bad_curves(baker, baker_runs, tmp_path):
    from nasmeta.blackbox.baker import BakerStopper

    stopper = baker
    assert sorted(stopper.models) == list(range(3, 12))
    assert stopper.arch_space == "nb201"
    best_run = max(baker_runs, key=lambda r: r.final_val_acc)
    ctx = stop_context(
        epoch=5, max_epochs=12, completed_curves=[best_run.curve], completed_finals=[best_run.final_val_acc]
    )
    ctx = dataclasses.replace(ctx, arch=best_run.arch)
    bad = np.array([10.0, 11.0, 11.5, 11.7, 11.8])
    assert stopper.decide(bad, ctx) is STOP
    assert stopper.decide(best_run.curve[:5], ctx) is GO
    # its predictions on training curves are close to the truth (mean absolute error in accuracy points)
    errors = [
        abs(stopper.predict_final(r.curve[:6], stop_context(epoch=6, max_epochs=12, arch=r.arch)) - r.final_val_acc)
        for r in baker_runs
    ]
    assert np.mean(errors) < 2.0
    # save / load gives the same predictions
    loaded = BakerStopper.load(stopper.save(tmp_path / "baker"))
    for r in baker_runs[:5]:
        context = stop_context(epoch=6, max_epochs=12, arch=r.arch)
        assert loaded.predictive(r.curve[:4], context) == stopper.predictive(r.curve[:4], context)


def test_baker_bad_input(baker):
    from nasmeta.blackbox.baker import BakerStopper

    with pytest.raises(ValueError, match="not fitted"):
        BakerStopper().decide([1.0, 2.0, 3.0], stop_context(epoch=3, max_epochs=12))
    with pytest.raises(ValueError, match="min_epochs"):
        BakerStopper(min_epochs=2)
    with pytest.raises(ValueError, match="no completed runs|none"):
        BakerStopper().fit([])
    with pytest.raises(ValueError, match="max_epochs=20"):
        baker.predict_final([1.0, 2.0, 3.0], stop_context(epoch=3, max_epochs=20))
    with pytest.raises(ValueError, match="arch=None"):
        baker.predict_final([1.0, 2.0, 3.0], stop_context(epoch=3, max_epochs=12))
