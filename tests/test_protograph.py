"""The protobuf fast path (``ProtoGraph``) fuses exactly what the onnx_ir engine fuses, node for node."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from normopt import fusing, modelio
from normopt.fusion.pipeline import fuse_model
from normopt.modelio.protograph import flat_graph_problem
from tests.conftest import GRAPHS, manifest, op_counts, run_ort

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from synthetic import layernorm_chain, save

FLAT = [e["file"] for e in manifest() if flat_graph_problem(onnx.load(GRAPHS / e["file"])) is None]
TARGETS = ("auto", "onnx", "ort")


def _attribute(attr: onnx.AttributeProto) -> Any:
    value = helper.get_attribute_value(attr)
    if isinstance(value, onnx.TensorProto):
        array = numpy_helper.to_array(value)
        return (array.dtype.str, array.shape, array.tobytes())
    return value


def _nodes(model: onnx.ModelProto) -> list[tuple[Any, ...]]:
    return [
        (n.domain or "", n.op_type, n.name, list(n.input), list(n.output), {a.name: _attribute(a) for a in n.attribute})
        for n in model.graph.node
    ]


def _both(path: Path, target: str, tmp_path: Path) -> tuple[Any, Any, onnx.ModelProto, onnx.ModelProto]:
    model = modelio.load(path)
    ir_result = fuse_model(model, target=target, skip=False, infer_shapes=False)
    flat = modelio.load_flat(path, min_nodes=0)
    assert flat is not None
    flat_result = fuse_model(flat, target=target, skip=False, infer_shapes=False)
    out_ir, out_flat = tmp_path / "ir.onnx", tmp_path / "flat.onnx"
    modelio.save(model, out_ir, external="same" if modelio.external_files(model) else "inline")
    modelio.save(flat, out_flat, external="same" if modelio.external_files(flat) else "inline")
    return (
        ir_result,
        flat_result,
        onnx.load(out_ir, load_external_data=False),
        onnx.load(out_flat, load_external_data=False),
    )


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", FLAT, ids=[f[:-5] for f in FLAT])
def test_both_engines_agree(name: str, target: str, tmp_path: Path) -> None:
    ir_result, flat_result, ir_model, flat_model = _both(GRAPHS / name, target, tmp_path)
    assert [c.to_dict() for c in flat_result.details] == [c.to_dict() for c in ir_result.details]
    assert (flat_result.nodes_before, flat_result.nodes_after) == (ir_result.nodes_before, ir_result.nodes_after)
    assert _nodes(flat_model) == _nodes(ir_model)
    assert sorted(t.name for t in flat_model.graph.initializer) == sorted(t.name for t in ir_model.graph.initializer)
    assert [o.name for o in flat_model.graph.output] == [o.name for o in ir_model.graph.output]


def test_most_reference_graphs_are_flat() -> None:
    assert len(FLAT) >= 0.8 * len(manifest()), FLAT


def test_fuse_takes_the_fast_path_for_big_flat_graphs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, count_weight_reads: list[str]
) -> None:
    source = save(layernorm_chain(4, (2, 8, 64), opset=17, matmul=True), tmp_path / "chain.onnx", external=True)
    data_before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    loads: list[str] = []
    real_load = modelio.load
    monkeypatch.setattr(modelio, "load", lambda p: loads.append(str(p)) or real_load(p))
    monkeypatch.setattr(fusing, "FLAT_PATH_MIN_NODES", 0)
    outcome = fusing.fuse(source, tmp_path / "chain.fused.onnx")
    assert loads == [], "the onnx_ir loader ran: the fast path was not taken"
    assert count_weight_reads == []
    assert outcome.result.fused == outcome.result.candidates == 4
    assert outcome.checker == "passed"
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name in data_before} == data_before
    assert op_counts(outcome.output)["LayerNormalization"] == 4
    feeds = {
        i.name: np.random.default_rng(0).standard_normal((2, 8, 64)).astype(np.float32)
        for i in onnx.load(source, load_external_data=False).graph.input
    }
    np.testing.assert_allclose(run_ort(outcome.output, feeds)[0], run_ort(source, feeds)[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("options", "why"),
    [({"target": "ort"}, "Skip pass"), ({"external": "new"}, "new data file"), ({"external": "inline"}, "inline")],
)
def test_fuse_uses_onnx_ir_where_the_fast_path_cannot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, options: dict[str, str], why: str
) -> None:
    source = save(layernorm_chain(2, (2, 8, 64), opset=17, matmul=True), tmp_path / "chain.onnx", external=True)
    loads: list[str] = []
    real_load = modelio.load
    monkeypatch.setattr(modelio, "load", lambda p: loads.append(str(p)) or real_load(p))
    monkeypatch.setattr(fusing, "FLAT_PATH_MIN_NODES", 0)
    outcome = fusing.fuse(source, tmp_path / "chain.fused.onnx", **options)  # type: ignore[arg-type]
    assert loads, why
    assert outcome.result.fused == 2
