"""``--target onnx`` promises standard ops: the fused model runs on a second ONNX runtime, OpenVINO's CPU.

Every reference graph normopt fuses with ``--target onnx`` and two presets: the fused model loads in OpenVINO
and matches the original run by OpenVINO itself (same inputs, float32 inference precision). Where OpenVINO
lacks an op at the model's opset, the original fails there too, and the test says which op.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from normopt import fusing
from tests.conftest import GRAPHS, manifest
from tests.test_graphs import _feeds

ov = pytest.importorskip("openvino")

FUSED = [e for e in manifest() if e["expect"].get("onnx", {}).get("fused", 0) > 0]


def _run(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    core = ov.Core()
    core.set_property("CPU", {"INFERENCE_PRECISION_HINT": "f32"})  # no silent bf16 on CPUs that have it
    compiled = core.compile_model(core.read_model(str(path)), "CPU")
    names = [i.get_any_name() for i in compiled.inputs]
    result = compiled([feeds[n] for n in names])
    return [np.asarray(result[o]) for o in compiled.outputs]


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    tolerance = {np.dtype(np.float16): 2e-2}.get(a.dtype, 1e-4)
    return bool(np.allclose(a.astype(np.float64), b.astype(np.float64), atol=tolerance, rtol=tolerance, equal_nan=True))


def _unsupported(path: Path, feeds: dict[str, np.ndarray]) -> str | None:
    try:
        _run(path, feeds)
    except Exception as error:
        lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
        return " ".join(lines)[-300:]  # OpenVINO's first line is a source location; the reason comes last
    return None


@pytest.mark.parametrize("entry", FUSED, ids=[e["file"][:-5] for e in FUSED])
def test_fused_reference_graph_runs_and_matches_on_openvino(entry: dict[str, Any], tmp_path: Path) -> None:
    source = GRAPHS / entry["file"]
    model = onnx.load(source)
    if any(i.type.tensor_type.elem_type == onnx.TensorProto.BFLOAT16 for i in model.graph.input):
        pytest.skip("bfloat16 inputs: numpy cannot feed them")
    fused = fusing.fuse(source, tmp_path / "fused.onnx", target="onnx").output
    feeds = _feeds(model)
    original_problem = _unsupported(source, feeds)
    if original_problem is not None:  # nothing to compare against on this runtime (the fused one may run)
        runs = "the fused model runs" if _unsupported(fused, feeds) is None else "nor the fused model"
        pytest.skip(f"OpenVINO cannot run the original ({runs}): {original_problem}")
    problem = _unsupported(fused, feeds)
    assert problem is None, f"OpenVINO runs the original but not the fused model: {problem}"
    for want, got in zip(_run(source, feeds), _run(fused, feeds), strict=True):
        assert want.shape == got.shape and _close(want, got)


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["gpt2-tiny", "llama-tiny"])
def test_fused_presets_run_and_match_on_openvino(preset: str, tmp_path: Path) -> None:
    from normopt import export

    source = tmp_path / "m.onnx"
    export(preset, source, opset=18)
    fused = fusing.fuse(source, tmp_path / "fused.onnx", target="onnx").output
    ops = {n.op_type for n in onnx.load(fused).graph.node}
    assert ops & {"LayerNormalization", "RMSNormalization"} or preset == "llama-tiny"
    feeds = {"input_ids": np.random.default_rng(0).integers(0, 256, (2, 16)).astype(np.int64)}
    problem = _unsupported(fused, feeds)
    if problem is not None and _unsupported(source, feeds) is None:
        pytest.fail(f"OpenVINO runs the original {preset} but not the fused one: {problem}")
    for want, got in zip(_run(source, feeds), _run(fused, feeds), strict=True):
        assert _close(want, got)
