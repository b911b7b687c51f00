"""Random search and regularised evolution (Real et al. 2019): bookkeeping, aging, failures, and the NB201 result."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nasmeta.blackbox import random_search, regularized_evolution
from nasmeta.evaluators import Evaluation, Evaluator
from nasmeta.reporting import ListReporter
from nasmeta.spaces import Architecture, get_space

MACRO = get_space("macro")


class SyntheticEvaluator(Evaluator):
    """A fixed random linear score of the one-hot features; fails for architectures in ``failing``."""

    max_epochs = 1

    def __init__(self, failing=lambda arch: False) -> None:
        self.weights = np.random.default_rng(123).normal(size=MACRO.features(MACRO.parse("00000000")).shape)
        self.failing = failing

    def evaluate(self, arch: Architecture, epochs: int | None = None, seed: int = 0) -> Evaluation:
        score = float(MACRO.features(arch) @ self.weights)
        if self.failing(arch):
            return Evaluation(arch, 1e9, 1e9, 2.0, 1, status="failed", error=f"synthetic failure of {arch}")
        return Evaluation(arch, score, score + 0.5, 2.0, 1)


@pytest.mark.parametrize("search", [random_search, regularized_evolution])
def test_one_report_per_evaluation_and_best_by_validation(search) -> None:
    reporter = ListReporter()
    result = search(MACRO, SyntheticEvaluator(), 40, seed=1, reporter=reporter)
    assert result.n_evaluations == len(result.history) == len(reporter.rows) == len(result.trace) == 40
    assert [row["step"] for row in reporter.rows] == list(range(1, 41))
    best = max(result.history, key=lambda e: e.val_acc)
    assert result.best_arch == best.arch and result.best_val_acc == best.val_acc
    assert result.best_test_acc == best.val_acc + 0.5
    assert reporter.rows[-1]["best_val_acc"] == result.best_val_acc
    assert [row["best_val_acc"] for row in reporter.rows] == sorted(row["best_val_acc"] for row in reporter.rows)
    assert result.cost_seconds >= 80.0  # 40 simulated evaluations of 2 s plus the search's own overhead
    again = search(MACRO, SyntheticEvaluator(), 40, seed=1)
    assert [e.arch for e in again.history] == [e.arch for e in result.history]
    other = search(MACRO, SyntheticEvaluator(), 40, seed=2)
    assert [e.arch for e in other.history] != [e.arch for e in result.history]


@pytest.mark.parametrize("search", [random_search, regularized_evolution])
def test_failed_evaluations_are_never_selected(search) -> None:
    # fail every architecture whose first layer is 2: about a third of all evaluations
    evaluator = SyntheticEvaluator(failing=lambda arch: arch.encoding[0] == 2)
    reporter = ListReporter()
    result = search(MACRO, evaluator, 60, seed=0, reporter=reporter)
    failed = [e for e in result.history if e.status == "failed"]
    assert failed and result.extra["n_failed"] == len(failed)
    assert result.best_arch.encoding[0] != 2 and result.best_val_acc < 1e9
    assert all(not math.isnan(row["best_val_acc"]) or row["status"] == "failed" for row in reporter.rows)


def test_all_failed_raises() -> None:
    with pytest.raises(RuntimeError, match="none of 5 evaluations completed.*synthetic failure"):
        random_search(MACRO, SyntheticEvaluator(failing=lambda arch: True), 5)


def test_aging_parents_come_from_the_last_population_size_members() -> None:
    """After the random initial population, each child is a one-layer mutation of a member of the current
    population, i.e. of one of the last ``P`` completed evaluations (the oldest die; the best do not persist)."""
    population, n = 8, 120
    result = regularized_evolution(MACRO, SyntheticEvaluator(), n, population_size=population, sample_size=3, seed=4)
    archs = [e.arch.encoding for e in result.history]
    for k in range(population, n):
        alive = archs[k - population : k]
        assert any(sum(a != b for a, b in zip(parent, archs[k], strict=True)) == 1 for parent in alive), k


def test_evolution_improves_on_the_synthetic_landscape() -> None:
    scores = {
        name: np.mean([fn(MACRO, SyntheticEvaluator(), 80, seed=s).best_val_acc for s in range(10)])
        for name, fn in (("rs", random_search), ("re", regularized_evolution))
    }
    optimum = float(np.maximum.reduce(SyntheticEvaluator().weights.reshape(8, 3), axis=1).sum())
    assert scores["re"] > scores["rs"] and scores["re"] <= optimum


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="n_evaluations.*0"):
        random_search(MACRO, SyntheticEvaluator(), 0)
    with pytest.raises(ValueError, match="sample_size \\(5\\).*population_size \\(4\\)"):
        regularized_evolution(MACRO, SyntheticEvaluator(), 10, population_size=4, sample_size=5)
    with pytest.raises(ValueError, match="population_size.*0"):
        regularized_evolution(MACRO, SyntheticEvaluator(), 10, population_size=0, sample_size=1)


def test_evolution_beats_random_search_on_nb201_cifar10(data_dir) -> None:
    """Published (Dong & Yang 2020, "NAS-Bench-201", Table 5, CIFAR-10 test): REA 93.92 +- 0.30, RS 93.70 +- 0.36.

    Protocol as NB201's baselines: select on the 12-epoch validation accuracy, report the 200-epoch test
    accuracy; NB201's REA settings (population 10, sample 3); 100 evaluations each; 20 seeds.  Not tuned: REA
    also wins at 150 evaluations and with population 20 / sample 5 (see the report of this change).
    """
    from nasmeta.data.benchmarks import TabularEvaluator

    space = get_space("nb201")
    evaluator = TabularEvaluator("nb201", "cifar10", max_epochs=200, val_at_200="val12")
    rs = [random_search(space, evaluator, 100, seed=s).best_test_acc for s in range(20)]
    rea = [regularized_evolution(space, evaluator, 100, 10, 3, seed=s).best_test_acc for s in range(20)]
    print(
        f"\nNB201 cifar10, 100 evaluations, 20 seeds: REA {np.mean(rea):.2f} +- {np.std(rea):.2f}, "
        f"RS {np.mean(rs):.2f} +- {np.std(rs):.2f} (published REA 93.92, RS 93.70)"
    )
    assert np.mean(rea) > np.mean(rs)
    # both land in the published range: far above the table's median cell, below its optimum 94.37
    assert 93.0 < np.mean(rs) < np.mean(rea) < 94.37
