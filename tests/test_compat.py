"""The behaviour normopt relies on from private APIs of other libraries (``normopt.compat``).

An upgrade of onnx_ir, torch or transformers that changes one of these fails here first.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import pytest

from normopt.compat import onnx_ir_api, torch_api, transformers_api


def _model_with_big_weight() -> ir.Model:
    x = ir.Value(name="x", type=ir.TensorType(ir.DataType.FLOAT), shape=ir.Shape([4, 1024]))
    weight = ir.Value(name="w", const_value=ir.tensor(np.ones((1024, 8), np.float32), name="w"))
    y = ir.Value(name="y")
    node = ir.Node("", "MatMul", [x, weight], outputs=[y])
    graph = ir.Graph([x], [y], nodes=[node], initializers=[weight], opset_imports={"": 18})
    return ir.Model(graph, ir_version=10)


def test_call_onnx_api_gives_weights_as_typed_inputs_and_leaves_the_model_unchanged() -> None:
    model = _model_with_big_weight()
    seen: dict[str, object] = {}

    def look(proto: onnx.ModelProto) -> str:
        seen["initializers"] = [t.name for t in proto.graph.initializer]
        seen["inputs"] = [i.name for i in proto.graph.input]
        inferred = onnx.shape_inference.infer_shapes(proto)
        return str(inferred.graph.output[0].type.tensor_type.shape.dim[1].dim_value)

    assert onnx_ir_api.call_onnx_api(look, model) == "8"  # inference still sees the weight's shape
    assert seen["initializers"] == [] and "w" in seen["inputs"]  # ... without its data
    assert list(model.graph.initializers) == ["w"] and [v.name for v in model.graph.inputs] == ["x"]
    assert model.graph.initializers["w"].const_value is not None


def test_tensor_proto_of_returns_the_wrapped_proto() -> None:
    proto = onnx.numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(2, 3), "t")
    tensor = ir.serde.TensorProtoTensor(proto)
    assert onnx_ir_api.tensor_proto_of(tensor) is proto


def test_torch_exporter_opsets_are_ordered_and_cover_what_normopt_asks_for() -> None:
    pytest.importorskip("torch")
    lowest, legacy_max, dynamo_max = torch_api.exporter_opsets()
    assert lowest <= 7 and 17 <= legacy_max <= dynamo_max  # LayerNormalization is opset 17
    assert dynamo_max >= 18  # the dynamo exporter is asked for 18 and up


def test_eager_kernels_reach_the_model_built_from_a_config() -> None:
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("torch")
    config = transformers.GPT2Config(n_layer=1, n_head=2, n_embd=8, vocab_size=16, n_positions=8)
    transformers_api.use_eager_kernels(config)
    model = transformers.GPT2Model(config)
    assert model.config._attn_implementation == "eager"
