"""Both fusion engines (onnx_ir, and the protobuf fast path) on one model: they must agree exactly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx
from onnx import helper, numpy_helper

from normopt import modelio
from normopt.engines import protograph
from normopt.fusion.pipeline import fuse_model


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
    ir_result = fuse_model(model, target=target, skip=False)
    flat = protograph.load_flat(path, min_nodes=0)
    assert flat is not None
    flat_result = fuse_model(flat, target=target, skip=False)
    folder = path.parent if modelio.external_files(flat) else tmp_path  # "same" layout: beside the weights
    folder.mkdir(parents=True, exist_ok=True)
    out_ir, out_flat = folder / f"{path.stem}.ir.onnx", folder / f"{path.stem}.flat.onnx"
    modelio.save(model, out_ir, external="same" if modelio.external_files(model) else "inline")
    modelio.save(flat, out_flat, external="same" if modelio.external_files(flat) else "inline")
    return (
        ir_result,
        flat_result,
        onnx.load(out_ir, load_external_data=False),
        onnx.load(out_flat, load_external_data=False),
    )


def assert_engines_agree(path: Path, target: str, tmp_path: Path) -> int:
    """Fuse ``path`` with both engines; assert identical records, nodes, initializers; return fused count."""
    ir_result, flat_result, ir_model, flat_model = _both(path, target, tmp_path)
    assert [c.to_dict() for c in flat_result.details] == [c.to_dict() for c in ir_result.details]
    assert (flat_result.nodes_before, flat_result.nodes_after) == (ir_result.nodes_before, ir_result.nodes_after)
    assert _nodes(flat_model) == _nodes(ir_model)
    assert sorted(t.name for t in flat_model.graph.initializer) == sorted(t.name for t in ir_model.graph.initializer)
    assert [o.name for o in flat_model.graph.output] == [o.name for o in ir_model.graph.output]
    return flat_result.fused
