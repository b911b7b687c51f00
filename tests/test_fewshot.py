"""Few-shot episodes, MAML (second vs first order against finite differences) and the T-NAS meta-architecture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call
from typer.testing import CliRunner

from nasmeta.fewshot.episodes import ClassPool, EpisodeSampler, load_pools
from nasmeta.fewshot.maml import MAMLConfig, MetaLearner, clone_params, mean_ci95, meta_gradient, query_loss
from nasmeta.fewshot.nets import ConvNet4, cell_network
from nasmeta.search_result import SearchResult
from nasmeta.spaces import get_space
from nasmeta.transfer.base import MetaArchitecture
from nasmeta.transfer.tnas import TNAS, TNASConfig, darts_from_scratch, tnas_search


def prototype_pool(n_classes: int, per_class: int, side: int = 8, seed: int = 0, noise: float = 0.3) -> ClassPool:
    """Each class: a random binary prototype image plus Gaussian noise (learnable from a few shots)."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(n_classes):
        proto = (rng.random((1, side, side)) > 0.5).astype(np.float32)
        images.append((proto + noise * rng.standard_normal((per_class, 1, side, side))).astype(np.float32))
    return ClassPool(f"protos{seed}", tuple(images), tuple(f"s{seed}c{i}" for i in range(n_classes)))


# -- episodes -------------------------------------------------------------------------------------------------
def test_episode_shapes_labels_and_reproducibility() -> None:
    pool = prototype_pool(10, 12)
    sampler = EpisodeSampler(pool, ways=4, shots=2, queries=3, seed=7)
    ep = sampler.episode(5)
    assert ep.support_x.shape == (8, 1, 8, 8) and ep.query_x.shape == (12, 1, 8, 8)
    assert ep.support_y.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert ep.query_y.tolist() == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3
    assert len(set(ep.classes)) == 4
    again = EpisodeSampler(pool, ways=4, shots=2, queries=3, seed=7).episode(5)
    assert torch.equal(ep.support_x, again.support_x) and torch.equal(ep.query_x, again.query_x)
    assert ep.classes == again.classes
    other = sampler.episode(6)
    assert not torch.equal(ep.support_x, other.support_x)
    # support and query images of a class are different drawings
    for c in range(4):
        s = ep.support_x[ep.support_y == c].reshape(2, -1)
        q = ep.query_x[ep.query_y == c].reshape(3, -1)
        assert torch.cdist(s, q).min() > 0


@pytest.mark.parametrize(
    ("ways", "shots", "queries", "match"),
    [(1, 1, 1, "ways"), (11, 1, 1, "ways=11"), (3, 0, 1, "shots"), (3, 10, 3, "shots=10"), (3, 1, 0, "queries")],
)
def test_bad_episode_sizes_raise(ways: int, shots: int, queries: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        EpisodeSampler(prototype_pool(10, 12), ways, shots, queries)


def test_omniglot_pools_are_disjoint_with_rotations(data_dir: Path) -> None:
    train, test = load_pools("omniglot", image_size=28)
    # 136 characters and 106 (156 minus the 50 Greek/Latin characters the two small sets share), x4 rotations
    assert (train.num_classes, test.num_classes) == (544, 424)
    assert not set(train.names) & set(test.names)
    bases = {n.split("@")[0] for n in train.names}, {n.split("@")[0] for n in test.names}
    assert not bases[0] & bases[1]
    assert train.image_shape == (1, 28, 28) and train.min_per_class == 20
    x = train.images[train.names.index(train.names[0].replace("@rot0", "@rot90"))]
    assert np.array_equal(x, np.rot90(train.images[0], 1, axes=(2, 3)))
    # no meta-test image equals a meta-train image
    train_set = {im.tobytes() for group in train.images[::4] for im in group}
    assert not any(im.tobytes() in train_set for group in test.images[::4] for im in group)
    ep = EpisodeSampler(test, 20, 5, 15).episode(0)
    assert ep.support_x.shape == (100, 1, 28, 28) and float(ep.support_x.max()) <= 1.0


def test_mnist_pools_disjoint_digits(data_dir: Path) -> None:
    train, test = load_pools("mnist", image_size=16, max_per_class=30)
    assert train.num_classes == test.num_classes == 20
    assert {n[0] for n in train.names} == set("01234") and {n[0] for n in test.names} == set("56789")
    with pytest.raises(ValueError, match="unknown few-shot pool"):
        load_pools("imagenet")


# -- MAML -----------------------------------------------------------------------------------------------------
def _tiny_task(seed: int) -> tuple:
    g = torch.Generator().manual_seed(seed)
    from nasmeta.fewshot.episodes import Episode

    return Episode(
        torch.randn(6, 4, generator=g, dtype=torch.float64),
        torch.tensor([0, 1, 2, 0, 1, 2]),
        torch.randn(6, 4, generator=g, dtype=torch.float64),
        torch.tensor([0, 1, 2, 2, 1, 0]),
        ("a", "b", "c"),
    )


@pytest.mark.parametrize("alternating", [False, True])
def test_second_order_maml_gradient_matches_finite_differences(alternating: bool) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double()
    params = clone_params(net)
    # alternating: two groups with their own learning rates, updated in turn (the T-NAS alpha / w scheme)
    groups = [(("0.weight", "0.bias"), 0.7), (("2.weight", "2.bias"), 0.3)] if alternating else [(tuple(params), 0.5)]
    episodes = [_tiny_task(1), _tiny_task(2)]
    second, _, _ = meta_gradient(net, params, episodes, groups, steps=2, first_order=False)
    first, _, _ = meta_gradient(net, params, episodes, groups, steps=2, first_order=True)

    def outer(p: dict) -> float:
        return float(
            np.mean([float(query_loss(net, p, ep, groups, 2, first_order=True)[0].detach()) for ep in episodes])
        )

    eps = 1e-6
    for name in ("0.weight", "2.bias"):
        fd = torch.zeros_like(params[name])
        for idx in np.ndindex(*params[name].shape):
            plus = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
            minus = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
            with torch.no_grad():
                plus[name][idx] += eps
                minus[name][idx] -= eps
            fd[idx] = (outer(plus) - outer(minus)) / (2 * eps)
        assert torch.allclose(second[name], fd, atol=1e-7, rtol=1e-5), name
    diff = max(float((second[n] - first[n]).abs().max()) for n in params)
    assert diff > 1e-3  # first order drops the Hessian term, so it must differ from the exact meta-gradient


def _adapted_query(learner: MetaLearner, sampler: EpisodeSampler, n: int) -> tuple[float, float]:
    accs, losses = [], []
    for i in range(n):
        ep = sampler.episode(i)
        adapted = learner.adapt(ep.support_x, ep.support_y)
        with torch.no_grad():
            out = functional_call(learner.model, adapted, (ep.query_x,))
        losses.append(float(F.cross_entropy(out, ep.query_y)))
        accs.append(float((out.argmax(1) == ep.query_y).float().mean()))
    return float(np.mean(accs)), float(np.mean(losses))


def test_maml_meta_training_then_adaptation_end_to_end() -> None:
    torch.manual_seed(0)
    train = EpisodeSampler(prototype_pool(30, 10, seed=1), 3, 1, 4, seed=0)
    test = EpisodeSampler(prototype_pool(30, 10, seed=2), 3, 1, 4, seed=1)
    learner = MetaLearner(
        ConvNet4(1, 3, filters=8, image_size=8),
        MAMLConfig(inner_lr=0.4, meta_batch=4, iterations=60, first_order=False),
    )
    acc0, loss0 = _adapted_query(learner, test, 30)
    history = learner.meta_train(train, seed=0)
    acc1, loss1 = _adapted_query(learner, test, 30)
    assert len(history) == 60
    # meta-test classes never seen in meta-training: the learned initialisation adapts better from one shot
    assert loss1 < loss0 - 0.05 and acc1 > acc0 + 0.05
    assert learner.evaluate(test.episode(3)) == learner.evaluate(test.episode(3))


def test_mean_ci95_matches_t_interval() -> None:
    mean, half = mean_ci95([0.0, 1.0, 1.0, 0.0])
    assert mean == 0.5 and half == pytest.approx(3.182446305 * np.std([0, 1, 1, 0], ddof=1) / 2, rel=1e-6)
    with pytest.raises(ValueError):
        mean_ci95([])


def test_cell_network_is_a_pure_function_of_its_parameters() -> None:
    net = cell_network(
        "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|", 5, (1, 16, 16), C=4
    )
    assert not list(net.buffers())
    x = torch.randn(5, 1, 16, 16)
    assert net(x).shape == (5, 5)


# -- T-NAS ----------------------------------------------------------------------------------------------------
def _tiny_config(space: str = "nb201", **kw) -> TNASConfig:
    base = dict(
        space=space,
        ways=3,
        shots=1,
        queries=2,
        input_shape=(1, 8, 8),
        C=2 if space == "nb201" else 2,
        cells=1 if space == "nb201" else 3,
        inner_steps=1,
        test_steps=2,
        meta_batch=2,
        iterations=2,
    )
    return TNASConfig(**{**base, **kw})


@pytest.mark.parametrize("space", ["nb201", "darts"])
def test_tnas_adapts_and_decodes_a_valid_cell(space: str) -> None:
    tnas = TNAS(_tiny_config(space), seed=0).fit(prototype_pool(12, 6, seed=3))
    assert isinstance(tnas, MetaArchitecture) and len(tnas.history) == 2
    ep = EpisodeSampler(prototype_pool(12, 6, seed=4), 3, 1, 2, seed=0).episode(0)
    result = tnas.adapt_task(ep)
    sp = get_space(space)
    assert sp.parse(str(result.arch)) == result.arch
    assert 0.0 <= result.cell_acc <= 1.0 and result.seconds > 0
    # the adaptation moved alpha away from its meta-learned value
    assert not torch.equal(
        result.params[f"alpha_{tnas.supernet.cell_types[0]}"],
        tnas.supernet.alphas()[tnas.supernet.cell_types[0]].detach(),
    )
    if space == "nb201":
        assert "none" not in str(result.arch)


def test_tnas_save_load_round_trip(tmp_path: Path) -> None:
    tnas = TNAS(_tiny_config(), seed=3).fit(prototype_pool(12, 6, seed=3))
    ep = EpisodeSampler(prototype_pool(12, 6, seed=5), 3, 1, 2, seed=0).episode(1)
    tnas.save(tmp_path / "m")
    loaded = TNAS.load(tmp_path / "m")
    a, b = tnas.adapt_task(ep), loaded.adapt_task(ep)
    assert a.arch == b.arch and a.cell_acc == b.cell_acc
    assert all(torch.equal(a.params[k], b.params[k]) for k in a.params)
    assert loaded.history == tnas.history and loaded.config == tnas.config
    with pytest.raises(ValueError, match="no saved T-NAS model"):
        TNAS.load(tmp_path / "empty")


def test_tnas_search_and_darts_from_scratch() -> None:
    cfg = _tiny_config()
    tnas = TNAS(cfg, seed=0).fit(prototype_pool(12, 6, seed=3))
    ep = EpisodeSampler(prototype_pool(12, 6, seed=4), 3, 1, 2, seed=0).episode(2)
    result = tnas_search("nb201", ep, tnas, seed=0)
    assert isinstance(result, SearchResult) and result.method == "tnas"
    assert result.best_arch == tnas.adapt(ep) and result.best_val_acc is not None
    with pytest.raises(ValueError, match="not 'darts'"):
        tnas_search("darts", ep, tnas)
    with pytest.raises(ValueError, match="few-shot task"):
        tnas.adapt("cifar10")
    d1, d2 = darts_from_scratch(cfg, ep, seed=1), darts_from_scratch(cfg, ep, seed=1)
    assert d1.arch == d2.arch and d1.cell_acc == d2.cell_acc


def test_fewshot_cli(data_dir: Path) -> None:
    from flows.cli import app

    runner = CliRunner()
    ok = runner.invoke(
        app,
        [
            "fewshot",
            "--method",
            "maml",
            "--ways",
            "3",
            "--episodes",
            "4",
            "--iterations",
            "1",
            "--filters",
            "4",
            "--queries",
            "2",
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert "maml omniglot 3-way 1-shot" in ok.output and "over 4 meta-test episodes" in ok.output
    bad = runner.invoke(app, ["fewshot", "--ways", "1"])
    assert bad.exit_code == 2 and "ways" in bad.output


def test_tnas_logged_to_mlflow_and_reloaded(tmp_path: Path) -> None:
    from nasmeta import tracking

    tnas = TNAS(_tiny_config(), seed=2).fit(prototype_pool(12, 6, seed=3))
    ep = EpisodeSampler(prototype_pool(12, 6, seed=4), 3, 1, 2, seed=0).episode(0)
    with tracking.parent_run("fewshot-test") as run:
        model_id = tracking.log_model(tnas, name="tnas-tiny", run=run)
    loaded = tracking.load_model(model_id)
    assert isinstance(loaded, TNAS) and loaded.adapt(ep) == tnas.adapt(ep)


def test_tnas_second_order_meta_update_differs_from_first_order() -> None:
    pool = prototype_pool(12, 6, seed=3)
    first = TNAS(_tiny_config(iterations=1), seed=0).fit(pool)
    second = TNAS(_tiny_config(iterations=1, first_order=False), seed=0).fit(pool)
    start = TNAS(_tiny_config(iterations=1), seed=0)
    a1, a2, a0 = (m.supernet.alpha_cell.detach() for m in (first, second, start))
    assert not torch.equal(a1, a0) and not torch.equal(a2, a0)
    assert not torch.allclose(a1, a2)
