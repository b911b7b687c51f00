"""Export: state dict + arch JSON round trip, TorchScript loaded in a fresh process with only torch, and the
``nasmeta export`` / ``nasmeta search oneshot`` commands."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from nasmeta.export import export_model, load_model
from nasmeta.spaces import get_space

ARCH = "|nor_conv_3x3~0|+|skip_connect~0|avg_pool_3x3~1|+|none~0|nor_conv_1x1~1|nor_conv_3x3~2|"


def _trained_like_model():
    space = get_space("nb201")
    arch = space.parse(ARCH)
    torch.manual_seed(0)
    model = space.build(arch, 10, (3, 16, 16), C=4, N=1)
    with torch.no_grad():  # move BN statistics away from their defaults so that a lost buffer would show
        model.train()
        model(torch.randn(32, 3, 16, 16))
    return arch, model.eval()


def _run_with_only_torch(tmp_path: Path, load: str, x_batch: int = 3) -> str:
    """Load an exported file in a fresh process that imports nothing but torch; returns the output shape."""
    x = torch.randn(x_batch, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    torch.save(x, tmp_path / "x.pt")
    script = textwrap.dedent(
        f"""
        import sys, warnings
        import torch
        warnings.simplefilter("error", FutureWarning)  # a deprecated loader would fail here
        m = {load}
        x = torch.load({str(tmp_path / "x.pt")!r})
        with torch.no_grad():
            y = m(x)
        assert torch.allclose(y, torch.load({str(tmp_path / "expected.pt")!r}), atol=1e-5)
        assert not any(name == "nasmeta" or name.startswith("nasmeta.") for name in sys.modules)
        print(tuple(y.shape))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_exported_program_runs_in_a_fresh_process_with_only_torch(tmp_path: Path) -> None:
    arch, model = _trained_like_model()
    files = export_model(
        model, arch, tmp_path / "model.pt", num_classes=10, input_shape=(3, 16, 16), size={"C": 4, "N": 1}
    )
    assert files.program == tmp_path / "model.pt2" and files.program_error is None
    assert files.torchscript is None and "not needed" in files.torchscript_error  # TorchScript is only a fallback
    meta = json.loads(files.arch_json.read_text())
    assert meta["program"] == "model.pt2" and meta["torchscript"] is None
    with torch.no_grad():  # another batch size than the export example: the batch dimension is dynamic
        torch.save(model(torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(3))), tmp_path / "e.pt")
    (tmp_path / "e.pt").rename(tmp_path / "expected.pt")
    loader = f"torch.export.load({str(files.program)!r}).module()"
    assert _run_with_only_torch(tmp_path, loader) == "(3, 10)"


def test_onnx_where_the_onnx_package_is_installed(tmp_path: Path) -> None:
    import importlib.util

    arch, model = _trained_like_model()
    files = export_model(model, arch, tmp_path / "m.pt", num_classes=10, input_shape=(3, 16, 16), size={"C": 4, "N": 1})
    if importlib.util.find_spec("onnx") is None:
        assert files.onnx is None and "onnx package is not installed" in files.onnx_error
        assert json.loads(files.arch_json.read_text())["onnx_error"] == files.onnx_error
        return
    if files.onnx is None:
        pytest.skip(f"onnx installed but this network does not export: {files.onnx_error}")
    done = subprocess.run(
        [sys.executable, "-c", f"import onnx; onnx.checker.check_model(onnx.load({str(files.onnx)!r})); print('ok')"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


class _DataDependent(torch.nn.Module):
    """A branch on a tensor's value: torch.export refuses it, tracing records the branch taken."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.head = torch.nn.Linear(4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        if h.abs().sum() >= 0:  # always true, but only known at run time
            h = torch.relu(h)
        return self.head(h.mean((2, 3)))


def test_torchscript_is_the_fallback_when_torch_export_fails(tmp_path: Path) -> None:
    arch, _ = _trained_like_model()
    torch.manual_seed(0)
    model = _DataDependent().eval()
    files = export_model(model, arch, tmp_path / "model.pt", num_classes=10, input_shape=(3, 16, 16))
    assert files.program is None and files.program_error
    assert files.torchscript == tmp_path / "model.torchscript.pt" and files.torchscript_error is None
    with torch.no_grad():
        torch.save(model(torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(3))), tmp_path / "e.pt")
    (tmp_path / "e.pt").rename(tmp_path / "expected.pt")
    loader = f"(warnings.simplefilter('ignore'), torch.jit.load({str(files.torchscript)!r}).eval())[1]"
    assert _run_with_only_torch(tmp_path, loader) == "(3, 10)"


def test_state_dict_export_round_trips(tmp_path: Path) -> None:
    arch, model = _trained_like_model()
    files = export_model(
        model,
        arch,
        tmp_path / "m.pt",
        num_classes=10,
        input_shape=(3, 16, 16),
        size={"C": 4, "N": 1},
        torchscript=False,
    )
    meta = json.loads(files.arch_json.read_text())
    assert meta["arch"]["arch_str"] == ARCH and meta["size"] == {"C": 4, "N": 1} and meta["torchscript"] is None
    payload = torch.load(files.model, weights_only=True)  # plain tensors and containers only
    assert payload["format"] == "nasmeta-export/1"
    loaded = load_model(files.model)
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
    torch.save({"state_dict": {}}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="not a nasmeta export"):
        load_model(tmp_path / "bad.pt")


def test_export_command_builds_loads_weights_and_rejects_bad_json(tmp_path: Path) -> None:
    from flows.cli import app

    arch, model = _trained_like_model()
    first = export_model(model, arch, tmp_path / "a.pt", num_classes=10, input_shape=(3, 16, 16), size={"C": 4, "N": 1})
    runner = CliRunner()
    out = tmp_path / "cli" / "model.pt"
    done = runner.invoke(app, ["export", str(first.arch_json), "--out", str(out), "--weights", str(first.model)])
    assert done.exit_code == 0, done.output
    assert out.is_file() and out.with_name("model.pt2").is_file()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(load_model(out)(x), model(x))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"space": "nb201", "encoding": ["conv9x9"] * 6}))
    done = runner.invoke(app, ["export", str(bad), "--out", str(tmp_path / "b.pt")])
    assert done.exit_code == 2 and "conv9x9" in done.output


def test_search_oneshot_command_end_to_end(tmp_path: Path, data_dir) -> None:
    """``nasmeta search oneshot`` on a tiny CIFAR-10 subset: trace, NB201 lookup, retraining, files, export."""
    from flows.cli import app

    out = tmp_path / "run"
    args = ["search", "oneshot", "--space", "nb201", "--task", "cifar10", "--method", "darts", "--epochs", "2"]
    args += ["--samples-per-class", "8", "--resolution", "8", "--size", "C=4", "--size", "N=1", "--batch-size", "16"]
    args += ["--retrain-epochs", "1", "--device", "cpu", "--out", str(out)]
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, done.output
    assert "NB201 table (cifar10, 200 epochs, test)" in done.output and "retrained 1 epochs" in done.output
    for name in ("arch.json", "trace.json", "op_weights.png", "curves.png", "cell.png", "model.pt", "model.json"):
        assert (out / name).is_file(), name
    doc = json.loads((out / "arch.json").read_text())
    assert doc["size"] == {"C": 4, "N": 1} and doc["input_shape"] == [3, 8, 8]
    assert len(json.loads((out / "trace.json").read_text())) == 3
    done = CliRunner().invoke(app, ["search", "oneshot", "--method", "enas", "--order", "2", "--epochs", "1"])
    assert done.exit_code == 2 and "--order 2 applies to darts only" in done.output
