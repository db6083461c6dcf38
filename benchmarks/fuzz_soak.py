"""Fuzz soak: random norm-like graphs (tests/randomgraphs.py) through normopt and ORT for as long as asked.

Every graph is fused with ``--target auto`` and ``ort``; the output must load in ONNX Runtime and match the
original on stress inputs (or be as close to the float64 truth). Prints the count checked, fused and failed,
and writes each failing spec to the output folder.

    .venv/bin/python benchmarks/fuzz_soak.py --seconds 600 --seed 1
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from dataclasses import asdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.property_check import check  # noqa: E402
from tests.randomgraphs import draw  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to run")
    parser.add_argument("--seed", type=int, default=0, help="RNG seed for the graph choices")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "fuzz", help="failing specs go here")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    checked = fused = failed = 0
    deadline = time.monotonic() + args.seconds
    args.out.mkdir(parents=True, exist_ok=True)
    while time.monotonic() < deadline:
        spec = draw(rng)
        for target in ("auto", "ort"):
            with tempfile.TemporaryDirectory() as folder:
                try:
                    fused += check(spec, Path(folder), target) > 0
                except Exception:
                    failed += 1
                    record = {"spec": asdict(spec), "target": target, "error": traceback.format_exc()}
                    (args.out / f"failure_{failed}.json").write_text(json.dumps(record, indent=1))
            checked += 1
    print(
        f"{checked} graphs checked ({fused} with a fused norm), {failed} failed; seed {args.seed}, {args.seconds:g} s"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
