"""Chain well: what normopt writes leaves the next tool at least as well off as the input did."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from normopt import fusing
from tests.conftest import GRAPHS


def _read_further(source: Path, path: Path) -> Path:
    """The graph with every output read by a Relu (the norm's output becomes an intermediate value)."""
    model = onnx.load(source)
    for output in model.graph.output:
        model.graph.node.append(onnx.helper.make_node("Relu", [output.name], [f"{output.name}_relu"]))
        output.name = f"{output.name}_relu"
    onnx.save(model, path)
    return path


@pytest.mark.parametrize(
    ("name", "target", "op"),
    [
        ("ln_opset13.onnx", "auto", "LayerNormalization"),  # ORT's own LayerNormalization: no ONNX schema at 13
        ("rms_div_sqrt.onnx", "ort", "SimplifiedLayerNormalization"),
        ("skip_layernorm_residual.onnx", "ort", "SkipLayerNormalization"),
    ],
)
def test_fused_outputs_carry_their_type_and_shape(name: str, target: str, op: str, tmp_path: Path) -> None:
    """Every fused node's output is annotated in value_info, so inference after normopt sees it."""
    source = _read_further(GRAPHS / name, tmp_path / name)
    outcome = fusing.fuse(source, tmp_path / "out.onnx", target=target)
    assert outcome.result.fused >= 1
    model = onnx.load(outcome.output)
    annotated = {v.name: v for v in model.graph.value_info}
    nodes = [n for n in model.graph.node if n.op_type == op]
    assert nodes
    for node in nodes:
        info = annotated.get(node.output[0])
        assert info is not None, (node.output[0], sorted(annotated))
        tensor = info.type.tensor_type
        assert tensor.elem_type == onnx.TensorProto.FLOAT
        assert len(tensor.shape.dim) == 3 and tensor.shape.dim[-1].dim_value == 16
