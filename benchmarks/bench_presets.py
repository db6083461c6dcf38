"""Original vs fused for the built-in presets at realistic size (exported here, random weights).

For each preset: export (legacy exporter for gpt2-small, dynamo for llama-small: the exporter spellings
users hit), fuse, then one interleaved benchmark of original and fused at ORT optimizations off and all.
Writes benchmarks/out/presets.json (untracked; benchmarks/results/presets.json is the committed run, written
with --out) and prints a Markdown table per preset.
Usage: ``.venv/bin/python benchmarks/bench_presets.py [--iters N] [--presets gpt2-small llama-small]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from normopt import bench, export, fuse  # noqa: E402
from normopt.reports.bench import to_markdown  # noqa: E402

EXPORTER = {"gpt2-small": "legacy", "llama-small": "dynamo", "gpt2-tiny": "legacy", "llama-tiny": "dynamo"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--presets", nargs="+", default=["gpt2-small", "llama-small"])
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--out",
        type=Path,
        default=HERE / "out" / "presets.json",
        help="where to write (default benchmarks/out/, untracked; the committed results/ are written by passing --out)",
    )
    args = parser.parse_args()
    results = {}
    for name in args.presets:
        with tempfile.TemporaryDirectory() as tmp:
            exported = export(name, Path(tmp) / "original.onnx", exporter=EXPORTER.get(name, "legacy"))
            fused = fuse(exported.output, Path(tmp) / "fused.onnx")
            shapes = {i["name"]: i["shape"] for i in exported.to_dict()["inputs"]}
            report = bench(
                [exported.output, fused.output],
                labels=["original", "fused"],
                iters=args.iters,
                warmup=args.warmup,
                threads=args.threads,
                shapes=shapes,
                opt_levels=["disable", "all"],
            )
        print(f"## {name} ({exported.exporter} exporter, fused {fused.result.fused}/{fused.result.candidates})\n")
        print(to_markdown(report))
        results[name] = {"export": exported.to_dict(), "fusion": fused.result.to_dict(), "bench": report.to_dict()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
