"""Decoders with a KV cache: prefill and decode-step latency, original vs fused vs ONNX Runtime's optimizer.

For each model (default: llama-small 12 x 768 exported with dynamo, gpt2-small with the legacy exporter,
both fp32 with a KV cache): export, fuse, verify, then one interleaved bench of original, fused and the
original as ONNX Runtime's transformers optimizer leaves it (its gpt2 model type; it has none for
LLaMA, so it runs with the gpt2 type there), at ORT levels disable and all; batch 1, prefill of 128
tokens and decode steps after 128 / 512 / 1024 cached tokens (1023 for gpt2-small, whose position table
ends at 1024). Prints a Markdown table with each speedup's 95% CI and writes
benchmarks/results/decode.json.

Usage: ``.venv/bin/python benchmarks/bench_decode.py [--seconds S] [--models llama-small,gpt2-small]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from normopt import bench, export, fuse, verify  # noqa: E402
from normopt.feeds.roles import Sizes  # noqa: E402
from normopt.latency.stats import METHOD  # noqa: E402
from normopt.reports.bench import workload  # noqa: E402

EXPORTERS = {"llama-small": "dynamo", "gpt2-small": "legacy"}
# GPT-2's learned position table has 1024 rows: a decode step after 1024 cached tokens would be position 1024.
MAX_PAST = {"gpt2-small": 1023}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="llama-small,gpt2-small")
    parser.add_argument("--seconds", type=float, default=8.0, help="timed seconds per workload (all rows)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--pasts", default="128,512,1024")
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument(
        "--out",
        type=Path,
        default=HERE / "out" / "decode.json",
        help="where to write (default benchmarks/out/, untracked; the committed results/ are written by passing --out)",
    )
    args = parser.parse_args()
    pasts = [int(p) for p in args.pasts.split(",")]
    results = {}
    lines = [
        "| model | opt | workload | original p50 ms | fused p50 ms | fused speedup (95% CI) | verdict "
        "| ORT-optimized speedup (95% CI) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in args.models.split(","):
        exporter = EXPORTERS.get(name, "legacy")
        with tempfile.TemporaryDirectory() as tmp:
            original = Path(tmp) / "original.onnx"
            start = time.perf_counter()
            export(name, original, exporter=exporter, with_past=True)  # type: ignore[arg-type]
            fused = fuse(original, Path(tmp) / "fused.onnx")
            parity = verify(original, fused.output, sizes=Sizes(1, 1, 16))
            print(
                f"{name}: exported ({exporter}) and fused {fused.result.fused}/{fused.result.candidates} in "
                f"{time.perf_counter() - start:.0f} s; parity {'passed' if parity.passed else 'FAILED'}",
                file=sys.stderr,
            )
            report = bench(
                [original, fused.output],
                labels=["original", "fused"],
                opt_levels=["disable", "all"],
                seconds=args.seconds,
                warmup=args.warmup,
                threads=args.threads,
                batches=[1],
                seqs=[args.seq],
                pasts=sorted({min(p, MAX_PAST.get(name, p)) for p in pasts}),
                compare_ort=True,
            )
        data = report.to_dict()
        data["fusion"] = {"fused": fused.result.fused, "candidates": fused.result.candidates}
        data["parity_passed"] = parity.passed
        results[name] = data
        rows = report.results
        for skip in report.skipped:
            print(f"{name}: skipped {skip['provider']}: {skip['reason']}", file=sys.stderr)
        for base in (r for r in rows if r.model == "original"):
            group = [r for r in rows if (r.opt_level, workload(r)) == (base.opt_level, workload(base))]
            mine = next(r for r in group if r.model == "fused")
            peer = next((r for r in group if r.model == "ort-optimized"), None)
            lines.append(
                f"| {name} | {base.opt_level} | {workload(base)} | {base.p50_ms:.2f} | {mine.p50_ms:.2f} | "
                f"{_ci(mine)} | {mine.verdict} | {_ci(peer) if peer else 'not run'} |"
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    env = next(iter(results.values()))["environment"] if results else {}
    print("\n".join(lines))
    print(
        f"\n{METHOD} Threads {args.threads}, {args.seconds:g} s of interleaved runs per workload; "
        f"onnxruntime {env.get('onnxruntime')}, CPU: {env.get('cpu')} ({env.get('cpu_count')} cores)."
    )


def _ci(row: object) -> str:
    speedup, low, high = (getattr(row, k) for k in ("speedup", "speedup_low", "speedup_high"))
    if low is None:
        return f"{speedup:.2f}x"
    return f"{speedup:.2f}x ({low:.2f}-{high:.2f})"


if __name__ == "__main__":
    main()
