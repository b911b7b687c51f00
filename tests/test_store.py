"""The Parquet metadata store: round trips, dedup, atomic writes, compaction, filters, bad input, LODO views."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from metadata_store import TABLES, MetaDataset, MetadataStore, config_hash, import_curves, run_id

ROOT = Path(__file__).resolve().parents[1]


def _value(field: pa.Field, i: int):
    if pa.types.is_string(field.type):
        return f"{field.name}-{i}"
    if pa.types.is_integer(field.type):
        return 10 * i + 3
    if pa.types.is_floating(field.type):
        return 0.5 + i
    raise AssertionError(field)


def _full_rows(table: str, n: int = 3) -> list[dict]:
    """Rows with every column set (runs need a valid status)."""
    rows = []
    for i in range(n):
        row = {f.name: _value(f, i) for f in TABLES[table].schema if f.name not in ("schema_version", "created_at")}
        if table == "runs":
            row["status"] = "completed"
        rows.append(row)
    return rows


def _run(rid: str, status: str, task: str = "t1", **extra) -> dict:
    return {"run_id": rid, "task_id": task, "arch_id": "a", "seed": 0, "config_hash": "c", "status": status, **extra}


@pytest.fixture()
def store(tmp_path: Path) -> MetadataStore:
    return MetadataStore(tmp_path / "store")


# -- round trips ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("table", list(TABLES))
def test_round_trip_of_every_table(store: MetadataStore, table: str) -> None:
    rows = _full_rows(table)
    assert store.append(table, rows) == 3
    back = store.read(table).to_pylist()
    assert len(back) == 3
    for row in back:
        assert row.pop("schema_version") == 1
        assert isinstance(row.pop("created_at"), dt.datetime)
    key = TABLES[table].key
    assert sorted(back, key=lambda r: [r[k] for k in key]) == sorted(rows, key=lambda r: [r[k] for k in key])
    assert store.read(table).schema == TABLES[table].schema


def test_pyarrow_table_and_defaults(store: MetadataStore) -> None:
    # proxy_scores.seed defaults to 0; absent optional columns are null
    store.append("proxy_scores", pa.table({"task_id": ["t"], "arch_id": ["a"], "proxy": ["synflow"], "value": [1.5]}))
    row = store.read("proxy_scores").to_pylist()[0]
    assert row["seed"] == 0 and row["value"] == 1.5 and row["seconds"] is None


def test_fsspec_url_root_round_trip() -> None:
    store = MetadataStore("memory://nasmeta-test-store")
    store.append("tasks", [{"task_id": "t", "name": "digits", "n_classes": 10}])
    store.append("tasks", [{"task_id": "u", "name": "mnist", "n_classes": 10}])
    assert store.read("tasks", columns=["task_id", "name"]).to_pylist() == [
        {"task_id": "t", "name": "digits"},
        {"task_id": "u", "name": "mnist"},
    ]
    store.compact("tasks")
    assert len(store.files("tasks")) == 1 and store.read("tasks").num_rows == 2


def test_files_written_by_an_older_schema_read_with_nulls(store: MetadataStore, tmp_path: Path) -> None:
    # schema evolution: a file without the columns added later still reads, the missing ones are null
    old = pa.table({"run_id": ["r"], "task_id": ["t"], "arch_id": ["a"], "seed": [0], "config_hash": ["c"],
                    "status": ["completed"], "schema_version": pa.array([0], pa.int32())})  # fmt: skip
    folder = Path(store.table_dir("runs"))
    folder.mkdir(parents=True)
    pq.write_table(old, folder / "00000000000000000000-old.parquet")
    row = store.read("runs").to_pylist()[0]
    assert row["schema_version"] == 0 and row["mlflow_run_id"] is None and row["created_at"] is None
    store.append("runs", [_run("r", "completed", final_val_acc=80.0)])
    assert store.read("runs").to_pylist()[0]["final_val_acc"] == 80.0  # the dated row beats the undated one


# -- keys -----------------------------------------------------------------------------------------------------------
def test_run_id_is_a_deterministic_hash() -> None:
    expected = hashlib.sha256(json.dumps(["run", "t", "a", 3, "c"], separators=(",", ":")).encode()).hexdigest()
    assert run_id("t", "a", 3, "c") == expected[:20]
    assert run_id("t", "a", np.int64(3), "c") == run_id("t", "a", 3, "c")
    assert len({run_id("t", "a", s, "c") for s in range(5)}) == 5
    assert MetadataStore.run_id("t", "a", 3, "c") == run_id("t", "a", 3, "c")
    assert config_hash({"lr": 0.1, "epochs": 3}) == config_hash({"epochs": 3, "lr": 0.1})
    assert config_hash({"lr": 0.1}) != config_hash({"lr": 0.2})
    with pytest.raises(ValueError, match="seed"):
        run_id("t", "a", "0", "c")
    with pytest.raises(ValueError, match="task_id"):
        run_id("", "a", 0, "c")


# -- de-duplication ------------------------------------------------------------------------------------------------
def test_completed_run_wins_over_newer_failed_and_stopped(store: MetadataStore) -> None:
    store.append("runs", [_run("r1", "failed", error="nan loss")])
    store.append("runs", [_run("r1", "completed", final_val_acc=91.0)])
    store.append("runs", [_run("r1", "stopped")])
    store.append("runs", [_run("r1", "failed", error="oom")])
    runs = store.read("runs").to_pylist()
    assert [(r["status"], r["final_val_acc"]) for r in runs] == [("completed", 91.0)]
    # status is not pushed below de-duplication: superseded failures do not come back
    assert store.read("runs", status="failed").num_rows == 0
    assert store.read("runs", status="failed", dedup=False).num_rows == 2
    assert store.has_completed("r1") and store.completed_run_ids() == {"r1"}


def test_newest_wins_among_equals(store: MetadataStore) -> None:
    store.append("runs", [_run("r2", "completed", final_val_acc=1.0), _run("r3", "failed", error="x")])
    store.append("runs", [_run("r2", "completed", final_val_acc=2.0), _run("r3", "stopped")])
    got = {r["run_id"]: (r["status"], r["final_val_acc"]) for r in store.read("runs").to_pylist()}
    assert got == {"r2": ("completed", 2.0), "r3": ("stopped", None)}
    assert not store.has_completed("r3") and store.completed_run_ids() == {"r2"}
    # the same key twice in one batch: the later row wins
    store.append("curves", [{"run_id": "r2", "task_id": "t1", "epoch": 1, "val_acc": v} for v in (5.0, 6.0)])
    store.append("curves", [{"run_id": "r2", "task_id": "t1", "epoch": 2, "val_acc": 7.0}])
    store.append("curves", [{"run_id": "r2", "task_id": "t1", "epoch": 2, "val_acc": 8.0}])
    assert [(r["epoch"], r["val_acc"]) for r in store.read("curves").to_pylist()] == [(1, 6.0), (2, 8.0)]


# -- atomic writes ---------------------------------------------------------------------------------------------------
def test_each_append_is_one_committed_file_and_no_temporary_remains(store: MetadataStore) -> None:
    for i in range(4):
        store.append("curves", [{"run_id": "r", "task_id": "t", "epoch": i + 1}])
    names = os.listdir(store.table_dir("curves"))
    assert len(names) == 4 and len(set(names)) == 4
    assert all(n.endswith(".parquet") and not n.startswith(".") for n in names)
    assert store.append("curves", []) == 0 and len(os.listdir(store.table_dir("curves"))) == 4


def test_failed_rename_leaves_no_rows_and_no_file(store: MetadataStore, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(tmp: str, final: str) -> None:
        raise OSError("disk vanished")

    monkeypatch.setattr(store, "_commit", broken)
    with pytest.raises(OSError, match="disk vanished"):
        store.append("runs", [_run("r", "completed")])
    assert store.read("runs").num_rows == 0 and os.listdir(store.table_dir("runs")) == []


def test_crash_between_write_and_rename_leaves_no_visible_rows(store: MetadataStore) -> None:
    # a real process killed (SIGKILL) right after writing the temporary file, before the rename
    script = textwrap.dedent(
        f"""
        import os, signal
        from metadata_store import MetadataStore
        store = MetadataStore({store.root!r})
        store.append("runs", [dict(run_id="ok", task_id="t", arch_id="a", seed=0, config_hash="c",
                                   status="completed")])
        store._commit = lambda tmp, final: os.kill(os.getpid(), signal.SIGKILL)
        store.append("runs", [dict(run_id="lost", task_id="t", arch_id="a", seed=0, config_hash="c",
                                   status="completed")])
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, timeout=60)
    assert proc.returncode == -9, proc.stderr.decode()
    names = os.listdir(store.table_dir("runs"))
    assert len([n for n in names if n.endswith(".tmp")]) == 1  # the half-committed write is on disk ...
    assert store.read("runs")["run_id"].to_pylist() == ["ok"]  # ... but invisible
    store.compact("runs", stale_tmp_seconds=3600)
    assert len([n for n in os.listdir(store.table_dir("runs")) if n.endswith(".tmp")]) == 1  # too young to remove
    store.compact("runs", stale_tmp_seconds=0)
    assert [n for n in os.listdir(store.table_dir("runs")) if n.endswith(".tmp")] == []
    assert store.read("runs")["run_id"].to_pylist() == ["ok"]


# -- compaction -------------------------------------------------------------------------------------------------------
def _populate(store: MetadataStore) -> None:
    store.append("runs", [_run("r1", "failed", error="nan"), _run("r2", "completed", final_val_acc=50.0)])
    store.append("runs", [_run("r1", "completed", final_val_acc=60.0)])
    store.append("runs", [_run("r3", "stopped", task="t2")])
    store.append("runs", [_run("r1", "failed", error="again")])
    for epoch in (1, 2, 3):
        store.append("curves", [{"run_id": r, "task_id": "t1", "epoch": epoch, "val_acc": 10.0 * epoch} for r in "ab"])
    store.append("curves", [{"run_id": "a", "task_id": "t1", "epoch": 2, "val_acc": 99.0}])


def test_compact_preserves_rows_and_dedup(store: MetadataStore) -> None:
    _populate(store)
    before = {t: store.read(t).to_pylist() for t in ("runs", "curves")}
    report = store.compact()
    assert report["runs"] == {"files_before": 4, "files_after": 1, "rows": 3}
    assert report["curves"]["files_before"] == 4 and report["curves"]["files_after"] == 1
    after = {t: store.read(t).to_pylist() for t in ("runs", "curves")}
    assert after == before  # created_at included: compaction keeps each row as it was
    # superseded rows are gone from disk, not only hidden
    assert store.read("runs", dedup=False).num_rows == 3
    # later appends still win over compacted rows
    store.append("curves", [{"run_id": "a", "task_id": "t1", "epoch": 2, "val_acc": 1.0}])
    assert store.read("curves", run_id="a", epoch=2)["val_acc"].to_pylist() == [1.0]
    assert store.compact("runs")["runs"] == {"files_before": 1, "files_after": 1, "rows": 3}


def test_reader_during_compaction_window(store: MetadataStore, monkeypatch: pytest.MonkeyPatch) -> None:
    _populate(store)
    before = store.read("runs").to_pylist()
    old_files = store.files("runs")
    # 1) merged file written, old files not yet deleted: both visible, de-duplication hides the doubles
    monkeypatch.setattr(store, "_remove", lambda path: None)
    store.compact("runs")
    assert len(store.files("runs")) == len(old_files) + 1
    assert store.read("runs").to_pylist() == before
    monkeypatch.undo()
    # 2) a reader listed the old files, then a compaction deleted them before it opened them: it lists again
    for path in old_files:
        store.fs.delete_file(path)
    listings = iter([old_files])
    real_files = MetadataStore.files
    monkeypatch.setattr(store, "files", lambda table: next(listings, None) or real_files(store, table))
    assert store.read("runs").to_pylist() == before
    # 3) a listing that ran while a compaction renamed its merged file in and deleted the sources saw neither
    #    (a directory listing is no snapshot); the new compacted file in the next listing makes the reader retry
    assert len(real_files(store, "runs")) == 1
    torn = [[]]
    monkeypatch.setattr(store, "files", lambda table: torn.pop() if torn else real_files(store, table))
    assert store.read("runs").to_pylist() == before and not torn


# -- filters ----------------------------------------------------------------------------------------------------------
def test_filters_return_the_right_subset(store: MetadataStore) -> None:
    rows = [
        {"run_id": f"r{t}{a}", "task_id": f"t{t}", "epoch": e, "val_acc": float(100 * t + 10 * a + e)}
        for t in range(3)
        for a in range(4)
        for e in range(1, 6)
    ]
    for start in range(0, len(rows), 7):
        store.append("curves", rows[start : start + 7])
    got = store.read("curves", task_id="t1", run_id=["r11", "r13", "r21"])
    expected = [r for r in rows if r["task_id"] == "t1" and r["run_id"] in ("r11", "r13", "r21")]
    assert got.select(["run_id", "task_id", "epoch", "val_acc"]).to_pylist() == expected
    assert store.read("curves", epoch=[1, 5], task_id="t2").num_rows == 8
    assert store.read("curves", train_loss=None).num_rows == len(rows)
    assert store.read("curves", columns=["val_acc"], run_id="r00").column_names == ["val_acc"]
    import pyarrow.compute as pc

    assert store.read("curves", filter=pc.field("val_acc") > 224.0).num_rows == 6
    assert store.completed_run_ids(task_id="nope") == set()


# -- bad input ---------------------------------------------------------------------------------------------------
def test_bad_input_raises_value_errors_naming_the_problem(store: MetadataStore, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'nope'"):
        store.append("nope", [{"x": 1}])
    with pytest.raises(ValueError, match="'nope'"):
        store.read("nope")
    with pytest.raises(ValueError, match="'nope'"):
        store.compact("nope")
    with pytest.raises(ValueError, match="'run_id'"):
        store.append("runs", [{"task_id": "t", "arch_id": "a", "seed": 0, "config_hash": "c", "status": "completed"}])
    with pytest.raises(ValueError, match="'epoch'"):
        store.append("curves", [{"run_id": "r", "task_id": "t", "epoch": 1}, {"run_id": "r", "task_id": "t"}])
    with pytest.raises(ValueError, match="'colour'"):
        store.append("tasks", [{"task_id": "t", "colour": "red"}])
    with pytest.raises(ValueError, match="'n_classes'"):
        store.append("tasks", [{"task_id": "t", "n_classes": "ten"}])
    with pytest.raises(ValueError, match="'exploded'"):
        store.append("runs", [_run("r", "exploded")])
    with pytest.raises(ValueError, match="schema_version"):
        store.append("tasks", [{"task_id": "t", "schema_version": 99}])
    with pytest.raises(ValueError, match="'colour'"):
        store.read("tasks", colour="red")
    with pytest.raises(ValueError, match="not a dict"):
        store.append("tasks", ["t"])
    assert not Path(store.root).exists() or store.read("tasks").num_rows == 0
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    with pytest.raises(ValueError, match="a_file"):
        MetadataStore(a_file)


# -- summary and views ------------------------------------------------------------------------------------------------
def _lodo_store(store: MetadataStore) -> None:
    store.append("tasks", [{"task_id": t, "name": t, "source": "test"} for t in ("t1", "t2", "t3")])
    store.append("landmarkers", [{"task_id": t, "name": n, "value": float(i)} for i, t in enumerate(("t1", "t2", "t3"))
                                 for n in ("dcn", "n_classes")])  # fmt: skip
    store.append("architectures", [{"arch_id": a, "space": "nb201", "arch_str": f"|{a}|"} for a in ("a", "b")])
    runs, curves = [], []
    for t in ("t1", "t2", "t3"):
        for a in ("a", "b"):
            rid = run_id(t, a, 0, "c")
            runs.append({**_run(rid, "completed", task=t), "arch_id": a, "final_val_acc": 50.0})
            curves += [{"run_id": rid, "task_id": t, "epoch": e, "val_acc": 10.0 * e} for e in (1, 2, 3)]
    runs.append({**_run("broken", "failed", task="t2"), "error": "nan"})
    store.append("curves", curves)
    store.append("runs", runs)
    store.append(
        "proxy_scores", [{"task_id": t, "arch_id": "a", "proxy": "synflow", "value": 1.0} for t in ("t1", "t2")]
    )


def test_summary_counts(store: MetadataStore) -> None:
    _lodo_store(store)
    summary = store.summary()
    assert summary["runs"] == {"completed": 6, "failed": 1, "stopped": 0}
    assert summary["tables"]["curves"] == {"rows": 18, "files": 1}
    assert [t["task_id"] for t in summary["tasks"]] == ["t1", "t2", "t3"]
    assert summary["tasks"][1]["failed"] == 1 and summary["tasks"][1]["completed"] == 2
    json.dumps(summary)  # the CLI prints it as JSON


def test_without_excludes_exactly_one_tasks_rows(store: MetadataStore) -> None:
    _lodo_store(store)
    meta = store.meta()
    rest = meta.without("t2")
    for table in ("tasks", "landmarkers", "runs", "curves", "proxy_scores"):
        full, kept = meta.table(table), rest.table(table)
        assert "t2" not in kept["task_id"].to_pylist()
        assert kept.num_rows == full.num_rows - full["task_id"].to_pylist().count("t2") > 0
    assert rest.architectures.num_rows == meta.architectures.num_rows == 2
    assert meta.only("t2").task_ids == ["t2"] and rest.task_ids == ["t1", "t3"]
    assert meta.only("t1", "t2").without("t1").task_ids == ["t2"]
    assert meta.task_ids == ["t1", "t2", "t3"]  # views never change their parent
    with pytest.raises(ValueError, match="'t9'"):
        meta.without("t9")


def test_meta_dataset_conveniences(store: MetadataStore) -> None:
    _lodo_store(store)
    meta = store.meta().only("t1")
    joined = meta.runs_with_archs()
    assert joined.num_rows == 2 and joined["arch_str"].to_pylist() == [
        "|a|" if a == "a" else "|b|" for a in joined["arch_id"].to_pylist()
    ]
    curves = meta.curves_by_run("val_acc")
    assert len(curves) == 2 and all(np.array_equal(c, [10.0, 20.0, 30.0]) for c in curves.values())
    assert len(store.meta().curves_by_run(status="failed")) == 0
    tasks, names, matrix = store.meta().without("t1").landmarker_matrix()
    assert tasks == ["t2", "t3"] and names == ["dcn", "n_classes"] and matrix.tolist() == [[1.0, 1.0], [2.0, 2.0]]
    assert meta.frame("runs").shape[0] == 2
    in_memory = MetaDataset.from_tables(runs=store.read("runs"), curves=store.read("curves").to_pylist())
    assert in_memory.without("t2").runs.num_rows == 4 and in_memory.tasks.num_rows == 0


# -- external curves ---------------------------------------------------------------------------------------------------
def test_import_curves_csv_round_trip_and_idempotence(store: MetadataStore, tmp_path: Path) -> None:
    path = tmp_path / "lc.csv"
    lines = ["task_id,arch_id,epoch,seed,val_acc,test_acc,seconds,space,arch_str"]
    for arch in ("0123", "0456"):  # ids that look like numbers stay text
        for epoch in (1, 2, 3):
            lines.append(f"lcbench-adult,{arch},{epoch},1,{50 + epoch},{40 + epoch},{1.5 * epoch},mlp,{arch}-str")
    path.write_text("\n".join(lines) + "\n")
    assert import_curves(store, path) == {"tasks": 1, "architectures": 2, "runs": 2, "curves": 6}
    runs = store.read("runs").to_pylist()
    assert {r["arch_id"] for r in runs} == {"0123", "0456"}
    assert all(r["final_val_acc"] == 53.0 and r["epochs_done"] == 3 and r["seconds"] == 4.5 for r in runs)
    assert runs[0]["run_id"] == run_id("lcbench-adult", runs[0]["arch_id"], 1, "external")
    assert store.read("tasks").to_pylist()[0]["source"] == "lc.csv"
    assert store.import_curves(path) == {"tasks": 0, "architectures": 0, "runs": 0, "curves": 0}
    bad = tmp_path / "bad.csv"
    bad.write_text("task_id,arch_id,epoch,valacc\nt,a,1,3\n")
    with pytest.raises(ValueError, match="'valacc'"):
        import_curves(store, bad)
    bad.write_text("task_id,arch_id,val_acc\nt,a,3\n")
    with pytest.raises(ValueError, match="'epoch'"):
        import_curves(store, bad)
    with pytest.raises(ValueError, match="missing.parquet"):
        import_curves(store, tmp_path / "missing.parquet")


def test_the_store_imports_pyarrow_only() -> None:
    code = (
        "import sys, metadata_store\n"
        "heavy = [m for m in ('torch', 'prefect', 'mlflow', 'nasmeta') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
