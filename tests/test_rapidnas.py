"""RapidNAS / MetaD2A: valid generation, generator-quality measures, set-encoder invariances, save/load, bad inputs,
a tiny end-to-end meta-training on digits tasks (bundled with scikit-learn, no data folder needed), the search
method through the registry and the pool-LODO method."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from nasmeta.spaces import get_space
from nasmeta.spaces.base import Architecture
from nasmeta.transfer.rapidnas import RapidNAS, RapidNASConfig
from nasmeta.transfer.rapidnas_encoder import SetEncoder
from nasmeta.transfer.rapidnas_graph import NB201_ADJACENCY, decoded_to_arch, generation_metrics

NB201 = get_space("nb201")
TINY = {
    "n_per_class": 5,
    "image_size": 16,
    "embed_dim": 16,
    "set_hidden": 8,
    "heads": 2,
    "latent_dim": 8,
    "graph_hidden": 16,
    "predictor_hidden": 16,
    "gen_steps": 150,
    "gen_batch": 32,
    "gen_lr": 5e-3,
    "pred_steps": 150,
    "pred_batch": 32,
    "pred_lr": 5e-3,
    "n_candidates": 100,
}
WEIGHTS = {"t-a": (0.0, 3.0, 1.0), "t-b": (2.0, 1.0, 0.0), "t-c": (1.0, 2.0, 2.0)}


def _specs() -> dict[str, object]:
    from nasmeta.data.tasks import Corruption, TaskSpec

    return {
        "t-a": TaskSpec(name="t-a", source="digits", classes=(0, 1, 2), samples_per_class=12, test_per_class=4),
        "t-b": TaskSpec(
            name="t-b",
            source="digits",
            classes=(3, 4, 5, 6),
            samples_per_class=12,
            test_per_class=4,
            corruption=Corruption(noise_std=0.4, seed=1),
        ),
        "t-c": TaskSpec(
            name="t-c",
            source="digits",
            classes=(7, 8, 9),
            samples_per_class=12,
            test_per_class=4,
            corruption=Corruption(rotation=60.0, seed=2),
        ),
    }


def _accuracy(arch: Architecture, task: str) -> float:
    ops = arch.encoding
    w_skip, w_conv3, w_conv1 = WEIGHTS[task]
    return (
        40.0
        + w_skip * ops.count("skip_connect")
        + w_conv3 * ops.count("nor_conv_3x3")
        + w_conv1 * ops.count("nor_conv_1x1")
    )


def _meta(n_cells: int = 60):
    from metadata_store import MetaDataset, run_id
    from nasmeta.data.store_import import architecture_row

    rng = np.random.default_rng(0)
    archs = list({a.arch_id: a for a in (NB201.sample(rng) for _ in range(n_cells))}.values())
    specs = _specs()
    tasks = [{"task_id": s.task_id, "name": name, "source": s.source, "spec": s.to_json()} for name, s in specs.items()]
    runs = [
        {
            "run_id": run_id(spec.task_id, a.arch_id, 0, "cfg"),
            "task_id": spec.task_id,
            "arch_id": a.arch_id,
            "seed": 0,
            "config_hash": "cfg",
            "status": "completed",
            "final_val_acc": _accuracy(a, name),
            "final_test_acc": _accuracy(a, name),
        }
        for name, spec in specs.items()
        for a in archs
    ]
    # one-epoch curves, so the pool LODO can replay the runs
    curves = [
        {
            "run_id": r["run_id"],
            "task_id": r["task_id"],
            "epoch": 1,
            "val_acc": r["final_val_acc"],
            "test_acc": r["final_test_acc"],
            "seconds": 1.0,
        }
        for r in runs
    ]
    archs_rows = [architecture_row(a) for a in archs]
    return MetaDataset.from_tables(tasks=tasks, runs=runs, curves=curves, architectures=archs_rows)


@pytest.fixture(scope="module")
def fitted() -> tuple[RapidNAS, object]:
    meta = _meta()
    return RapidNAS(**TINY).fit(meta), meta


def test_generator_emits_only_valid_distinct_nb201_cells(fitted) -> None:
    model, _ = fitted
    target = _specs()["t-a"]
    proposed = model.propose(target, 5)
    assert len(proposed) == 5 and len({a.arch_id for a in proposed}) == 5
    for arch in proposed:
        assert arch.space == "nb201" and NB201.from_encoding(arch.encoding) == arch
    # a raw decode is None or a cell; after 150 steps the decoder has learned the fixed NB201 structure
    decoded = model.generate(target, 200, seed=3)
    assert all(a is None or NB201.from_encoding(a.encoding) == a for a in decoded)
    assert model.generation_quality(target, 200, seed=3)["validity"] > 0.5


def test_generation_metrics_on_a_known_case() -> None:
    a = NB201.parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|none~0|none~1|nor_conv_3x3~2|")
    b = NB201.parse("|nor_conv_1x1~0|+|nor_conv_3x3~0|skip_connect~1|+|none~0|none~1|nor_conv_3x3~2|")
    # isomorphic to c2: node 1 unused (all its outputs are none), so its op does not matter
    c1 = NB201.parse("|avg_pool_3x3~0|+|nor_conv_3x3~0|none~1|+|none~0|none~1|nor_conv_3x3~2|")
    c2 = NB201.parse("|nor_conv_1x1~0|+|nor_conv_3x3~0|none~1|+|none~0|none~1|nor_conv_3x3~2|")
    assert c1.arch_id == c2.arch_id and c1.encoding != c2.encoding
    m = generation_metrics([a, a, b, None, c1, c2, None, None], training=[a, c1])
    assert m["validity"] == pytest.approx(5 / 8)
    assert m["uniqueness"] == pytest.approx(4 / 5)  # a, b, c1, c2
    assert m["uniqueness_iso"] == pytest.approx(3 / 5)  # a, b, c
    assert m["novelty"] == pytest.approx(2 / 5)  # b, c2
    assert m["novelty_iso"] == pytest.approx(1 / 5)  # b (c2 is c1 up to isomorphism)
    with pytest.raises(ValueError, match="at least one"):
        generation_metrics([], [])


def test_decoded_graphs_are_cells_only_with_nb201_types_and_adjacency() -> None:
    types = [5, 3, 1, 0, 2, 4, 3, 6]
    cell = decoded_to_arch(types, NB201_ADJACENCY)
    assert cell == NB201.from_encoding(
        ("nor_conv_3x3", "skip_connect", "none", "nor_conv_1x1", "avg_pool_3x3", "nor_conv_3x3")
    )
    extra_edge = NB201_ADJACENCY.copy()
    extra_edge[1, 2] = 1.0
    assert decoded_to_arch(types, extra_edge) is None
    assert decoded_to_arch([5, 3, 1, 0, 2, 4, 3, 3], NB201_ADJACENCY) is None  # no output node
    assert decoded_to_arch([5, 3, 1, 6, 2, 4, 3, 6], NB201_ADJACENCY) is None  # output type inside the cell
    graph_adj, graph_types = NB201.graph(cell)
    assert decoded_to_arch(graph_types, graph_adj) == cell


def test_set_encoder_is_invariant_to_sample_and_class_order_but_not_to_class_membership() -> None:
    torch.manual_seed(0)
    encoder = SetEncoder(6, hidden_dim=8, out_dim=5, heads=2).eval()
    x = torch.randn(4, 7, 6)
    z = encoder(x)
    g = torch.Generator().manual_seed(1)
    shuffled = torch.stack([cls[torch.randperm(7, generator=g)] for cls in x])[torch.randperm(4, generator=g)]
    torch.testing.assert_close(encoder(shuffled), z, atol=1e-5, rtol=1e-5)
    # the same 28 vectors grouped into other classes are another dataset
    swapped = x.clone()
    swapped[0, 0], swapped[1, 0] = x[1, 0], x[0, 0]
    assert (encoder(swapped) - z).abs().max() > 1e-3
    # batched encoding of tasks with different class counts (padding masked) equals encoding each alone
    y = torch.randn(2, 7, 6)
    torch.testing.assert_close(encoder.encode_many([x, y]), torch.stack([z, encoder(y)]), atol=1e-5, rtol=1e-5)


def test_tiny_meta_training_learns_rankings_and_distinguishes_tasks(fitted) -> None:
    model, meta = fitted
    specs = _specs()
    n_cells = meta.architectures.num_rows
    assert model.fit_info["tasks"] == 3 and model.fit_info["records"] == 3 * n_cells
    assert len(model.training_cells) <= 3 * int(np.ceil(0.25 * n_cells))
    rng = np.random.default_rng(5)
    fresh = list({a.arch_id: a for a in (NB201.sample(rng) for _ in range(80))}.values())
    for name in ("t-a", "t-b"):
        tau = stats.kendalltau(model.predict(fresh, specs[name]), [_accuracy(a, name) for a in fresh]).statistic
        assert tau > 0.4, (name, tau)
    encodings = [model.task_encoding(specs[n]) for n in WEIGHTS]
    assert min(np.linalg.norm(encodings[i] - encodings[j]) for i in range(3) for j in range(i)) > 1e-3
    # a source task is found by its id as well as by its spec
    torch.testing.assert_close(
        torch.from_numpy(model.predict(fresh, specs["t-a"].task_id)),
        torch.from_numpy(model.predict(fresh, specs["t-a"])),
    )


def test_save_load_gives_identical_predictions_and_proposals(fitted, tmp_path) -> None:
    model, _ = fitted
    target = _specs()["t-c"]
    cells = [NB201.sample(np.random.default_rng(i)) for i in range(20)]
    loaded = RapidNAS.load(model.save(tmp_path / "rapidnas"))
    np.testing.assert_array_equal(loaded.predict(cells, target), model.predict(cells, target))
    assert loaded.propose(target, 4, seed=2) == model.propose(target, 4, seed=2)
    assert loaded.training_cells == model.training_cells and loaded.config == model.config

    from nasmeta import tracking

    with tracking.parent_run("rapidnas-test", "fit"):
        model_id = tracking.log_model(model, "rapidnas")
    np.testing.assert_array_equal(tracking.load_model(model_id).predict(cells, target), model.predict(cells, target))


def test_bad_inputs_raise_value_errors_naming_the_value(fitted, tmp_path) -> None:
    model, _ = fitted
    target = _specs()["t-a"]
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match=f"n must be a positive integer, got {bad!r}"):
            model.propose(target, bad)
    with pytest.raises(ValueError, match="n must be at most 6466"):
        model.propose(target, 7000)
    with pytest.raises(ValueError, match="'no-such-task'"):
        model.predict([NB201.sample(np.random.default_rng(0))], "no-such-task")
    with pytest.raises(ValueError, match="n_samples"):
        model.generate(target, 0)
    with pytest.raises(ValueError, match="kl_weight"):
        RapidNASConfig(kl_weight=-1.0)
    with pytest.raises(ValueError, match="MetaDataset"):
        RapidNAS(**TINY).fit([1, 2])
    with pytest.raises(ValueError, match="holds no saved RapidNAS"):
        RapidNAS.load(tmp_path)
    with pytest.raises(ValueError, match="NB201 cells"):
        model.predict([get_space("macro").sample(np.random.default_rng(0))], target)
    with pytest.raises(RuntimeError, match="not fitted"):
        RapidNAS(**TINY).propose(target, 3)


def test_search_method_runs_through_the_registry_on_a_tiny_budget(fitted, tmp_path) -> None:
    from nasmeta.search.registry import components_needed, default_methods, parse_method
    from nasmeta.search.target import SearchContext, run_method
    from nasmeta.transfer.registry import component_class, component_names

    model, _ = fitted
    assert "rapidnas" in component_names() and component_class("rapidnas") is RapidNAS
    assert components_needed(["transfer-rapidnas"]) == ["rapidnas"]
    assert parse_method("transfer-rapidnas+sh", "nb201").scheduler == "sh"
    assert "transfer-rapidnas" not in default_methods("nb201")  # it needs every source task's images
    saved = str(model.save(tmp_path / "rapidnas"))
    ctx = SearchContext.create("nb201", "digits-0to4", "micro", components={"rapidnas": saved})
    result = run_method("transfer-rapidnas", ctx)
    expected = RapidNAS.load(saved).candidates(ctx.data(), ctx.budget.evaluations, seed=ctx.seed)[0]
    assert [e.arch.arch_id for e in result.history] == [a.arch_id for a in expected[: ctx.budget.evaluations]]
    assert result.extra["family"] == "transfer" and result.extra["candidate_seconds"] > 0
    assert result.best_arch in expected


def test_pool_lodo_ranks_generated_pool_cells_first(fitted) -> None:
    from nasmeta.evaluation.pool_lodo import pool_lodo

    _, meta = fitted
    task = _specs()["t-c"].task_id  # its accuracies lie between the two sources'
    quick = {**TINY, "gen_steps": 30}  # the predictor's ranking is checked here, not the generator's validity
    params = {"rapidnas": quick, "rapidnas-predictor": quick}
    rows = pool_lodo(
        meta,
        ["rapidnas", "rapidnas-predictor"],
        seeds=[0],
        ks=(1, 5),
        tasks=[task],
        method_params=params,
        errors="raise",
    )
    by = {r["method"]: r for r in rows}
    assert by["rapidnas"]["n_generated_in_pool"] <= by["rapidnas"]["n_generated"]
    assert by["rapidnas"]["pool_size"] == meta.architectures.num_rows and "n_generated" not in by["rapidnas-predictor"]
    assert by["rapidnas-predictor"]["kendall_tau"] > 0.3


@pytest.mark.parametrize("z_every_step", [False, True])
def test_decoder_teacher_forcing_matches_what_it_samples(z_every_step: bool) -> None:
    """The teacher-forced likelihood of a graph is higher under a latent trained on it: one decoder step of Adam on
    a single cell makes that cell likelier, and sampling gives types and adjacency of the right shapes."""
    from nasmeta.transfer.rapidnas_graph import DAGDecoder, arch_graphs

    torch.manual_seed(0)
    decoder = DAGDecoder(latent_dim=4, hidden=8, z_every_step=z_every_step)
    types, adj = arch_graphs([NB201.parse("|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|avg_pool_3x3~2|")])
    z = torch.zeros(1, 4)
    before = decoder.loss(z, types, adj).item()
    optimizer = torch.optim.Adam(decoder.parameters(), lr=1e-2)
    for _ in range(20):
        optimizer.zero_grad()
        decoder.loss(z, types, adj).sum().backward()
        optimizer.step()
    assert decoder.loss(z, types, adj).item() < before - 1.0
    sampled_types, sampled_adj = decoder.sample(torch.zeros(6, 4), torch.Generator().manual_seed(0))
    assert sampled_types.shape == (6, 8) and sampled_adj.shape == (6, 8, 8)
    assert (sampled_types[:, 0] == 5).all() and np.triu(sampled_adj[0], 1).sum() == sampled_adj[0].sum()
