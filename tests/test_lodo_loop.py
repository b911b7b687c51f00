"""The one LODO loop: hook order and arguments, resuming from the rows of an interrupted run (through the results
CSV), failures recorded per (fold, method, seed) while the loop goes on, the ``nasmeta lodo`` stream and
``--resume``, and TAPAS's NB201 folds through the same loop."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from nasmeta.evaluation.lodo import (
    CsvRows,
    Fold,
    LodoHooks,
    combine_hooks,
    lodo,
    lodo_loop,
    read_rows,
    replay_lodo,
)

N_TASKS, N_RUNS, EPOCHS = 3, 12, 8
TASKS = [f"syn-{k}" for k in range(N_TASKS)]
METHODS = ["none", "median", "sh"]
# columns that depend on the clock are not part of "the same table"
STABLE = ["task_id", "method", "seed", "picked_run_id", "regret_val", "regret_test", "epochs", "seconds", "status"]


@pytest.fixture(scope="module")
def meta():
    from nasmeta.evaluation.synthetic import synthetic_meta

    return synthetic_meta(n_tasks=N_TASKS, n_runs=N_RUNS, epochs=EPOCHS, seed=3)


@pytest.fixture(scope="module")
def uninterrupted(meta):
    return replay_lodo(meta, METHODS, seeds=[0, 1])


class Recorder:
    """Every hook call, in order, as a tuple of plain values."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def hooks(self) -> LodoHooks:
        return LodoHooks(
            on_fold_start=lambda fold: self.calls.append(("fold_start", fold.task_id)),
            on_method_start=lambda fold, m: self.calls.append(("method_start", fold.task_id, m)),
            on_method_fitted=lambda fold, m, built, secs: self.calls.append(
                ("fitted", fold.task_id, m, built, secs >= 0)
            ),
            on_result=lambda fold, m, seed, row: self.calls.append(
                ("result", fold.task_id, m, seed, row["task_id"], row["method"], row["seed"], row["status"])
            ),
            on_method_end=lambda fold, m, rows: self.calls.append(
                ("method_end", fold.task_id, m, [(r["method"], r["seed"]) for r in rows])
            ),
            on_fold_end=lambda fold, rows: self.calls.append(
                ("fold_end", fold.task_id, [(r["method"], r["seed"]) for r in rows])
            ),
        )


def _toy_folds() -> list[Fold]:
    return [Fold("a", train=("b",), test="a"), Fold("b", train=("a",), test="b")]


def _toy_evaluate(name, method, fold, seed):
    return {"value": f"{method}:{fold.test}:{seed}"}


def test_hooks_are_called_in_order_with_the_right_keys():
    recorder = Recorder()
    factories = {"m1": lambda train: f"m1<{train[0]}", "m2": lambda train: f"m2<{train[0]}"}
    rows = lodo_loop(_toy_folds(), factories, _toy_evaluate, seeds=[7, 8], hooks=recorder.hooks())
    expected = []
    for task, other in (("a", "b"), ("b", "a")):
        expected.append(("fold_start", task))
        for m in ("m1", "m2"):
            expected += [("method_start", task, m), ("fitted", task, m, f"{m}<{other}", True)]
            expected += [("result", task, m, s, task, m, s, "completed") for s in (7, 8)]
            expected.append(("method_end", task, m, [(m, 7), (m, 8)]))
        expected.append(("fold_end", task, [("m1", 7), ("m1", 8), ("m2", 7), ("m2", 8)]))
    assert recorder.calls == expected
    assert [(r["task_id"], r["method"], r["seed"], r["value"]) for r in rows][:3] == [
        ("a", "m1", 7, "m1<b:a:7"),
        ("a", "m1", 8, "m1<b:a:8"),
        ("a", "m2", 7, "m2<b:a:7"),
    ]
    # combined hooks see the same calls, in the order given
    first, second = Recorder(), Recorder()
    lodo_loop(_toy_folds(), factories, _toy_evaluate, [7], hooks=combine_hooks(first.hooks(), None, second.hooks()))
    assert first.calls == second.calls and len(first.calls) == 2 * (1 + 2 * 4 + 1)


def test_resume_skips_finished_keys_and_gives_the_same_table(meta, uninterrupted, tmp_path):
    csv = tmp_path / "lodo_runs.csv"

    class SimulatedKillError(Exception):
        pass

    sink = CsvRows(csv)

    def stop_after_five(fold, method, seed, row):
        if len(sink.rows) >= 5:  # the sink has written the row: the file holds 5 rows when the "kill" comes
            raise SimulatedKillError

    with pytest.raises(SimulatedKillError):
        replay_lodo(
            meta, METHODS, seeds=[0, 1], hooks=combine_hooks(sink.hooks(), LodoHooks(on_result=stop_after_five))
        )
    done = read_rows(csv)
    assert len(done) == 5  # the file was complete up to the interruption
    assert [(r["task_id"], r["method"], r["seed"]) for r in done][:3] == [
        ("syn-0", "none", 0),
        ("syn-0", "none", 1),
        ("syn-0", "median", 0),
    ]

    recorder = Recorder()
    resumed = replay_lodo(meta, METHODS, seeds=[0, 1], hooks=recorder.hooks(), done=done)
    new = [c for c in recorder.calls if c[0] == "result"]
    assert len(new) == N_TASKS * len(METHODS) * 2 - 5
    assert not {(c[1], c[2], c[3]) for c in new} & {(r["task_id"], r["method"], r["seed"]) for r in done}
    # syn-0 had none (2 seeds), median (2 seeds) and sh seed 0 finished: only sh is started again there
    assert [c[2] for c in recorder.calls if c[0] == "method_start" and c[1] == "syn-0"] == ["sh"]
    # ... and its on_method_end sees both seeds, the reused one first
    assert ("method_end", "syn-0", "sh", [("sh", 0), ("sh", 1)]) in recorder.calls
    pd.testing.assert_frame_equal(resumed[STABLE], uninterrupted[STABLE], check_dtype=False)
    # through the CSV the numbers come back exactly
    full = read_rows(_write(uninterrupted, tmp_path / "full.csv"))
    assert replay_lodo(meta, METHODS, seeds=[0, 1], hooks=recorder.hooks(), done=full)[STABLE].equals(
        pd.DataFrame(full)[STABLE]
    )


def _write(frame: pd.DataFrame, path):
    frame.to_csv(path, index=False)
    return path


def test_a_finished_method_is_not_built_again(meta):
    built: list[str] = []

    def factory(name):
        def build(train):
            built.append(name)
            from nasmeta.evaluation.methods import make_method

            return make_method(name, train)

        return build

    def evaluate(name, method, fold, seed):
        return {"fold": fold.task_id}

    first = lodo(meta, {"none": factory("none"), "sh": factory("sh")}, evaluate, [0, 1], tasks=["syn-0"])
    assert built == ["none", "sh"]
    built.clear()
    again = lodo(
        meta,
        {"none": factory("none"), "sh": factory("sh")},
        evaluate,
        [0, 1],
        tasks=["syn-0"],
        done=first[first["method"] == "none"].to_dict("records"),
    )
    assert built == ["sh"] and len(again) == 4


def test_a_failing_method_is_recorded_and_the_loop_goes_on():
    def flaky_build(train):
        if train == ("a",):  # the fold holding out "b"
            raise RuntimeError("cannot fit on a alone")
        return "flaky"

    def evaluate(name, method, fold, seed):
        if name == "ok" and fold.task_id == "a" and seed == 8:
            raise ValueError("seed 8 diverged")
        return {"value": 1.0}

    factories = {"flaky": flaky_build, "ok": lambda train: "ok"}
    recorder = Recorder()
    rows = lodo_loop(_toy_folds(), factories, evaluate, [7, 8], hooks=recorder.hooks(), errors="record")
    frame = pd.DataFrame(rows).set_index(["task_id", "method", "seed"])
    assert len(frame) == 8
    failed = frame[frame["status"] == "failed"]
    assert failed["error"].to_dict() == {
        ("a", "ok", 8): "ValueError: seed 8 diverged",
        ("b", "flaky", 7): "RuntimeError: cannot fit on a alone",
        ("b", "flaky", 8): "RuntimeError: cannot fit on a alone",
    }
    assert (frame[frame["status"] == "completed"]["value"] == 1.0).all() and (frame["status"] == "completed").sum() == 5
    # the failed build has no on_method_fitted, but its rows and its end are reported; the next method runs
    b_calls = [c[:3] for c in recorder.calls if c[1] == "b"]
    assert ("fitted", "b", "flaky") not in b_calls and ("method_end", "b", "flaky") in b_calls
    assert ("fitted", "b", "ok") in b_calls
    # resuming retries exactly the failed keys
    retried = Recorder()
    lodo_loop(_toy_folds(), factories, evaluate, [7, 8], hooks=retried.hooks(), done=rows, errors="record")
    assert sorted(c[1:4] for c in retried.calls if c[0] == "result") == [
        ("a", "ok", 8),
        ("b", "flaky", 7),
        ("b", "flaky", 8),
    ]
    # the default lets the first exception through
    with pytest.raises(ValueError, match="seed 8 diverged"):
        lodo_loop(_toy_folds(), factories, evaluate, [7, 8])


def test_failed_rows_stay_out_of_the_tables(meta, tmp_path):
    from nasmeta.evaluation.methods import register_method
    from nasmeta.evaluation.tables import write_results

    @register_method("broken-on-syn-1")
    def _broken(train=None, **params):
        if "syn-1" not in train.task_ids:
            raise RuntimeError("no syn-1 to learn from")
        from nasmeta.blackbox.stopping import NoTermination

        return NoTermination()

    frame = replay_lodo(meta, ["none", "broken-on-syn-1"], seeds=[0], errors="record")
    assert frame.set_index(["task_id", "method"]).loc[("syn-1", "broken-on-syn-1"), "error"] == (
        "RuntimeError: no syn-1 to learn from"
    )
    paths = write_results(frame, tmp_path, name="x")
    assert len(pd.read_csv(paths["runs_csv"])) == N_TASKS * 2  # failed rows are kept with their reason ...
    text = paths["markdown"].read_text()  # ... and out of the means: broken-on-syn-1 has no syn-1 cell
    row = next(line for line in text.splitlines() if line.startswith("| broken-on-syn-1 |"))
    assert row.split("|")[3].strip() == ""


def test_bad_input():
    with pytest.raises(ValueError, match="errors"):
        lodo_loop(_toy_folds(), {"m": lambda t: t}, _toy_evaluate, [0], errors="ignore")
    with pytest.raises(ValueError, match="lacks"):
        lodo_loop(_toy_folds(), {"m": lambda t: t}, _toy_evaluate, [0], done=[{"task_id": "a", "seed": 0}])
    with pytest.raises(ValueError, match="no results file"):
        read_rows("/nonexistent/lodo_runs.csv")


# -- the command ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def store_root(tmp_path_factory):
    from metadata_store import MetadataStore
    from nasmeta.evaluation.synthetic import synthetic_tables

    root = tmp_path_factory.mktemp("loop_store")
    store = MetadataStore(root)
    for name, rows in synthetic_tables(n_tasks=N_TASKS, n_runs=N_RUNS, epochs=EPOCHS, seed=1).items():
        store.append(name, rows)
    return str(root)


def test_cli_streams_rows_and_resumes(store_root, tmp_path):
    from flows.cli import app

    args = ["lodo", "--methods", "none,sh", "--store", store_root, "--seeds", "2"]
    full = tmp_path / "full"
    result = CliRunner().invoke(app, [*args, "--out", str(full)])
    assert result.exit_code == 0, result.output
    progress = [line for line in result.output.splitlines() if line.startswith("[")]
    assert len(progress) == N_TASKS * 2 * 2
    assert progress[0].startswith("[1/12 ") and "syn-0 none seed 0: regret 0.00" in progress[0]
    assert progress[-1].startswith("[12/12 ")
    expected = pd.read_csv(full / "lodo_runs.csv")

    # an interrupted run left 5 rows; --resume computes the 7 others and writes the same table
    part = tmp_path / "part"
    part.mkdir()
    expected.head(5).to_csv(part / "lodo_runs.csv", index=False)
    result = CliRunner().invoke(app, [*args, "--resume", str(part / "lodo_runs.csv")])
    assert result.exit_code == 0, result.output
    assert "12 (task, method, seed) rows; 5 already finished" in result.output
    progress = [line for line in result.output.splitlines() if line.startswith("[")]
    assert len(progress) == 7 and progress[0].startswith("[6/12 ")
    again = pd.read_csv(part / "lodo_runs.csv")  # --out defaults to the resumed file's folder
    pd.testing.assert_frame_equal(again, expected)
    assert (part / "lodo.md").read_text() == (full / "lodo.md").read_text()

    bad = CliRunner().invoke(app, [*args, "--resume", str(tmp_path / "missing.csv")])
    assert bad.exit_code == 2 and "no such results CSV" in bad.output


# -- TAPAS's NB201 folds -------------------------------------------------------------------------------------------
def test_nb201_folds_go_through_the_loop_and_resume(data_dir):
    from nasmeta.transfer.tapas import TAPASConfig
    from nasmeta.transfer.tapas_lodo import METHOD, NB201LodoConfig, nb201_lodo

    config = NB201LodoConfig(
        k=2, n_train=20, n_predictions=20, population_size=5, sample_size=2, tau_archs=50, tapas=TAPASConfig(epochs=1)
    )
    recorder = Recorder()
    full = nb201_lodo(["cifar10"], seeds=[0, 1], config=config, hooks=recorder.hooks())
    assert [c[0] for c in recorder.calls] == ["fold_start", "method_start", "fitted", "result", "result"] + [
        "method_end",
        "fold_end",
    ]
    assert recorder.calls[0] == ("fold_start", "cifar10") and recorder.calls[2][3].sources == [
        "cifar100",
        "imagenet16-120",
    ]
    assert full[["task_id", "method", "seed", "held_out"]].values.tolist() == [
        ["cifar10", METHOD, 0, "cifar10"],
        ["cifar10", METHOD, 1, "cifar10"],
    ]
    resumed_calls = Recorder()
    resumed = nb201_lodo(
        ["cifar10"], seeds=[0, 1], config=config, hooks=resumed_calls.hooks(), done=full.head(1).to_dict("records")
    )
    assert [c[3] for c in resumed_calls.calls if c[0] == "result"] == [1]
    stable = [c for c in full.columns if c not in ("fit_seconds", "tap_search_seconds")]
    pd.testing.assert_frame_equal(resumed[stable], full[stable])
