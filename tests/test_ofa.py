"""Once-for-All: progressive shrinking resumes at its last finished phase, measured latency round-trips through the
store, the lookup-table predictor sums its entries, evolution respects its constraint, the deployed sub-network
exports and reloads, and zero-shot search takes the same measured latency."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ofa_toys import SPACE, TINY

from metadata_store import MetadataStore
from nasmeta.data.types import TaskData
from nasmeta.export import load_model
from nasmeta.latency import LatencyTable, MeasuredLatency, network_key
from nasmeta.ofa.accuracy import AccuracyPredictor, sample_subnets
from nasmeta.ofa.deploy import deployable_subnet, export_subnet
from nasmeta.ofa.evolution import EvolutionConfig, FlopsCost, evolution_search
from nasmeta.ofa.latency import OFALatencyPredictor, all_parts, arch_parts
from nasmeta.ofa.shrink import (
    PHASES,
    PhaseConfig,
    ShrinkConfig,
    checkpoint_path,
    finished_phases,
    load_checkpoint,
    progressive_shrinking,
    sample_for_phase,
    train_phase,
)
from nasmeta.reporting import ListReporter

SHAPE = (3, 12, 12)
ONE = PhaseConfig(epochs=1, lr=0.05)
CONFIG = ShrinkConfig(
    largest=ONE,
    kernel=ONE,
    depth=ONE.model_copy(update={"subnets_per_step": 2}),
    expand=ONE.model_copy(update={"subnets_per_step": 2}),
    batch_size=16,
    bn_images=16,
    num_threads=1,
)


@pytest.fixture(scope="module")
def task() -> TaskData:
    gen = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (80,), generator=gen)
    x = torch.randn(80, *SHAPE, generator=gen) + y.view(-1, 1, 1, 1).float()  # learnable: class shifts the mean
    return TaskData("tiny-ofa", "tiny-ofa", x[:48], y[:48], x[48:64], y[48:64], x[64:], y[64:], 3)


@pytest.fixture(scope="module")
def shrunk(task: TaskData, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    directory = tmp_path_factory.mktemp("ofa-full")
    reporter = ListReporter()
    out = progressive_shrinking(SPACE, task, CONFIG, directory, reporter)
    return directory, out, reporter


def test_phases_sample_only_their_elastic_dimensions() -> None:
    rng = np.random.default_rng(0)
    largest = SPACE.largest()
    for phase in PHASES:
        archs = [sample_for_phase(SPACE, phase, rng) for _ in range(40)]
        decoded = [SPACE.decode(a) for a in archs]
        assert {d[0] for d in decoded} == set(TINY.resolutions)  # resolution is elastic throughout
        kernels = {k for d in decoded for k in d[2]}
        depths = {x for d in decoded for x in d[1]}
        expands = {e for d in decoded for e in d[3]}
        assert (kernels == set(TINY.kernels)) == (phase != "largest")
        assert (depths == set(TINY.depths)) == (phase in ("depth", "expand"))
        assert (expands == set(TINY.expands)) == (phase == "expand")
        assert all(len(d[2]) == len(SPACE.decode(largest)[2]) for d in decoded)
    fixed = {SPACE.decode(sample_for_phase(SPACE, "largest", rng, elastic_resolution=False))[0] for _ in range(20)}
    assert fixed == {max(TINY.resolutions)}
    with pytest.raises(ValueError, match="'width'"):
        sample_for_phase(SPACE, "width", rng)


def test_progressive_shrinking_writes_a_checkpoint_per_phase(shrunk: tuple) -> None:
    directory, out, reporter = shrunk
    assert out["ran"] == list(PHASES) and out["skipped"] == []
    assert [row["phase"] for row in reporter.rows] == list(PHASES)
    for phase in PHASES:
        net, meta = load_checkpoint(checkpoint_path(directory, phase))
        assert meta["phase"] == phase and 0.0 <= meta["metrics"]["val_acc_smallest"] <= 100.0
    assert not list(directory.glob("*.tmp"))


def test_resume_skips_finished_phases_and_gives_the_uninterrupted_weights(
    task: TaskData, shrunk: tuple, tmp_path
) -> None:
    full_dir = shrunk[0]
    # an interrupted run: two phases finished, the third died mid-write (a temporary file is all it left)
    for phase in PHASES[:2]:
        train_phase(SPACE, task, phase, CONFIG, tmp_path)
    (tmp_path / ".3-depth.pt.999.tmp").write_bytes(b"partial")
    assert finished_phases(tmp_path, SPACE, task, CONFIG) == ["largest", "kernel"]
    reporter = ListReporter()
    out = progressive_shrinking(SPACE, task, CONFIG, tmp_path, reporter)
    assert out["skipped"] == ["largest", "kernel"] and out["ran"] == ["depth", "expand"]
    assert {row["phase"] for row in reporter.rows} == {"depth", "expand"}
    resumed, _ = load_checkpoint(checkpoint_path(tmp_path, "expand"))
    uninterrupted, _ = load_checkpoint(checkpoint_path(full_dir, "expand"))
    for (name, a), (_, b) in zip(resumed.state_dict().items(), uninterrupted.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    # a rerun of a finished run trains nothing
    assert progressive_shrinking(SPACE, task, CONFIG, tmp_path)["ran"] == []


def test_checkpoints_of_another_run_are_refused(task: TaskData, shrunk: tuple) -> None:
    other = CONFIG.model_copy(update={"kd_ratio": 0.5})
    with pytest.raises(ValueError, match="another run"):
        finished_phases(shrunk[0], SPACE, task, other)
    with pytest.raises(ValueError, match="'width'"):
        CONFIG.phase("width")


def test_phase_without_its_predecessor_raises(task: TaskData, tmp_path) -> None:
    with pytest.raises(ValueError, match="needs the checkpoint of phase 'kernel'"):
        train_phase(SPACE, task, "depth", CONFIG, tmp_path)


def test_latency_table_round_trips_through_the_store(tmp_path) -> None:
    store = MetadataStore(tmp_path / "store")
    table = LatencyTable("cpu:test:t1", SPACE.name)
    measure = MeasuredLatency(table, 3, repeats=3, warmup=1)
    arch = SPACE.largest()
    model = SPACE.build(arch, 3, SHAPE)
    first = measure(arch, model, SHAPE)
    assert measure(arch, model, SHAPE) == first and measure.measured == 1  # answered from the table
    predictor = OFALatencyPredictor(SPACE, table, 3, SHAPE)
    assert predictor.fill(repeats=2, warmup=0) == len(all_parts(SPACE, SHAPE, 3))
    assert predictor.missing() == [] and predictor.fill() == 0
    written = table.to_store(store)
    assert written == len(table) and table.new_keys == []
    again = LatencyTable.from_store(store, "cpu:test:t1", SPACE.name)
    assert again.entries == table.entries and again.kinds == table.kinds
    assert again.kinds[network_key(arch, SHAPE, 3)] == "network"
    assert again.arch_ids[network_key(arch, SHAPE, 3)] == arch.arch_id
    assert len(LatencyTable.from_store(store, "cpu:other:t1", SPACE.name)) == 0
    assert len(LatencyTable.from_store(store, "cpu:test:t1", SPACE.name, statistic="median")) == 0  # not mixed
    reread = OFALatencyPredictor(SPACE, again, 3, SHAPE)
    rng = np.random.default_rng(0)
    for sample in (SPACE.sample(rng) for _ in range(5)):
        keys = [key for key, _, _ in arch_parts(SPACE, sample, SHAPE, 3)]
        assert len(keys) == 2 + sum(SPACE.decode(sample)[1])  # stem, one entry per active block, head
        assert reread.predict(sample) == pytest.approx(sum(again.entries[k] for k in keys))
    with pytest.raises(ValueError, match="no entry 'mb:nothing'"):
        again.get("mb:nothing")
    with pytest.raises(ValueError, match="kind must be 'block' or 'network', got 'layer'"):
        again.add("x", 1.0, "layer", 1)
    with pytest.raises(ValueError, match="space 'ofa-small'"):
        OFALatencyPredictor(SPACE, LatencyTable("cpu", "ofa-small"), 3, SHAPE)


def test_evolution_respects_the_flops_constraint_and_prefers_predicted_accuracy() -> None:
    flops = FlopsCost(SPACE, 3, SHAPE)
    costs = sorted(flops(a) for a in sample_subnets(SPACE, 40, seed=0))
    limit = costs[len(costs) // 2]

    def bigger_is_better(arch) -> float:  # a stand-in accuracy that rises with size: the best sits at the limit
        return float(SPACE.features(arch) @ np.arange(len(SPACE.features(arch))))

    config = EvolutionConfig(population_size=12, generations=6, seed=0)
    result = evolution_search(SPACE, bigger_is_better, flops, limit, config)
    assert result.cost == flops(result.best) <= limit
    assert len(result.history) == 6
    best_seen = [h["best_predicted_acc"] for h in result.history]
    assert best_seen == sorted(best_seen)  # elitist: the best never gets worse
    assert all(h["best_cost"] <= limit for h in result.history)
    assert result.evaluated > config.population_size
    assert evolution_search(SPACE, bigger_is_better, flops, limit, config).best == result.best  # seeded
    with pytest.raises(ValueError, match="limit 1"):
        evolution_search(SPACE, bigger_is_better, flops, 1.0, config.model_copy(update={"max_tries": 5}))
    with pytest.raises(ValueError, match="-3"):
        evolution_search(SPACE, bigger_is_better, flops, -3.0, config)


def test_deployed_subnetwork_exports_and_reloads_with_its_shrunk_weights(task: TaskData, shrunk: tuple, tmp_path):
    net, _ = load_checkpoint(checkpoint_path(shrunk[0], "expand"))
    arch = SPACE.parse("r8:d12:k35.73:e32.23")
    files = export_subnet(net, arch, task, tmp_path / "sub.pt", bn_images=16)
    reloaded = load_model(files.model)
    expected = deployable_subnet(net, arch, task, bn_images=16)
    with torch.no_grad():
        assert torch.allclose(reloaded(task.x_test), expected(task.x_test), atol=1e-6)
    archs = sample_subnets(SPACE, 12, seed=0)
    predictor = AccuracyPredictor(SPACE).fit(archs, [float(i) for i in range(12)])
    assert predictor.predict(archs).shape == (12,)
    with pytest.raises(ValueError, match="'svm'"):
        AccuracyPredictor(SPACE, "svm")  # type: ignore[arg-type]


def test_zero_shot_search_uses_the_measured_latency(tmp_path) -> None:
    from nasmeta.zeroshot.batch import Batch
    from nasmeta.zeroshot.search import Constraints, zero_shot_search

    gen = torch.Generator().manual_seed(0)
    batch = Batch(torch.randn(8, *SHAPE, generator=gen), torch.randint(0, 3, (8,), generator=gen), 3)
    table = LatencyTable("cpu:test:t1", SPACE.name)
    archs = sample_subnets(SPACE, 6, seed=3)
    # a table of made-up latencies shows the search reads the table rather than timing the networks itself
    fake = {a.arch_id: float(i + 1) for i, a in enumerate(archs)}
    for arch in archs:
        table.add(network_key(arch, SHAPE, 3), fake[arch.arch_id], "network", 1, arch.arch_id)
    latency = MeasuredLatency(table, 3)
    result = zero_shot_search(
        SPACE, batch, ["params", "latency"], archs=archs, constraints=Constraints(max_latency_ms=4.5), latency=latency
    )
    ranking = result.extra["ranking"]
    assert latency.measured == 0
    assert sorted(r["latency_ms"] for r in ranking) == [1.0, 2.0, 3.0, 4.0]
    assert all(r["score/latency"] == -r["latency_ms"] for r in ranking)
    assert result.extra["n_infeasible"] == 2 and "latency" in result.extra["proxies_used"]
    only_latency = zero_shot_search(SPACE, batch, ["latency"], archs=archs, latency=latency)
    assert only_latency.best_arch == archs[0]  # the fastest
    with pytest.raises(ValueError, match="needs a latency source"):
        zero_shot_search(SPACE, batch, ["latency"], archs=archs)


def _cli(*args: str):
    from typer.testing import CliRunner

    from flows.cli import app

    return CliRunner().invoke(app, list(args))


def test_cli_zero_shot_with_measured_latency_writes_the_store(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("NASMETA_HOME", str(tmp_path))
    store = str(tmp_path / "store")
    args = ["search", "zeroshot", "--space", "ofa-small", "--task", "digits", "--sample", "3", "--proxy", "params",
            "--proxy", "latency", "--measured-latency", "--store", store, "--no-track"]  # fmt: skip
    first = _cli(*args)
    assert first.exit_code == 0, first.output
    assert "3 new networks measured and stored" in first.output
    again = _cli(*args)  # the same sample: every latency now comes from the store
    assert again.exit_code == 0 and "0 new networks measured" in again.output
    rows = MetadataStore(store).read("latencies").to_pylist()
    assert len(rows) == 3 and {r["kind"] for r in rows} == {"network"}
    bad = _cli("search", "zeroshot", "--space", "ofa-small", "--task", "digits", "--proxy", "latency")
    assert bad.exit_code == 2 and "--measured-latency" in bad.output


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["ofa", "train", "--epochs", "1,2", "--no-track"], "'1,2'"),
        (["ofa", "train", "--lr", "fast", "--no-track"], "'fast'"),
        (["ofa", "deploy", "missing.pt", "--latency-ms", "2", "--no-track"], "'missing.pt'"),
    ],
)
def test_cli_ofa_bad_input_names_the_value(args: list[str], named: str) -> None:
    result = _cli(*args)
    assert result.exit_code == 2 and named in result.output, result.output


def test_latency_calibration_is_robust_to_a_contended_measurement() -> None:
    table = LatencyTable("cpu:test:t1", SPACE.name)
    predictor = OFALatencyPredictor(SPACE, table, 3, SHAPE)
    for i, key in enumerate(sorted(all_parts(SPACE, SHAPE, 3))):
        table.add(key, 0.01 * (i + 1), "block", 1)
    archs = sample_subnets(SPACE, 9, seed=5)
    sums = [predictor.lookup_sum(a) for a in archs]
    measured = [2.0 * s + 0.1 for s in sums]
    measured[3] *= 5  # another process took the core during this measurement
    assert predictor.calibrate(archs, measured) == pytest.approx((2.0, 0.1))
    assert predictor.predict(archs[0]) == pytest.approx(2.0 * sums[0] + 0.1)
    with pytest.raises(ValueError, match=">= 3"):
        predictor.calibrate(archs[:2], measured[:2])
