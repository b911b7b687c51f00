"""NAO (encoder / predictor / decoder, gradient ascent in the embedding) and XferNAS (universal surrogate + task
residual): the tokens -> architecture inverse, reconstruction, ascent, proposals, the residual, persistence, bad
inputs, and the search / pool methods through their registries."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import torch

from nasmeta.evaluators import Evaluation, Evaluator
from nasmeta.spaces import get_space


def _distinct(space, n: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    found: dict = {}
    while len(found) < n:
        arch = space.sample(rng)
        found.setdefault(arch.arch_id, arch)
    return list(found.values())


class _CountEvaluator(Evaluator):
    """A lookup without training: validation accuracy = 10 x the number of ``good`` ops in the cell's tokens."""

    max_epochs = 1

    def __init__(self, space, good: tuple[str, ...]) -> None:
        self.space, self.good = space, good

    def evaluate(self, arch, epochs=None, seed=0) -> Evaluation:
        ops = [op for cell in arch.encoding for op in (cell if isinstance(cell[0], tuple) else [cell])]
        names = [op[0] if isinstance(op, tuple) else op for op in ops]
        value = 10.0 * sum(name in self.good for name in names)
        return Evaluation(arch, value, value, 1.0, 1)


def _quality(arch, weights: dict[str, float]) -> float:
    return float(sum(weights.get(op, 0.0) for op in arch.encoding))


# -- tokens -> architecture ------------------------------------------------------------------------------------------
def test_tokens_round_trip_on_every_nb201_cell_and_on_sampled_darts_genotypes() -> None:
    nb201 = get_space("nb201")
    for arch in nb201.enumerate():
        assert nb201.from_tokens(nb201.tokens(arch)) == arch
    for name in ("darts", "darts-s1", "darts-s3"):
        space = get_space(name)
        choices = space.token_choices()
        for arch in _distinct(space, 100, seed=1):
            tokens = space.tokens(arch)
            back = space.from_tokens(tokens)
            assert back.arch_id == arch.arch_id and space.tokens(back) == tokens
            assert all(t in c for t, c in zip(tokens, choices, strict=True))


def test_every_sequence_built_from_next_token_choices_is_a_valid_genotype() -> None:
    rng = np.random.default_rng(4)
    for name in ("darts", "darts-s1", "darts-s4"):
        space = get_space(name)
        for arch in _distinct(space, 30, seed=6):
            tokens = space.tokens(arch)
            assert all(tokens[p] in space.next_token_choices(tokens[:p]) for p in range(len(tokens)))
        for _ in range(100):
            prefix: list[int] = []
            while len(prefix) < 32:
                prefix.append(int(rng.choice(space.next_token_choices(prefix))))
            space.from_tokens(prefix)  # raises if invalid
    with pytest.raises(ValueError, match="prefix of 32"):
        get_space("darts").next_token_choices([0] * 32)


def test_bad_tokens_raise_value_errors_naming_the_value() -> None:
    nb201, darts = get_space("nb201"), get_space("darts")
    with pytest.raises(ValueError, match="token 5 at position 2"):
        nb201.from_tokens([0, 1, 5, 3, 4, 0])
    with pytest.raises(ValueError, match="expected 6 tokens, got 5"):
        nb201.from_tokens([0, 1, 2, 3, 4])
    with pytest.raises(ValueError, match="'x' at position 0"):
        nb201.from_tokens(["x", 1, 2, 3, 4, 0])
    tokens = darts.tokens(darts.sample(np.random.default_rng(0)))
    twice = list(tokens)
    twice[2] = twice[0]  # node 2 takes the same input twice
    with pytest.raises(ValueError, match="takes input"):
        darts.from_tokens(twice)
    bad_op = list(tokens)
    bad_op[1] = 5  # op token of 'none'
    with pytest.raises(ValueError, match="'none'"):
        darts.from_tokens(bad_op)


# -- the NAO model ---------------------------------------------------------------------------------------------------
def test_the_decoder_reconstructs_its_training_cells_and_ascent_raises_the_score() -> None:
    import torch.nn.functional as F

    from nasmeta.blackbox.nao import NAOConfig, NAOModel, as_tokens, reconstruct, train_nao

    space = get_space("nb201")
    archs = _distinct(space, 40, seed=2)
    labels = np.array([_quality(a, {"nor_conv_3x3": 1.0, "none": -1.0}) for a in archs])
    config = NAOConfig()
    model = NAOModel(space.token_choices(), space.vocab_size, config)
    losses = train_nao(model, as_tokens(space, archs), labels / 6.0, config, 80, seed=0)
    assert losses[-1] < 0.2 * losses[0]
    quality = reconstruct(model, space, archs)
    assert quality["token_accuracy"] >= 0.95 and quality["valid_share"] == 1.0

    outputs = model.encode(as_tokens(space, archs[:10])).detach().requires_grad_(True)
    model.score(outputs).sum().backward()
    with torch.no_grad():
        before = model.score(outputs)
        after = model.score(F.normalize(outputs + 0.05 * outputs.grad, dim=-1))
    assert bool((after > before).all())


def test_nao_proposes_only_valid_new_cells_and_finds_better_ones_than_its_start() -> None:
    from nasmeta.blackbox.nao import NAOSearcher
    from nasmeta.search.loop import run_search

    for name, good in (("nb201", ("nor_conv_3x3",)), ("darts", ("sep_conv_3x3",))):
        space = get_space(name)
        searcher = NAOSearcher(space, 0, n_initial=6, top_k=4, epochs=60)
        result = run_search(searcher, _CountEvaluator(space, good), 18, seed=0)
        ids = [e.arch.arch_id for e in result.history]
        assert len(ids) == 18 and len(set(ids)) == 18
        for e in result.history:
            assert space.from_tokens(space.tokens(e.arch)).arch_id == e.arch.arch_id
        # most cells after the initial batch come from gradient ascent, not from the random fallback
        assert searcher.stats["refits"] >= 2 and searcher.stats["random_fallback"] <= 2
        initial = max(e.val_acc for e in result.history[:6])
        assert max(e.val_acc for e in result.history[6:]) > initial, name


# -- XferNAS ---------------------------------------------------------------------------------------------------------
SOURCE = {"nor_conv_3x3": 1.0, "nor_conv_1x1": 0.5, "none": -1.0}
TARGET = {**SOURCE, "avg_pool_3x3": 1.5}  # the target also rewards pooling, which no source does


@functools.cache
def _xfernas(seed: int = 0):
    """One fitted component shared by the tests (none of them changes it: searchers copy its model)."""
    from nasmeta.transfer.xfernas import XferNAS

    space = get_space("nb201")
    data = {}
    for task, shift in (("a", 0.0), ("b", 30.0)):
        archs = _distinct(space, 150, seed=10 + int(shift))
        data[task] = (archs, [shift + _quality(a, SOURCE) for a in archs])
    return XferNAS(universal_epochs=30, seed=seed).fit_tasks(data)


def test_the_residual_lowers_the_target_error_of_the_universal_part() -> None:
    from nasmeta.blackbox.nao import percentile_labels, predict
    from nasmeta.evaluation.metrics import rank_correlations

    space = get_space("nb201")
    xfernas = _xfernas()
    held = _distinct(space, 400, seed=99)
    fit, test = held[:60], held[60:]
    actual = [_quality(a, TARGET) for a in test]
    universal = xfernas.predict(test)
    searcher = xfernas.searcher(0)
    searcher.fit([Evaluation(a, _quality(a, TARGET), 0.0, 1.0, 1) for a in fit])
    both = predict(searcher.model, space, test)
    label = percentile_labels(actual)
    assert np.mean((both - label) ** 2) < 0.8 * np.mean((universal - label) ** 2)
    assert rank_correlations(both, actual)["kendall_tau"] > rank_correlations(universal, actual)["kendall_tau"]
    # the universal part itself is untouched by the residual (frozen), and a fresh searcher starts from g_u alone
    assert np.array_equal(xfernas.predict(test), universal)
    np.testing.assert_allclose(predict(xfernas.searcher(1).model, space, test), universal, atol=1e-6)


def test_xfernas_saves_loads_and_searches_identically(tmp_path: Path) -> None:
    from nasmeta.search.loop import run_search
    from nasmeta.transfer.registry import component_class
    from nasmeta.transfer.xfernas import XferNAS

    assert component_class("xfernas") is XferNAS
    xfernas = _xfernas()
    loaded = XferNAS.load(xfernas.save(tmp_path / "x"))
    archs = _distinct(get_space("nb201"), 50, seed=5)
    assert np.array_equal(loaded.predict(archs), xfernas.predict(archs))
    assert [a.arch_id for a in loaded.propose("t", 5)] == [a.arch_id for a in xfernas.propose("t", 5)]
    space = get_space("nb201")
    runs = [
        [
            e.arch.arch_id
            for e in run_search(x.searcher(3, top_k=3), _CountEvaluator(space, ("avg_pool_3x3",)), 12).history
        ]
        for x in (xfernas, loaded)
    ]
    assert runs[0] == runs[1] and len(set(runs[0])) == 12
    # its first cells are the ones the universal part ranks highest among the sources
    assert runs[0][:5] == [a.arch_id for a in xfernas.propose("t", 5)]


def test_bad_inputs_raise_value_errors_naming_the_value() -> None:
    from nasmeta.blackbox.nao import NAOSearcher
    from nasmeta.transfer.xfernas import XferNAS

    space = get_space("nb201")
    with pytest.raises(ValueError, match="n_initial"):
        XferNAS(n_initial=0)
    with pytest.raises(ValueError, match="'c' needs >= 2 architectures"):
        XferNAS().fit_tasks({"c": ([space.sample(np.random.default_rng(0))], [1.0])})
    with pytest.raises(ValueError, match="one space at a time"):
        XferNAS().fit_tasks(
            {"a": (_distinct(space, 2, 0), [1.0, 2.0]), "b": (_distinct(get_space("darts"), 2, 0), [1.0, 2.0])}
        )
    with pytest.raises(ValueError, match="seed must be an integer, got 'x'"):
        NAOSearcher(space, "x")
    with pytest.raises(ValueError, match="top_k"):
        NAOSearcher(space, 0, top_k=0)
    xfernas = _xfernas()
    with pytest.raises(ValueError, match="n must be a positive integer, got 0"):
        xfernas.propose("t", 0)
    with pytest.raises(ValueError, match="fitted on space 'nb201'"):
        xfernas.predict([get_space("darts").sample(np.random.default_rng(0))])
    with pytest.raises(RuntimeError, match="not fitted"):
        XferNAS().predict([space.sample(np.random.default_rng(0))])


# -- through the registries -------------------------------------------------------------------------------------------
def test_the_search_methods_run_through_the_registry_on_a_tiny_budget(tmp_path: Path) -> None:
    from nasmeta.search.registry import components_needed, parse_method
    from nasmeta.search.target import SearchContext, run_method

    assert parse_method("blackbox-nao+sh", "darts").info.family == "black-box"
    assert components_needed(["transfer-xfernas"]) == ["xfernas"]
    budget = {"preset": "micro", "evaluations": 4}
    path = _xfernas().save(tmp_path / "xfernas")
    for method in ("blackbox-nao", "transfer-xfernas"):
        ctx = SearchContext.create("nb201", "digits-0to4", budget, components={"xfernas": str(path)})
        result = run_method(method, ctx)
        ids = [e.arch.arch_id for e in result.history]
        assert len(ids) == 4 and len(set(ids)) == 4 and result.best_arch is not None
        stats = result.extra["nao" if method == "blackbox-nao" else "xfernas"]
        assert stats["refits"] >= 1 and stats["valid_share"] == 1.0
    darts_ctx = SearchContext.create("darts", "digits-0to4", budget, components={"xfernas": str(path)})
    with pytest.raises(ValueError, match="fitted on space 'nb201'"):
        run_method("transfer-xfernas", darts_ctx)


def test_nao_and_xfernas_run_in_the_pool_lodo() -> None:
    import pandas as pd

    from metadata_store import MetaDataset
    from nasmeta.evaluation.pool_lodo import pool_lodo
    from nasmeta.evaluation.synthetic import synthetic_tables

    meta = MetaDataset.from_tables(**synthetic_tables(3, 30, 30, seed=3))
    quick = {"universal_epochs": 60}
    rows = pool_lodo(
        meta,
        ["random", "nao", "xfernas", "xfernas-universal"],
        seeds=[0],
        ks=(5, 10),
        errors="raise",
        method_params={"xfernas": quick, "xfernas-universal": quick},
    )
    frame = pd.DataFrame(rows).set_index("method")
    assert len(frame) == 12 and frame["regret_val@10"].notna().all() and (frame["regret_val@10"] >= 0).all()
    assert (frame.loc["xfernas", "n_sources"] == 2).all()
    # the synthetic tasks share one quality function: the universal part alone ranks an unseen task's cells
    assert frame.loc["xfernas-universal", "kendall_tau"].notna().all()
    assert (frame.loc["xfernas-universal", "kendall_tau"] > 0.3).all()
    assert frame.loc["nao", "kendall_tau"].isna().all()
