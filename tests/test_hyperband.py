"""Hyperband / successive halving: the published bracket table, promotion rule, resource mapping, bad input."""

from __future__ import annotations

import pytest

from nasmeta.blackbox.hyperband import (
    bracket,
    hyperband_brackets,
    resource_to_epochs,
    s_max,
    successive_halving,
)
from nasmeta.search.schedulers import Hyperband, SuccessiveHalving


def test_brackets_r81_eta3_match_li_et_al_2018():
    # Li, Jamieson, DeSalvo, Rostamizadeh, Talwalkar, "Hyperband: A Novel Bandit-Based Approach to
    # Hyperparameter Optimization", JMLR 18(185), 2018, Table 1 (R = 81, eta = 3); also METHODS.md.
    expected = {
        4: [(81, 1), (27, 3), (9, 9), (3, 27), (1, 81)],
        3: [(34, 3), (11, 9), (3, 27), (1, 81)],
        2: [(15, 9), (5, 27), (1, 81)],
        1: [(8, 27), (2, 81)],
        0: [(5, 81)],
    }
    brackets = hyperband_brackets(81, 3)
    assert [b.s for b in brackets] == [4, 3, 2, 1, 0]
    for b in brackets:
        assert b.pairs() == expected[b.s]
        assert all(isinstance(n, int) for n, _ in b.pairs())


def test_s_max_is_exact_at_powers_of_eta():
    # log(81) / log(3) is not exactly 4 in floating point; the integer computation must not round down
    assert s_max(81, 3) == 4
    assert s_max(80, 3) == 3
    assert s_max(1, 3) == 0
    assert s_max(243, 3) == 5
    assert [b.pairs() for b in hyperband_brackets(1, 2)] == [[(1, 1.0)]]


def test_successive_halving_promotes_exactly_the_top_third():
    b = bracket(2, 9, 3)  # (9, 1) (3, 3) (1, 9)
    assert b.pairs() == [(9, 1.0), (3, 3.0), (1, 9.0)]
    at_1 = dict(zip("abcdefghi", [5, 9, 1, 7, 3, 8, 2, 6, 4], strict=True))
    # ranks change between rungs: at r=3 the weakest of the promoted three becomes the best
    at_3 = {"b": 10.0, "f": 11.0, "d": 12.0}
    seen = []

    def evaluate(c: str, r: float) -> float:
        seen.append((c, r))
        return at_1[c] if r == 1 else at_3[c] if r == 3 else 0.0

    result = successive_halving(list("abcdefghi"), b, evaluate)
    assert set(result.members[1]) == {"b", "f", "d"}  # the three highest of nine at r=1
    assert result.members[1] == ("d", "f", "b")  # re-ranked by the r=3 values
    assert result.finalists == ("d",)
    assert [len(m) for m in result.members] == [9, 3, 1]
    assert sorted(r for _, r in seen) == [1.0] * 9 + [3.0] * 3 + [9.0]


def test_successive_halving_ties_keep_the_earlier_candidate():
    b = bracket(1, 3, 3)  # (3, 1) (1, 3)
    result = successive_halving(["x", "y", "z"], b, lambda c, r: 1.0)
    assert result.finalists == ("x",)


def test_partial_bracket_still_trains_one_to_max_resource():
    b = bracket(2, 9, 3)
    assert b.counts_for(9) == [9, 3, 1]
    assert b.counts_for(20) == [9, 3, 1]
    assert b.counts_for(4) == [4, 1, 1]
    assert b.counts_for(1) == [1, 1, 1]
    result = successive_halving(["p", "q"], b, lambda c, r: {"p": 0.0, "q": 1.0}[c])
    assert result.finalists == ("q",)


def test_schedules():
    assert SuccessiveHalving(eta=3, R=81).schedule(200)[0].pairs() == bracket(4, 81, 3).pairs()
    assert SuccessiveHalving(eta=3, R=81, s=1).schedule(200)[0].pairs() == [(8, 27.0), (2, 81.0)]
    # R=None: R is the run length in epochs (one epoch is the minimum resource)
    assert [b.s for b in Hyperband(eta=3).schedule(20)] == [2, 1, 0]
    assert Hyperband(eta=3).schedule(27)[0].pairs() == [(27, 1.0), (9, 3.0), (3, 9.0), (1, 27.0)]


def test_resource_to_epochs():
    assert resource_to_epochs(1, 81, 81) == 1
    assert resource_to_epochs(27, 81, 27) == 9
    assert resource_to_epochs(20 / 9, 20, 20) == 2
    assert resource_to_epochs(20 / 3, 20, 20) == 7  # 6.67 rounds half up
    assert resource_to_epochs(0.01, 81, 10) == 1
    assert resource_to_epochs(81, 81, 10) == 10


@pytest.mark.parametrize("eta", [1, 0, -3, 2.5, "3", True])
def test_bad_eta_names_it(eta):
    with pytest.raises(ValueError, match="eta"):
        hyperband_brackets(81, eta)
    with pytest.raises(ValueError, match="eta"):
        Hyperband(eta=eta)


@pytest.mark.parametrize("R", [0, 0.5, -1, float("nan"), float("inf")])
def test_bad_max_resource_names_it(R):  # noqa: N803
    with pytest.raises(ValueError, match="R"):
        hyperband_brackets(R, 3)
    with pytest.raises(ValueError, match="R"):
        SuccessiveHalving(R=R)


def test_bad_bracket_and_candidates():
    with pytest.raises(ValueError, match="s=5"):
        bracket(5, 81, 3)
    with pytest.raises(ValueError, match="s=5"):
        SuccessiveHalving(R=81, s=5)
    with pytest.raises(ValueError, match="empty"):
        successive_halving([], bracket(0, 81, 3), lambda c, r: 0.0)
    with pytest.raises(ValueError, match="distinct"):
        successive_halving(["a", "a"], bracket(1, 9, 3), lambda c, r: 0.0)
    with pytest.raises(ValueError, match="NaN"):
        successive_halving(["a"], bracket(0, 9, 3), lambda c, r: float("nan"))
