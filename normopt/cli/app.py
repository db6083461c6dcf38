"""The ``normopt`` Typer application: one module per command, heavy imports inside commands."""

from __future__ import annotations

import sys
from typing import Annotated

import click
import typer

from normopt import process
from normopt.cli import startup
from normopt.cli.bench_cmd import bench
from normopt.cli.export_cmd import export
from normopt.cli.fuse_cmd import fuse, inspect
from normopt.cli.run_cmd import run
from normopt.cli.verify_cmd import verify

app = typer.Typer(
    name="normopt",
    help="Export transformer models to ONNX, fuse every LayerNorm/RMSNorm, verify parity, benchmark on ONNX Runtime.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        from normopt import __version__

        try:
            installed = version("normopt")
        except PackageNotFoundError:
            installed = __version__
        typer.echo(f"normopt {installed}")
        raise typer.Exit()


@app.callback()
def _options(
    show_version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print normopt's version and exit."),
    ] = False,
) -> None:
    """Export transformer models to ONNX, fuse every LayerNorm/RMSNorm, verify parity, benchmark on ONNX Runtime."""


app.command()(export)
app.command()(fuse)
app.command()(inspect)
app.command()(verify)
app.command()(bench)
app.command()(run)


def main() -> None:
    """Console-script entry point: usage errors are one line on stderr, exit 2 (``--help`` stays rich)."""
    process.own()  # the command owns its process: collector pauses, ORT's default logger (normopt.process)
    try:
        code = app(standalone_mode=False, prog_name="normopt")
    except click.exceptions.NoArgsIsHelpError as error:
        if error.ctx is not None:
            sys.stderr.write(error.ctx.get_help() + "\n")
        code = 2
    except click.UsageError as error:
        command = error.ctx.command_path if error.ctx is not None else "normopt"
        message = " ".join(error.format_message().split())
        sys.stderr.write(f"normopt: error: {message} (see {command} --help)\n")
        code = 2
    except (click.exceptions.Abort, KeyboardInterrupt):
        sys.stderr.write("normopt: interrupted\n")
        code = 130
    finally:
        startup.freeze_heap()
    sys.exit(code if isinstance(code, int) else 0)
