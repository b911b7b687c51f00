"""Issue 19, item 9a (import): curve files with ``arch_id`` + ``space`` + ``arch_str`` store the architecture's
encoding, decreasing cumulative ``seconds`` are refused at import naming the row, and the README's example file
imports."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from metadata_store import MetadataStore
from nasmeta.data.store_import import import_curve_file

FIXTURE = Path(__file__).parent / "fixtures" / "imported_curves.csv"
CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def _write(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_rows_with_arch_id_space_and_arch_str_store_the_encoding(tmp_path: Path) -> None:
    from nasmeta.evaluation.runs import runs_from_meta
    from nasmeta.spaces import get_space

    rows = [
        dict(task_id="t", arch_id="nb301-17", space="nb201", arch_str=CELL, epoch=e, val_acc=10.0 * e, seconds=2.0 * e)
        for e in (1, 2, 3)
    ]
    store = MetadataStore(tmp_path / "store")
    assert import_curve_file(store, _write(tmp_path / "curves.csv", rows))["architectures"] == 1
    (arch_row,) = store.read("architectures").to_pylist()
    assert arch_row["arch_id"] == "nb301-17" and arch_row["encoding"]  # the file's id, a real encoding
    (run,) = runs_from_meta(store.meta())
    assert run.arch == get_space("nb201").parse(CELL)


def test_one_arch_id_for_two_architectures_is_refused(tmp_path: Path) -> None:
    other = CELL.replace("skip_connect~0", "avg_pool_3x3~0")
    rows = [
        {"task_id": "t", "arch_id": "same", "space": "nb201", "arch_str": s, "epoch": 1, "val_acc": 1.0}
        for s in (CELL, other)
    ]
    with pytest.raises(ValueError, match=r"row 2 .*'same' names two architectures"):
        import_curve_file(MetadataStore(tmp_path / "store"), _write(tmp_path / "c.csv", rows))


def test_decreasing_cumulative_seconds_are_refused_naming_the_row(tmp_path: Path) -> None:
    rows = [
        {"task_id": "t", "space": "nb201", "arch_str": CELL, "epoch": e, "val_acc": 10.0 * e, "seconds": s}
        for e, s in ((1, 5.0), (2, 11.0), (3, 9.5), (4, 20.0))
    ]
    store = MetadataStore(tmp_path / "store")
    with pytest.raises(ValueError) as error:
        import_curve_file(store, _write(tmp_path / "curves.csv", rows))
    message = str(error.value)
    assert "row 3 " in message and "seconds 9.5 at epoch 3" in message and "11 at epoch 2" in message
    assert "arch_id=" in message and "cumulative" in message
    assert all(store.files(table) == [] for table in ("tasks", "architectures", "runs", "curves"))  # nothing written


def test_the_readme_example_file_imports(tmp_path: Path) -> None:
    from nasmeta.evaluation.runs import runs_from_meta

    store = MetadataStore(tmp_path / "store")
    assert import_curve_file(store, FIXTURE) == {"tasks": 1, "architectures": 2, "runs": 2, "curves": 6}
    runs = runs_from_meta(store.meta())
    assert len(runs) == 2 and all(r.arch is not None and r.max_epochs == 3 for r in runs)
    assert sorted(r.final_val_acc for r in runs) == [29.0, 61.2]
    assert import_curve_file(store, FIXTURE) == {"tasks": 0, "architectures": 0, "runs": 0, "curves": 0}
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert "## Importing learning curves" in readme and "tests/fixtures/imported_curves.csv" in readme
