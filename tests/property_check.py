"""One random graph through normopt and ORT: fused output loads, runs, and computes what the original did.

The output is fused again with every target (a model already fused by normopt): it still loads and
matches, and the same target finds nothing more to fuse. Unknown dims are fed different sizes (one of
them 1, which the original broadcasts), and a symbolic normalized dim its size and 1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from normopt import fusing
from tests.randomgraphs import Spec, build
from tests.stress import MODES, assert_same_computation, feeds, session

TARGETS = ("auto", "onnx", "ort")


def check(spec: Spec, folder: Path, target: str, freeze: bool = False) -> int:
    """Fuse the graph ``spec`` describes with ``target``; assert parity on every stress mode; return fused count."""
    source = folder / "random.onnx"
    model = build(spec)
    onnx.save(model, source)
    outcome = fusing.fuse(source, folder / f"fused_{target}.onnx", target=target, freeze_initializers=freeze)
    original = session(source)
    defaults = {t.name for t in model.graph.initializer}
    _compare(spec, source, original, session(outcome.output), defaults, freeze)
    for again in TARGETS:
        second = fusing.fuse(outcome.output, folder / f"again_{again}.onnx", target=again)
        if again == target:
            assert second.result.fused == 0, second.result.to_dict()
        _compare(spec, source, original, session(second.output), defaults, freeze)
    return outcome.result.fused


def _compare(
    spec: Spec,
    source: Path,
    original: ort.InferenceSession,
    fused: ort.InferenceSession,
    defaults: set[str],
    freeze: bool,
) -> None:
    fixed = {"cond": np.array(True)} if spec.in_if else {}
    for mode in (*MODES, "fp16_extremes"):
        for sizes in _size_sets(spec, freeze):
            inputs = feeds(original, mode, seed=1, dim=3, fixed=fixed, named=sizes.get("named"))
            for name, dims in sizes.items():
                if name != "named" and name in inputs:
                    inputs[name] = np.resize(inputs[name], dims).astype(inputs[name].dtype)
            if spec.eps_overridable and not (spec.as_inputs or freeze):
                inputs["eps"] = np.full(spec.eps_shape, 0.5, np.float16 if spec.sandwich else np.float32)  # overridden
            elif spec.as_inputs or freeze:  # the defaults: a frozen output no longer takes them
                inputs = {k: v for k, v in inputs.items() if k not in defaults}
            assert_same_computation(source, fused, original, inputs, mode, narrow=spec.sandwich)


def _size_sets(spec: Spec, freeze: bool) -> list[dict]:
    """Input sizes to run: the defaults, and where dims are unknown or symbolic the sizes that tell them apart."""
    hidden = {"named": {"hidden": 8}} if spec.symbolic_hidden else {}
    sets: list[dict] = [hidden]
    if spec.symbolic_hidden:
        sets.append({"named": {"hidden": 1}})
    if spec.residual == "unknown":
        width = 8
        sets += [{"x": [2, 3, width], "r": [1, 3, width]}, {"x": [1, 5, width], "r": [2, 5, width]}]
    return sets
