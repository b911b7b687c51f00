"""Benchmark tables (NAS-Bench-201, NAS-Bench-Macro) and the tabular evaluator with its simulated cost."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from nasmeta.config import DataNotFoundError
from nasmeta.data import benchmarks as B
from nasmeta.spaces import get_space

NB201 = get_space("nb201")
MACRO = get_space("macro")
ALL_CONV3 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
ALL_SKIP = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"
ROW0 = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"


def test_nb201_lookups_match_the_csv(data_dir) -> None:
    table = B.nb201_table()
    assert len(table) == 15625
    # values read off benchmarks/nb201_accuracy.csv (rows 0 and 1462)
    assert table.row(ROW0) == 0
    assert B.nb201_accuracy(ROW0, "cifar10", 200) == pytest.approx(85.8633)
    assert B.nb201_accuracy(ROW0, "cifar100", 200) == pytest.approx(52.9133)
    assert B.nb201_accuracy(ROW0, "ImageNet16-120", 200) == pytest.approx(26.6333)
    assert B.nb201_accuracy(ROW0, "cifar10", 12, "val") == pytest.approx(63.364)
    assert B.nb201_accuracy(ROW0, "cifar10", 12, "test") == pytest.approx(69.55)
    conv = NB201.parse(ALL_CONV3)
    assert table.row(conv) == NB201.index(conv) == 1462
    assert B.nb201_accuracy(conv, "cifar100", 12, "val") == pytest.approx(44.06)
    assert B.nb201_accuracy(conv, "imagenet16-120", 12, "test") == pytest.approx(22.4)


def test_every_cell_is_found_and_a_random_sample_agrees_with_an_independent_csv_read(data_dir) -> None:
    table = B.nb201_table()
    assert [table.row(a) for a in NB201.enumerate()] == list(range(15625))
    with open(data_dir / "benchmarks" / "nb201_accuracy.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for i in np.random.default_rng(0).integers(0, 15625, size=20):
        row = rows[i]
        for (dataset, epochs, split), column in B.NB201_COLUMNS.items():
            assert B.nb201_accuracy(row["arch_str"], dataset, epochs, split) == float(row[column])


def test_published_nb201_numbers(data_dir) -> None:
    # METHODS.md / Dong & Yang 2020: optimum 94.37 / 73.51 / 47.31 (200-epoch test)
    assert round(B.nb201_best_accuracy("cifar10"), 2) == 94.37
    assert round(B.nb201_best_accuracy("cifar100"), 2) == 73.51
    assert round(B.nb201_best_accuracy("imagenet16-120"), 2) == 47.31
    assert round(B.best_accuracy("nb201", "cifar10"), 2) == 94.37
    # DARTS collapses to the all-skip cell: 54.30 / 15.61 / 16.32
    assert [round(B.nb201_accuracy(ALL_SKIP, d), 2) for d in B.NB201_DATASETS] == [54.30, 15.61, 16.32]


def test_macro_lookups(data_dir) -> None:
    entry = B.macro_table().entry(MACRO.parse("02012100"))
    assert entry.params == 890_666 and entry.flops == 47_327_744
    assert entry.test_acc == pytest.approx((89.47000122070312, 88.94999694824219, 89.16999816894531))
    assert B.macro_accuracy("02012100") == pytest.approx(np.mean(entry.test_acc))
    assert len(B.macro_table()) == 6561
    assert round(B.macro_best_accuracy(), 2) == 93.13


def test_bad_lookups_raise_naming_the_value(data_dir) -> None:
    with pytest.raises(ValueError, match="cifar11"):
        B.nb201_accuracy(ROW0, "cifar11")
    with pytest.raises(ValueError, match="no val accuracy at 200 epochs"):
        B.nb201_accuracy(ROW0, "cifar10", 200, "val")
    with pytest.raises(ValueError, match="50"):
        B.nb201_accuracy(ROW0, "cifar10", 50)
    with pytest.raises(ValueError, match="not in the NB201 table"):
        B.nb201_accuracy("|none~0|+|none~0|none~1|", "cifar10")
    with pytest.raises(ValueError, match="macro"):
        B.nb201_table().row(MACRO.parse("00000000"))
    with pytest.raises(ValueError, match="0000000x"):
        B.macro_table().entry("0000000x")


@pytest.mark.parametrize("value", [None, "empty"])
def test_missing_data_gives_a_clear_error(monkeypatch, tmp_path, value) -> None:
    if value is None:
        monkeypatch.delenv("NASMETA_DATA_DIR", raising=False)
    else:
        monkeypatch.setenv("NASMETA_DATA_DIR", str(tmp_path))
    for loader, name in ((B.nb201_table, "nb201_accuracy.csv"), (B.macro_table, "nas-bench-macro_cifar10.json")):
        with pytest.raises(DataNotFoundError, match=name) as info:
            loader()
        assert "NASMETA_DATA_DIR" in str(info.value)
    with pytest.raises(DataNotFoundError, match="NASMETA_DATA_DIR"):
        B.TabularEvaluator("nb201")


def test_evaluator_column_roles_nb201(data_dir) -> None:
    arch = NB201.parse(ALL_CONV3)
    evaluator = B.TabularEvaluator("nb201", "cifar10")
    assert evaluator.max_epochs == 200
    full = evaluator.evaluate(arch)
    assert (full.val_acc, full.test_acc, full.epochs) == (pytest.approx(69.078), pytest.approx(93.76), 200)
    short = evaluator.evaluate(arch, epochs=12)
    assert (short.val_acc, short.test_acc) == (pytest.approx(69.078), pytest.approx(82.2))
    assert short.cost_seconds == pytest.approx(full.cost_seconds * 12 / 200)
    oracle = B.TabularEvaluator("nb201", "cifar100", val_at_200="test").evaluate(arch)
    assert oracle.val_acc == oracle.test_acc == pytest.approx(71.1067)
    assert evaluator.columns(12) == ("cifar10_valid_val_12ep", "cifar10_valid_test_12ep")


def test_evaluator_macro_uses_one_run_for_selection_and_the_mean_for_reporting(data_dir) -> None:
    evaluator = B.TabularEvaluator("macro")
    arch = MACRO.parse("02012100")
    entry = B.macro_table().entry(arch)
    seen = set()
    for seed in range(30):
        evaluation = evaluator.evaluate(arch, seed=seed)
        assert evaluation == evaluator.evaluate(arch, seed=seed)  # deterministic
        assert evaluation.val_acc == entry.test_acc[evaluation.extra["run"]]
        assert evaluation.test_acc == entry.mean_acc and evaluation.epochs == 50
        seen.add(evaluation.extra["run"])
    assert seen == {0, 1, 2}


def test_evaluator_rejects_bad_input(data_dir) -> None:
    with pytest.raises(ValueError, match="darts"):
        B.TabularEvaluator("darts")
    with pytest.raises(ValueError, match="cifar100"):
        B.TabularEvaluator("macro", "cifar100")
    with pytest.raises(ValueError, match="13"):
        B.TabularEvaluator("nb201", max_epochs=13)
    evaluator = B.TabularEvaluator("nb201")
    with pytest.raises(ValueError, match="epochs, got 50"):
        evaluator.evaluate(NB201.parse(ALL_CONV3), epochs=50)
    with pytest.raises(ValueError, match="nb201"):
        evaluator.evaluate(MACRO.parse("00000000"))


def test_cost_model_formula_and_ordering(data_dir) -> None:
    evaluator = B.TabularEvaluator("nb201", "cifar10", flops_per_second=1e12)
    conv, skip = NB201.parse(ALL_CONV3), NB201.parse(ALL_SKIP)
    flops = B.nb201_forward_flops(conv, "cifar10")
    expected = 200 * 50_000 * 3 * flops / 1e12
    assert evaluator.evaluate(conv).cost_seconds == pytest.approx(expected)
    assert evaluator.evaluate(skip).cost_seconds < evaluator.evaluate(conv).cost_seconds / 10


def test_nb201_flops_are_additive_over_edges() -> None:
    """The decomposition the cost model uses equals counting the built network (flop_counter, meta device)."""
    rng = np.random.default_rng(3)
    for dataset in ("cifar10", "cifar10", "imagenet16-120"):
        arch = NB201.sample(rng)
        assert B.nb201_forward_flops(arch, dataset) == B.count_forward_flops("nb201", arch, dataset)


def test_macro_table_flops_are_multiply_accumulates_of_the_built_network(data_dir) -> None:
    for text in ("02012100", "22222222", "00000000"):
        arch = MACRO.parse(text)
        assert B.count_forward_flops("macro", arch, "cifar10") == 2 * B.macro_table().entry(arch).flops
