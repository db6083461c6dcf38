"""Export time by depth: both torch exporters on a tiny LLaMA (hidden 32) of 4 to 64 layers.

Each export runs ``normopt export`` in its own process (wall time includes start-up and normopt's own
steps: the ORT smoke run, shape inference for the summary's candidate count), with a timeout. Prints a
Markdown table with the seconds per layer, and the ratio of the deepest to the shallowest model per
exporter (linear growth gives the ratio of the depths).

Usage: ``.venv/bin/python benchmarks/bench_export.py [--layers 4 16 32 64] [--exporters legacy dynamo]
[--family llama] [--timeout 900]``. Writes benchmarks/out/export.json (untracked;
benchmarks/results/export.json is the committed run, written with --out).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def measure(family: str, layers: int, exporter: str, timeout: float) -> dict[str, object]:
    """One export, timed in a child process."""
    from normopt.exporting import tiny

    with tempfile.TemporaryDirectory() as tmp:
        folder = tiny.write(family, Path(tmp) / "model", layers=layers)
        cmd = [str(ROOT / ".venv" / "bin" / "normopt"), "export", str(folder), "-o", str(Path(tmp) / "m.onnx")]
        cmd += ["--exporter", exporter, "--format", "json"]
        start = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"layers": layers, "exporter": exporter, "seconds": None, "status": f"timeout after {timeout:.0f} s"}
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            line = (proc.stderr.strip().splitlines() or ["?"])[-1]
            return {
                "layers": layers,
                "exporter": exporter,
                "seconds": seconds,
                "status": f"exit {proc.returncode}: {line}",
            }
        data = json.loads(proc.stdout)
        return {
            "layers": layers,
            "exporter": exporter,
            "seconds": seconds,
            "nodes": data["nodes"],
            "norm_calls": data["norm_calls"],
            "status": "ok",
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--layers", type=int, nargs="+", default=[4, 16, 32, 64])
    parser.add_argument("--exporters", nargs="+", default=["legacy", "dynamo"])
    parser.add_argument("--family", default="llama")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument(
        "--out",
        type=Path,
        default=HERE / "out" / "export.json",
        help="where to write (default benchmarks/out/, untracked; the committed results/ are written by passing --out)",
    )
    args = parser.parse_args()
    rows = []
    for exporter in args.exporters:
        for layers in args.layers:
            row = measure(args.family, layers, exporter, args.timeout)
            print(f"{exporter} {layers} layers: {row['status']} {row['seconds']}", file=sys.stderr, flush=True)
            rows.append(row)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"family": args.family, "rows": rows}, indent=2))
    print("| exporter | layers | nodes | wall s | s per layer | status |\n|---|---|---|---|---|---|")
    for row in rows:
        seconds = row["seconds"]
        per = f"{seconds / row['layers']:.2f}" if isinstance(seconds, float) and row["status"] == "ok" else "-"
        wall = f"{seconds:.1f}" if isinstance(seconds, float) else "-"
        print(f"| {row['exporter']} | {row['layers']} | {row.get('nodes', '-')} | {wall} | {per} | {row['status']} |")
    for exporter in args.exporters:
        done = [r for r in rows if r["exporter"] == exporter and r["status"] == "ok"]
        if len(done) >= 2:
            first, last = done[0], done[-1]
            ratio = last["seconds"] / first["seconds"]  # type: ignore[operator]
            depth = last["layers"] / first["layers"]  # type: ignore[operator]
            print(
                f"{exporter}: {last['layers']} vs {first['layers']} layers: "
                f"{ratio:.1f}x the time for {depth:.0f}x the depth"
            )


if __name__ == "__main__":
    main()
