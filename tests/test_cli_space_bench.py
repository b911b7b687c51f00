"""``nasmeta space ...`` and ``nasmeta bench search`` through Typer's CliRunner."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from flows.cli import app
from nasmeta.spaces import get_space

ALL_CONV3 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
# wide, plain output so strings are not wrapped or coloured
ENV = {"COLUMNS": "400", "NO_COLOR": "1", "TERM": "dumb"}


def invoke(*args: str, env: dict | None = None):
    return CliRunner().invoke(app, list(args), env={**ENV, **(env or {})})


@pytest.mark.parametrize(("name", "size", "unique"), [("nb201", "15,625", "6,466"), ("macro", "6,561", "3,969")])
def test_space_info_finite_spaces(name: str, size: str, unique: str) -> None:
    result = invoke("space", "info", name)
    assert result.exit_code == 0, result.output
    assert re.search(rf"size \(encodings\)\s*│\s*{size}", result.output)
    assert re.search(rf"distinct architectures\s*│\s*{unique} ", result.output)
    assert all(op in result.output for op in get_space(name).ops)


def test_space_info_darts_variants_show_their_edge_ops() -> None:
    s1 = invoke("space", "info", "darts-s1")
    assert s1.exit_code == 0, s1.output
    assert "not enumerable" in s1.output
    # METHODS.md S1: last normal edge (node 5 <- 4) is {dil_conv_3x3, dil_conv_5x5}; reduce {skip, dil_conv_5x5}
    assert re.search(r"13: node 5 <- 4\s*│\s*dil_conv_3x3, dil_conv_5x5\s*│\s*skip_connect, dil_conv_5x5", s1.output)
    s4 = invoke("space", "info", "darts-s4")
    assert "candidate ops on every edge: sep_conv_3x3, noise" in s4.output or (
        "candidate ops on every edge: noise, sep_conv_3x3" in s4.output
    )


def test_space_sample_is_seeded_and_prints_parseable_strings() -> None:
    first = invoke("space", "sample", "nb201", "-n", "4", "--seed", "3")
    assert first.exit_code == 0, first.output
    strings = re.findall(r"\|[a-z_0-9~|+]+\|", first.output)
    assert len(strings) == 4
    space = get_space("nb201")
    for text in strings:
        arch = space.parse(text)
        assert arch.arch_id in first.output
    assert invoke("space", "sample", "nb201", "-n", "4", "--seed", "3").output == first.output
    assert invoke("space", "sample", "nb201", "-n", "4", "--seed", "4").output != first.output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("macro", "02012100"), "890,666"),  # METHODS.md NAS-Bench-Macro
        (("nb201", ALL_CONV3, "--classes", "100"), "1,537,396"),  # METHODS.md NB201, 100 classes
    ],
)
def test_space_params_published_counts(args: tuple, expected: str) -> None:
    result = invoke("space", "params", *args)
    assert result.exit_code == 0, result.output
    assert re.search(rf"parameters\s*│\s*{expected}\b", result.output)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("space", "info", "nb202"), "unknown search space 'nb202'"),
        (("space", "sample", "foo"), "unknown search space 'foo'"),
        (("space", "params", "macro", "0201210x"), "'x'"),
        (("space", "params", "nb201", "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|"), "conv"),
        (("space", "params", "macro", "02012100", "--input", "3,32"), "C,H,W"),
        (("bench", "search", "--space", "darts"), "no benchmark table for space 'darts'"),
        (("bench", "search", "--method", "bo"), "unknown method 'bo'"),
        (("bench", "search", "--dataset", "svhn"), "unknown dataset 'svhn'"),
        (("bench", "search", "--fidelity", "100"), "got 100"),
    ],
)
def test_bad_input_exits_nonzero_with_a_message(args: tuple, message: str) -> None:
    result = invoke(*args)
    assert result.exit_code != 0
    assert message in result.output


def test_bench_search_without_data_names_the_variable(monkeypatch) -> None:
    monkeypatch.delenv("NASMETA_DATA_DIR", raising=False)
    result = invoke("bench", "search", "--evaluations", "5")
    assert result.exit_code != 0
    assert "NASMETA_DATA_DIR" in result.output and "nb201_accuracy.csv" in result.output


def test_bench_search_prints_the_best_architecture_and_its_accuracy(data_dir) -> None:
    from nasmeta.blackbox import regularized_evolution
    from nasmeta.data.benchmarks import TabularEvaluator

    args = ("bench", "search", "--space", "nb201", "--dataset", "cifar10", "--method", "re")
    result = invoke(*args, "--evaluations", "100", "--seed", "0")
    assert result.exit_code == 0, result.output
    expected = regularized_evolution(get_space("nb201"), TabularEvaluator("nb201", "cifar10"), 100, seed=0)
    assert str(expected.best_arch) in result.output
    assert re.search(rf"test acc \(cifar10_test_200ep\)\s*│\s*{expected.best_test_acc:.2f}", result.output)
    assert re.search(r"best test acc in table / regret\s*│\s*94\.37 / ", result.output)

    macro = invoke("bench", "search", "--space", "macro", "--method", "rs", "--evaluations", "20", "--seed", "1")
    assert macro.exit_code == 0, macro.output
    assert re.search(r"best architecture\s*│\s*[012]{8}\s", macro.output)
    assert "val acc (test_acc[run])" in macro.output
