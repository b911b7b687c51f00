"""P-DARTS (progressive depth, op-space pruning between stages, skip dropout schedule, skip limit) and DARTS+
(skip-limit early stop)."""

from __future__ import annotations

import math

import pytest
import torch
from oneshot_toys import toy_search_data as _data
from oneshot_toys import toy_task as _task

from nasmeta.oneshot import oneshot_search
from nasmeta.oneshot.api import build_supernet
from nasmeta.oneshot.loop import SearchData
from nasmeta.oneshot.pdarts import MaskedMix, PDarts, limit_skips, prune_mask, skip_dropout_rate, stage_of
from nasmeta.oneshot.supernet_darts import DartsSupernet
from nasmeta.spaces.darts import DARTS_PRIMITIVES


def test_pruning_counts_8_5_3_and_none_dropped_last() -> None:
    ops = [DARTS_PRIMITIVES] * 14
    w = torch.rand(14, 8, generator=torch.Generator().manual_seed(0))
    w[:, DARTS_PRIMITIVES.index("none")] = 2.0  # strongest everywhere
    mask = torch.ones(14, 8, dtype=torch.bool)
    five = prune_mask(w, mask, 5, ops)
    assert five.sum(dim=1).tolist() == [5] * 14 and bool(five[:, 0].all())
    for e in range(14):  # the kept ops are the 5 strongest
        assert set(five[e].nonzero().flatten().tolist()) == set(w[e].argsort(descending=True)[:5].tolist())
    three = prune_mask(w, five, 3, ops, drop_none=True)
    assert three.sum(dim=1).tolist() == [3] * 14 and not bool(three[:, 0].any())
    assert bool((three <= five).all())  # a pruned op never comes back
    with pytest.raises(ValueError, match="keep"):
        prune_mask(w, mask, 0, ops)


def test_stages_and_skip_dropout_schedule() -> None:
    assert [stage_of(e, 8, 3)[:2] for e in range(1, 9)] == [
        (0, 0),
        (0, 1),
        (0, 2),
        (1, 0),
        (1, 1),
        (1, 2),
        (2, 0),
        (2, 1),
    ]
    with pytest.raises(ValueError, match="one epoch per stage"):
        stage_of(1, 2, 3)
    # published stage: 25 epochs, 10 without arch updates, decay factor 0.2
    assert skip_dropout_rate(0.4, 0, 25, 10, 0.2) == pytest.approx(0.4 * 24 / 25)
    assert skip_dropout_rate(0.4, 10, 25, 10, 0.2) == pytest.approx(0.4)
    assert skip_dropout_rate(0.4, 15, 25, 10, 0.2) == pytest.approx(0.4 * math.exp(-1.0))


def test_search_prunes_8_to_5_to_3_ops_per_edge() -> None:
    size = {"C": 4, "layers": 2}
    result = oneshot_search(
        "pdarts", "darts", _task(), 3, 8, seed=0, supernet_size=size, device="cpu", depths=(2, 2, 3)
    )
    assert [row["active_ops_normal"] for row in result.trace[1:]] == [8.0, 5.0, 3.0]
    assert [row["stage"] for row in result.trace[1:]] == [1.0, 2.0, 3.0]
    masks = torch.tensor(result.extra["masks"]["normal"])
    assert masks.sum(dim=1).tolist() == [3] * 14 and not bool(masks[:, 0].any())  # none gone in the last stage
    normal = result.best_arch.encoding[0]
    assert sum(op == "skip_connect" for op, _ in normal) <= 2
    with pytest.raises(ValueError, match="keep_ops"):
        oneshot_search("pdarts", "darts", _task(), 3, 8, supernet_size={"C": 4, "layers": 2}, keep_ops=(5,))


def test_skip_limit_removes_the_weakest_skips() -> None:
    torch.manual_seed(0)
    net = DartsSupernet(10, (3, 8, 8), C=4, layers=2, space="darts-s2")
    w = {"normal": torch.zeros(14, 2), "reduce": torch.zeros(14, 2)}
    w["normal"][:, 0] = torch.linspace(0.9, 0.6, 14)  # skip strongest everywhere, weaker on later edges
    w["normal"][:, 1] = 0.1
    w["reduce"][:, 1] = 1.0
    before = net.derive(w)
    assert sum(op == "skip_connect" for op, _ in before.encoding[0]) == 8
    arch, limited = limit_skips(net, w, 2)
    normal = arch.encoding[0]
    assert sum(op == "skip_connect" for op, _ in normal) == 2
    # the two strongest skips (node 2's edges 2<-0, 2<-1: weights 0.9 and 0.877) stay
    assert [p for p in normal if p[0] == "skip_connect"] == [("skip_connect", 0), ("skip_connect", 1)]
    assert float(limited["normal"][0, 0]) == pytest.approx(0.9) and arch.encoding[1] == before.encoding[1]


def test_masked_mix_runs_only_active_ops() -> None:
    torch.manual_seed(0)
    net = DartsSupernet(10, (3, 8, 8), C=4, layers=2, space="darts")
    _, _, edge = net.edge_modules()[0]
    calls: list[int] = []
    for k, op in enumerate(edge.ops):
        op.register_forward_hook(lambda m, a, o, k=k: calls.append(k))
    x = torch.randn(2, edge.c_in, 8, 8)
    w = torch.softmax(torch.randn(8), 0)
    out = MaskedMix(w, (3, 4))(edge, x)
    assert sorted(calls) == [3, 4]
    assert torch.allclose(out, w[3] * edge.ops[3](x) + w[4] * edge.ops[4](x), atol=1e-6)
    strategy = PDarts(net, _data(), 4, 0)
    assert strategy.choices(0.0).per_cell["normal"][0].active == tuple(range(8))


def test_darts_plus_stops_when_two_skips_appear() -> None:
    task, size = _task(), {"C": 4, "layers": 2}
    full = oneshot_search("darts", "darts-s2", task, 3, 8, seed=0, supernet_size=size, device="cpu")
    from nasmeta.spaces import get_space

    space = get_space("darts-s2")
    counts = [sum(op == "skip_connect" for op, _ in space.parse(r["arch"]).encoding[0]) for r in full.trace[1:]]
    first = next(i for i, c in enumerate(counts, start=1) if c >= 2)
    plus = oneshot_search("darts-plus", "darts-s2", task, 3, 8, seed=0, supernet_size=size, device="cpu")
    assert len(plus.trace) - 1 == first and plus.trace[-1]["stopped"] == 1.0
    assert plus.trace[-1]["arch"] == full.trace[first]["arch"]  # the same search up to the stop
    # the rule as a loop option of any strategy; never with an impossible count
    asap = oneshot_search("asap", "darts-s2", task, 3, 8, seed=0, supernet_size=size, device="cpu", skip_stop=9)
    assert len(asap.trace) == 4 and "stopped" not in asap.trace[-1]
    with pytest.raises(ValueError, match="skip_stop"):
        oneshot_search("darts", "darts-s2", task, 1, 8, supernet_size=size, skip_stop=0)
    with pytest.raises(ValueError, match="max_skips"):
        oneshot_search("darts-plus", "darts-s2", task, 1, 8, supernet_size=size, max_skips=0)


@pytest.mark.parametrize(("space", "size"), [("nb201", {"C": 4, "N": 1}), ("darts-s2", {"C": 4, "layers": 2})])
def test_pdarts_runs_through_oneshot_search_seeded(space: str, size: dict[str, int]) -> None:
    task = _task()
    runs = [oneshot_search("pdarts", space, task, 3, 8, seed=2, supernet_size=size, device="cpu") for _ in range(2)]
    assert str(runs[0].best_arch) == str(runs[1].best_arch)
    assert runs[0].extra["alphas"] == runs[1].extra["alphas"]
    assert [r["val_loss"] for r in runs[0].trace[1:]] == [r["val_loss"] for r in runs[1].trace[1:]]
    # 1-epoch stages: no warm-up epoch (round(0.4 * 1) = 0), so each stage starts at its full rate
    assert [r["skip_dropout"] for r in runs[0].trace[1:]] == pytest.approx([0.1, 0.4, 0.7])


def test_each_stage_is_a_new_deeper_supernet_over_the_kept_ops() -> None:
    task = _task()
    data = SearchData.from_task(task, 0)
    built: list[tuple[object, dict[str, torch.Tensor]]] = []

    def build(**overrides: int) -> DartsSupernet:
        net = build_supernet("darts", 10, (3, 8, 8), **{"C": 4, "layers": 2, **overrides})
        built.append((net, {k: v.clone() for k, v in net.state_dict().items()}))
        return net

    strategy, trace, _ = PDarts.run_stages(build, data, 8, 0, 6, depths=(2, 3, 5))
    nets = [net for net, _ in built]
    assert [len(net.cells) for net in nets] == [2, 3, 5]  # stage 1 runs on the probe of the requested size
    assert strategy.supernet is nets[-1] and len({id(n) for n in nets}) == 3  # a fresh network per stage
    assert [r["depth"] for r in trace[1:]] == [2.0, 2.0, 3.0, 3.0, 5.0, 5.0]
    assert [r["epoch"] for r in trace] == list(range(7)) and trace[-1]["seconds"] > trace[2]["seconds"]
    assert [r["active_ops_normal"] for r in trace[1:]] == [8.0, 8.0, 5.0, 5.0, 3.0, 3.0]
    # the last stage never ran (nor trained) a pruned op: its weights are as built, the kept ops' have moved
    last, initial = built[-1]
    mask = strategy.masks["normal"]
    moved = {}
    for cell_type, e, edge in last.edge_modules():
        if cell_type != "normal":
            continue
        for k, op in enumerate(edge.ops):
            params = [(n, p) for n, p in op.named_parameters()]
            if not params:
                continue
            prefix = next(name for name, mod in last.named_modules() if mod is op)
            same = all(torch.equal(p, initial[f"{prefix}.{n}"]) for n, p in params)
            moved.setdefault(bool(mask[e, k]), []).append(not same)
    assert not any(moved[False]) and all(moved[True])
    # the derived normal cell uses only ops kept on their edges
    path = strategy.supernet.arch_to_path(strategy.current_arch())["normal"]
    assert all(bool(mask[e, k]) for e, k in enumerate(path) if k is not None)


def test_depth_grows_through_oneshot_search_and_is_reported() -> None:
    result = oneshot_search("pdarts", "darts-s3", _task(), 3, 8, seed=1, supernet_size={"C": 4, "layers": 2},
                            device="cpu")  # fmt: skip
    assert result.extra["depths"] == [2, 5, 8]  # default: the requested depth, then + 3 per stage
    assert result.extra["supernet_size"]["layers"] == 8 and [r["depth"] for r in result.trace[1:]] == [2.0, 5.0, 8.0]
    # S3 (none, skip, sep): the last pruning drops none, so two ops per edge stay
    assert torch.tensor(result.extra["masks"]["normal"]).sum(dim=1).tolist() == [2] * 14
    nb = oneshot_search("pdarts", "nb201", _task(), 3, 8, seed=1, supernet_size={"C": 4, "N": 1}, device="cpu")
    assert nb.extra["depths"] == [1, 1, 1]
    with pytest.raises(ValueError, match="depths"):
        oneshot_search("pdarts", "darts", _task(), 3, 8, supernet_size={"C": 4, "layers": 2}, depths=(2, 3))
