"""Chaining: normopt before and after the tools people run with it, measured in one run.

For each model M: M, ORT(M), normopt(M), ORT(normopt(M)), onnxscript(M), onnxscript(normopt(M)), where ORT is
ONNX Runtime's transformers optimizer (Python fusions only, given the heads and hidden size read from the
model, as ``--compare-ort`` does) and onnxscript is ``optimize_for_ort`` after shape inference and default
attributes. Per pipeline: node count, fused operators by type, parity against M (ONNX Runtime CPU,
optimizations off, the dtype's default tolerances) and p50 latency (all six benched in one interleaved run,
ORT optimizations off, so each row shows what its graph rewrites buy).

Models: the presets gpt2-tiny and llama-tiny (with ``--presets`` any others), and a BERT and a GPT-2 built from
Hugging Face configs (``normopt.exporting.tiny``, random weights, nothing downloaded).

Usage: ``.venv/bin/python benchmarks/bench_compose.py [--presets gpt2-tiny llama-tiny] [--iters 50]``.
Prints a Markdown table, and a line per model saying whether any pipeline has more nodes after normopt than
without it for the same downstream tool; writes benchmarks/out/compose.json (untracked unless --out).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the repository root

FUSED_OPS = (
    "LayerNormalization", "SimplifiedLayerNormalization", "RMSNormalization", "SkipLayerNormalization",
    "SkipSimplifiedLayerNormalization", "EmbedLayerNormalization", "Attention", "MultiHeadAttention",
    "GroupQueryAttention", "FastGelu", "Gelu", "BiasGelu", "RotaryEmbedding",
)  # fmt: skip
PIPELINES = ["M", "ORT(M)", "normopt(M)", "ORT(normopt(M))", "onnxscript(M)", "onnxscript(normopt(M))"]


def _ort(source: Path, out: Path, model_type: str) -> str | None:
    from normopt.latency import peers

    problem, _ = peers.ort_optimized(source, out, model_type, peers.model_shape(source))
    return problem


def _onnxscript(source: Path, out: Path) -> str | None:
    import onnx_ir as ir
    from onnx_ir.passes.common import AddDefaultAttributesPass, ShapeInferencePass
    from onnxscript.rewriter.ort_fusions import optimize_for_ort

    try:
        model = ir.load(source)
        ShapeInferencePass()(model)  # its rules need dtypes and default attributes present (shared notes)
        AddDefaultAttributesPass()(model)
        model, _ = optimize_for_ort(model)
        ir.save(model, out)
    except Exception as error:  # a peer's failure is a row, not the end of the table
        return f"{type(error).__name__}: {str(error).strip().splitlines()[0][:120] if str(error).strip() else ''}"
    return None


def _ops(path: Path) -> tuple[int, dict[str, int]]:
    import onnx

    nodes = onnx.load(path, load_external_data=False).graph.node
    counts = Counter(n.op_type for n in nodes)
    return len(nodes), {op: counts[op] for op in FUSED_OPS if counts[op]}


def _models(work: Path, presets: list[str]) -> list[tuple[str, Path, str]]:
    """(name, exported .onnx, ORT model type) for each model, exported with the legacy exporter."""
    from normopt import export
    from normopt.exporting import tiny

    found = []
    for preset in presets:
        path = work / f"{preset}.onnx"
        export(preset, path)
        found.append((preset, path, "gpt2"))
    for family, model_type in (("bert", "bert"), ("gpt2", "gpt2")):
        folder = tiny.write(family, work / f"hf-{family}", weights=True)
        path = work / f"hf-{family}.onnx"
        export(str(folder), path)
        found.append((f"HF {family} (config)", path, model_type))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--presets", nargs="+", default=["gpt2-tiny", "llama-tiny"])
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--out", type=Path, default=HERE / "out" / "compose.json")
    args = parser.parse_args()
    from normopt import bench, fuse, verify

    rows: list[dict[str, Any]] = []
    verdicts: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, source, model_type in _models(work, args.presets):
            stem = source.stem
            paths = {"M": source, "normopt(M)": work / f"{stem}.normopt.onnx"}
            fuse(source, paths["normopt(M)"])
            problems: dict[str, str | None] = {}
            for base in ("M", "normopt(M)"):
                ort_name, script_name = f"ORT({base})", f"onnxscript({base})"
                paths[ort_name] = work / f"{stem}.{len(paths)}.ort.onnx"
                problems[ort_name] = _ort(paths[base], paths[ort_name], model_type)
                paths[script_name] = work / f"{stem}.{len(paths)}.onnxscript.onnx"
                problems[script_name] = _onnxscript(paths[base], paths[script_name])
            ran = [p for p in PIPELINES if problems.get(p) is None]
            report = bench([paths[p] for p in ran], labels=ran, opt_levels=["disable"], iters=args.iters, warmup=5)
            p50 = {r.model: r.p50_ms for r in report.results}
            counts = {}
            for pipeline in PIPELINES:
                if problems.get(pipeline) is not None:
                    rows.append({"model": name, "pipeline": pipeline, "error": problems[pipeline]})
                    continue
                nodes, ops = _ops(paths[pipeline])
                counts[pipeline] = nodes
                parity = verify(source, paths[pipeline]) if pipeline != "M" else None
                rows.append(
                    {
                        "model": name,
                        "pipeline": pipeline,
                        "nodes": nodes,
                        "fused_ops": ops,
                        "parity": None if parity is None else parity.passed,
                        "p50_ms": p50.get(pipeline),
                        "speedup": p50["M"] / p50[pipeline] if pipeline in p50 else None,
                    }
                )
            worse = [
                f"{tool}: {counts[f'{tool}(normopt(M))']} vs {counts[f'{tool}(M)']}"
                for tool in ("ORT", "onnxscript")
                if f"{tool}(M)" in counts and f"{tool}(normopt(M))" in counts
                and counts[f"{tool}(normopt(M))"] > counts[f"{tool}(M)"]
            ]  # fmt: skip
            verdicts.append(
                f"{name}: " + ("MORE nodes after normopt for " + "; ".join(worse) if worse else
                               "no downstream tool ends with more nodes after normopt than without it")
            )  # fmt: skip
    print("| model | pipeline | nodes | fused operators | parity vs M | p50 ms | speedup vs M |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        if "error" in row:
            print(f"| {row['model']} | {row['pipeline']} | - | failed: {row['error']} | - | - | - |")
            continue
        ops = ", ".join(f"{op} {n}" for op, n in row["fused_ops"].items()) or "-"
        parity = "-" if row["parity"] is None else ("passed" if row["parity"] else "FAILED")
        p50 = "-" if row["p50_ms"] is None else f"{row['p50_ms']:.3f}"
        speedup = "-" if row["speedup"] is None else f"{row['speedup']:.2f}x"
        print(f"| {row['model']} | {row['pipeline']} | {row['nodes']} | {ops} | {parity} | {p50} | {speedup} |")
    print()
    for line in verdicts:
        print(f"- {line}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "verdicts": verdicts}, indent=2) + "\n")


if __name__ == "__main__":
    main()
