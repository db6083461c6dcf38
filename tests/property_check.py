"""One random graph through normopt and ORT: fused output loads, runs, and computes what the original did."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from normopt import fusing
from tests.randomgraphs import Spec, build
from tests.stress import MODES, assert_same_computation, feeds, session


def check(spec: Spec, folder: Path, target: str) -> int:
    """Fuse the graph ``spec`` describes with ``target``; assert parity on every stress mode; return fused count."""
    source = folder / "random.onnx"
    onnx.save(build(spec), source)
    outcome = fusing.fuse(source, folder / f"fused_{target}.onnx", target=target)
    original, fused = session(source), session(outcome.output)
    fixed = {"cond": np.array(True)} if spec.in_if else {}
    for mode in MODES:
        inputs = feeds(original, mode, seed=1, dim=3, fixed=fixed)
        if spec.eps_overridable:
            inputs["eps"] = np.full(spec.eps_shape, 0.5, np.float16 if spec.sandwich else np.float32)  # overridden
        assert_same_computation(source, fused, original, inputs, mode, narrow=spec.sandwich)
    return outcome.result.fused
