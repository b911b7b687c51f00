"""Benchmark tables and curve files imported into the store, and the ``nasmeta store`` commands."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.compute as pc
import pytest
from typer.testing import CliRunner

import flows.cli.store  # noqa: F401 - registers the store commands
from flows.cli._app import app
from metadata_store import MetadataStore, run_id
from nasmeta.data.store_import import architecture_from_row, import_macro, import_nb201, training_rows
from nasmeta.spaces import get_space

NB201_BEST = "|nor_conv_3x3~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


@pytest.fixture(scope="module")
def imported(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[MetadataStore, dict, dict]:
    store = MetadataStore(tmp_path_factory.mktemp("benchmarks") / "store")
    return store, import_nb201(store), import_macro(store)


def test_nb201_import_keeps_the_published_optima(imported) -> None:
    store, written, _ = imported
    # 15,625 cells, 6,466 architectures up to isomorphism; two fidelities on three datasets
    assert written == {"tasks": 3, "architectures": 6466, "runs": 6466 * 3 * 2}
    tasks = {r["task_id"]: r for r in store.read("tasks", source=["nb201:cifar10", "nb201:imagenet16-120"]).to_pylist()}
    assert tasks["nb201:cifar10"]["n_classes"] == 10 and tasks["nb201:imagenet16-120"]["height"] == 16
    for task, best in (("nb201:cifar10", 94.37), ("nb201:cifar100", 73.51), ("nb201:imagenet16-120", 47.31)):
        runs = store.read("runs", task_id=task, config_hash="nb201-200ep")
        assert runs.num_rows == 6466 and round(pc.max(runs["final_test_acc"]).as_py(), 2) == best
        assert runs["final_val_acc"].null_count == 6466 and set(runs["seed"].to_pylist()) == {-1}
    best_arch = get_space("nb201").parse(NB201_BEST)
    (row,) = store.read("runs", run_id=run_id("nb201:cifar10", best_arch.arch_id, -1, "nb201-12ep")).to_pylist()
    assert row["epochs_done"] == 12 and row["final_val_acc"] is not None
    (arch_row,) = store.read("architectures", arch_id=best_arch.arch_id).to_pylist()
    assert architecture_from_row(arch_row) == best_arch and arch_row["space"] == "nb201"


def test_macro_import_records_each_training_run(imported) -> None:
    store, _, written = imported
    assert written == {"tasks": 1, "architectures": 3969, "runs": 3969 * 3}
    arch = get_space("macro").parse("11111221")
    runs = store.read("runs", task_id="macro:cifar10", arch_id=arch.arch_id).to_pylist()
    assert [round(r["final_test_acc"], 2) for r in runs if r["seed"] == 0] == [92.18]
    assert sorted(r["seed"] for r in runs) == [0, 1, 2]
    (arch_row,) = store.read("architectures", arch_id=arch.arch_id).to_pylist()
    assert arch_row["n_params"] == 2_181_386 and arch_row["flops"] == 2 * 65_012_224


def test_reimport_adds_nothing(imported) -> None:
    store, _, _ = imported
    files = {t: len(store.files(t)) for t in ("tasks", "architectures", "runs")}
    assert import_macro(store) == {"tasks": 0, "architectures": 0, "runs": 0}
    assert import_nb201(store) == {"tasks": 0, "architectures": 0, "runs": 0}
    assert {t: len(store.files(t)) for t in files} == files


def test_training_result_rows_round_trip(tmp_path: Path) -> None:
    from nasmeta.training import TrainConfig, TrainResult

    arch = get_space("nb201").parse(NB201_BEST)
    config = TrainConfig()
    curve = [{"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.0, "val_acc": 60.0 + e, "test_acc": 59.0 + e,
              "seconds": 2.0 * e, "lr": 0.1} for e in (1, 2)]  # fmt: skip
    done = TrainResult("completed", None, curve, 62.0, 61.0, 2, 4.0, 1234, 5678, "cpu", config.config_hash())
    failed = TrainResult("failed", "loss is nan at epoch 1", [], float("nan"), float("nan"), 0, 0.5, 1234, 5678,
                         "cpu", config.config_hash())  # fmt: skip
    store = MetadataStore(tmp_path / "store")
    run, curves = training_rows("digits", arch, 0, failed, mlflow_run_id="abc", config=config)
    store.append("runs", [run])
    run, curves = training_rows("digits", arch, 0, done, mlflow_run_id="def", config=config)
    store.append("curves", curves)
    store.append("runs", [run])
    (row,) = store.read("runs").to_pylist()
    assert row["run_id"] == run_id("digits", arch.arch_id, 0, config.config_hash())
    assert (row["status"], row["final_val_acc"], row["mlflow_run_id"]) == ("completed", 62.0, "def")
    assert json.loads(row["config"])["epochs"] == config.epochs
    assert store.read("curves", run_id=row["run_id"])["val_acc"].to_pylist() == [61.0, 62.0]
    assert training_rows("digits", arch, 0, failed)[0]["final_val_acc"] is None


# -- CLI ----------------------------------------------------------------------------------------------------------
def test_cli_summary_and_compact(imported) -> None:
    store, _, _ = imported
    runner = CliRunner()
    result = runner.invoke(app, ["store", "summary", "--json", "--store", store.uri])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["runs"]["completed"] == 6466 * 6 + 3969 * 3
    assert {t["task_id"] for t in info["tasks"]} == {
        "nb201:cifar10",
        "nb201:cifar100",
        "nb201:imagenet16-120",
        "macro:cifar10",
    }
    result = runner.invoke(app, ["store", "summary", "--store", store.uri])
    assert result.exit_code == 0 and "macro:cifar10" in result.output
    result = runner.invoke(app, ["store", "compact", "--store", store.uri])
    assert result.exit_code == 0 and "runs: 2 -> 1 files" in result.output
    assert store.summary()["runs"] == info["runs"]


def test_cli_imports_a_curve_file_by_architecture_string(tmp_path: Path) -> None:
    # two NB201 cells that both compute the identity of the cell input: one architecture
    cells = ["|avg_pool_3x3~0|+|skip_connect~0|none~1|+|none~0|none~1|skip_connect~2|",
             "|skip_connect~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|"]  # fmt: skip
    path = tmp_path / "my_curves.csv"
    path.write_text(
        "task_id,space,arch_str,epoch,val_acc\n"
        + "".join(f"digits,nb201,{c},{e},{10 * e}\n" for c in cells for e in (1, 2))
    )
    root = str(tmp_path / "store")
    result = CliRunner().invoke(app, ["store", "import", str(path), "--store", root])
    assert result.exit_code == 0, result.output
    assert "architectures 1" in result.output and "runs 1" in result.output and "curves 2" in result.output
    store = MetadataStore(root)
    (arch,) = store.read("architectures").to_pylist()
    assert arch["arch_id"] == get_space("nb201").parse(cells[0]).arch_id and arch["encoding"]
    assert store.read("tasks").to_pylist()[0]["source"] == "my_curves.csv"


def test_cli_bad_input(tmp_path: Path) -> None:
    runner = CliRunner()
    a_file = tmp_path / "not_a_store"
    a_file.write_text("x")
    result = runner.invoke(app, ["store", "summary", "--store", str(a_file)])
    assert result.exit_code == 2 and "not_a_store" in result.output
    result = runner.invoke(app, ["store", "import", "nb2O1", "--store", str(tmp_path / "s")])
    assert result.exit_code == 2 and "nb2O1" in result.output
    bad = tmp_path / "bad.csv"
    bad.write_text("task_id,epoch,val_acc\nt,1,3\n")
    result = runner.invoke(app, ["store", "import", str(bad), "--store", str(tmp_path / "s")])
    assert result.exit_code == 2 and "arch_id" in result.output
