"""``normopt run``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from normopt.choices import DType, Exporter, Target
from normopt.cli.common import DebugOption, Format, FormatOption, emit_json, handle_errors, info, progress_bar


@handle_errors
def run(
    model: Annotated[
        str | None,
        typer.Argument(help="Preset, Hugging Face directory, module:function or .onnx file (default: gpt2-small)."),
    ] = None,
    out: Annotated[
        Path, typer.Option("--out", help="Directory for the ONNX files, report.json, report.md and latency.png.")
    ] = Path("normopt-out"),
    exporter: Annotated[Exporter, typer.Option(help="Exporter for torch models.")] = "legacy",
    opset: Annotated[int | None, typer.Option(help="ONNX opset for the export.")] = None,
    dtype: Annotated[DType, typer.Option(help="Export precision.")] = "fp32",
    target: Annotated[Target, typer.Option(help="Fusion target.")] = "auto",
    iters: Annotated[int, typer.Option(help="Timed runs per benchmark row.")] = 100,
    warmup: Annotated[int, typer.Option(help="Warm-up runs per benchmark row.")] = 10,
    threads: Annotated[int | None, typer.Option(help="Intra-op threads for the benchmark.")] = None,
    format: FormatOption = Format.table,
    debug: DebugOption = False,
) -> None:
    """Export → fuse → verify → benchmark original vs fused → report (exit 1 if parity fails)."""
    from normopt.run import run as run_pipeline

    with progress_bar() as bar:
        task = bar.add_task("benchmark", total=iters, visible=False)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, visible=True)

        outcome = run_pipeline(
            model,
            out,
            exporter=exporter,
            opset=opset,
            dtype=dtype,
            target=target,
            iters=iters,
            warmup=warmup,
            threads=threads,
            step=lambda line: bar.console.print(line),
            progress=progress,
        )
    doc = outcome.report
    if format == Format.json:
        emit_json(doc)
    else:
        typer.echo(outcome.report_md.read_text())
    info(f"wrote {outcome.report_json}, {outcome.report_md}, {outcome.chart}")
    if not doc["parity"]["passed"]:
        info("parity FAILED")
        raise typer.Exit(1)
