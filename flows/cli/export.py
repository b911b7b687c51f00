"""``nasmeta export ARCH_JSON --out model.pt``: state dict + architecture JSON, and TorchScript where it traces."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from flows.cli._app import app
from flows.cli._common import fail, parse_sizes


def _read_arch_json(path: Path) -> tuple[Any, dict[str, Any]]:
    """(architecture, build settings found in the file): an ``Architecture.to_json`` object, or a document with
    an ``arch`` key plus ``num_classes`` / ``input_shape`` / ``size`` (``search oneshot --out``, an export)."""
    from nasmeta.spaces.base import Architecture

    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        fail(f"cannot read architecture JSON {str(path)!r}: {err}")
    if not isinstance(doc, dict):
        fail(f"{str(path)!r} must hold a JSON object, got {type(doc).__name__}")
    arch_doc = doc.get("arch", doc)
    try:
        arch = Architecture.from_json(arch_doc)
    except ValueError as err:
        fail(f"{str(path)!r}: {err}")
    build = {k: doc[k] for k in ("num_classes", "input_shape", "size") if k in doc}
    return arch, build


@app.command("export")
def export(
    arch_json: Annotated[Path, typer.Argument(help="Architecture JSON (Architecture.to_json or search output).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output .pt file (state dict + architecture).")],
    weights: Annotated[
        Path | None, typer.Option(help="Trained weights: a state dict or a nasmeta export .pt file.")
    ] = None,
    num_classes: Annotated[int | None, typer.Option(min=1, help="Classes (default: from the JSON, else 10).")] = None,
    input_shape: Annotated[
        str | None, typer.Option(help="C,H,W of the input (default: from the JSON, else 3,32,32).")
    ] = None,
    size: Annotated[list[str] | None, typer.Option(help="Network size KEY=INT for space.build, e.g. C=16.")] = None,
    torchscript: Annotated[bool, typer.Option(help="Also write TorchScript (where it traces).")] = True,
    seed: Annotated[int, typer.Option(help="Seed of the initial weights when --weights is not given.")] = 0,
) -> None:
    """Build the architecture, load trained weights if given, and write the export files.

    Example: nasmeta export arch.json --out model.pt --size C=8 --size N=1
    """
    import torch

    from nasmeta.export import FORMAT, export_model
    from nasmeta.spaces import get_space

    arch, build = _read_arch_json(arch_json)
    classes = num_classes or int(build.get("num_classes", 10))
    if input_shape is not None:
        try:
            shape = tuple(int(p) for p in input_shape.replace("x", ",").split(","))
        except ValueError:
            fail(f"--input-shape must look like C,H,W, got {input_shape!r}")
    else:
        shape = tuple(int(d) for d in build.get("input_shape", (3, 32, 32)))
    if len(shape) != 3 or min(shape) < 1:
        fail(f"the input shape must be three positive sizes C,H,W, got {shape!r}")
    sizes = {**build.get("size", {}), **parse_sizes(size)}
    torch.manual_seed(seed)
    try:
        model = get_space(arch.space).build(arch, classes, shape, **sizes)
    except (ValueError, TypeError) as err:
        fail(f"cannot build {arch.space} architecture with size {sizes}: {err}")
    if weights is not None:
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
        except Exception as err:  # any unreadable file is bad input here
            fail(f"cannot read weights {str(weights)!r}: {err}")
        if isinstance(state, dict) and state.get("format") == FORMAT:
            state = state["state_dict"]
        try:
            model.load_state_dict(state)
        except (RuntimeError, TypeError) as err:
            fail(f"weights {str(weights)!r} do not fit the architecture: {err}")
    else:
        typer.echo("note: no --weights given; exporting freshly initialised weights", err=True)
    files = export_model(model, arch, out, num_classes=classes, input_shape=shape, size=sizes, torchscript=torchscript)
    typer.echo(f"wrote {files.model} and {files.arch_json}")
    if files.program is not None:
        typer.echo(f"wrote {files.program} (load with torch.export.load; needs only torch)")
    else:
        typer.echo(f"no torch.export program: {files.program_error}")
    if files.onnx is not None:
        typer.echo(f"wrote {files.onnx} (ONNX)")
    if files.torchscript is not None:
        typer.echo(f"wrote {files.torchscript} (TorchScript fallback; load with torch.jit.load)")
