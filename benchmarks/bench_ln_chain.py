"""12 decomposed LayerNorms on [8,512,768] fp32: original vs normopt-fused, ORT optimizations off and all.

Prints p50 latencies and the two ratios issue 5 asks for, measured in one interleaved run, and writes
benchmarks/out/ln_chain.json (untracked; pass --out benchmarks/results/ln_chain.json to replace the committed
run). Usage: ``.venv/bin/python benchmarks/bench_ln_chain.py [--iters N]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from normopt import bench, fuse  # noqa: E402
from normopt.reports.bench import to_markdown  # noqa: E402
from tests.synthetic import layernorm_chain, save  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iters", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--out",
        type=Path,
        default=HERE / "out" / "ln_chain.json",
        help="where to write (default benchmarks/out/, untracked; the committed results/ are written by passing --out)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        original = save(layernorm_chain(12, (8, 512, 768), opset=17), Path(tmp) / "original.onnx")
        outcome = fuse(original, Path(tmp) / "fused.onnx")
        print(f"fused {outcome.result.fused}/{outcome.result.candidates} LayerNorms", file=sys.stderr)
        report = bench(
            [original, outcome.output],
            opt_levels=["disable", "all"],
            iters=args.iters,
            warmup=args.warmup,
            threads=args.threads,
            labels=["original", "fused"],
        )
    p50 = {(r.model, r.opt_level): r.p50_ms for r in report.results}
    ratios = {
        "fused_disable_vs_original_disable": p50["original", "disable"] / p50["fused", "disable"],
        "fused_disable_vs_original_all": p50["original", "all"] / p50["fused", "disable"],
        "fused_all_vs_original_all": p50["original", "all"] / p50["fused", "all"],
    }
    print(to_markdown(report))
    for name, value in ratios.items():
        print(f"{name}: {value:.2f}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report.to_dict() | {"ratios": ratios}, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
