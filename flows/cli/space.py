"""``nasmeta space info | sample | params``: inspect the search spaces (nb201, darts, darts-s1..s4, macro)."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from flows.cli._app import space_app
from flows.cli._common import fail


def _space(name: str):
    from nasmeta.spaces import get_space

    try:
        return get_space(name)
    except ValueError as err:
        fail(str(err))


def _shape(text: str) -> tuple[int, int, int]:
    try:
        shape = tuple(int(p) for p in text.replace("x", ",").split(","))
    except ValueError:
        fail(f"--input must look like C,H,W (e.g. 3,32,32), got {text!r}")
    if len(shape) != 3 or min(shape) < 1:
        fail(f"--input must be three positive sizes C,H,W, got {text!r}")
    return shape  # type: ignore[return-value]


@space_app.command("info")
def info(
    name: Annotated[str, typer.Argument(help="Space name: nb201, darts, darts-s1..darts-s4, macro.")],
    unique: Annotated[
        bool, typer.Option("--unique/--no-unique", help="Count distinct arch_ids by enumeration (finite spaces).")
    ] = True,
) -> None:
    """Size, number of distinct architectures, ops (and per-edge ops for the DARTS variants).

    Example: nasmeta space info nb201
    """
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    space = _space(name)
    console = Console()
    table = Table(title=f"search space {space.name}", show_header=False)
    table.add_column("property", style="bold")
    table.add_column("value")
    if getattr(space, "description", None):
        table.add_row("description", escape(str(space.description)))
    size = space.size
    table.add_row("size (encodings)", f"{size:,}" if size < 10**9 else f"{size:.3e}")
    try:
        archs = space.enumerate()
        first = next(archs)
    except TypeError:
        table.add_row("distinct architectures", "not enumerable (space too large)")
    else:
        if unique:
            start = time.perf_counter()
            count = len({space.arch_id(a) for a in archs} | {space.arch_id(first)})
            table.add_row("distinct architectures", f"{count:,} (by arch_id, {time.perf_counter() - start:.2f} s)")
    table.add_row("ops", ", ".join(space.ops))
    table.add_row("token vocabulary", str(space.vocab_size))
    console.print(table)
    if hasattr(space, "edge_ops"):
        _print_edge_ops(console, space)


def _print_edge_ops(console, space) -> None:
    """DARTS-family spaces: one line when every edge has the same candidates, else a per-edge table."""
    from rich.table import Table

    from nasmeta.spaces.darts import EDGES

    rows = [(space.edge_ops("normal", i), space.edge_ops("reduce", i)) for i in range(len(EDGES))]
    if len(set(rows)) == 1:
        normal, reduce = rows[0]
        same = "" if normal == reduce else f" (reduction cell: {', '.join(reduce)})"
        console.print(f"candidate ops on every edge: {', '.join(normal)}{same}")
        return
    edges = Table(title=f"candidate ops per edge ({space.name})")
    for column in ("edge", "normal cell", "reduction cell"):
        edges.add_column(column)
    for index, ((node, source), (normal, reduce)) in enumerate(zip(EDGES, rows, strict=True)):
        edges.add_row(f"{index:2d}: node {node} <- {source}", ", ".join(normal), ", ".join(reduce))
    console.print(edges)


@space_app.command("sample")
def sample(
    name: Annotated[str, typer.Argument(help="Space name.")],
    n: Annotated[int, typer.Option("-n", "--n", min=1, help="How many architectures.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the sampler.")] = 0,
) -> None:
    """Draw architectures uniformly; print their strings and ids.

    Example: nasmeta space sample darts -n 3 --seed 1
    """
    import numpy as np
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    space = _space(name)
    rng = np.random.default_rng(seed)
    table = Table(title=f"{n} samples of {space.name} (seed {seed})")
    table.add_column("#", justify="right")
    table.add_column("arch_id")
    table.add_column("architecture", overflow="fold")
    for i in range(n):
        arch = space.sample(rng)
        table.add_row(str(i), arch.arch_id, escape(str(arch)))
    Console().print(table)


@space_app.command("params")
def params(
    name: Annotated[str, typer.Argument(help="Space name.")],
    arch: Annotated[str, typer.Argument(help="Architecture string (NB201 string, DARTS genotype, Macro string).")],
    classes: Annotated[int, typer.Option("--classes", min=1, help="Number of classes.")] = 10,
    input_shape: Annotated[str, typer.Option("--input", help="Input shape C,H,W.")] = "3,32,32",
) -> None:
    """Parameters and forward FLOPs of the published-size network of ARCH (built without weights).

    Example: nasmeta space params macro 02012100
    """
    import torch
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from nasmeta.cost import count_flops

    space = _space(name)
    shape = _shape(input_shape)
    try:
        architecture = space.parse(arch)
        with torch.device("meta"):
            model = space.build(architecture, classes, shape)
    except ValueError as err:
        fail(str(err))
    total = sum(p.numel() for p in model.parameters())
    table = Table(title=f"network of a {space.name} architecture", show_header=False, title_justify="left")
    table.add_column("property", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("architecture", escape(str(architecture)))
    table.add_row("arch_id", architecture.arch_id)
    table.add_row("classes / input", f"{classes} / {'x'.join(map(str, shape))}")
    table.add_row("parameters", f"{total:,}")
    aux = getattr(model, "auxiliary_head", None)
    if aux is not None:
        table.add_row("parameters without auxiliary head", f"{total - sum(p.numel() for p in aux.parameters()):,}")
    table.add_row("forward FLOPs (1 image)", f"{count_flops(model, shape):,}")
    Console().print(table)
