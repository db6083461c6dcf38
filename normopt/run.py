"""``normopt.run``: export → fuse → verify → bench original and fused → report (JSON, Markdown, PNG).

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
from typing import Any

from normopt.choices import DType, Exporter, Target
from normopt.errors import UsageError

Step = Callable[[str], None]


@dataclass
class RunOutcome:
    """Paths of what ``run`` wrote and the report it built."""

    out_dir: Path
    report: dict[str, Any]
    report_json: Path
    report_md: Path
    chart: Path


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
    iters: int = 100,
    threads: int | None = None,
    step: Step | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> RunOutcome:
    """Run the whole pipeline on ``model`` (default: the built-in default preset) into ``out_dir``."""
    from normopt.exporting.presets import DEFAULT_PRESET

    say = step or (lambda _: None)
    started = time.perf_counter()
    model = model or DEFAULT_PRESET
    out = Path(out_dir)
    settings = _Settings(exporter, opset, dtype, target, providers, warmup, iters, threads)
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
    iters: int
    threads: int | None


def _check_run(model: str, out: Path, settings: _Settings) -> None:
    """Every input and option ``run`` takes, checked before anything is created."""
    from normopt import modelio, options
    from normopt.fusing import check_fuse_options

    options.timed_runs(settings.iters, settings.warmup, None)
    options.threads(settings.threads)
    check_fuse_options(settings.target, None)
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
        check_spec(model)


_OUTPUTS = ("original.onnx", "fused.onnx", "report.json", "report.md", "latency.png")


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
    from normopt.parity import verify

    out.mkdir(parents=True, exist_ok=True)
    fused_path = out / "fused.onnx"
    export_info = None
    if model.endswith(".onnx"):
        original = Path(model)  # read where it is: a copy would lose the external data it references
        say(f"using {model} as the original model")
    else:
        from normopt.exporting.exporter import export

        original = out / "original.onnx"
        say(f"[1/4] exporting {model} ({settings.exporter} exporter, {settings.dtype})")
        export_info = export(
            model, original, exporter=settings.exporter, opset=settings.opset, dtype=settings.dtype
        ).to_dict()
    say("[2/4] fusing norms")
    fusion = fuse(original, fused_path, target=settings.target)
    say(f"      fused {fusion.result.fused}/{fusion.result.candidates} candidates")
    say("[3/4] verifying parity (ONNX Runtime CPU, optimizations off)")
    parity = verify(original, fused_path)
    say("      parity " + ("passed" if parity.passed else "FAILED"))
    say(f"[4/4] benchmarking original vs fused ({settings.iters} interleaved runs per row)")
    shapes = {i["name"]: i["shape"] for i in export_info["inputs"]} if export_info else None
    report = bench(
        [original, fused_path],
        providers=settings.providers or ["cpu", "cuda"],
        opt_levels=["disable", "all"],
        shapes=shapes,
        warmup=settings.warmup,
        iters=settings.iters,
        threads=settings.threads,
        labels=["original", "fused"],
        skip_unavailable=True,
        progress=progress,
    )
    chart = latency_chart(report, out / "latency.png", title=f"{model}: original vs fused")
    document = _document(
        model, export_info, fusion.to_dict(), parity.to_dict(), report.to_dict(), time.perf_counter() - started
    )
    report_json = out / "report.json"
    report_json.write_text(json.dumps(document, indent=2) + "\n")
    report_md = out / "report.md"
    report_md.write_text(render_markdown(document, chart.name))
    return RunOutcome(out, document, report_json, report_md, chart)


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
        "bench_settings": bench["settings"] | {"shapes": bench["shapes"]},
        "skipped": bench["skipped"],
        "versions": {k: env[k] for k in ("normopt", "torch", "onnx", "onnxruntime", "onnx_ir", "numpy", "python")},
        "machine": {k: env[k] for k in ("cpu", "cpu_count", "gpu", "platform")},
    }


def render_markdown(doc: dict[str, Any], chart_name: str) -> str:
    """``report.md``: readable on its own, with the chart embedded."""
    from normopt.latency.stats import METHOD

    fusion, parity = doc["fusion"], doc["parity"]
    lines = [
        f"# normopt report: {doc['model']}",
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
        + f". Nodes {fusion['nodes_before']} → {fusion['nodes_after']}. onnx.checker: {fusion['checker']}.",
        "",
        "| rule | fused |",
        "|---|---|",
        *[f"| `{rule}` | {count} |" for rule, count in fusion["by_rule"].items()],
    ]
    if fusion["rejected"]:
        lines += ["", "Left alone:", ""] + [
            f"- {r['kind']} at `{r['node']}`: {r['reason']}" for r in fusion["rejected"]
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
        *[
            f"| {o['name']} | {o['max_abs']:.3g} | {o['max_rel']:.3g} | {o['mean_abs']:.3g} | {o['cosine']:.6f} | "
            f"{o['over_tolerance']} |"
            for o in parity["outputs"]
        ],
        "",
        "## Latency",
        "",
        "`disable` = ONNX Runtime graph optimizations off (what normopt's fusion alone buys); `all` = ORT's own "
        "fusions on as well. Speedup is against `original` under the same provider and level.",
        "",
        "| model | provider | opt level | p50 ms | p90 ms | p99 ms | mean ms | std ms | speedup | 95% CI | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *[
            f"| {r['model']} | {r['provider'].replace('ExecutionProvider', '')} | {r['opt_level']} | "
            f"{r['p50_ms']:.2f} | "
            f"{r['p90_ms']:.2f} | {r['p99_ms']:.2f} | {r['mean_ms']:.2f} | {r['std_ms']:.2f} | {r['speedup']:.2f}x | "
            + (f"{r['speedup_low']:.2f}-{r['speedup_high']:.2f}x" if r.get("speedup_low") is not None else "-")
            + f" | {r.get('verdict') or '-'} |"
            for r in doc["latency"]
        ],
        "",
        METHOD,
        "",
        "Inputs "
        + ", ".join(f"{k}={'x'.join(map(str, v))}" for k, v in doc["bench_settings"]["shapes"].items())
        + f", warm-up {doc['bench_settings']['warmup']}, "
        f"{doc['bench_settings']['iters']} timed runs per row, interleaved.",
    ]
    lines += [f"Skipped {s['provider']}: {s['reason']}." for s in doc["skipped"]]
    lines += ["", f"![latency distribution]({chart_name})", ""]
    return "\n".join(lines)
