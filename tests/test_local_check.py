"""verify tells noise from harm: each fused node on the original's activations, and the original's sensitivity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h

from tests.helpers import cli


def _amplifier(path: Path, gain: float) -> Path:
    """A decomposed LayerNorm whose output goes through sin(gain · y): a model that amplifies any tiny change."""
    rng = np.random.default_rng(0)
    hidden = 64
    inits = [
        onnx.numpy_helper.from_array(np.array([-1], np.int64), "axes"),
        onnx.numpy_helper.from_array(np.array(2.0, np.float32), "two"),
        onnx.numpy_helper.from_array(np.array(1e-5, np.float32), "eps"),
        onnx.numpy_helper.from_array(rng.uniform(0.5, 1.5, hidden).astype(np.float32), "gamma"),
        onnx.numpy_helper.from_array(rng.uniform(-0.5, 0.5, hidden).astype(np.float32), "beta"),
        onnx.numpy_helper.from_array(np.array(gain, np.float32), "gain"),
    ]
    nodes = [
        h.make_node("ReduceMean", ["x", "axes"], ["mean"], keepdims=1),
        h.make_node("Sub", ["x", "mean"], ["d"]),
        h.make_node("Pow", ["d", "two"], ["sq"]),
        h.make_node("ReduceMean", ["sq", "axes"], ["var"], keepdims=1),
        h.make_node("Add", ["var", "eps"], ["ve"]),
        h.make_node("Sqrt", ["ve"], ["std"]),
        h.make_node("Div", ["d", "std"], ["n"]),
        h.make_node("Mul", ["n", "gamma"], ["scaled"]),
        h.make_node("Add", ["scaled", "beta"], ["ln"]),
        h.make_node("Mul", ["ln", "gain"], ["steep"]),
        h.make_node("Sin", ["steep"], ["y"]),
    ]
    graph = h.make_graph(
        nodes,
        "amplifier",
        [h.make_tensor_value_info("x", T.FLOAT, [2, 8, hidden])],
        [h.make_tensor_value_info("y", T.FLOAT, [2, 8, hidden])],
        inits,
    )
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 18)], ir_version=9)
    onnx.save(model, path)
    return path


def test_an_amplifying_model_is_told_apart_from_a_wrong_fusion(tmp_path: Path) -> None:
    source = _amplifier(tmp_path / "amp.onnx", gain=3e4)
    fused = tmp_path / "amp.fused.onnx"
    assert cli("fuse", source, "-o", fused).code == 0
    end_to_end = cli("verify", source, fused, "--format", "json")
    assert end_to_end.code == 1, end_to_end.stderr  # sin(3e4 · y) turns a 1e-7 difference into ~1e-3
    local = end_to_end.json()["local"]
    assert [n["op_type"] for n in local["nodes"]] == ["LayerNormalization"] and local["passed"]
    assert local["worst_relative"] < 1e-5  # the fused node itself is exact to float32 rounding
    assert local["sensitivity"] is not None and local["sensitivity"] > 10 * local["worst_relative"]
    assert "within the model's own sensitivity" in local["conclusion"]
    judged = cli("verify", source, fused, "--local")
    assert judged.code == 0, judged.stdout + judged.stderr  # --local: each fused node decides
    assert "parity passed (each fused node on its own: --local)" in judged.stderr
    assert "conclusion: the 1 fused nodes are exact to" in judged.stdout


@pytest.mark.parametrize("local", [False, True])
def test_a_wrong_fusion_is_named_with_or_without_local(tmp_path: Path, local: bool) -> None:
    source = _amplifier(tmp_path / "amp.onnx", gain=1.0)  # no amplification: any difference is the node's
    fused = tmp_path / "amp.fused.onnx"
    assert cli("fuse", source, "-o", fused).code == 0
    tampered = onnx.load(fused)
    (node,) = [n for n in tampered.graph.node if n.op_type == "LayerNormalization"]
    for attribute in node.attribute:
        if attribute.name == "epsilon":
            attribute.f = 0.5  # a different norm: the fusion computes something else
    onnx.save(tampered, tmp_path / "tampered.onnx")
    result = cli("verify", source, tmp_path / "tampered.onnx", *(["--local"] if local else []), "--format", "json")
    assert result.code == 1
    doc = result.json()
    assert doc["decided_by"] == ("fused nodes" if local else "end-to-end")
    assert not doc["local"]["passed"] and not doc["local"]["nodes"][0]["passed"]
    assert doc["local"]["conclusion"].startswith(f"fused node {node.name} (LayerNormalization) changes its output by")
