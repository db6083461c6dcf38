"""Every fused reference graph under stress inputs, on ORT with optimizations off (the brief's stress list).

For each graph in graphs/ that normopt fuses: inputs with an offset of 100, all-zero rows, constant rows and
float16's extreme values, with every symbolic dim given its own size. The fused model must match the original,
or be at least as close to the exact value as the original is: a float64 run of the original for the
float32 modes; for the float16 extremes (where an fp16 graph's own float64 twin rounds as it does), the exact
norm the manifest describes, computed in numpy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from normopt import fusing
from tests.conftest import GRAPHS, manifest, reference
from tests.stress import MODES, assert_same_computation, feeds, session, tolerance

def _runs_on_ort_cpu(entry: dict[str, Any]) -> bool:
    """False for the bf16 graphs: ONNX Runtime's CPU provider has no bf16 kernels for their decomposed ops."""
    model = onnx.load(GRAPHS / entry["file"])
    types = {v.type.tensor_type.elem_type for v in [*model.graph.input, *model.graph.output]}
    types |= {t.data_type for t in model.graph.initializer}
    return onnx.TensorProto.BFLOAT16 not in types


FUSED = [e for e in manifest() if e["expect"]["auto"].get("fused", 0) > 0 and _runs_on_ort_cpu(e)]
SIZES = (3, 5, 6, 7, 2, 9)  # a different size for each symbolic dim name


def _named_sizes(model: onnx.ModelProto, original: Any) -> dict[str, int]:
    """A different size for each symbolic dim name — or, where the model takes only one size for a dim (a
    symbolic hidden dim beside a constant γ of 16), the sizes it runs with: 16 for every symbolic dim."""
    names: list[str] = []
    for value in model.graph.input:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param and dim.dim_param not in names:
                names.append(dim.dim_param)
    distinct = {name: SIZES[i % len(SIZES)] for i, name in enumerate(names)}
    try:
        original.run(None, feeds(original, "normal", named=distinct))
    except Exception:
        return dict.fromkeys(names, 16)
    return distinct


def _error_to_exact(exact: list[np.ndarray], got: list[np.ndarray]) -> float:
    """Largest error relative to max(1, |exact|) where the exact value is finite; inf where ``got`` is not."""
    worst = 0.0
    for want, have in zip(exact, got, strict=True):
        finite = np.isfinite(want)
        have64 = np.broadcast_to(have.astype(np.float64), want.shape)[finite]
        if not np.isfinite(have64).all():
            return float("inf")
        if have64.size:
            worst = max(worst, float(np.max(np.abs(have64 - want[finite]) / np.maximum(1.0, np.abs(want[finite])))))
    return worst


@pytest.mark.parametrize("entry", FUSED, ids=[e["file"][:-5] for e in FUSED])
def test_fused_graph_under_stress_inputs(entry: dict[str, Any], tmp_path: Path) -> None:
    source = GRAPHS / entry["file"]
    outcome = fusing.fuse(source, tmp_path / "fused.onnx", target="auto")
    assert outcome.result.fused > 0
    model = onnx.load(source)
    original, fused = session(source), session(outcome.output)
    named = _named_sizes(model, original)
    narrow = entry.get("tolerance", 0.0) >= 1e-2  # computes in fp16 between float32 inputs and outputs
    for mode in MODES:
        inputs = feeds(original, mode, seed=11, named=named)
        assert_same_computation(source, fused, original, inputs, mode, narrow=narrow)
    semantics = entry["semantics"]
    outputs = [o.name for o in model.graph.output]
    if not semantics or any(s.get("lookalike") or s["output"] not in outputs for s in semantics):
        return  # no exact norm to hold the extremes against (the modes above still ran)
    inputs = feeds(original, "fp16_extremes", seed=11, named=named)
    values: dict[str, np.ndarray] = dict(inputs)
    for s in semantics:
        values[s["output"]] = reference(model, s, values)
    exact = [values[s["output"]] for s in semantics]
    picked = [outputs.index(s["output"]) for s in semantics]
    want, got = original.run(None, inputs), fused.run(None, inputs)
    original_error = _error_to_exact(exact, [want[i] for i in picked])
    fused_error = _error_to_exact(exact, [got[i] for i in picked])
    narrow = narrow or any(o.dtype == np.float16 for o in want)
    assert fused_error <= max(2 * original_error, tolerance(want, "normal", narrow)), (fused_error, original_error)
