"""Export a found architecture so that it can be loaded and run without nasmeta's search code.

``export_model(model, arch, out, ...)`` writes, next to each other:

- ``out`` (e.g. ``model.pt``): ``torch.save`` of a plain dict -- ``format``, ``arch`` (``Architecture.to_json``),
  ``num_classes``, ``input_shape``, ``size`` (the ``space.build`` keyword arguments) and ``state_dict`` -- which
  ``torch.load(..., weights_only=True)`` reads; :func:`load_model` rebuilds the network with nasmeta's space.
- ``<stem>.json``: the architecture JSON plus what is needed to rebuild it (no weights), and which of the
  formats below were written (or why not).
- ``<stem>.pt2`` (the primary runnable format): the network in eval mode captured with ``torch.export.export``
  (batch dimension dynamic where the network allows it, else the example's batch size) and written with
  ``torch.export.save``; ``torch.export.load(path).module()`` runs it with ``torch`` alone (:func:`load_program`).
  It is kept only when the program reproduces the eager outputs on a second input.
- ``<stem>.onnx``: where the ``onnx`` package is installed (torch's exporter needs it; it is not a dependency of
  nasmeta) and the network exports, from the same ``torch.export`` program via ``torch.onnx.export(dynamo=True)``.
- ``<stem>.torchscript.pt``: only as a fallback when no ``.pt2`` program could be written: the network traced with
  ``torch.jit.trace`` (torch deprecates TorchScript in favour of ``torch.export``); :func:`load_torchscript`.

A format that cannot be written leaves the others usable; the reason is returned and written to the JSON.
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nasmeta.spaces.base import Architecture

FORMAT = "nasmeta-export/1"


@dataclass
class ExportedFiles:
    """Paths written by :func:`export_model`; a format that was not written is ``None`` with its reason."""

    model: Path
    arch_json: Path
    torchscript: Path | None
    torchscript_error: str | None = None
    program: Path | None = None
    program_error: str | None = None
    onnx: Path | None = None
    onnx_error: str | None = None


def _paths(out: Path) -> tuple[Path, Path]:
    return out.with_suffix(".json"), out.with_name(f"{out.stem}.torchscript.pt")


def _examples(input_shape: tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    example = torch.randn(2, *input_shape, generator=torch.Generator().manual_seed(0))
    check = torch.randn(3, *input_shape, generator=torch.Generator().manual_seed(1))
    return example, check


def _same(model: nn.Module, other: Any, x: torch.Tensor) -> bool:
    with torch.no_grad():
        torch.manual_seed(0)
        eager = model(x)
        torch.manual_seed(0)
        got = other(x)
    return eager.shape == got.shape and torch.allclose(eager, got, rtol=1e-4, atol=1e-5)


def _export_program(model: nn.Module, input_shape: tuple[int, int, int], path: Path) -> tuple[Any, str | None]:
    """``torch.export`` ``model`` to ``path`` (.pt2); returns (the exported program or None, why it failed)."""
    example, check = _examples(input_shape)
    errors = []
    for dynamic in (True, False):
        try:
            shapes = ({0: torch.export.Dim.AUTO},) if dynamic else None
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                program = torch.export.export(model, (example,), dynamic_shapes=shapes, strict=False)
            probe = check if dynamic else example.flip(0)
            if not _same(model, program.module(), probe):
                errors.append("the exported program does not reproduce the eager outputs on a second input")
                continue
            torch.export.save(program, str(path))
            return program, None
        except Exception as exc:  # any export failure leaves the state dict export usable
            errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    return None, "; ".join(dict.fromkeys(errors))


def _export_onnx(program: Any, model: nn.Module, input_shape: tuple[int, int, int], path: Path) -> str | None:
    """ONNX from the exported program, where the ``onnx`` package is installed; returns why not, or None."""
    if importlib.util.find_spec("onnx") is None:
        return "the onnx package is not installed (pip install onnx onnxscript to add ONNX export)"
    if program is None:
        return "no torch.export program to convert"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(program, (_examples(input_shape)[0],), str(path), dynamo=True)
    except Exception as exc:
        path.unlink(missing_ok=True)
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return None


def _trace(model: nn.Module, input_shape: tuple[int, int, int], path: Path) -> str | None:
    """Trace ``model`` (eval mode, CPU) to ``path``; returns why it failed, or None."""
    example, check = _examples(input_shape)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(model, example, check_trace=False)
        if not _same(model, traced, check):
            return "the traced module does not reproduce the eager outputs on a second input"
        traced.save(str(path))
    except Exception as exc:  # any tracing failure leaves the state dict export usable
        return f"{type(exc).__name__}: {exc}"
    return None


def export_model(
    model: nn.Module,
    arch: Architecture,
    out: str | Path,
    *,
    num_classes: int,
    input_shape: tuple[int, int, int],
    size: dict[str, Any] | None = None,
    torchscript: bool = True,
) -> ExportedFiles:
    """Write the state dict + architecture (``out``), the JSON, the ``torch.export`` program, ONNX where
    possible and, only when no program could be written and ``torchscript`` allows it, TorchScript (module doc)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    json_path, ts_path = _paths(out)
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (channels, height, width), got {input_shape!r}")
    meta = {
        "format": FORMAT,
        "arch": arch.to_json(),
        "num_classes": int(num_classes),
        "input_shape": [int(d) for d in input_shape],
        "size": dict(size or {}),
    }
    was_training = model.training
    model = model.cpu().eval()
    torch.save({**meta, "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}, out)
    shape = tuple(meta["input_shape"])
    program_path, onnx_path = out.with_suffix(".pt2"), out.with_suffix(".onnx")
    for stale in (program_path, onnx_path, ts_path):
        stale.unlink(missing_ok=True)
    program, program_error = _export_program(model, shape, program_path)
    onnx_error = _export_onnx(program, model, shape, onnx_path)
    if not torchscript:
        ts_error: str | None = "not requested"
    elif program is not None:
        ts_error = f"not needed: the torch.export program {program_path.name} was written"
    else:
        ts_error = _trace(model, shape, ts_path)
    written_program = program_path if program_error is None else None
    written_onnx = onnx_path if onnx_error is None else None
    written_ts = ts_path if ts_error is None else None
    meta.update(
        {
            "torch_version": torch.__version__,
            "weights": out.name,
            "program": written_program.name if written_program else None,
            "program_error": program_error,
            "onnx": written_onnx.name if written_onnx else None,
            "onnx_error": onnx_error,
            "torchscript": written_ts.name if written_ts else None,
            "torchscript_error": ts_error,
        }
    )
    json_path.write_text(json.dumps(meta, indent=2))
    model.train(was_training)
    return ExportedFiles(out, json_path, written_ts, ts_error, written_program, program_error, written_onnx, onnx_error)


def load_model(path: str | Path) -> nn.Module:
    """Rebuild an exported network with its space's ``build`` and load its weights (eval mode)."""
    from nasmeta.spaces import get_space

    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a nasmeta export (format {FORMAT!r})")
    arch = Architecture.from_json(payload["arch"])
    model = get_space(arch.space).build(arch, payload["num_classes"], tuple(payload["input_shape"]), **payload["size"])
    model.load_state_dict(payload["state_dict"])
    return model.eval()


def load_torchscript(path: str | Path) -> torch.jit.ScriptModule:
    """The TorchScript file as a module in eval mode; needs nothing but torch (``torch.jit.load``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript's deprecation notice; the file loads fine
        return torch.jit.load(str(path), map_location="cpu").eval()


def load_program(path: str | Path) -> nn.Module:
    """The ``.pt2`` program as a runnable module; needs nothing but torch (``torch.export.load(path).module()``)."""
    return torch.export.load(str(path)).module()
