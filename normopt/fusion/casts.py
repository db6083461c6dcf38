"""Float Casts that keep a value's numbers: widening casts and exact round trips through a wider type.

A norm computed in float32 on an fp16 model, or in float64 on a float32 one, reads its input through such
Casts; the matchers see through them only when every value converts exactly (fp16 ↛ bf16).
"""

from __future__ import annotations

import onnx_ir as ir

from normopt.engines.views import NodeView, ValueView
from normopt.fusion import graph_utils as gu
from normopt.ops import is_op

_WIDTH = {ir.DataType.FLOAT16: 1, ir.DataType.BFLOAT16: 1, ir.DataType.FLOAT: 2, ir.DataType.DOUBLE: 3}


def _width(dtype: ir.DataType) -> int:
    return _WIDTH.get(dtype, 0)


def fits_exactly(source: ir.DataType, target: ir.DataType) -> bool:
    """True when every ``source`` value converts to ``target`` exactly (fp16 ↛ bf16)."""
    return target == source or (source in _WIDTH and _width(target) > _width(source))


def widened_root(value: ValueView) -> ValueView:
    """What ``value`` holds exactly, with float Casts stripped (else ``value`` itself).

    A widening Cast (fp16 → float32, float32 → float64) gives its input, and so does a round trip
    through a wider type (``Cast(Cast(x32, float64), float32)`` is ``x32``).
    """
    for _ in range(8):
        cast = gu.producer(value, "Cast")
        if cast is None or cast.inputs[0] is None or not is_float_cast(cast):
            return value
        source, target = gu.dtype_of(cast.inputs[0]), ir.DataType(cast.attributes["to"].as_int())
        if source is not None and fits_exactly(source, target):
            value = cast.inputs[0]
        elif (trip := _round_trip_casts(cast)) is not None:
            value = trip[0]
        else:
            return value
    return value


def _round_trip_casts(outer: NodeView) -> tuple[ValueView, NodeView, NodeView] | None:
    """``(x, inner, outer)`` when ``outer`` is ``Cast(Cast(x, wider), x's type)``: an exact round trip."""
    wide = outer.inputs[0]
    inner = gu.producer(wide, "Cast") if wide is not None else None
    if inner is None or inner.inputs[0] is None or not (is_float_cast(outer) and is_float_cast(inner)):
        return None
    x = inner.inputs[0]
    origin, wide_dtype = gu.dtype_of(x), gu.dtype_of(wide)
    back = ir.DataType(outer.attributes["to"].as_int())
    if origin is None or wide_dtype is None or back != origin or not fits_exactly(origin, wide_dtype):
        return None
    return x, inner, outer


def round_trip(value: ValueView) -> tuple[ValueView, list[NodeView]]:
    """``x`` and the Casts when ``value`` is ``Cast(Cast(x, wider), x's type)`` (exact), else ``(value, [])``."""
    casts: list[NodeView] = []
    for _ in range(4):
        outer = gu.producer(value, "Cast")
        trip = _round_trip_casts(outer) if outer is not None else None
        if trip is None:
            break
        value, inner, outer_cast = trip
        casts[:0] = [inner, outer_cast]
    return value, casts


def same_data(a: ValueView | None, b: ValueView | None) -> bool:
    """True when ``a`` and ``b`` hold the same numbers: one tensor, identical Casts, or exact upcasts."""
    return gu.same_value(a, b) or (a is not None and b is not None and widened_root(a) is widened_root(b))


def is_float_cast(node: NodeView) -> bool:
    """True for a Cast between floating-point types."""
    to = node.attributes.get("to") if is_op(node, "Cast") else None
    return to is not None and ir.DataType(to.as_int()) in gu.FLOAT_TYPES
