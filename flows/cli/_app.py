"""The Typer application and its command groups.  Command modules in ``flows/cli`` attach to these."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="nasmeta",
    help="Efficient neural architecture search that learns from its past.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

space_app = typer.Typer(help="Search spaces: info, sampling, parameter counts.", no_args_is_help=True)
bench_app = typer.Typer(help="Searches on tabular benchmarks (NAS-Bench-201, NAS-Bench-Macro).", no_args_is_help=True)
tasks_app = typer.Typer(help="Tasks (datasets): list and describe.", no_args_is_help=True)
store_app = typer.Typer(help="The Parquet metadata store.", no_args_is_help=True)
proxies_app = typer.Typer(help="Zero-shot proxies: list, score, correlate.", no_args_is_help=True)
search_app = typer.Typer(help="Searches on a target task.", no_args_is_help=True)

app.add_typer(space_app, name="space")
app.add_typer(bench_app, name="bench")
app.add_typer(tasks_app, name="tasks")
app.add_typer(store_app, name="store")
app.add_typer(proxies_app, name="proxies")
app.add_typer(search_app, name="search")
