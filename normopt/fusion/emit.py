"""Turning a matched norm into one node: which operator, which inputs, and the rewrite itself.

Targets:
    ``onnx``: standard ops only: ``LayerNormalization`` (opset ≥ 17), ``RMSNormalization`` (opset ≥ 23).
    ``ort``: ONNX Runtime's ops at any opset: ``LayerNormalization`` and ``SimplifiedLayerNormalization``
    in the default domain (ORT registers both below opset 17), plus ``Skip*`` ops from the skip pass.
    ``auto``: the standard op where the opset has it and ORT's otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from normopt.choices import Target
from normopt.fusion import graph_utils as gu
from normopt.fusion.norm_match import NormMatch, Refusal, constant_array, constant_producers
from normopt.modelio.protograph import ProtoGraph

# ONNX Runtime 1.31 cannot load a bfloat16 RMSNormalization-23 on CPU (it expands the function, and its Mul has no
# bfloat16 kernel: "NOT_IMPLEMENTED: Could not find an implementation for Mul(14)"), so bfloat16 RMSNorm gets
# SimplifiedLayerNormalization instead.
_RMS23_DTYPES = frozenset({ir.DataType.FLOAT, ir.DataType.FLOAT16, ir.DataType.DOUBLE})


def choose_op(kind: str, target: Target, opset: int, dtype: ir.DataType) -> str:
    """The operator (default domain) that replaces a ``kind`` norm, or a Refusal saying why none can."""
    if kind == "LayerNorm":
        if target == "onnx" and opset < 17:
            raise Refusal(f"opset {opset} has no LayerNormalization (needs 17; try --target ort)")
        return "LayerNormalization"
    if target == "ort":
        return "SimplifiedLayerNormalization"
    if opset >= 23 and dtype in _RMS23_DTYPES:
        return "RMSNormalization"
    if target == "onnx":
        if opset < 23:
            raise Refusal(f"opset {opset} has no RMSNormalization (needs 23; try --target ort)")
        raise Refusal(f"ONNX Runtime has no {dtype.name} RMSNormalization kernel (try --target ort)")
    return "SimplifiedLayerNormalization"


@dataclass
class Emitted:
    """The node that replaced a pattern and how many pattern nodes outside readers kept alive."""

    node: ir.Node
    kept: int


def _new_constant(array: np.ndarray, name: str) -> tuple[ir.Node, ir.Value]:
    out = ir.Value(name=name, type=ir.TensorType(ir.DataType.from_numpy(array.dtype)), shape=ir.Shape(array.shape))
    node = ir.Node(
        "", "Constant", [], attributes=[ir.AttrTensor("value", ir.tensor(array, name=name))], outputs=[out], name=name
    )
    return node, out


def _ones_like_normalized(
    x: ir.Value, axes: int, dtype: ir.DataType, name: str, opset: int
) -> tuple[ir.Value, list[ir.Node]]:
    """``ConstantOfShape(Shape(x, start=-axes), 1)``: an all-ones scale when the size is only known at run time."""
    if opset < 15:
        raise Refusal("no scale, the normalized size is dynamic, and Shape(start=) needs opset 15")
    shape = ir.Value(name=f"{name}.shape")
    ones = ir.Value(name=name, type=ir.TensorType(dtype))
    one = ir.tensor(np.ones([1], dtype=dtype.numpy()))
    return ones, [
        ir.Node("", "Shape", [x], attributes=[ir.AttrInt64("start", -axes)], outputs=[shape], name=f"{name}.shape"),
        ir.Node("", "ConstantOfShape", [shape], attributes=[ir.AttrTensor("value", one)], outputs=[ones], name=name),
    ]


def _affine_input(
    value: ir.Value | None,
    x: ir.Value,
    axes: int,
    dtype: ir.DataType,
    fill: float,
    name: str,
    opset: int,
) -> tuple[ir.Value | None, list[ir.Node]]:
    """γ or β as a constant of exactly the normalized shape and ``dtype``; reuses it when it already is.

    With ``value`` None and ``fill`` 1.0 it makes the all-ones scale the fused ops require.
    """
    dims = gu.static_dims(x, range(-axes, 0))
    if value is None:
        if fill == 0.0:
            return None, []
        if dims is None:
            return _ones_like_normalized(x, axes, dtype, name, opset)
        node, out = _new_constant(np.full(dims, fill, dtype=dtype.numpy()), name)
        return out, [node]
    shape = gu.constant_shape(value) if gu.is_constant(value) else gu.static_shape(value)
    source = value
    cast = gu.producer(value, "Cast")
    if cast is not None and cast.inputs[0] is not None and gu.dtype_of(cast.inputs[0]) == dtype:
        source = cast.inputs[0]
    if (
        gu.dtype_of(source) == dtype
        and shape is not None
        and len(shape) == axes
        and (dims is None or tuple(shape) == dims)
    ):
        return source, []
    if not gu.is_constant(value):
        raise Refusal("a scale/bias computed at run time is not of the normalized shape and type")
    array = constant_array(value)
    while array.ndim > axes and array.shape[0] == 1:
        array = array.reshape(array.shape[1:])
    if dims is not None:
        array = np.broadcast_to(array.reshape((1,) * (axes - array.ndim) + array.shape), dims)
    elif array.ndim != axes or 1 in array.shape:
        raise Refusal("the scale/bias must be broadcast to normalized dims of unknown size")
    converted = np.ascontiguousarray(array.astype(dtype.numpy()))
    if not np.array_equal(converted.astype(array.dtype), array):
        raise Refusal(f"scale/bias values are not representable in {dtype.name}")
    node, out = _new_constant(converted, name)
    return out, [node]


def fused_nodes(match: NormMatch, op_type: str, name: str, opset: int, typed: bool = True) -> list[ir.Node]:
    """The nodes that replace ``match``: γ/β constants when needed, then the fused node.

    The fused node's output carries ``match.y``'s name (and, when ``typed``, its type and shape); the
    nodes are not linked to any graph yet.
    """
    scale, scale_nodes = _affine_input(match.scale, match.x, match.axes, match.dtype, 1.0, f"{name}.scale", opset)
    bias, bias_nodes = _affine_input(match.bias, match.x, match.axes, match.dtype, 0.0, f"{name}.bias", opset)
    inputs = [match.x, scale] + ([bias] if bias is not None and op_type == "LayerNormalization" else [])
    if bias is not None and op_type != "LayerNormalization":
        raise Refusal(f"{op_type} has no bias input")
    out = ir.Value(name=match.y.name, type=match.y.type, shape=match.y.shape) if typed else ir.Value(name=match.y.name)
    node = ir.Node(
        "",
        op_type,
        inputs,
        attributes=[
            ir.AttrInt64("axis", -match.axes),
            ir.AttrFloat32("epsilon", match.epsilon),
            ir.AttrInt64("stash_type", 11 if match.dtype == ir.DataType.DOUBLE else 1),  # statistics in ≥ float32
        ],
        outputs=[out],
        name=name,
    )
    return [*scale_nodes, *bias_nodes, node]


def rewrite(
    owner: ir.Graph | ir.Function,
    match: NormMatch,
    op_type: str,
    name: str,
    opset: int,
    orphans: list[ir.Value] | None = None,
) -> Emitted:
    """Replace ``match.y`` by one ``op_type`` node and remove the pattern nodes nobody else reads.

    ``owner`` is an onnx_ir graph or function, or a ``ProtoGraph`` (the protobuf fast path), which
    takes the same nodes through ``splice``. ``orphans``: see ``remove_dead``.
    """
    flat = isinstance(owner, ProtoGraph)
    nodes = fused_nodes(match, op_type, name, opset, typed=not flat)  # a ProtoGraph keeps y's value_info
    pattern = [*constant_producers(match.nodes), *match.nodes]
    if isinstance(owner, ProtoGraph):
        return Emitted(nodes[-1], owner.splice(match.y, nodes, pattern))
    out = nodes[-1].outputs[0]
    match.y.name = f"{match.y.name}.unfused"
    anchor = match.y.producer()
    assert anchor is not None
    owner.insert_after(anchor, nodes)
    match.y.replace_all_uses_with(out, replace_graph_outputs=True)
    kept = remove_dead(owner, pattern, orphans)
    return Emitted(nodes[-1], kept)


def remove_dead(owner: ir.Graph | ir.Function, nodes: list[ir.Node], orphans: list[ir.Value] | None = None) -> int:
    """Remove the nodes of ``nodes`` whose outputs nobody reads; return how many had to stay.

    ``nodes`` must be in topological order (producers first): one pass from the end then frees
    every node whose readers were all removed. Initializers that only the removed nodes read are
    dropped too (shared ε constants go with the last pattern that used them): at once, or, when
    ``orphans`` is given, appended to it for one ``drop_unused_initializers`` after the whole pass
    (an ε shared by 3,000 layers is then checked once, not 3,000 times: ``uses()`` copies).
    """
    kept = 0
    inputs: list[ir.Value] = []
    dead: list[ir.Node] = []
    for node in reversed(list(dict.fromkeys(nodes))):
        if node.graph is None:
            continue
        if any(o.uses() or o.is_graph_output() for o in node.outputs):
            kept += 1
            continue
        inputs.extend(v for v in node.inputs if v is not None)
        for i in range(len(node.inputs)):  # detach first, so the producers' outputs lose this reader
            node.replace_input_with(i, None)
        dead.append(node)
    if dead:
        owner.remove(dead)  # safe by construction: no reader, not a graph output, inputs detached
    if orphans is not None:
        orphans.extend(v for v in inputs if v.is_initializer())
    else:
        drop_unused_initializers(owner, inputs)
    return kept


def drop_unused_initializers(owner: ir.Graph | ir.Function, values: list[ir.Value]) -> None:
    """Delete the initializers among ``values`` that nothing reads any more."""
    if isinstance(owner, ir.Graph):
        for value in dict.fromkeys(values):
            if (
                value.name is not None
                and value.is_initializer()
                and not value.uses()
                and not value.is_graph_output()
                and value.name in owner.initializers
                and owner.initializers[value.name] is value
            ):
                del owner.initializers[value.name]
