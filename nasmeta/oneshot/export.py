"""Export a found architecture so that it can be loaded and run without nasmeta's search code.

``export_model(model, arch, out, ...)`` writes three files next to each other:

- ``out`` (e.g. ``model.pt``): ``torch.save`` of a plain dict -- ``format``, ``arch`` (``Architecture.to_json``),
  ``num_classes``, ``input_shape``, ``size`` (the ``space.build`` keyword arguments) and ``state_dict`` -- which
  ``torch.load(..., weights_only=True)`` reads; :func:`load_model` rebuilds the network with nasmeta's space.
- ``<stem>.json``: the architecture JSON plus what is needed to rebuild it (no weights).
- ``<stem>.torchscript.pt``: the network traced with ``torch.jit.trace`` in eval mode, when tracing works and the
  traced module reproduces the eager outputs on a second input; it runs with ``torch`` alone
  (:func:`load_torchscript` is ``torch.jit.load``).  When it does not trace, the reason is returned and written
  to the JSON instead.  (torch marks TorchScript as deprecated in favour of ``torch.export``; its files still
  load with a plain ``torch.jit.load``, which is what a user without nasmeta needs.)
"""

from __future__ import annotations

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
    """Paths written by :func:`export_model`; ``torchscript`` is ``None`` when tracing failed (``reason``)."""

    model: Path
    arch_json: Path
    torchscript: Path | None
    torchscript_error: str | None = None


def _paths(out: Path) -> tuple[Path, Path]:
    return out.with_suffix(".json"), out.with_name(f"{out.stem}.torchscript.pt")


def _trace(model: nn.Module, input_shape: tuple[int, int, int], path: Path) -> str | None:
    """Trace ``model`` (eval mode, CPU) to ``path``; returns why it failed, or None."""
    example = torch.randn(2, *input_shape, generator=torch.Generator().manual_seed(0))
    check = torch.randn(3, *input_shape, generator=torch.Generator().manual_seed(1))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(model, example, check_trace=False)
        with torch.no_grad():
            torch.manual_seed(0)
            eager = model(check)
            torch.manual_seed(0)
            scripted = traced(check)
        if eager.shape != scripted.shape or not torch.allclose(eager, scripted, rtol=1e-4, atol=1e-5):
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
    """Write the state dict + architecture (``out``), the JSON and, where it traces, TorchScript (module doc)."""
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
    error = None
    if torchscript:
        ts_path.unlink(missing_ok=True)
        error = _trace(model, tuple(meta["input_shape"]), ts_path)
    else:
        error = "not requested"
    written_ts = ts_path if error is None else None
    meta.update(
        {
            "torch_version": torch.__version__,
            "weights": out.name,
            "torchscript": written_ts.name if written_ts else None,
            "torchscript_error": error,
        }
    )
    json_path.write_text(json.dumps(meta, indent=2))
    model.train(was_training)
    return ExportedFiles(out, json_path, written_ts, error)


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
