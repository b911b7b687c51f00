"""``nasmeta proxies list | score | correlate``: zero-shot proxies from the command line."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from flows.cli._app import proxies_app
from flows.cli._common import fail, parse_sizes


def read_archs(space: Any, path: Path) -> list:
    """One architecture per line: the space's string form, or a JSON object from ``Architecture.to_json``."""
    from nasmeta.spaces.base import Architecture

    if not path.is_file():
        fail(f"architecture file {str(path)!r} not found")
    archs = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            arch = Architecture.from_json(text) if text.startswith("{") else space.parse(text)
        except (ValueError, json.JSONDecodeError) as err:
            fail(f"{path}:{number}: {err}")
        if arch.space != space.name:
            fail(f"{path}:{number}: architecture of space {arch.space!r}, expected {space.name!r}")
        archs.append(arch)
    if not archs:
        fail(f"{path} lists no architectures")
    return archs


def load_batch(task: str, batch_size: int, seed: int) -> Any:
    """The proxy batch drawn from a registered task's training split."""
    from nasmeta.config import DataNotFoundError
    from nasmeta.data.tasks import get_task
    from nasmeta.zeroshot.batch import Batch

    try:
        data = get_task(task).load()
        return Batch.from_task(data, size=min(batch_size, len(data.x_train)), seed=seed), data
    except (ValueError, DataNotFoundError) as err:
        fail(str(err))


def check_proxies(names: list[str]) -> list[str]:
    """Proxy names from comma-separated option values (``--proxy synflow,naswot``), each checked."""
    from nasmeta.zeroshot.registry import get_proxy

    names = [part.strip() for item in names for part in item.split(",") if part.strip()]
    if not names:
        fail("no proxy given")
    for name in names:
        try:
            get_proxy(name)
        except ValueError as err:
            fail(str(err))
    return list(dict.fromkeys(names))


def _previous_rows(out: Path | None, resume: bool) -> list[dict[str, Any]]:
    if not resume:
        return []
    if out is None:
        fail("--resume needs --out, the CSV of the interrupted run")
    if not out.is_file():
        return []
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [{**r, "score": float(r["score"]), "seconds": float(r["seconds"] or "nan")} for r in rows]


class _CsvStream:
    """Appends each architecture's scores to the CSV as soon as they exist, so an interrupted run keeps them."""

    def __init__(self, out: Path | None, previous: list[dict[str, Any]]) -> None:
        self.out = out
        if out is not None:
            with open(out, "w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=["arch", "proxy", "score", "seconds"])
                writer.writeheader()
                writer.writerows(previous)

    def __call__(self, metrics: dict[str, Any]) -> None:
        if self.out is None:
            return
        skip = {"arch", "arch_id", "feasible"}
        with open(self.out, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["arch", "proxy", "score", "seconds"])
            for name, value in metrics.items():
                if name not in skip and isinstance(value, int | float):
                    writer.writerow({"arch": metrics["arch"], "proxy": name, "score": value, "seconds": ""})


@proxies_app.command("list")
def list_command() -> None:
    """Every registered proxy with its sign convention and what it needs.

    Example: nasmeta proxies list
    """
    from rich.console import Console
    from rich.table import Table

    from nasmeta.zeroshot.registry import get_proxy, list_proxies

    table = Table(title="zero-shot proxies (score = sign * raw; higher score is better)", title_justify="left")
    for column in ("proxy", "sign", "data", "batch", "definition"):
        table.add_column(column)
    for name in list_proxies():
        spec = get_proxy(name)
        data = "composite" if spec.is_composite else ("batch" if spec.needs_data else "shape only")
        definition = spec.description + (f" [{' + '.join(spec.parts)}]" if spec.is_composite else "")
        batch = "-" if spec.batch_size is None else str(spec.batch_size)
        table.add_row(name, f"{spec.sign:+d}", data, batch, definition)
    Console().print(table)


@proxies_app.command("score")
def score_command(
    space: Annotated[str, typer.Option(help="Search space (nb201, darts, macro, ...).")] = "nb201",
    task: Annotated[str, typer.Option(help="Task giving the batch (e.g. cifar10, npz:PATH).")] = "digits",
    proxy: Annotated[list[str], typer.Option(help="Comma-separated proxies to compute.")] = ["synflow"],  # noqa: B006
    archs: Annotated[Path | None, typer.Option(help="File with one architecture per line.")] = None,
    sample: Annotated[int | None, typer.Option(min=1, help="Score this many sampled architectures instead.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the sample, the batch, the init and the proxies.")] = 42,
    size: Annotated[list[str] | None, typer.Option(help="Network size KEY=INT for space.build, e.g. C=16.")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Rows drawn for the batch (proxies use their own).")] = 128,
    out: Annotated[
        Path | None, typer.Option(help="CSV (arch, proxy, score, seconds), written row by row as scores come.")
    ] = None,
    resume: Annotated[bool, typer.Option(help="Keep the rows already in --out and score only the rest.")] = False,
    store: Annotated[str | None, typer.Option(help="Also append the scores to this metadata store root.")] = None,
    no_track: Annotated[bool, typer.Option("--no-track", help="Do not log to MLflow.")] = False,
) -> None:
    """Score architectures with proxies on one batch of a task; print (and optionally save) the scores.

    Example: nasmeta proxies score --task digits --proxy synflow --proxy naswot --sample 5 --size C=4 --size N=1
    """
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from nasmeta.spaces import get_space
    from nasmeta.zeroshot.search import sample_architectures, score_architectures

    if (archs is None) == (sample is None):
        fail("give exactly one of --archs FILE or --sample N")
    names = check_proxies(proxy)
    try:
        search_space = get_space(space)
        candidates = (
            read_archs(search_space, archs) if archs is not None else sample_architectures(search_space, sample, seed)
        )
    except ValueError as err:
        fail(str(err))
    previous = _previous_rows(out, resume)
    candidates = [a for a in candidates if str(a) not in {r["arch"] for r in previous}]
    batch, data = load_batch(task, batch_size, seed)
    from flows.common import tracked_command
    from flows.progress import stage
    from nasmeta.reporting import CallbackReporter

    tags = {"task": task, "space": space, "method": "proxies-score", "proxies": ",".join(names)}
    params = {"n_archs": len(candidates), "seed": seed, **parse_sizes(size)}
    try:
        with tracked_command("nasmeta-search", f"proxies/{space}/{task}", tags, params, not no_track) as run:
            stream = _CsvStream(out, previous)
            with stage("proxies score", total=len(candidates), unit="architectures scored") as shown:
                scored = score_architectures(
                    search_space,
                    candidates,
                    batch,
                    names,
                    seed=seed,
                    build_kwargs=parse_sizes(size),
                    reporter=CallbackReporter(lambda step, metrics: (stream(metrics), shown.advance())),
                )
            # composites (te_nas) come with their parts
            rows = previous + [
                {"arch": str(s.arch), "proxy": p, "score": v, "seconds": s.seconds[p]}
                for s in scored
                for p, v in s.scores.items()
            ]
            if run is not None:
                from nasmeta import tracking

                tracking.log_table("proxy_scores", rows, run=run)
    except (ValueError, TypeError, RuntimeError) as err:
        fail(str(err))
    if out is not None:
        with open(out, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["arch", "proxy", "score", "seconds"])
            writer.writeheader()
            writer.writerows(rows)
    if store is not None:
        from metadata_store import MetadataStore
        from nasmeta.zeroshot.store import store_scored

        store_scored(MetadataStore(store), data.task_id, scored, seed)
    table = Table(title=f"{', '.join(names)} on {space} / {task} (seed {seed})", title_justify="left")
    table.add_column("arch", overflow="fold")
    for column in ("proxy", "score", "seconds"):
        table.add_column(column)
    for row in rows:
        table.add_row(escape(row["arch"]), row["proxy"], f"{row['score']:.6g}", f"{row['seconds']:.3f}")
    Console().print(table)
    for s in scored:
        for name, reason in s.not_applicable.items():
            typer.echo(f"not applicable: {name} on {s.arch}: {reason}", err=True)
    if out is not None:
        typer.echo(f"wrote {len(rows)} rows to {out}")


@proxies_app.command("correlate")
def correlate_command(
    space: Annotated[str, typer.Option(help="Benchmark space: nb201 or macro.")] = "nb201",
    dataset: Annotated[str, typer.Option(help="Table dataset (nb201: cifar10, cifar100, imagenet16-120).")] = "cifar10",
    task: Annotated[str | None, typer.Option(help="Task giving the batch (default: the dataset's name).")] = None,
    sample: Annotated[int, typer.Option(min=3, help="Number of distinct sampled architectures.")] = 1000,
    proxy: Annotated[list[str] | None, typer.Option(help="Comma-separated proxies; default the cheap set.")] = None,
    vote: Annotated[
        list[str] | None, typer.Option(help="Comma-separated proxies of the mean-rank vote (default: all given).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the sample, the batch, the init and the proxies.")] = 42,
    size: Annotated[list[str] | None, typer.Option(help="Network size KEY=INT for space.build, e.g. C=16.")] = None,
    no_track: Annotated[bool, typer.Option("--no-track", help="Do not log to MLflow.")] = False,
) -> None:
    """Spearman / Kendall of each proxy (and of their mean-rank vote) against a benchmark table.

    Example: nasmeta proxies correlate --space nb201 --dataset cifar10 --sample 50 --size C=4 --size N=1

    "pairs ok" is the fraction of pairs ordered correctly; "published" the published NB201 Spearman (all cells).
    """
    from rich.console import Console
    from rich.table import Table

    from nasmeta.config import DataNotFoundError
    from nasmeta.data.benchmarks import normalize_dataset
    from nasmeta.spaces import get_space
    from nasmeta.zeroshot.correlate import correlate_proxies, published_spearman, table_accuracy
    from nasmeta.zeroshot.search import sample_architectures

    names = check_proxies(proxy or ["synflow", "params", "naswot", "snip", "grad_norm", "jacob_cov"])
    voters = check_proxies(vote) if vote else list(names)
    try:
        truth = table_accuracy(space, dataset)
        search_space = get_space(space)
        archs = sample_architectures(search_space, sample, seed)
    except (ValueError, DataNotFoundError) as err:
        fail(str(err))
    batch, _ = load_batch(task or dataset, 128, seed)
    from flows.common import tracked_command
    from flows.progress import stage
    from nasmeta.reporting import CallbackReporter

    tags = {"task": task or dataset, "space": space, "method": "proxies-correlate", "proxies": ",".join(names)}
    params = {"sample": sample, "seed": seed, "vote": ",".join(voters), **parse_sizes(size)}
    try:
        with tracked_command("nasmeta-search", f"proxies/{space}/{dataset}", tags, params, not no_track) as run:
            with stage("proxies correlate", total=len(archs), unit="architectures scored") as shown:
                report = correlate_proxies(
                    search_space,
                    archs,
                    batch,
                    names,
                    truth,
                    vote=voters,
                    seed=seed,
                    build_kwargs=parse_sizes(size),
                    reporter=CallbackReporter(lambda step, metrics: shown.advance()),
                )
            if run is not None:
                for name, corr in report.correlations.items():
                    run.log_metrics({f"spearman/{name}": corr.spearman, f"kendall/{name}": corr.kendall})
    except (ValueError, DataNotFoundError, RuntimeError) as err:
        fail(str(err))
    table = Table(title=f"{sample} {space} archs vs {dataset} accuracy (seed {seed})", title_justify="left")
    table.add_column("proxy", no_wrap=True)
    for column in ("spearman", "kendall", "pairs ok", "published", "s/arch"):
        table.add_column(column, justify="right")
    for name, corr in report.correlations.items():
        published = published_spearman(name, normalize_dataset(dataset)) if space == "nb201" else None
        seconds = report.seconds_per_arch.get(name)
        label = name if name != "vote" else f"vote({'+'.join(voters)})"
        table.add_row(
            label,
            f"{corr.spearman:.3f}",
            f"{corr.kendall:.3f}",
            f"{corr.pair_accuracy:.3f}",
            "-" if published is None else f"{published:.2f}",
            "-" if seconds is None else f"{seconds:.3f}",
        )
    Console().print(table)
