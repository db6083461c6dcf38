"""How much ``normopt bench`` adds: its p50 against a bare ``session.run`` loop on the same model.

Both are measured in one process on the same session settings (fused 12-LayerNorm chain, [8,512,768],
ORT optimizations off). Prints both p50s and their ratio. Usage: ``.venv/bin/python benchmarks/bench_overhead.py``.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from normopt import bench, fuse  # noqa: E402
from normopt.feeds import ortsession  # noqa: E402
from tests.synthetic import layernorm_chain, save  # noqa: E402


def bare_p50(path: Path, feeds: dict[str, np.ndarray], iters: int, warmup: int) -> float:
    session = ortsession.create(path, "cpu", "disable", threads=2)
    for _ in range(warmup):
        session.run(None, feeds)
    samples = []
    for _ in range(iters):
        start = time.perf_counter_ns()
        session.run(None, feeds)
        samples.append(time.perf_counter_ns() - start)
    return float(np.percentile(samples, 50)) / 1e6


def main() -> None:
    iters, warmup = 60, 10
    with tempfile.TemporaryDirectory() as tmp:
        original = save(layernorm_chain(12, (8, 512, 768), opset=17), Path(tmp) / "original.onnx")
        fused = fuse(original, Path(tmp) / "fused.onnx").output
        feeds = {"x": np.random.default_rng(0).standard_normal((8, 512, 768)).astype(np.float32)}
        results = []
        for _ in range(3):  # alternate the two harnesses so drift hits both
            bare = bare_p50(fused, feeds, iters, warmup)
            report = bench([fused], opt_levels=["disable"], iters=iters, warmup=warmup, threads=2)
            results.append({"bare_p50_ms": bare, "bench_p50_ms": report.results[0].p50_ms})
    for r in results:
        r["ratio"] = r["bench_p50_ms"] / r["bare_p50_ms"]
        print(
            f"bare loop p50 {r['bare_p50_ms']:.3f} ms   normopt bench p50 {r['bench_p50_ms']:.3f} ms   "
            f"ratio {r['ratio']:.3f}"
        )
    median = float(np.median([r["ratio"] for r in results]))
    print(f"median ratio bench/bare: {median:.3f}")
    out = HERE / "results" / "overhead.json"
    out.write_text(json.dumps({"rounds": results, "median_ratio": median}, indent=2) + "\n")


if __name__ == "__main__":
    main()
