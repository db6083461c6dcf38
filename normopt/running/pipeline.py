"""``normopt.run``: export → fuse → verify → bench original and fused → report (JSON, Markdown, HTML, PNG)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from normopt.choices import DType, Exporter, Target, Task
from normopt.feeds.ortsession import OptLevel
from normopt.locate import model_in, onnx_files
from normopt.options import DEFAULT_ITERS
from normopt.reports.run import RunReport, render_markdown
from normopt.running.folder import OutputFolder
from normopt.running.settings import Settings, check_run

Step = Callable[[str], None]


@dataclass
class RunOutcome:
    """Paths of what ``run`` wrote, its JSON document (``report``) and the typed report (``summary``)."""

    out_dir: Path
    report: dict[str, Any]
    report_json: Path
    report_md: Path
    chart: Path
    report_html: Path
    summary: RunReport  # the typed report every format above was rendered from


def run(
    model: str | None = None,
    out_dir: str | os.PathLike[str] = "normopt-out",
    *,
    exporter: Exporter = "legacy",
    opset: int | None = None,
    dtype: DType = "fp32",
    target: Target = "auto",
    providers: list[str] | None = None,
    warmup: int = 10,
    iters: int | None = None,
    threads: int | None = None,
    step: Step | None = None,
    progress: Callable[[int, int], None] | None = None,
    task: Task | None = None,
    with_past: bool | None = None,
    batches: list[int] | None = None,
    seqs: list[int] | None = None,
    pasts: list[int] | None = None,
    seconds: float | None = None,
    opt_levels: list[OptLevel] | None = None,
    profile: bool = False,
    compare_ort: bool = False,
    calibrate: bool = True,
    atol: float | None = None,
    rtol: float | None = None,
    shapes: dict[str, list[int]] | None = None,
    inputs: str | os.PathLike[str] | None = None,
) -> RunOutcome:
    """Run the whole pipeline on ``model`` (default: the built-in default preset) into ``out_dir``.

    A preset is exported with its KV cache unless ``with_past`` is False, so the benchmark has prefill
    rows (``seqs``, no past) and decode-step rows (one token after ``pasts`` cached ones); a Hugging Face
    directory gets a cache with ``with_past``. ``iters`` (default 100) or ``seconds`` are per workload and
    row, not both. ``atol``/``rtol``, ``shapes`` and ``inputs`` are those of ``verify`` (and ``shapes`` and
    ``inputs`` those of ``bench`` too): parity and latency run on the same inputs.
    """
    from normopt.exporting.catalog import DEFAULT_PRESET

    say = step or (lambda _: None)
    started = time.perf_counter()
    model = model or DEFAULT_PRESET
    if onnx_files(model):  # an export folder: its ONNX model as it is, never a new export from its config.json
        found = model_in(model)
        say(f"{model} holds ONNX models: using {found} (nothing exported)")
        model = str(found)
    out = Path(out_dir)
    settings = Settings(
        exporter=exporter,
        opset=opset,
        dtype=dtype,
        target=target,
        providers=providers,
        warmup=warmup,
        iters=iters,
        threads=threads,
        task=task,
        with_past=with_past,
        batches=batches,
        seqs=seqs,
        pasts=pasts,
        seconds=seconds,
        opt_levels=opt_levels,
        profile=profile,
        compare_ort=compare_ort,
        calibrate=calibrate,
        atol=atol,
        rtol=rtol,
        shapes=shapes or {},
        inputs=Path(inputs) if inputs is not None else None,
    )
    check_run(model, out, settings)
    folder = OutputFolder(out)
    try:
        folder.open()  # an earlier run's folder moves aside; it comes back if this run does not finish
        outcome = _pipeline(model, out, settings, say, progress, started)
    except BaseException:
        folder.rollback()
        raise
    folder.commit()
    return outcome


def _pipeline(
    model: str, out: Path, settings: Settings, say: Step, progress: Callable[[int, int], None] | None, started: float
) -> RunOutcome:
    from normopt.fusing import fuse
    from normopt.latency import bench
    from normopt.parity import verify
    from normopt.reports.chart import latency_chart
    from normopt.reports.html import to_html

    fused_path = out / "fused.onnx"
    exported = None
    kv_cache = False  # whether the export has a KV cache (an .onnx input is benchmarked as it is)
    if model.endswith(".onnx"):
        original = Path(model)  # read where it is: a copy would lose the external data it references
        say(f"using {model} as the original model")
    else:
        from normopt.exporting.exporter import export
        from normopt.exporting.spec import check_spec

        original = out / "original.onnx"
        kv_cache = settings.with_kv_cache(check_spec(model, settings.task))
        say(
            f"[1/4] exporting {model} ({settings.exporter} exporter, {settings.dtype}"
            + (", with a KV cache)" if kv_cache else ")")
        )
        exported = export(
            model,
            original,
            exporter=settings.exporter,
            opset=settings.opset,
            dtype=settings.dtype,
            task=settings.task,
            with_past=kv_cache,
        )
        if exported.random_weights:
            say("      note: RANDOM weights (outputs mean nothing, latency does)")
    say("[2/4] fusing norms")
    fusion = fuse(original, fused_path, target=settings.target)
    say(f"      fused {fusion.result.fused}/{fusion.result.candidates} candidates")
    say("[3/4] verifying parity (ONNX Runtime CPU, optimizations off)")
    parity = verify(
        original, fused_path, atol=settings.atol, rtol=settings.rtol, shapes=settings.shapes, inputs=settings.inputs
    )
    say("      parity " + ("passed" if parity.passed else "FAILED"))
    runs = (
        f"{settings.iters or DEFAULT_ITERS} interleaved runs" if settings.seconds is None else f"{settings.seconds:g} s"
    )
    say(f"[4/4] benchmarking original vs fused ({runs} per row and workload)")
    batches, seqs, pasts = _sizes(model, kv_cache, settings)
    report = bench(
        [original, fused_path],
        providers=settings.providers or ["cpu", "cuda"],
        opt_levels=settings.opt_levels or ["disable", "all"],
        warmup=settings.warmup,
        iters=settings.iters,
        seconds=settings.seconds,
        threads=settings.threads,
        labels=["original", "fused"],
        skip_unavailable=True,
        progress=progress,
        batches=batches,
        seqs=seqs,
        pasts=pasts,
        profile=settings.profile,
        compare_ort=settings.compare_ort,
        calibrate=settings.calibrate,
        shapes=settings.shapes,
        inputs=settings.inputs,
        note=lambda line: say(f"      note: {line}"),
    )
    summary = RunReport(model, out, original, fusion, parity, report, time.perf_counter() - started, export=exported)
    chart = latency_chart(report, out / "latency.png", title=f"{summary.title}: original vs fused")
    document = summary.to_dict()
    report_json = out / "report.json"
    report_json.write_text(json.dumps(document, indent=2) + "\n")
    report_md = out / "report.md"
    markdown = render_markdown(summary, chart.name)
    report_md.write_text(markdown)
    report_html = out / "report.html"
    report_html.write_text(to_html(markdown, f"normopt report: {summary.title}", {chart.name: chart}))
    return RunOutcome(out, document, report_json, report_md, chart, report_html, summary)


def _sizes(
    model: str, kv_cache: bool, settings: Settings
) -> tuple[list[int] | None, list[int] | None, list[int] | None]:
    """Batch, prefill and past sizes to bench: as asked, else a preset's own shape (past = its seq).

    With ``--inputs`` or ``--shape`` the inputs are the user's: no preset default is added to them.
    """
    from normopt.exporting.catalog import PRESETS

    given = settings.inputs is not None or bool(settings.shapes)
    preset = None if given else PRESETS.get(model)  # None for an .onnx path or a Hugging Face directory
    batches = settings.batches or ([preset.batch] if preset else None)
    seqs = settings.seqs or ([preset.seq] if preset else None)
    pasts = settings.pasts or ([preset.seq] if preset and kv_cache else None)
    return batches, seqs, pasts
