"""Every node test model onnx's generator writes, through ``normopt.fuse`` with ``auto`` and ``ort``.

Prints how many were fused (and which), and any error or postcondition violation (there should be none).
Run: ``.venv/bin/python benchmarks/onnx_node_tests.py``.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

import onnx

FAMILIES = ("layer_normalization", "group_normalization", "rms_normalization")


def main() -> None:
    from onnx.backend.test.case.node import collect_testcases

    from normopt import fusing

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = collect_testcases(None)
    started = time.perf_counter()
    errors: list[str] = []
    fused: Counter[str] = Counter()
    with tempfile.TemporaryDirectory() as folder:
        for number, case in enumerate(cases, 1):
            source = Path(folder) / "model.onnx"
            onnx.save(case.model, source)
            for target in ("auto", "ort"):
                try:
                    outcome = fusing.fuse(source, Path(folder) / f"fused_{target}.onnx", target=target)  # type: ignore[arg-type]
                except Exception as error:  # every failure is reported, none stops the sweep
                    errors.append(f"{case.name} ({target}): {type(error).__name__}: {str(error)[:200]}")
                    continue
                if outcome.result.fused:
                    family = next((f for f in FAMILIES if f in case.name), case.name)
                    fused[f"{target}: {family}"] += 1
            if number % 200 == 0:
                print(f"{number}/{len(cases)} models, {time.perf_counter() - started:.0f} s", flush=True)
    print(f"{len(cases)} node test models, {2 * len(cases)} fuses in {time.perf_counter() - started:.0f} s")
    print(f"errors: {len(errors)}")
    for line in errors:
        print("  " + line)
    for key, count in sorted(fused.items()):
        print(f"fused: {key}: {count} models")


if __name__ == "__main__":
    main()
