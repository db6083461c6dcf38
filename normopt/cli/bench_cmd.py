"""``normopt bench``."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from normopt.choices import Scenario
from normopt.cli.common import (
    BatchesOption,
    DebugOption,
    PastsOption,
    SeqsOption,
    ShapeOption,
    handle_errors,
    info,
    progress_bar,
)


class BenchProvider(str, Enum):
    """Providers to benchmark on."""

    cpu = "cpu"
    cuda = "cuda"
    all = "all"

    def providers(self) -> list[str]:
        """The providers this choice names (``all``: cpu and cuda, what is unusable is skipped)."""
        return ["cpu", "cuda"] if self == BenchProvider.all else [self.value]


class BenchFormat(str, Enum):
    """Report formats."""

    table = "table"
    json = "json"
    md = "md"
    csv = "csv"


@handle_errors
def bench(
    models: Annotated[list[Path], typer.Argument(help="One or more .onnx models with the same inputs.")],
    provider: Annotated[
        BenchProvider,
        typer.Option(help="cpu, cuda, or all (what is usable, saying what was skipped; the default, as in run)."),
    ] = BenchProvider.all,
    warmup: Annotated[int, typer.Option(help="Untimed runs per session.")] = 10,
    iters: Annotated[int | None, typer.Option(help="Timed runs per session (default 100).", show_default=False)] = None,
    seconds: Annotated[
        float | None,
        typer.Option(
            help="Time budget for the whole benchmark (sessions, warm-up, every workload), instead of --iters."
        ),
    ] = None,
    opt_level: Annotated[
        list[str] | None,
        typer.Option(
            "--opt-level",
            help="ORT optimization levels: disable, basic, extended, all (a list: disable,all; repeatable; "
            "default disable and all).",
        ),
    ] = None,
    threads: Annotated[int | None, typer.Option(help="Intra-op threads (default: ORT's).")] = None,
    shape: ShapeOption = None,
    scenario: Annotated[
        Scenario | None,
        typer.Option(
            help="prefill (S tokens, no past), decode (1 token after P) or both (default for decoders "
            "with a KV cache; others: prefill)."
        ),
    ] = None,
    batch: BatchesOption = None,
    seq: SeqsOption = None,
    past: PastsOption = None,
    inputs: Annotated[Path | None, typer.Option(help=".npz with one array per model input.")] = None,
    compare_ort: Annotated[
        bool,
        typer.Option(
            "--compare-ort",
            help="Also bench the first model as ONNX Runtime's transformers optimizer leaves it (ort-optimized).",
        ),
    ] = False,
    calibrate: Annotated[
        bool,
        typer.Option(
            "--calibrate",
            help="Also time the first model against itself (an A/A row): differences are called only beyond that "
            "noise floor.",
        ),
    ] = False,
    ort_model_type: Annotated[
        str | None, typer.Option(help="Model type for --compare-ort (default: gpt2 for decoders, bert for encoders).")
    ] = None,
    profile: Annotated[
        bool, typer.Option("--profile", help="Summarize ORT's profiler per op type, with the norm share.")
    ] = False,
    format: Annotated[BenchFormat, typer.Option("--format", "-f", help="table, json, md or csv.")] = BenchFormat.table,
    out: Annotated[
        Path | None, typer.Option("--out", "--output", "-o", help="Write the report to this file instead of stdout.")
    ] = None,
    chart: Annotated[Path | None, typer.Option("--chart", help="Also write a latency chart (PNG) here.")] = None,
    debug: DebugOption = False,
) -> None:
    """Measure latency of MODELS side by side on ONNX Runtime (interleaved runs, percentiles, speedups)."""
    from normopt import options
    from normopt.feeds.inputs import parse_shapes
    from normopt.latency import bench as run_bench
    from normopt.reports import bench as render

    batches, seqs, pasts = options.size_lists(batch, seq, past)
    from normopt import modelio

    for destination in (out, chart):  # an output that cannot be written is said now, not after the timing
        if destination is not None:
            modelio.check_destination(destination)
    with progress_bar() as bar:
        task = bar.add_task("timing", total=None)
        report = run_bench(
            models,
            providers=provider.providers(),
            opt_levels=options.word_list("--opt-level", opt_level, options.OPT_LEVELS),  # type: ignore[arg-type]
            warmup=warmup,
            iters=iters,
            seconds=seconds,
            threads=threads,
            shapes=parse_shapes(shape),
            inputs=inputs,
            profile=profile,
            skip_unavailable=provider == BenchProvider.all,
            progress=lambda done, total: bar.update(task, completed=done, total=total or None),
            scenario=scenario,
            batches=batches,
            seqs=seqs,
            pasts=pasts,
            compare_ort=compare_ort,
            calibrate=calibrate,
            ort_model_type=ort_model_type,
            note=lambda line: bar.console.print(f"note: {line}"),
        )
    if chart is not None:
        from normopt.reports.chart import latency_chart

        info(f"chart written to {latency_chart(report, chart)}")
    text = {
        BenchFormat.json: lambda: render.to_json(report),
        BenchFormat.md: lambda: render.to_markdown(report),
        BenchFormat.csv: lambda: render.to_csv(report),
    }.get(format)
    if out is not None:
        out.write_text(text() if text else render.to_markdown(report))
        info(f"report written to {out}")
        if format == BenchFormat.table:
            render.print_table(report, file=sys.stderr)
    elif text is None:
        render.print_table(report)
    else:
        sys.stdout.write(text() if text().endswith("\n") else text() + "\n")
    for skip in report.skipped:
        info(f"skipped {skip['provider']}: {skip['reason']}")
