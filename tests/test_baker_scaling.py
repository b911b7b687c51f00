"""Baker's scaling options (issue 19, 9a): ``max_runs`` fits on a seeded subsample spread evenly over the
datasets, ``retune_every`` runs the grid search for every k-th SRM only; the defaults are the exact method."""

from __future__ import annotations

import pytest

from nasmeta.blackbox import baker as baker_module
from nasmeta.blackbox.baker import BakerStopper, _subsample
from nasmeta.evaluation.runs import runs_from_meta
from nasmeta.evaluation.synthetic import synthetic_meta
from nasmeta.search.context import stop_context


@pytest.fixture(scope="module")
def runs():
    return runs_from_meta(synthetic_meta(n_tasks=3, n_runs=20, epochs=9, seed=2))


def test_subsample_is_even_over_datasets_and_seeded() -> None:
    import numpy as np

    groups = np.array(["a"] * 50 + ["b"] * 5 + ["c"] * 50)
    chosen = _subsample(groups, 31, seed=0)
    counts = {g: int((groups[chosen] == g).sum()) for g in "abc"}
    assert counts == {"a": 13, "b": 5, "c": 13} and len(set(chosen.tolist())) == 31
    assert chosen.tolist() == _subsample(groups, 31, seed=0).tolist()
    assert chosen.tolist() != _subsample(groups, 31, seed=1).tolist()


def test_retune_every_and_max_runs_cut_the_grid_searches(runs, monkeypatch: pytest.MonkeyPatch) -> None:
    fits: list[int] = []
    real = baker_module.GridSearchCV

    class Counting(real):
        def fit(self, X, y=None, **kwargs):
            fits.append(len(X))
            return super().fit(X, y, **kwargs)

    monkeypatch.setattr(baker_module, "GridSearchCV", Counting)
    exact = BakerStopper(min_epochs=3).fit(runs)
    assert len(fits) == 6 and set(fits) == {60}  # one grid search per SRM (tau = 3..8) on every run
    fits.clear()
    fast = BakerStopper(min_epochs=3, max_runs=30, retune_every=4).fit(runs)
    assert len(fits) == 2 and set(fits) == {30}  # tau = 3 and 7 only, on 30 runs
    assert sorted(fast.models) == sorted(exact.models) == list(range(3, 9))
    r = runs[0]
    predicted = fast.predict_final(r.curve[:5], stop_context(epoch=5, max_epochs=9, arch=r.arch))
    assert abs(predicted - r.final_val_acc) < 15.0
    with pytest.raises(ValueError, match="max_runs"):
        BakerStopper(max_runs=2)
    with pytest.raises(ValueError, match="retune_every"):
        BakerStopper(retune_every=0)
