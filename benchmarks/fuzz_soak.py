"""Fuzz soak: random norm-like graphs (tests/randomgraphs.py) through normopt and ORT for as long as asked.

Every graph is fused with ``--target auto`` and ``ort`` (and, where it has overridable initializers, with
``--freeze-initializers`` too); the output must pass normopt's postcondition, load in ONNX Runtime and match the
original on stress inputs (unknown dims at different sizes, one of them 1), or be as close to the float64 truth;
fused again with every target it must still do so. The graphs carry residual Adds (same shape, [1,S,H], unknown
dims, [B,1,H]), custom-domain look-alikes, every initializer as a graph input, QDQ neighbours and symbolic dims.
Prints the count checked, fused and failed, and the coverage of genuine norms (``Spec.genuine``) per class:
plain, symbolic dims, overridable (with and without the freeze); writes each failing spec to the output folder.

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
    coverage: dict[str, list[int]] = {}  # class → [genuine, fused of those]
    deadline = time.monotonic() + args.seconds
    args.out.mkdir(parents=True, exist_ok=True)
    while time.monotonic() < deadline:
        spec = draw(rng)
        freezes = (False, True) if spec.as_inputs or spec.eps_overridable else (False,)
        for target in ("auto", "ort"):
            for freeze in freezes:
                with tempfile.TemporaryDirectory() as folder:
                    try:
                        done = check(spec, Path(folder), target, freeze=freeze) > 0
                    except Exception:
                        failed += 1
                        record = {"spec": asdict(spec), "target": target, "freeze": freeze}
                        record["error"] = traceback.format_exc()
                        (args.out / f"failure_{failed}.json").write_text(json.dumps(record, indent=1))
                        done = False
                fused += done
                checked += 1
                if spec.genuine(freeze) and not spec.in_if:
                    name = spec.category() + (" (frozen)" if freeze else "")
                    counts = coverage.setdefault(name, [0, 0])
                    counts[0] += 1
                    counts[1] += done
    print(
        f"{checked} graphs checked ({fused} with a fused norm), {failed} failed; seed {args.seed}, {args.seconds:g} s"
    )
    for name, (genuine, done) in sorted(coverage.items()):
        print(f"coverage of genuine norms, {name}: {done}/{genuine} = {100 * done / max(genuine, 1):.1f}%")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
