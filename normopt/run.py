"""``normopt.run``: export → fuse → verify → bench original and fused → report (JSON, Markdown, HTML, PNG).

``report.json`` schema (schema_version 1):

- ``model``: what was run; ``export``: the export summary (null when MODEL was an .onnx file);
- ``fusion``: ``candidates``, ``fused``, ``by_kind``, ``by_rule``, ``rejected`` ([{kind, node, reason}]),
  ``nodes_before``, ``nodes_after``, ``target``;
- ``parity``: ``passed`` and ``outputs`` ([{name, max_abs, max_rel, mean_abs, p99_abs, cosine, ...}]);
- ``latency``: rows {``model`` (original/fused), ``provider`` (what ONNX Runtime actually used),
  ``opt_level``, ``p50_ms``, ``p90_ms``, ``p95_ms``, ``p99_ms``, ``mean_ms``, ``std_ms``, ``throughput``,
  ``speedup``, ...};
- ``versions``: torch, onnx, onnxruntime, ...; ``machine``: CPU, cores, GPU, platform; ``skipped``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from normopt.choices import DType, Exporter, Target, Task
from normopt.errors import UsageError
from normopt.feeds.ortsession import OptLevel
from normopt.locate import model_in, onnx_files
from normopt.options import DEFAULT_ITERS

if TYPE_CHECKING:
    from normopt.latency.runner import BenchRow

Step = Callable[[str], None]


@dataclass
class RunOutcome:
    """Paths of what ``run`` wrote and the report it built."""

    out_dir: Path
    report: dict[str, Any]
    report_json: Path
    report_md: Path
    chart: Path
    report_html: Path


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
) -> RunOutcome:
    """Run the whole pipeline on ``model`` (default: the built-in default preset) into ``out_dir``.

    A preset is exported with its KV cache unless ``with_past`` is False, so the benchmark has prefill
    rows (``seqs``, no past) and decode-step rows (one token after ``pasts`` cached ones); a Hugging Face
    directory gets a cache with ``with_past``. ``iters`` (default 100) or ``seconds`` are per workload and
    row, not both.
    """
    from normopt.exporting.presets import DEFAULT_PRESET

    say = step or (lambda _: None)
    started = time.perf_counter()
    model = model or DEFAULT_PRESET
    if onnx_files(model):  # an export folder: its ONNX model as it is, never a new export from its config.json
        found = model_in(model)
        say(f"{model} holds ONNX models: using {found} (nothing exported)")
        model = str(found)
    out = Path(out_dir)
    settings = _Settings(
        exporter,
        opset,
        dtype,
        target,
        providers,
        warmup,
        iters,
        threads,
        task,
        with_past,
        batches,
        seqs,
        pasts,
        seconds,
        opt_levels,
        profile,
        compare_ort,
        calibrate,
    )
    _check_run(model, out, settings)
    created = _Created(out)
    try:
        return _pipeline(model, out, settings, say, progress, started)
    except BaseException:
        created.remove()  # what this run made: its files, and --out itself when it made that
        raise


@dataclass(frozen=True)
class _Settings:
    exporter: Exporter
    opset: int | None
    dtype: DType
    target: Target
    providers: list[str] | None
    warmup: int
    iters: int | None
    threads: int | None
    task: Task | None = None
    with_past: bool | None = None
    batches: list[int] | None = None
    seqs: list[int] | None = None
    pasts: list[int] | None = None
    seconds: float | None = None
    opt_levels: list[OptLevel] | None = None
    profile: bool = False
    compare_ort: bool = False
    calibrate: bool = True

    def cached(self, kind: str) -> bool:
        """Whether the export gets a KV cache: asked for, or by default for a preset."""
        return self.with_past if self.with_past is not None else kind == "preset"


def _check_run(model: str, out: Path, settings: _Settings) -> None:
    """Every input and option ``run`` takes, checked before anything is created."""
    from normopt import modelio, options
    from normopt.fusing import check_fuse_options

    options.timed_runs(settings.iters, settings.warmup, settings.seconds)
    options.threads(settings.threads)
    check_fuse_options(settings.target, None)
    if settings.providers and set(settings.providers) == {"cuda"}:  # nothing would be benchmarked: say so now
        from normopt.errors import ProviderUnavailable
        from normopt.feeds import ortsession

        problem = ortsession.cuda_problem()
        if problem is not None:
            raise ProviderUnavailable(f"--provider cuda: CUDA is not usable here: {problem}")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; give a directory (it is created if missing)")
    for ancestor in out.parents:
        if ancestor.exists() and not ancestor.is_dir():
            raise UsageError(f"cannot create --out {out}: {ancestor} is a file, not a directory")
    if model.endswith(".onnx"):
        source = Path(model).resolve()
        proto = modelio.read_proto(Path(model))  # missing, empty, truncated or not a model: exit 2 now
        if source.parent == out.resolve() and source.name in _OUTPUTS:
            raise UsageError(f"--out {out} would overwrite the input {model}; choose another directory")
        modelio.load(source, proto)  # its external data must be there too
    else:
        from normopt.exporting.exporter import check_export_options
        from normopt.exporting.sources import check_spec

        check_export_options(settings.exporter, settings.dtype, settings.opset, None, None)
        kind = check_spec(model, settings.task)
        if settings.with_past and (kind == "function" or settings.task not in (None, "causal-lm")):
            raise UsageError("--with-past exports a causal LM with its cache (presets and Hugging Face directories)")
    if model.endswith(".onnx") and (settings.with_past is not None or settings.task is not None):
        raise UsageError("--with-past and --task apply to exports; an .onnx input is benchmarked as it is")


_OUTPUTS = ("original.onnx", "fused.onnx", "report.json", "report.md", "report.html", "latency.png")


class _Created:
    """What a run adds under ``out`` (and ``out`` itself, with missing parents), to remove on failure."""

    def __init__(self, out: Path) -> None:
        self.out = out
        missing = [p for p in (out, *out.parents) if not p.exists()]
        self.top = missing[-1] if missing else None  # the outermost folder this run will create
        self.before = set(os.listdir(out)) if out.is_dir() else set()

    def remove(self) -> None:
        if self.top is not None:
            shutil.rmtree(self.top, ignore_errors=True)
            return
        if self.out.is_dir():
            for name in set(os.listdir(self.out)) - self.before:
                path = self.out / name
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


def _pipeline(
    model: str, out: Path, settings: _Settings, say: Step, progress: Callable[[int, int], None] | None, started: float
) -> RunOutcome:
    from normopt.fusing import fuse
    from normopt.latency import bench
    from normopt.latency.chart import latency_chart
    from normopt.latency.html import to_html
    from normopt.parity import verify

    out.mkdir(parents=True, exist_ok=True)
    fused_path = out / "fused.onnx"
    export_info = None
    cached = False  # whether the export has a KV cache (an .onnx input is benchmarked as it is)
    if model.endswith(".onnx"):
        original = Path(model)  # read where it is: a copy would lose the external data it references
        say(f"using {model} as the original model")
    else:
        from normopt.exporting.exporter import export
        from normopt.exporting.sources import check_spec

        original = out / "original.onnx"
        cached = settings.cached(check_spec(model, settings.task))
        say(
            f"[1/4] exporting {model} ({settings.exporter} exporter, {settings.dtype}"
            + (", with a KV cache)" if cached else ")")
        )
        export_info = export(
            model,
            original,
            exporter=settings.exporter,
            opset=settings.opset,
            dtype=settings.dtype,
            task=settings.task,
            with_past=cached,
        ).to_dict()
        if export_info["random_weights"]:
            say("      note: RANDOM weights (outputs mean nothing, latency does)")
    say("[2/4] fusing norms")
    fusion = fuse(original, fused_path, target=settings.target)
    say(f"      fused {fusion.result.fused}/{fusion.result.candidates} candidates")
    say("[3/4] verifying parity (ONNX Runtime CPU, optimizations off)")
    parity = verify(original, fused_path)
    say("      parity " + ("passed" if parity.passed else "FAILED"))
    runs = (
        f"{settings.iters or DEFAULT_ITERS} interleaved runs" if settings.seconds is None else f"{settings.seconds:g} s"
    )
    say(f"[4/4] benchmarking original vs fused ({runs} per row and workload)")
    batches, seqs, pasts = _sizes(model, cached, settings)
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
    )
    chart = latency_chart(report, out / "latency.png", title=f"{_title(model, export_info)}: original vs fused")
    document = _document(
        model, export_info, fusion.to_dict(), parity.to_dict(), report.to_dict(), time.perf_counter() - started
    )
    report_json = out / "report.json"
    report_json.write_text(json.dumps(document, indent=2) + "\n")
    report_md = out / "report.md"
    markdown = render_markdown(document, chart.name)
    report_md.write_text(markdown)
    report_html = out / "report.html"
    report_html.write_text(to_html(markdown, f"normopt report: {_title(model, export_info)}", {chart.name: chart}))
    return RunOutcome(out, document, report_json, report_md, chart, report_html)


def _title(model: str, export_info: dict[str, Any] | None) -> str:
    """The model as every report names it, saying so when its weights are random."""
    return f"{model} (random weights)" if export_info and export_info.get("random_weights") else model


def _sizes(
    model: str, cached: bool, settings: _Settings
) -> tuple[list[int] | None, list[int] | None, list[int] | None]:
    """Batch, prefill and past sizes to bench: as asked, else a preset's own shape (past = its seq)."""
    from normopt.exporting.presets import PRESETS

    preset = PRESETS.get(model)  # None for an .onnx path or a Hugging Face directory
    batches = settings.batches or ([preset.batch] if preset else None)
    seqs = settings.seqs or ([preset.seq] if preset else None)
    pasts = settings.pasts or ([preset.seq] if preset and cached else None)
    return batches, seqs, pasts


def _document(
    model: str,
    export_info: dict[str, Any] | None,
    fusion: dict[str, Any],
    parity: dict[str, Any],
    bench: dict[str, Any],
    seconds: float,
) -> dict[str, Any]:
    env = bench["environment"]
    return {
        "schema_version": 1,
        "model": model,
        "seconds": round(seconds, 1),
        "export": export_info,
        "fusion": {
            "target": fusion["target"],
            "candidates": fusion["candidates"],
            "fused": fusion["fused"],
            "by_kind": fusion["by_kind"],
            "by_rule": fusion["by_rule"],
            "rejected": [
                {"kind": d["kind"], "node": d["node"], "reason": d["reason"]}
                for d in fusion["details"]
                if d["status"] == "rejected"
            ],
            "nodes_before": fusion["nodes_before"],
            "nodes_after": fusion["nodes_after"],
            "checker": fusion["checker"],
        },
        "parity": {"passed": parity["passed"], "tolerance": parity["tolerance"], "outputs": parity["outputs"]},
        "latency": bench["results"],
        "bench_settings": bench["settings"] | {"shapes": bench["shapes"], "workloads": bench["workloads"]},
        "skipped": bench["skipped"],
        "versions": {k: env[k] for k in ("normopt", "torch", "onnx", "onnxruntime", "onnx_ir", "numpy", "python")},
        "machine": {k: env[k] for k in ("cpu", "cpu_count", "gpu", "platform")},
    }


def _verdicts(rows: list[BenchRow]) -> list[str]:
    """One plain sentence per compared row (``report.verdict_sentence``), with its provider and level."""
    from normopt.latency.report import verdict_sentence

    lines = []
    for row in rows:
        sentence = verdict_sentence(row)
        if sentence is not None:
            lines.append(f"- {sentence} ({row.provider.replace('ExecutionProvider', '')}, opt {row.opt_level}).")
    return lines


def _parity_rows(outputs: list[dict[str, Any]], shown: int = 4) -> list[str]:
    """Table rows for the first ``shown`` outputs, then one row for the rest (their worst values)."""
    from normopt.latency.html import md_text

    shown = len(outputs) if len(outputs) <= shown + 1 else shown
    rows = [
        f"| {md_text(o['name'])} | {o['max_abs']:.3g} | {o['max_rel']:.3g} | {o['mean_abs']:.3g} | {o['cosine']:.6f} | "
        f"{o['over_tolerance']} |"
        for o in outputs[:shown]
    ]
    rest = outputs[shown:]
    if rest:
        rows.append(
            f"| {len(rest)} more ({md_text(rest[0]['name'])} … {md_text(rest[-1]['name'])}), worst | "
            f"{max(o['max_abs'] for o in rest):.3g} | {max(o['max_rel'] for o in rest):.3g} | "
            f"{max(o['mean_abs'] for o in rest):.3g} | {min(o['cosine'] for o in rest):.6f} | "
            f"{sum(o['over_tolerance'] for o in rest)} |"
        )
    return rows


def render_markdown(doc: dict[str, Any], chart_name: str) -> str:
    """``report.md``: readable on its own, with the chart embedded."""
    from normopt.latency.html import md_text
    from normopt.latency.report import shapes_line, workload
    from normopt.latency.runner import BenchRow
    from normopt.latency.stats import METHOD

    rows = [BenchRow(**r) for r in doc["latency"]]
    fusion, parity = doc["fusion"], doc["parity"]
    lines = [
        f"# normopt report: {md_text(_title(doc['model'], doc.get('export')))}",
        "",
        f"Pipeline took {doc['seconds']} s. Versions: torch {doc['versions']['torch']}, "
        f"onnx {doc['versions']['onnx']}, "
        f"onnxruntime {doc['versions']['onnxruntime']}. Machine: {doc['machine']['cpu']} "
        f"({doc['machine']['cpu_count']} cores), GPU: {doc['machine']['gpu'] or 'none'}.",
        "",
        "## Fusion",
        "",
        f"Fused **{fusion['fused']} of {fusion['candidates']}** norm candidates (target `{fusion['target']}`): "
        + ", ".join(f"{k} {v}" for k, v in fusion["by_kind"].items())
        + f". Nodes {fusion['nodes_before']} → {fusion['nodes_after']}. onnx.checker: {md_text(fusion['checker'])}.",
        "",
        "| rule | fused |",
        "|---|---|",
        *[f"| `{rule}` | {count} |" for rule, count in fusion["by_rule"].items()],
    ]
    if fusion["rejected"]:
        lines += ["", "Left alone:", ""] + [
            f"- {r['kind']} at {md_text(r['node'])}: {md_text(r['reason'])}" for r in fusion["rejected"]
        ]
    lines += [
        "",
        "## Parity",
        "",
        f"**{'Passed' if parity['passed'] else 'FAILED'}** (ONNX Runtime CPU, graph optimizations off; "
        f"{parity['tolerance']['rule']}).",
        "",
        "| output | max_abs | max_rel | mean_abs | cosine | over tolerance |",
        "|---|---|---|---|---|---|",
        *_parity_rows(parity["outputs"]),
        "",
        "## Latency",
        "",
        "`disable` = ONNX Runtime graph optimizations off (what normopt's fusion alone buys); `all` = ORT's own "
        "fusions on as well. Speedup is against `original` under the same provider and level.",
        "",
        "| model | provider | opt level | workload | p50 ms | p90 ms | p99 ms | tok/s | ms/token | speedup | 95% CI "
        "| verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        *[
            f"| {md_text(r['model'])} | {r['provider'].replace('ExecutionProvider', '')} | {r['opt_level']} | "
            f"{workload(row)} | {r['p50_ms']:.2f} | {r['p90_ms']:.2f} | {r['p99_ms']:.2f} | "
            + ("-" if r.get("tokens_per_s") is None else f"{r['tokens_per_s']:.0f}")
            + " | "
            + ("-" if r.get("ms_per_token") is None else f"{r['ms_per_token']:.3f}")
            + f" | {r['speedup']:.2f}x | "
            + (f"{r['speedup_low']:.2f}-{r['speedup_high']:.2f}x" if r.get("speedup_low") is not None else "-")
            + f" | {r.get('verdict') or '-'} |"
            for r, row in zip(doc["latency"], rows, strict=True)
        ],
        "",
        *_verdicts(rows),
        "",
        METHOD,
        "",
        *[
            f"Inputs ({w['scenario']}): {md_text(shapes_line(w['shapes']))}."
            for w in doc["bench_settings"].get("workloads", [])
        ],
        f"Warm-up {doc['bench_settings']['warmup']}, "
        + (
            f"{doc['bench_settings']['iters']} timed runs"
            if doc["bench_settings"].get("iters")
            else f"{doc['bench_settings']['seconds']} s of timed runs"
        )
        + " per row and workload, interleaved.",
    ]
    lines += [f"Skipped {s['provider']}: {md_text(s['reason'])}." for s in doc["skipped"]]
    lines += ["", f"![latency distribution]({chart_name})", ""]
    return "\n".join(lines)
