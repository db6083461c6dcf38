"""A/A check: does a verdict survive a loaded machine? 20 comparisons of a model with its byte copy.

A CPU hog runs beside the benchmark (processes that switch between busy bursts and idle gaps at random, the
load that fooled the old round-independent bootstrap). Each comparison is ``normopt.bench([model, copy])``
(one ORT thread, 60 interleaved rounds); a verdict other than "no significant difference" on the copy is a
false one. Run without and with ``calibrate`` (the A/A noise floor). Then the smallest real effect still
detected: models made slower on purpose by adding layers to a chain of identical ones (20 → 21 layers is
about +5% work), each compared with calibration, under the same hog.

    .venv/bin/python benchmarks/bench_aa.py --comparisons 20
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the repository root: normopt and tests.synthetic

from tests.synthetic import layernorm_chain, save  # noqa: E402

SHAPE = (4, 64, 256)


def _hog(seed: int, stop: multiprocessing.synchronize.Event) -> None:
    """Busy bursts of 50-400 ms and idle gaps of 0-300 ms, until ``stop``."""
    rng = random.Random(seed)
    while not stop.is_set():
        end = time.perf_counter() + rng.uniform(0.05, 0.4)
        while time.perf_counter() < end:
            pass
        time.sleep(rng.uniform(0.0, 0.3))


def _model(folder: Path, layers: int) -> Path:
    return save(layernorm_chain(layers, SHAPE, opset=17, matmul=True), folder / f"chain{layers}.onnx")


def _verdict(a: Path, b: Path, calibrate: bool, rounds: int) -> tuple[str, float]:
    from normopt import bench

    report = bench([a, b], opt_levels=["disable"], iters=rounds, warmup=5, threads=1, calibrate=calibrate)
    row = report.results[1]
    return str(row.verdict), float(row.speedup or 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--comparisons", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--hogs", type=int, default=2, help="hog processes (the machine has 2 cores)")
    args = parser.parse_args()
    stop = multiprocessing.Event()
    hogs = [multiprocessing.Process(target=_hog, args=(i, stop), daemon=True) for i in range(args.hogs)]
    folder = Path(tempfile.mkdtemp(prefix="normopt-aa-"))
    try:
        base = _model(folder, 20)
        copy = folder / "copy.onnx"
        shutil.copyfile(base, copy)
        for hog in hogs:
            hog.start()
        print(f"{args.comparisons} A/A comparisons of a 20-layer chain {SHAPE} with its copy, {args.hogs} CPU hogs:")
        for calibrate in (False, True):
            false = []
            for _ in range(args.comparisons):
                verdict, speedup = _verdict(base, copy, calibrate, args.rounds)
                if verdict != "no significant difference":
                    false.append(f"{verdict} ({speedup:.2f}x)")
            mode = "with the A/A noise floor (calibrate)" if calibrate else "without calibration"
            print(f"  {mode}: {len(false)}/{args.comparisons} false verdicts {false or ''}")
        print("real effects (20-layer chain vs more layers, calibrated, 3 tries each):")
        for layers in (21, 22, 24, 30):
            slower = _model(folder, layers)
            found = [_verdict(base, slower, True, args.rounds) for _ in range(3)]
            called = sum(v == "slower" for v, _ in found)
            ratios = ", ".join(f"{s:.3f}x" for _, s in found)
            print(
                f"  +{layers - 20} layers (~{100 * (layers - 20) / 20:.0f}% more work): detected {called}/3 ({ratios})"
            )
    finally:
        stop.set()
        for hog in hogs:
            hog.join(timeout=5)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
