"""The ``normopt`` Typer application: one module per command, heavy imports inside commands."""

from __future__ import annotations

import typer

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
app.command()(export)
app.command()(fuse)
app.command()(inspect)
app.command()(verify)
app.command()(bench)
app.command()(run)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    finally:
        startup.freeze_heap()
