"""The Typer application and its command groups.  Command modules in ``flows/cli`` attach to these."""

from __future__ import annotations

import sys

import typer
from typer.core import TyperGroup

# Typer >= 0.20 vendors click; its exception classes are those of the click the CLI runs on
_click = typer.core._click


class OneLineErrors(TyperGroup):
    """Every usage error (a bad option value, a missing argument, an unknown command) as one line
    ``error: ...`` on stderr with exit code 2, like the errors the commands raise themselves."""

    def main(self, *args, standalone_mode: bool = True, **kwargs):  # noqa: ANN002, ANN003, ANN201 - click's signature
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except _click.exceptions.ClickException as error:
            context = f"{error.ctx.command_path}: " if getattr(error, "ctx", None) is not None else ""
            message = " ".join(f"{context}{error.format_message()}".split())
            typer.echo(f"error: {message[:400]}", err=True)
            sys.exit(2 if isinstance(error, _click.exceptions.UsageError) else error.exit_code)
        except typer.Abort:
            typer.echo("error: aborted", err=True)
            sys.exit(1)
        except FileNotFoundError as error:
            from nasmeta.config import DataNotFoundError

            if not isinstance(error, DataNotFoundError):
                raise
            typer.echo(f"error: {' '.join(str(error).split())[:400]}", err=True)
            sys.exit(2)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    name="nasmeta",
    help="Efficient neural architecture search that learns from its past.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=OneLineErrors,
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        import torch

        typer.echo(f"nasmeta {version('nasmeta')} (torch {torch.__version__})")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Efficient neural architecture search that learns from its past.

    Start with `nasmeta pipeline --budget micro` (seconds) or `nasmeta pipeline` (the main job, minutes).
    """


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
