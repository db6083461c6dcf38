"""``normopt run``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from normopt.choices import DType, Exporter, Target, Task
from normopt.cli.bench_cmd import BenchProvider
from normopt.cli.common import (
    BatchesOption,
    DebugOption,
    Format,
    FormatOption,
    PastsOption,
    SeqsOption,
    ShapeOption,
    emit_json,
    handle_errors,
    info,
    progress_bar,
)


@handle_errors
def run(
    model: Annotated[
        str | None,
        typer.Argument(help="Preset, Hugging Face directory, module:function or .onnx file (default: gpt2-small)."),
    ] = None,
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "--output",
            "-o",
            help="Directory for the ONNX files, report.json, report.md, report.html and latency.png.",
        ),
    ] = Path("normopt-out"),
    exporter: Annotated[Exporter, typer.Option(help="Exporter for torch models.")] = "legacy",
    opset: Annotated[int | None, typer.Option(help="ONNX opset for the export.")] = None,
    dtype: Annotated[DType, typer.Option(help="Export precision.")] = "fp32",
    target: Annotated[Target, typer.Option(help="Fusion target.")] = "auto",
    task: Annotated[
        Task | None, typer.Option(help="Hugging Face output (default hidden-states; causal-lm with --with-past).")
    ] = None,
    with_past: Annotated[
        bool | None,
        typer.Option(
            "--with-past/--no-past",
            help="Export with a KV cache and bench prefill and decode steps (default: on for presets).",
            show_default=False,
        ),
    ] = None,
    batch: BatchesOption = None,
    seq: SeqsOption = None,
    past: PastsOption = None,
    iters: Annotated[
        int | None, typer.Option(help="Timed runs per benchmark row and workload (default 100).", show_default=False)
    ] = None,
    seconds: Annotated[
        float | None,
        typer.Option(help="Time budget for the benchmark step (sessions, warm-up, every workload), not --iters."),
    ] = None,
    warmup: Annotated[int, typer.Option(help="Warm-up runs per benchmark row.")] = 10,
    threads: Annotated[int | None, typer.Option(help="Intra-op threads for the benchmark.")] = None,
    provider: Annotated[
        BenchProvider, typer.Option(help="cpu, cuda, or all (what is usable; default all).")
    ] = BenchProvider.all,
    opt_level: Annotated[
        list[str] | None,
        typer.Option(
            "--opt-level",
            help="ORT optimization levels: disable, basic, extended, all (a list: disable,all; repeatable; "
            "default disable and all).",
        ),
    ] = None,
    profile: Annotated[bool, typer.Option("--profile", help="Profile each row after its timed runs.")] = False,
    compare_ort: Annotated[
        bool, typer.Option("--compare-ort", help="Add ONNX Runtime's transformers optimizer on the original.")
    ] = False,
    calibrate: Annotated[
        bool,
        typer.Option(
            "--calibrate/--no-calibrate",
            help="Time the original against itself too (A/A): verdicts must clear that noise floor (default on).",
        ),
    ] = True,
    atol: Annotated[
        float | None, typer.Option(help="Parity: absolute tolerance (default by dtype, as for verify).")
    ] = None,
    rtol: Annotated[
        float | None, typer.Option(help="Parity: relative tolerance (default by dtype, as for verify).")
    ] = None,
    shape: ShapeOption = None,
    inputs: Annotated[
        Path | None, typer.Option(help=".npz with one array per model input: parity and latency run on it.")
    ] = None,
    format: FormatOption = Format.table,
    debug: DebugOption = False,
) -> None:
    """Export → fuse → verify → benchmark original vs fused → report (exit 1 if parity fails)."""
    from normopt import options

    if model is not None and not model.endswith(".onnx") and not Path(model).is_dir():
        from normopt.exporting.spec import check_spec

        check_spec(model, task)  # a wrong name or a Hub id is answered before onnx and torch are imported
    from normopt.feeds.inputs import parse_shapes
    from normopt.running import run as run_pipeline

    batches, seqs, pasts = options.size_lists(batch, seq, past)

    with progress_bar() as bar:
        bar_task = bar.add_task("benchmark", total=None, visible=False)

        def progress(done: int, total: int) -> None:
            bar.update(bar_task, completed=done, total=total or None, visible=True)

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
            task=task,
            with_past=with_past,
            batches=batches,
            seqs=seqs,
            pasts=pasts,
            seconds=seconds,
            providers=provider.providers(),
            opt_levels=options.word_list("--opt-level", opt_level, options.OPT_LEVELS),  # type: ignore[arg-type]
            profile=profile,
            compare_ort=compare_ort,
            calibrate=calibrate,
            atol=atol,
            rtol=rtol,
            shapes=parse_shapes(shape),
            inputs=inputs,
        )
    doc = outcome.report
    if format == Format.json:
        emit_json(doc)
    else:
        from normopt.reports.run import print_summary

        print_summary(outcome.summary)
    info(f"wrote {outcome.report_json}, {outcome.report_md}, {outcome.report_html}, {outcome.chart}")
    if not doc["parity"]["passed"]:
        info("parity FAILED")
        raise typer.Exit(1)
