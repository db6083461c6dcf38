"""Turning a matched norm into one node: which operator, which inputs, and the rewrite itself.

Targets:
    ``onnx``: standard ops only: ``LayerNormalization`` (opset ≥ 17), ``RMSNormalization`` (opset ≥ 23).
    ``ort``: ONNX Runtime's ops at any opset: ``LayerNormalization`` and ``SimplifiedLayerNormalization``
    in the default domain (ORT registers both below opset 17), plus ``Skip*`` ops from the skip pass.
    ``auto``: the standard op where the opset has it and ORT's otherwise.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from normopt.choices import Target
from normopt.engines.views import Editor, NewNode, NewValue, ValueView
from normopt.errors import option
from normopt.fusion import graph_utils as gu
from normopt.fusion.dims import trailing_dims
from normopt.fusion.norm_match import NormMatch, Refusal, constant_array, constant_producers

# ONNX Runtime 1.31 cannot load a bfloat16 RMSNormalization-23 on CPU (it expands the function, and its Mul has no
# bfloat16 kernel: "NOT_IMPLEMENTED: Could not find an implementation for Mul(14)"), so bfloat16 RMSNorm gets
# SimplifiedLayerNormalization instead.
_RMS23_DTYPES = frozenset({ir.DataType.FLOAT, ir.DataType.FLOAT16, ir.DataType.DOUBLE})


def choose_op(kind: str, target: Target, opset: int, dtype: ir.DataType) -> str:
    """The operator (default domain) that replaces a ``kind`` norm, or a Refusal saying why none can."""
    if kind == "LayerNorm":
        if target == "onnx" and opset < 17:
            raise Refusal(f"opset {opset} has no LayerNormalization (needs 17; try {option('--target', 'ort')})")
        return "LayerNormalization"
    if target == "ort":
        return "SimplifiedLayerNormalization"
    if opset >= 23 and dtype in _RMS23_DTYPES:
        return "RMSNormalization"
    if target == "onnx":
        if opset < 23:
            raise Refusal(f"opset {opset} has no RMSNormalization (needs 23; try {option('--target', 'ort')})")
        raise Refusal(f"ONNX Runtime has no {dtype.name} RMSNormalization kernel (try {option('--target', 'ort')})")
    return "SimplifiedLayerNormalization"


def _new_constant(array: np.ndarray, name: str) -> tuple[NewNode, NewValue]:
    out = NewValue(name, ir.DataType.from_numpy(array.dtype), tuple(array.shape))
    node = NewNode("Constant", (), (out,), (ir.AttrTensor("value", ir.tensor(array, name=name)),), name=name)
    return node, out


def _ones_like_normalized(
    x: ValueView, axes: int, dtype: ir.DataType, name: str, opset: int
) -> tuple[NewValue, list[NewNode]]:
    """``ConstantOfShape(Shape(x, start=-axes), 1)``: an all-ones scale when the size is only known at run time."""
    if opset < 15:
        raise Refusal(
            "the normalized dims' size is not proved (no constant all-ones scale can be written; where "
            f"initializers are graph inputs, {option('--freeze-initializers')} "
            "may prove it) and Shape(start=) needs opset 15"
        )
    shape = NewValue(f"{name}.shape")
    ones = NewValue(name, dtype)
    one = ir.tensor(np.ones([1], dtype=dtype.numpy()))
    return ones, [
        NewNode("Shape", (x,), (shape,), (ir.AttrInt64("start", -axes),), name=f"{name}.shape"),
        NewNode("ConstantOfShape", (shape,), (ones,), (ir.AttrTensor("value", one),), name=name),
    ]


def _affine_input(
    value: ValueView | None,
    x: ValueView,
    axes: int,
    dtype: ir.DataType,
    fill: float,
    name: str,
    opset: int,
) -> tuple[ValueView | NewValue | None, list[NewNode]]:
    """γ or β as a constant of exactly the normalized shape and ``dtype``; reuses it when it already is.

    With ``value`` None and ``fill`` 1.0 it makes the all-ones scale the fused ops require.
    """
    dims = trailing_dims(x, axes)
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


def fused_nodes(match: NormMatch, op_type: str, name: str, opset: int) -> list[NewNode]:
    """The nodes that replace ``match``: γ/β constants when needed, then the fused node (writing ``y``)."""
    scale, scale_nodes = _affine_input(match.scale, match.x, match.axes, match.dtype, 1.0, f"{name}.scale", opset)
    bias, bias_nodes = _affine_input(match.bias, match.x, match.axes, match.dtype, 0.0, f"{name}.bias", opset)
    inputs = (match.x, scale) + ((bias,) if bias is not None and op_type == "LayerNormalization" else ())
    if bias is not None and op_type != "LayerNormalization":
        raise Refusal(f"{op_type} has no bias input")
    node = NewNode(
        op_type,
        inputs,
        (NewValue(match.y.name or name),),
        (
            ir.AttrInt64("axis", -match.axes),
            ir.AttrFloat32("epsilon", match.epsilon),
            ir.AttrInt64("stash_type", 11 if match.dtype == ir.DataType.DOUBLE else 1),  # statistics in ≥ float32
        ),
        name=name,
    )
    return [*scale_nodes, *bias_nodes, node]


def rewrite(editor: Editor, match: NormMatch, op_type: str, name: str, opset: int) -> int:
    """Replace ``match.y`` by one ``op_type`` node; return how many pattern nodes outside readers kept."""
    nodes = fused_nodes(match, op_type, name, opset)
    return editor.replace(match.y, nodes, [*constant_producers(match.nodes), *match.nodes])
