"""Shape and type inference on the side: what the matcher may prove with, never written out.

Both fusion engines follow one policy: ONNX's C++ shape inference runs on the model (weights are not
read) before matching, whatever the graph's size, and its results are merged into the values by one rule
(``merge``: a declared type or dim is kept, inference only fills what is unknown). Nothing inferred
reaches the output: the onnx_ir engine restores every value's declared type and shape afterwards
(``Annotations.restore``), and the protobuf engine never writes the inferred ``value_info`` at all.

Inferred results are mapped back graph by graph, node by node (a subgraph's values only from that
subgraph's own ``value_info``): merged decoders reuse value names across If branches, and a mapping by
name alone gives one branch's shapes to the other.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import onnx
import onnx_ir as ir

from normopt.compat.onnx_ir_api import call_onnx_api

logger = logging.getLogger(__name__)

_Annotation = tuple[ir.TypeProtocol | None, ir.Shape | None]


def merge(declared: _Annotation, inferred: _Annotation) -> _Annotation:
    """The type and shape the matcher sees: declared ones first, unknown parts filled by inference."""
    kind = declared[0] if declared[0] is not None else inferred[0]
    shape, found = declared[1], inferred[1]
    if shape is None:
        return kind, found
    if found is None or len(found) != len(shape) or all(_known(d) for d in shape):
        return kind, shape
    return kind, ir.Shape([d if _known(d) else f for d, f in zip(shape, found, strict=True)])


def _known(dim: object) -> bool:
    return isinstance(dim, int) or (isinstance(dim, ir.SymbolicDim) and dim.value is not None)


def infer_proto(model: onnx.ModelProto) -> onnx.ModelProto | None:
    """ONNX's shape inference on ``model`` (not modified), or None when it fails on this model."""
    try:
        return onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False, data_prop=True)
    except Exception as error:  # inference is a help, never a requirement
        logger.info("shape inference failed (%s): fusing with the declared types only", error)
        return None


def infer_flat(model: onnx.ModelProto) -> dict[str, onnx.ValueInfoProto]:
    """Inferred ``value_info`` of a flat model's main graph by name; ``model`` is not changed.

    Inline initializers over 1 KB are given to inference as typed inputs, so no weight is copied.
    """
    skeleton = onnx.ModelProto()
    graph = model.graph
    skeleton.ir_version = model.ir_version
    skeleton.opset_import.extend(model.opset_import)
    target = skeleton.graph
    target.node.extend(graph.node)
    target.input.extend(graph.input)
    target.output.extend(graph.output)
    target.value_info.extend(graph.value_info)
    declared = {i.name for i in graph.input}
    for tensor in graph.initializer:
        if tensor.data_location != onnx.TensorProto.EXTERNAL and math.prod(tensor.dims) * 8 > 1024:
            if tensor.name not in declared:
                target.input.append(onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type, tensor.dims))
        else:
            target.initializer.append(tensor)
    inferred = infer_proto(skeleton)
    return {} if inferred is None else {v.name: v for v in inferred.graph.value_info}


@dataclass
class Annotations:
    """Declared types and shapes of every value of an onnx_ir model, to put back after matching."""

    originals: dict[int, tuple[ir.Value, ir.TypeProtocol | None, ir.Shape | None]] = field(default_factory=dict)
    derived: list[tuple[ir.Value, ir.Value, ir.TypeProtocol | None, ir.Shape | None]] = field(default_factory=list)

    def derive(self, new: ir.Value, old: ir.Value) -> None:
        """``new`` replaces ``old``: on restore it gets ``old``'s declared type and shape.

        Where ``old`` declared none, it gets the type and shape known for it now (inferred): the fused
        node's output is annotated even when its op has no ONNX schema (ORT's ops, LayerNormalization
        below opset 17), so shape inference and folding after normopt still see it.
        """
        self.derived.append((new, old, old.type, old.shape))

    def restore(self) -> None:
        """Every value back to its declared type and shape; replacements to their predecessor's."""
        for value, kind, shape in self.originals.values():
            value.type, value.shape = kind, shape
        declared = {key: (kind, shape) for key, (_, kind, shape) in self.originals.items()}
        for new, old, known_type, known_shape in self.derived:  # in order: a replacement of a replacement chains
            found = declared.get(id(old))
            if found is None:
                continue
            if found == (None, None) and not new.is_graph_output():
                found = (known_type, known_shape)
            new.type, new.shape = found
            declared[id(new)] = found


def _values(graph: ir.Graph | ir.Function) -> list[ir.Value]:
    values = [*graph.inputs, *graph.outputs]
    if isinstance(graph, ir.Graph):
        values += list(graph.initializers.values())
    for node in graph:
        values += node.outputs
    return values


def infer_model(model: ir.Model) -> Annotations:
    """Fill unknown types and shapes of ``model``'s values from ONNX's inference; return how to undo it."""
    annotations = Annotations()
    graphs: list[ir.Graph | ir.Function] = [*model.graphs(), *model.functions.values()]
    for graph in graphs:
        for value in _values(graph):
            annotations.originals.setdefault(id(value), (value, value.type, value.shape))
    try:
        inferred = call_onnx_api(infer_proto, model)  # weights kept out of the proto given to ONNX
    except Exception as error:
        logger.info("shape inference failed (%s): fusing with the declared types only", error)
        inferred = None
    if inferred is not None:
        _apply(model.graph, inferred.graph)
    return annotations


def _apply(graph: ir.Graph, proto: onnx.GraphProto) -> None:
    """Merge ``proto``'s inferred value_info into ``graph``'s node outputs; recurse into subgraphs."""
    if len(graph) != len(proto.node):
        return  # not the graph inference saw: take nothing from it
    infos = {info.name: info for info in proto.value_info}
    infos.update((info.name, info) for info in proto.output)
    for node, node_proto in zip(graph, proto.node, strict=True):
        if node.op_type != node_proto.op_type:
            return
        for value in node.outputs:
            info = infos.get(value.name or "")
            if info is not None:
                value.type, value.shape = merge((value.type, value.shape), read_info(info))
        subgraphs = {a.name: a for a in node_proto.attribute}
        for name, attr in node.attributes.items():
            sub = subgraphs.get(name)
            if sub is None:
                continue
            if attr.type == ir.AttributeType.GRAPH:
                _apply(attr.as_graph(), sub.g)
            elif attr.type == ir.AttributeType.GRAPHS:
                for inner, inner_proto in zip(attr.as_graphs(), sub.graphs, strict=False):
                    _apply(inner, inner_proto)


def read_info(proto: onnx.ValueInfoProto) -> _Annotation:
    """(type, shape) of a ValueInfoProto: tensors read directly, anything else through onnx_ir."""
    kind = proto.type.WhichOneof("value")
    if kind != "tensor_type":
        value = ir.serde.deserialize_value_info_proto(proto, None)
        return value.type, value.shape
    tensor_type = proto.type.tensor_type
    shape = None
    if tensor_type.HasField("shape"):
        shape = ir.Shape([_dim(d) for d in tensor_type.shape.dim])
    elem = tensor_type.elem_type
    return (ir.TensorType(ir.DataType(elem)) if elem else None), shape


def _dim(dim: onnx.TensorShapeProto.Dimension) -> int | str | None:
    which = dim.WhichOneof("value")
    return dim.dim_value if which == "dim_value" else (dim.dim_param if which == "dim_param" else None)


__all__ = ["Annotations", "infer_model", "infer_proto", "merge", "read_info"]
