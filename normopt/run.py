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
    exporter: str = "legacy",
    opset: int | None = None,
    dtype: str = "fp32",
    target: str = "auto",
    providers: list[str] | None = None,
    warmup: int = 10,
    iters: int = 100,
    threads: int | None = None,
    step: Step | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> RunOutcome:
    """Run the whole pipeline on ``model`` (default: the built-in default preset) into ``out_dir``."""
    from normopt.exporting.presets import DEFAULT_PRESET
    from normopt.fusing import fuse
    from normopt.latency import bench
    from normopt.latency.chart import latency_chart
    from normopt.parity import verify

    say = step or (lambda _: None)
    started = time.perf_counter()
    model = model or DEFAULT_PRESET
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    original, fused_path = out / "original.onnx", out / "fused.onnx"
    export_info = None
    if model.endswith(".onnx"):
        if not Path(model).is_file():
            raise UsageError(f"no such model file: {model}")
        say(f"using {model} as the original model")
        shutil.copyfile(model, original)
    else:
        from normopt.exporting.exporter import export

        say(f"[1/4] exporting {model} ({exporter} exporter, {dtype})")
        export_info = export(model, original, exporter=exporter, opset=opset, dtype=dtype).to_dict()  # type: ignore[arg-type]
    say("[2/4] fusing norms")
    fusion = fuse(original, fused_path, target=target)  # type: ignore[arg-type]
    say(f"      fused {fusion.result.fused}/{fusion.result.candidates} candidates")
    say("[3/4] verifying parity (ONNX Runtime CPU, optimizations off)")
    parity = verify(original, fused_path)
    say("      parity " + ("passed" if parity.passed else "FAILED"))
    say(f"[4/4] benchmarking original vs fused ({iters} interleaved runs per row)")
    shapes = {i["name"]: i["shape"] for i in export_info["inputs"]} if export_info else None
    report = bench(
        [original, fused_path],
        providers=providers or ["cpu", "cuda"],
        opt_levels=["disable", "all"],
        shapes=shapes,
        warmup=warmup,
        iters=iters,
        threads=threads,
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
        "| model | provider | opt level | p50 ms | p90 ms | p99 ms | mean ms | std ms | speedup |",
        "|---|---|---|---|---|---|---|---|---|",
        *[
            f"| {r['model']} | {r['provider'].replace('ExecutionProvider', '')} | {r['opt_level']} | "
            f"{r['p50_ms']:.2f} | "
            f"{r['p90_ms']:.2f} | {r['p99_ms']:.2f} | {r['mean_ms']:.2f} | {r['std_ms']:.2f} | {r['speedup']:.2f}x |"
            for r in doc["latency"]
        ],
        "",
        f"Inputs {doc['bench_settings']['shapes']}, warm-up {doc['bench_settings']['warmup']}, "
        f"{doc['bench_settings']['iters']} timed runs per row, interleaved.",
    ]
    lines += [f"Skipped {s['provider']}: {s['reason']}." for s in doc["skipped"]]
    lines += ["", f"![latency distribution]({chart_name})", ""]
    return "\n".join(lines)
