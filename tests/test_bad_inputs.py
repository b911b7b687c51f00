"""Bad input on every command: exit code 2, one line ``error: ...`` naming the bad value, nothing written to the
store, answered before any work starts (CliRunner, in process: no flow, no Prefect server, no training)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from flows.cli import app

HUGE = "x" * 5000


def _cases(tmp: Path) -> list[list[str]]:
    arch_bad = tmp / "bad_archs.txt"
    arch_bad.write_text("|nor_conv_3x3~0|+|bogus_op~0|nor_conv_1x1~1|+|none~0|none~1|none~2|\n")
    not_json = tmp / "arch.json"
    not_json.write_text("{not json")
    weights = tmp / "weights.pt"
    weights.write_text("not a checkpoint")
    store = ["--store", str(tmp / "store")]
    return [
        # lodo-collection, store describe
        ["lodo-collection", "--ks", "5,0", "--out", str(tmp / "out")],
        ["lodo-collection", "--pool-methods", "random,zz", "--out", str(tmp / "out")],
        ["lodo-collection", "--stopping-methods", "median,zz", "--out", str(tmp / "out")],
        ["lodo-collection", "--store", str(tmp / "no-store"), "--out", str(tmp / "out")],
        ["lodo-collection", "--resume", str(tmp / "no-such.csv"), "--out", str(tmp / "out")],
        [
            "lodo-collection",
            "--pool-methods",
            "",
            "--stopping-methods",
            "",
            "--curve-epochs",
            "",
            "--out",
            str(tmp / "out"),
        ],
        ["store", "describe", "--label", "accuracy", *store],
        # pipeline
        ["pipeline", "--budget", "tiny", *store],
        ["pipeline", "--target", "nope", *store],
        ["pipeline", "--target", "digits-0to4", "--sources", "digits-0to4", *store],
        ["pipeline", "--metadata", "nope", *store],
        ["pipeline", "--sources", "digits-0to4,nope", *store],
        ["pipeline", "--sources", ",", *store],
        ["pipeline", "--space", "nb202", *store],
        ["pipeline", "--methods", "blackbox-ree", *store],
        ["pipeline", "--methods", "zeroshot+hyperband", *store],
        ["pipeline", "--space", "darts", "--methods", "transfer-tapas", *store],
        ["pipeline", "--set", "evaluations=-3", *store],
        ["pipeline", "--set", "evaluations=abc", *store],
        ["pipeline", "--set", "nonsense=1", *store],
        ["pipeline", "--set", "noequals", *store],
        ["pipeline", "--set", "network.nb301.C=4", *store],
        ["pipeline", "--target", HUGE, *store],
        ["pipeline", "--target", "ünïcödé-täsk", *store],
        # search target
        ["search", "target", "--task", "nope", *store],
        ["search", "target", "--methods", "blackbox-re+hyperbnd", *store],
        ["search", "target", "--methods", "blackbox-re,blackbox-re", *store],
        ["search", "target", "--budget", "", *store],
        ["search", "target", "--space", "macro", "--methods", "oneshot-darts", *store],
        ["search", "target", "--set", "train=[1,2]", *store],
        ["search", "target", "--methods", HUGE, *store],
        # collect
        ["collect", "--collection", "nope", *store],
        ["collect", "--collection", "nasmeta-meta-v1", "--epochs", "5", *store],
        ["collect", "--tasks", "nope", *store],
        ["collect", "--tasks", ",,", *store],
        ["collect", "--space", "nope", *store],
        ["collect", "--archs", "0", *store],
        ["collect", "--archs", "100000", *store],
        ["collect", "--epochs", "-1", *store],
        ["collect", "--seeds", "a", *store],
        ["collect", "--train", "{lr: 0.1", *store],
        ["collect", "--train", "[1, 2]", *store],
        ["collect", "--train", '{"lr": -1}', *store],
        ["collect", "--train", '{"optimizer": "rmsprop"}', *store],
        ["collect", "--size", "C", *store],
        ["collect", "--size", "C=abc", *store],
        ["collect", "--workers", "0", *store],
        ["collect", "--task-runner", "ray", *store],
        ["collect", "--arch-file", str(tmp / "missing.txt"), *store],
        ["collect", "--arch-file", str(arch_bad), *store],
        ["collect", "--samples-per-class", "1", *store],
        # search zeroshot / oneshot
        ["search", "zeroshot", "--space", "nope", "--task", "digits"],
        ["search", "zeroshot", "--task", "nope"],
        ["search", "zeroshot", "--task", "digits", "--sample", "0"],
        ["search", "zeroshot", "--task", "digits", "--proxy", "nope"],
        ["search", "oneshot", "--task", "digits", "--method", "nope"],
        ["search", "oneshot", "--task", "digits", "--space", "macro"],
        ["search", "oneshot", "--task", "digits", "--method", "enas", "--order", "2"],
        ["search", "oneshot", "--task", "nope"],
        # proxies
        ["proxies", "score", "--task", "digits", "--proxy", "nope", "--sample", "2"],
        ["proxies", "score", "--task", "digits"],
        ["proxies", "correlate", "--space", "nb201", "--dataset", "nope", "--sample", "5"],
        # bench
        ["bench", "search", "--space", "nb201", "--method", "nope"],
        ["bench", "search", "--space", "darts", "--method", "re"],
        ["bench", "search", "--space", "nb201", "--evaluations", "0"],
        # space / tasks
        ["space", "info", "nope"],
        ["space", "sample", "nb201", "-n", "-2"],
        ["space", "params", "nb201", "|bogus~0|+|none~0|none~1|+|none~0|none~1|none~2|"],
        ["space", "params", "macro", "0123"],
        ["tasks", "describe", "nope"],
        # store (read commands on a missing store)
        ["store", "summary", *store],
        ["store", "compact", *store],
        ["store", "import", "nothing-like-this", *store],
        ["searches", "list", *store],
        ["searches", "show", "abc", *store],
        # lodo
        ["lodo", "--methods", "nope", *store],
        ["lodo", "--methods", "median", "--seeds", "0", *store],
        # data-backed tasks without the data folder: one line naming the variable
        ["tasks", "describe", "mnist"],
        ["search", "target", "--task", "mnist-0to4", *store],
        ["collect", "--tasks", "cifar10-vehicles", *store],
        ["pipeline", "--target", "mnist-5to9", "--sources", "mnist-0to4", *store],
        ["search", "target", "--task", f"npz:{tmp / 'missing.npz'}", *store],
        ["nope-command"],
        # export
        ["export", str(not_json), "--out", str(tmp / "model.pt")],
        ["export", str(tmp / "missing.json"), "--out", str(tmp / "model.pt")],
    ]


def test_every_bad_input_is_one_line_with_exit_2_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("NASMETA_TRACKING", "0")
    monkeypatch.delenv("NASMETA_DATA_DIR", raising=False)
    cases = _cases(tmp_path)
    assert len(cases) >= 60
    bad = []
    for args in cases:
        result = CliRunner().invoke(app, args)
        lines = [line for line in result.output.splitlines() if line.strip()]
        ok = result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and len(lines[0]) <= 420
        if not ok:
            bad.append((args[:4], result.exit_code, lines[:3], repr(result.exception)[:200]))
    assert not bad, json.dumps(bad, indent=1, default=str)
    assert not (tmp_path / "store").exists() and not (tmp_path / "out").exists()
