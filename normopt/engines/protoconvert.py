"""Between protobuf and onnx_ir for the flat-graph engine: tensors, attributes, new nodes, interface ports.

The protobuf engine (``protograph``) reads types, attributes and constants through onnx_ir's own
deserializers so that the matcher sees exactly what it would see on an onnx_ir model; these are the
conversions, with the two shortcuts that keep a big graph cheap (small inline tensors read once, shapes
built once).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import onnx
import onnx_ir as ir

from normopt.compat.onnx_ir_api import tensor_proto_of
from normopt.engines.postcondition import GraphFacts, ModelFacts, NodeFacts, Port
from normopt.engines.views import NewNode

_SMALL = 16  # elements: constants the matcher reads (ε, exponents, axes)
_STRING = onnx.TensorProto.STRING


class _InlineTensor(ir.serde.TensorProtoTensor):
    """onnx_ir's tensor over a TensorProto, with its shape built once (onnx_ir rebuilds it per access)."""

    __slots__ = ("_shape",)

    def __init__(self, proto: onnx.TensorProto) -> None:
        super().__init__(proto)
        self._shape: ir.Shape | None = None

    @property
    def shape(self) -> ir.Shape:  # type: ignore[override]  # read-only, as in TensorProtoTensor
        if self._shape is None:
            self._shape = ir.Shape(tensor_proto_of(self).dims, frozen=True)
        return self._shape


def port_of(info: onnx.ValueInfoProto) -> Port:
    """A graph input/output as the postcondition's interface check compares it (as ``postcondition.port``)."""
    tensor = info.type.tensor_type
    dtype = tensor.elem_type or None if info.type.HasField("tensor_type") else None
    if not info.type.HasField("tensor_type") or not tensor.HasField("shape"):
        return info.name, dtype, None
    dims = tuple(
        d.dim_value if d.HasField("dim_value") else (d.dim_param if d.HasField("dim_param") else None)
        for d in tensor.shape.dim
    )
    return info.name, dtype, dims


def tensor(proto: onnx.TensorProto, base_dir: str) -> ir.TensorProtocol:
    """onnx_ir's tensor for an initializer or a Constant; small inline ones are read once."""
    if proto.data_location == onnx.TensorProto.EXTERNAL or proto.data_type == _STRING:
        return ir.serde.deserialize_tensor(proto, base_dir)  # external data stays on disk
    tensor = _InlineTensor(proto)
    if math.prod(proto.dims) <= _SMALL:
        return ir.Tensor(tensor.numpy(), dtype=tensor.dtype, name=tensor.name)
    return tensor


def node_proto(node: NewNode, writes: str | None) -> onnx.NodeProto:
    """A NodeProto for a new node: names only (types live in the graph's value_info); ``writes`` names output 0."""
    names = [out.name for out in node.outputs]
    if writes is not None:
        names[0] = writes
    proto = onnx.NodeProto(
        op_type=node.op_type,
        domain=node.domain,
        name=node.name,
        input=["" if v is None else v.name or "" for v in node.inputs],
        output=names,
    )
    proto.attribute.extend(_attribute_proto(a) for a in node.attributes)
    return proto


def _attribute_proto(attr: ir.Attr) -> onnx.AttributeProto:
    if attr.type == ir.AttributeType.INT:
        return onnx.AttributeProto(name=attr.name, type=onnx.AttributeProto.INT, i=attr.as_int())
    if attr.type == ir.AttributeType.FLOAT:
        return onnx.AttributeProto(name=attr.name, type=onnx.AttributeProto.FLOAT, f=attr.as_float())
    return ir.serde.serialize_attribute(attr)


def attribute(proto: onnx.AttributeProto) -> ir.Attr:
    """onnx_ir's attribute; a small inline tensor (a Constant's ε) is read once, like small initializers."""
    if proto.type == onnx.AttributeProto.INT:
        return ir.AttrInt64(proto.name, proto.i)
    if proto.type == onnx.AttributeProto.INTS:
        return ir.AttrInt64s(proto.name, list(proto.ints))
    if proto.type == onnx.AttributeProto.TENSOR and proto.t.data_location != onnx.TensorProto.EXTERNAL:
        small = tensor(proto.t, "")
        if isinstance(small, ir.Tensor):
            return ir.AttrTensor(proto.name, small, doc_string=proto.doc_string or None)
    return ir.serde.deserialize_attribute(proto)


def facts_of(
    model: onnx.ModelProto, nodes: list[onnx.NodeProto], initializers: list[str], opsets: dict[str, int]
) -> ModelFacts:
    """A flat model's facts for the postcondition: ``nodes`` (live, in order) over its interface, ``opsets``."""
    graph = model.graph
    node_facts = [NodeFacts(p.name, p.domain, p.op_type, p.input, p.output, i) for i, p in enumerate(nodes)]
    inputs, outputs = [i.name for i in graph.input], [o.name for o in graph.output]
    main = GraphFacts("main graph", inputs, initializers, node_facts, outputs)
    interface = (tuple(port_of(i) for i in graph.input), tuple(port_of(o) for o in graph.output))
    return ModelFacts(main, opsets, [], interface)


def external_files(initializers: Iterable[onnx.TensorProto], base_dir: str) -> set[Path]:
    """Absolute paths of the data files external ``initializers`` point to."""
    locations = {
        entry.value
        for tensor in initializers
        if tensor.data_location == onnx.TensorProto.EXTERNAL
        for entry in tensor.external_data
        if entry.key == "location"
    }
    return {Path(base_dir) / location for location in locations}


def write_back(
    model: onnx.ModelProto,
    nodes: list[onnx.NodeProto],
    removed_inputs: set[str],
    removed_outputs: set[str],
    initializers: set[str],
) -> list[str]:
    """Put ``nodes`` (live, in order) into ``model``'s graph; return the initializers dropped.

    An initializer only removed nodes read (and not a graph output) is dropped, and so is the
    ``value_info`` of a value only removed nodes wrote.
    """
    graph = model.graph
    graph.ClearField("node")
    graph.node.extend(nodes)
    read = {name for proto in nodes for name in proto.input}
    outputs = {o.name for o in graph.output}
    unused = [name for name in removed_inputs if name in initializers and name not in read and name not in outputs]
    if unused:
        drop = set(unused)
        kept = [t for t in graph.initializer if t.name not in drop]
        graph.ClearField("initializer")
        graph.initializer.extend(kept)
    if removed_outputs:
        stale = removed_outputs - {name for proto in nodes for name in proto.output}
        infos = [v for v in graph.value_info if v.name not in stale]
        graph.ClearField("value_info")
        graph.value_info.extend(infos)
    return unused
