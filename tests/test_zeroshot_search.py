"""Zero-shot search: mean-rank aggregation, constraints, reproducibility, top-k evaluation, the correlation
helpers, the store writer, the CLI, and (with the real data) NB201 correlations and search quality."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from nasmeta.evaluators import Evaluation, Evaluator
from nasmeta.spaces import get_space
from nasmeta.zeroshot.batch import Batch
from nasmeta.zeroshot.correlate import pair_accuracy, published_spearman, rank_correlation
from nasmeta.zeroshot.search import (
    Constraints,
    ScoredArch,
    combine_ranks,
    rank_candidates,
    rank_scores,
    sample_architectures,
    score_architectures,
    zero_shot_search,
)

TINY = {"C": 4, "N": 1}


@pytest.fixture(scope="module")
def nb201():
    return get_space("nb201")


@pytest.fixture(scope="module")
def batch() -> Batch:
    return Batch.random((3, 8, 8), num_classes=10, size=128, seed=0)


def test_rank_scores_average_ties_and_put_nan_last() -> None:
    assert rank_scores([3.0, math.nan, 1.0, 3.0]).tolist() == [3.5, 1.0, 2.0, 3.5]
    assert rank_scores([-math.inf, math.nan, 0.0]).tolist() == [1.5, 1.5, 3.0]
    # a (2 better than 1 better than 0) and b (0 better than 2 better than 1): mean ranks 2, 1.5, 2.5
    assert combine_ranks({"a": [0.1, 0.5, 0.9], "b": [7.0, 5.0, 6.0]}).tolist() == [2.0, 1.5, 2.5]
    with pytest.raises(ValueError, match="differ in length"):
        combine_ranks({"a": [1.0, 2.0], "b": [1.0]})
    with pytest.raises(ValueError, match="at least one"):
        combine_ranks({})


def test_rank_candidates_drops_a_proxy_that_applies_nowhere_and_breaks_ties_by_id(nb201) -> None:
    archs = sample_architectures(nb201, 3, seed=0)
    scored = [
        ScoredArch(a, a.arch_id, 10, scores={"synflow": s, "naswot": math.nan})
        for a, s in zip(archs, [1.0, 2.0, 2.0], strict=True)
    ]
    ranking, used = rank_candidates(scored, ["synflow", "naswot"])
    assert used == ["synflow"]
    assert [s.vote for s in ranking] == [2.5, 2.5, 1.0]
    assert ranking[0].arch_id < ranking[1].arch_id
    with pytest.raises(ValueError, match="none of the proxies"):
        rank_candidates(scored, ["naswot"])


def test_constraints_validate_and_report_violations() -> None:
    with pytest.raises(ValueError):
        Constraints(max_params=0)
    with pytest.raises(ValueError):
        Constraints(max_latency_ms=-1.0)
    c = Constraints(max_params=100, max_flops=1e6)
    assert c.violations(100, 1e6, None) == []
    assert c.violations(101, 2e6, None) == ["params 101 > 100", "flops 2e+06 > 1e+06"]


def test_sample_architectures_distinct_and_seeded(nb201) -> None:
    a = sample_architectures(nb201, 50, seed=3)
    assert len({x.arch_id for x in a}) == 50
    assert a == sample_architectures(nb201, 50, seed=3)
    assert a != sample_architectures(nb201, 50, seed=4)
    with pytest.raises(ValueError, match="n_samples"):
        sample_architectures(nb201, 0, seed=0)


def test_search_is_reproducible_and_ranks_by_the_vote(nb201, batch: Batch) -> None:
    kwargs = dict(n_samples=8, seed=5, build_kwargs=TINY)
    rng = torch.random.get_rng_state()
    first = zero_shot_search(nb201, batch, ["synflow", "params"], **kwargs)
    assert torch.equal(torch.random.get_rng_state(), rng)
    again = zero_shot_search(nb201, batch, ["synflow", "params"], **kwargs)
    assert first.extra["ranking"] == again.extra["ranking"]
    ranking = first.extra["ranking"]
    votes = combine_ranks({p: [r[f"score/{p}"] for r in ranking] for p in ("synflow", "params")})
    assert [r["vote"] for r in ranking] == pytest.approx(votes.tolist())
    assert all(a["vote"] >= b["vote"] for a, b in zip(ranking, ranking[1:], strict=False))
    assert str(first.best_arch) == ranking[0]["arch"]
    assert first.method == "zeroshot" and first.n_evaluations == 0 and first.best_val_acc is None
    rows = first.extra["rows"]
    assert len(rows) == 16 and {r["proxy"] for r in rows} == {"synflow", "params"}
    assert all(r["seed"] == 5 for r in rows)


def test_max_params_constraint_filters_before_scoring(nb201, batch: Batch) -> None:
    archs = sample_architectures(nb201, 12, seed=1)
    free = score_architectures(nb201, archs, batch, ["params"], build_kwargs=TINY)
    bound = int(np.median([s.params for s in free]))
    result = zero_shot_search(
        nb201, batch, ["synflow"], archs=archs, build_kwargs=TINY, constraints=Constraints(max_params=bound)
    )
    assert all(r["params"] <= bound for r in result.extra["ranking"])
    assert result.extra["n_infeasible"] == sum(s.params > bound for s in free) > 0
    infeasible = [t for t in result.trace if not t["feasible"]]
    assert all("score/synflow" not in t for t in infeasible)
    with pytest.raises(ValueError, match="no architecture satisfies"):
        zero_shot_search(
            nb201, batch, ["synflow"], archs=archs, build_kwargs=TINY, constraints=Constraints(max_params=1)
        )


class _ByParamsEvaluator(Evaluator):
    """A deterministic stand-in: val accuracy = 100 - (number of conv ops), so fewer convs is better."""

    max_epochs = 1

    def evaluate(self, arch, epochs=None, seed=0) -> Evaluation:
        convs = sum(op.startswith("nor_conv") for op in arch.encoding)
        return Evaluation(arch, 100.0 - convs, 50.0 - convs, 1.0, 1)


def test_top_k_evaluation_returns_the_best_by_val(nb201, batch: Batch) -> None:
    result = zero_shot_search(
        nb201, batch, ["params"], n_samples=10, seed=0, build_kwargs=TINY, top_k_evaluator=_ByParamsEvaluator(), top_k=4
    )
    assert result.n_evaluations == 4 and len(result.history) == 4
    top4 = [r["arch"] for r in result.extra["ranking"][:4]]
    assert [str(e.arch) for e in result.history] == top4
    assert result.best_val_acc == max(e.val_acc for e in result.history)
    assert result.best_test_acc == result.best_val_acc - 50.0


def test_te_nas_composite_is_the_mean_rank_of_its_parts(nb201, batch: Batch) -> None:
    archs = sample_architectures(nb201, 3, seed=2)
    scored = score_architectures(
        nb201,
        archs,
        batch,
        ["te_nas"],
        build_kwargs=TINY,
        proxy_options={"ntk": {"chunk_size": None}, "linear_regions": {"n_samples": 300}},
    )
    expected = combine_ranks({p: [s.scores[p] for s in scored] for p in ("ntk", "linear_regions")})
    assert [s.scores["te_nas"] for s in scored] == expected.tolist()
    assert all(s.seconds["te_nas"] == s.seconds["ntk"] + s.seconds["linear_regions"] for s in scored)
    with pytest.raises(ValueError, match="not among the proxies"):
        score_architectures(nb201, archs, batch, ["synflow"], proxy_options={"naswot": {}})


def test_rank_correlation_and_pair_accuracy_by_hand() -> None:
    up = rank_correlation([1.0, 2.0, 3.0, 4.0], [10.0, 20.0, 30.0, 40.0])
    assert (up.spearman, up.kendall, up.pair_accuracy, up.n) == (1.0, 1.0, 1.0, 4)
    down = rank_correlation([4.0, 3.0, 2.0, 1.0], [10.0, 20.0, 30.0, 40.0])
    assert (down.spearman, down.pair_accuracy) == (-1.0, 0.0)
    # score ties count one half; pairs tied in truth are not counted; NaN scores rank last
    assert pair_accuracy([1.0, 1.0, 2.0], [1.0, 2.0, 3.0]) == pytest.approx(2.5 / 3)
    assert pair_accuracy([1.0, 2.0, 3.0], [1.0, 1.0, 2.0]) == 1.0
    assert pair_accuracy([math.nan, 1.0, 2.0], [0.0, 1.0, 2.0]) == 1.0
    assert published_spearman("naswot") == 0.77 and published_spearman("synflow", "cifar100") == 0.76
    assert published_spearman("te_nas") is None
    with pytest.raises(ValueError, match="at least 3"):
        rank_correlation([1.0, 2.0], [1.0, 2.0])


def test_write_scores_round_trip(tmp_path, nb201, batch: Batch) -> None:
    from metadata_store import MetadataStore
    from nasmeta.zeroshot.store import write_architectures, write_scores

    store = MetadataStore(tmp_path / "store")
    result = zero_shot_search(nb201, batch, ["synflow", "params"], n_samples=3, seed=1, build_kwargs=TINY)
    rows = result.extra["rows"] + [{"arch_id": "x", "proxy": "naswot", "value": math.nan, "seconds": 0.0}]
    assert write_scores(store, "task-1", rows) == 7
    table = store.read("proxy_scores", task_id="task-1").to_pylist()
    assert len(table) == 7 and {r["seed"] for r in table} == {1, 0}
    by_key = {(r["arch_id"], r["proxy"]): r["value"] for r in table}
    assert by_key[("x", "naswot")] is None
    for row in result.extra["rows"]:
        assert by_key[(row["arch_id"], row["proxy"])] == row["value"]
    scored = score_architectures(nb201, [result.best_arch], batch, ["params"], build_kwargs=TINY)
    assert write_architectures(store, scored) == 1
    assert store.read("architectures").to_pylist()[0]["arch_str"] == str(result.best_arch)
    with pytest.raises(ValueError, match="lacks"):
        write_scores(store, "task-1", [{"arch_id": "x", "proxy": "naswot"}])


def test_scatter_figure_titles_the_correlation() -> None:
    from nasmeta.zeroshot.plots import scatter_figure

    figure = scatter_figure([1.0, 2.0, math.nan, 4.0], [10.0, 20.0, 5.0, 40.0], "naswot")
    title = figure.axes[0].get_title()
    assert "Spearman 1.000" in title and "1 not finite" in title
    assert len(figure.axes[0].collections[0].get_offsets()) == 3


# -- command line -------------------------------------------------------------------------------------------------
def _cli(*args: str):
    from flows.cli import app

    return CliRunner().invoke(app, list(args))


def test_cli_proxies_list_and_score(tmp_path) -> None:
    listed = _cli("proxies", "list")
    assert listed.exit_code == 0
    assert all(name in listed.output for name in ("synflow", "naswot", "te_nas", "linear_regions", "zen"))
    out = tmp_path / "scores.csv"
    scored = _cli(
        "proxies", "score", "--task", "digits", "--proxy", "synflow", "--proxy", "params", "--sample", "2",
        "--size", "C=4", "--size", "N=1", "--out", str(out),
    )  # fmt: skip
    assert scored.exit_code == 0, scored.output
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["arch", "proxy", "score", "seconds"]
    assert len(rows) == 4 and {r["proxy"] for r in rows} == {"synflow", "params"}
    archs = tmp_path / "archs.txt"
    archs.write_text(rows[0]["arch"] + "\n")
    store = tmp_path / "store"
    again = _cli(
        "proxies", "score", "--task", "digits", "--archs", str(archs), "--size", "C=4", "--size", "N=1",
        "--store", str(store),
    )  # fmt: skip
    assert again.exit_code == 0, again.output
    from metadata_store import MetadataStore

    stored = MetadataStore(store).read("proxy_scores").to_pylist()
    assert [(r["proxy"], r["seed"]) for r in stored] == [("synflow", 42)]
    assert rows[0]["proxy"] == "synflow" and stored[0]["value"] == pytest.approx(float(rows[0]["score"]), rel=1e-12)
    bad = _cli("proxies", "score", "--task", "digits", "--proxy", "bogus", "--sample", "1")
    assert bad.exit_code == 2 and "bogus" in bad.output
    both = _cli("proxies", "score", "--task", "digits", "--sample", "1", "--archs", str(archs))
    assert both.exit_code == 2 and "exactly one" in both.output


def test_cli_search_zeroshot_with_a_params_bound() -> None:
    result = _cli(
        "search", "zeroshot", "--task", "digits", "--sample", "6", "--proxy", "params", "--proxy", "synflow",
        "--size", "C=4", "--size", "N=1", "--max-params", "20000",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "best:" in result.output and "feasible of 6" in result.output


# -- real data: NB201 + CIFAR-10 -----------------------------------------------------------------------------------
def test_nb201_correlations_small(data_dir, nb201) -> None:
    """80 cells at reduced size (C=8, N=1) with the cheap proxies; the full table is
    benchmarks/proxy_correlations.py.  Bounds are looser than issue 5's 1,000-cell targets (0.70)."""
    from nasmeta.data.tasks import get_task
    from nasmeta.zeroshot.correlate import correlate_proxies, table_accuracy

    batch = Batch.from_task(get_task("cifar10").load(), size=64, seed=42)
    archs = sample_architectures(nb201, 80, seed=42)
    report = correlate_proxies(
        nb201,
        archs,
        batch,
        ["synflow", "params", "naswot"],
        table_accuracy("nb201", "cifar10"),
        vote=["synflow", "params", "naswot"],
        build_kwargs={"C": 8, "N": 1},
    )
    rho = {k: v.spearman for k, v in report.correlations.items()}
    assert rho["synflow"] >= 0.6 and rho["params"] >= 0.6 and rho["naswot"] >= 0.6, rho
    assert rho["vote"] >= max(rho["synflow"], rho["params"], rho["naswot"]) - 0.03, rho


@pytest.mark.slow
def test_zero_shot_search_n100_beats_the_median_cell_over_10_seeds(data_dir, nb201) -> None:
    """NASWOT's protocol (N=100 samples, keep the top-voted) with the data-free synflow + params at reduced size
    (C=4, N=1) to fit the test budget; every seed's pick must beat the median NB201 cell (90.75 on CIFAR-10)."""
    from nasmeta.data.benchmarks import TabularEvaluator, nb201_table

    median = float(np.median(nb201_table().columns["cifar10_test_200ep"]))
    evaluator = TabularEvaluator("nb201", "cifar10")
    batch = Batch.random((3, 32, 32), num_classes=10, size=1, seed=0)
    picks = []
    for seed in range(10):
        result = zero_shot_search(
            nb201, batch, ["synflow", "params"], n_samples=100, seed=seed, build_kwargs=TINY, top_k_evaluator=evaluator
        )
        picks.append(result.best_test_acc)
    assert min(picks) > median, picks
    assert np.mean(picks) > 92.0, picks


def test_cli_proxies_correlate_prints_every_proxy_and_the_vote(data_dir) -> None:
    result = _cli(
        "proxies", "correlate", "--sample", "12", "--proxy", "synflow", "--proxy", "params",
        "--size", "C=4", "--size", "N=1",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "synflow" in result.output and "vote(synflow+params)" in result.output and "0.74" in result.output
    bad = _cli("proxies", "correlate", "--dataset", "mnist", "--sample", "5")
    assert bad.exit_code == 2 and "mnist" in bad.output
