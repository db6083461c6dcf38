"""Scale: normopt vs its peers on big LayerNorm graphs — wall time, peak memory, norms fused.

Each tool runs in its own subprocess, so the wall time includes start-up and the peak resident memory
(``ru_maxrss`` of that child) is its own. Graphs are chains of decomposed LayerNorm + MatMul layers (10
nodes a layer) with external weights; ``--big`` adds a model with ~1.6 GB of external weights.

Tools: ``normopt`` (the CLI, ``normopt fuse``), ``ort-python`` (ONNX Runtime's transformers
``FusionLayerNormalization``), ``ort-session`` (ORT's in-session optimizer writing
``optimized_model_filepath``), ``onnxscript`` (shape inference, default attributes, ``optimize_for_ort``).

Usage: ``.venv/bin/python benchmarks/bench_scale.py [--nodes 1000 10000 30000] [--big] [--timeout 300]``.
Writes benchmarks/out/scale.json (untracked; benchmarks/results/scale.json is the committed run, written with
--out) and prints a Markdown table with ratios against normopt.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TOOLS = ["normopt", "ort-python", "ort-session", "onnxscript"]


def _count_layernorms(path: str) -> int:
    import onnx

    model = onnx.load(path, load_external_data=False)
    return sum(1 for n in model.graph.node if n.op_type in ("LayerNormalization", "SkipLayerNormalization"))


def worker(tool: str, source: str, out: str) -> None:
    """Run one peer in this process (called in a subprocess by ``measure``)."""
    if tool == "ort-python":
        import onnx
        from onnxruntime.transformers.fusion_layernorm import FusionLayerNormalization
        from onnxruntime.transformers.onnx_model import OnnxModel

        model = OnnxModel(onnx.load(source))
        FusionLayerNormalization(model).apply()
        model.prune_graph()
        model.save_model_to_file(out, use_external_data_format=True)
    elif tool == "ort-session":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.optimized_model_filepath = out
        options.add_session_config_entry(
            "session.optimized_model_external_initializers_file_name", Path(out).name + ".data"
        )
        options.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
        ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    elif tool == "onnxscript":
        import onnx_ir as ir
        from onnx_ir.passes.common import AddDefaultAttributesPass, ShapeInferencePass
        from onnxscript.rewriter.ort_fusions import optimize_for_ort

        model = ir.load(source)
        ShapeInferencePass()(model)  # its rules need dtypes and default attributes present (shared notes)
        AddDefaultAttributesPass()(model)
        model, _ = optimize_for_ort(model)
        ir.save(model, out, external_data=Path(out).name + ".data")
    else:
        raise SystemExit(f"unknown tool {tool}")
    print(json.dumps({"fused": _count_layernorms(out)}))


def measure(tool: str, source: Path, out: Path, timeout: float) -> dict[str, object]:
    """Wall time, peak RSS and norms fused for one tool on one model, in a child process."""
    if tool == "normopt":
        cmd = [str(ROOT / ".venv" / "bin" / "normopt"), "fuse", str(source), "-o", str(out), "--format", "json"]
    else:
        cmd = [sys.executable, __file__, "--worker", tool, str(source), str(out)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        stdout, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return {
            "tool": tool,
            "seconds": None,
            "peak_mb": None,
            "fused": None,
            "status": f"timeout after {timeout:.0f} s",
        }
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        return {"tool": tool, "seconds": seconds, "peak_mb": None, "fused": None, "status": f"exit {proc.returncode}"}
    document = json.loads(stdout.strip().splitlines()[-1] if tool != "normopt" else stdout)
    return {"tool": tool, "seconds": seconds, "fused": document["fused"], "status": "ok"}


def run_child(tool: str, source: Path, out: Path, timeout: float) -> dict[str, object]:
    """``measure`` in a fresh process group so that ru_maxrss of the children is this tool's alone."""
    cmd = [sys.executable, __file__, "--measure", tool, str(source), str(out), str(timeout)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 60)
    return json.loads(result.stdout.strip().splitlines()[-1])


def _measure_main(tool: str, source: str, out: str, timeout: str) -> None:
    import resource

    row = measure(tool, Path(source), Path(out), float(timeout))
    row["peak_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 if row["status"] == "ok" else None
    print(json.dumps(row))


def _build(layers: int, hidden: int, seq: int, path: Path) -> tuple[Path, int]:
    sys.path.insert(0, str(HERE.parent))  # the repository root: normopt and tests.synthetic
    from tests.synthetic import layernorm_chain, save

    model = layernorm_chain(layers, (1, seq, hidden), opset=17, matmul=True)
    nodes = sum(1 for _ in model.graph)
    save(model, path, external=True)
    return path, nodes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, nargs="+", default=[1000, 10000, 30000])
    parser.add_argument("--big", action="store_true", help="also a model with ~1.6 GB of external weights")
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--tools", nargs="+", default=TOOLS)
    parser.add_argument(
        "--out",
        type=Path,
        default=HERE / "out" / "scale.json",
        help="where to write (default benchmarks/out/, untracked; the committed results/ are written by passing --out)",
    )
    args = parser.parse_args()
    cases = [(f"{n} nodes", n // 10, 64, 16) for n in args.nodes]
    if args.big:
        cases.append(("1.6 GB weights", 25, 4096, 16))
    rows = []
    scratch = HERE / "out"  # ignored by git; on disk, not tmpfs, for the 1.6 GB case
    scratch.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        for label, layers, hidden, seq in cases:
            source, nodes = _build(layers, hidden, seq, Path(tmp) / f"{layers}x{hidden}.onnx")
            weights_mb = sum(f.stat().st_size for f in Path(tmp).glob(f"{source.name}.data")) / 2**20
            for tool in args.tools:
                out = Path(tmp) / f"{tool}-{layers}x{hidden}.onnx"
                row = run_child(tool, source, out, args.timeout) | {
                    "case": label,
                    "nodes": nodes,
                    "norms": layers,
                    "weights_mb": round(weights_mb, 1),
                }
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
                for leftover in Path(tmp).glob(f"{out.name}*"):
                    leftover.unlink()
    _print_table(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "cpu_count": os.cpu_count()}, indent=2) + "\n")


def _print_table(rows: list[dict[str, object]]) -> None:
    base = {r["case"]: r for r in rows if r["tool"] == "normopt"}
    print("| case | tool | wall s | peak MB | norms fused | time vs normopt | memory vs normopt |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        b = base.get(r["case"])
        t = f"{r['seconds'] / b['seconds']:.1f}x" if r["seconds"] and b and b["seconds"] else "-"
        m = f"{r['peak_mb'] / b['peak_mb']:.1f}x" if r.get("peak_mb") and b and b.get("peak_mb") else "-"
        seconds = f"{r['seconds']:.2f}" if r["seconds"] is not None else r["status"]
        peak = f"{r['peak_mb']:.0f}" if r.get("peak_mb") else "-"
        fused = f"{r['fused']}/{r['norms']}" if r["fused"] is not None else "-"
        print(f"| {r['case']} | {r['tool']} | {seconds} | {peak} | {fused} | {t} | {m} |")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(*sys.argv[2:5])
    elif len(sys.argv) > 1 and sys.argv[1] == "--measure":
        _measure_main(*sys.argv[2:6])
    else:
        main()
