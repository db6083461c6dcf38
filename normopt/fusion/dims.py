"""Proofs of a tensor's trailing dim where shape inference left it unknown.

A dim is proved only by what holds for every input the model accepts:

- its declared or inferred size;
- ``MatMul(t, W)`` / ``Gemm(t, W)`` with ``W`` of a fixed shape (a constant, or a declared static shape):
  the contracted dim of ``t`` must equal W's (no broadcasting there), and the output has W's last dim;
- ``Gather(table, ids)`` along axis 0 of a constant table: the rows' trailing dims;
- ``Reshape(t, target)`` whose target ends in a literal ``n > 0`` (or ``0``: t's own last dim);
- an elementwise op (Add, Sub, Mul, Div, Cast, Relu, …) whose operand has a proven last dim ``n > 1``:
  broadcasting allows only ``n`` (``n == 1`` proves nothing: the other operand may widen it).

Readers are searched as well as producers: a value some MatMul reads has that MatMul's contracted size.
"""

from __future__ import annotations

from normopt.engines.views import NodeView, ValueView
from normopt.fusion import graph_utils as gu
from normopt.fusion import shape_tensors
from normopt.ops import is_op

_ELEMENTWISE = ("Add", "Sub", "Mul", "Div", "Pow", "Cast", "Relu", "Tanh", "Sigmoid", "Erf", "Neg", "Identity")
_DEPTH = 8


def last_dim(value: ValueView) -> int | None:
    """The size of ``value``'s last dim, proved (see the module docstring), or None."""
    return _last_dim(value, _DEPTH, set())


def trailing_dims(value: ValueView, count: int) -> tuple[int, ...] | None:
    """``gu.static_dims`` of the ``count`` trailing dims, with the last one proved when it is the only one unknown."""
    dims = gu.static_dims(value, range(-count, 0))
    if dims is not None or count != 1:
        return dims
    found = last_dim(value)
    return None if found is None else (found,)


def _constant_shape(value: ValueView | None) -> tuple[int, ...] | None:
    """A fixed shape: declared or inferred, every dim a number, or a constant's own.

    ORT checks a fed input against its declared dims, so an overridable initializer keeps its shape.
    """
    if value is None:
        return None
    found = gu.static_shape(value)
    if found is not None:
        return found
    return gu.constant_shape(value) if gu.is_constant(value) else None


def _last_dim(value: ValueView, depth: int, seen: set[int]) -> int | None:
    if id(value) in seen or depth == 0:
        return None
    seen = seen | {id(value)}  # the values on this path (a cycle guard; siblings search on their own)
    shape = value.shape
    if shape is not None and len(shape) and isinstance(shape[-1], int):
        return shape[-1]
    if value.const_value is not None:
        dims = tuple(value.const_value.shape.numpy())
        return dims[-1] if dims else None
    found = _from_producer(value.producer(), depth, seen)
    if found is not None:
        return found
    for user in value.consumers():
        found = _from_reader(user, value, depth, seen)
        if found is not None:
            return found
    return None


def _from_producer(node: NodeView | None, depth: int, seen: set[int]) -> int | None:
    if node is None:
        return None
    if is_op(node, "MatMul") and len(node.inputs) == 2:
        weights = _constant_shape(node.inputs[1])
        return weights[-1] if weights is not None and len(weights) >= 2 else None
    if is_op(node, "Gemm") and len(node.inputs) >= 2:
        weights = _constant_shape(node.inputs[1])
        trans = node.attributes.get("transB")
        if weights is None or len(weights) != 2:
            return None
        return weights[0] if trans is not None and trans.as_int() else weights[1]
    if is_op(node, "Gather") and len(node.inputs) == 2:
        axis = node.attributes.get("axis")
        table = _constant_shape(node.inputs[0])
        if (axis is None or axis.as_int() == 0) and table is not None and len(table) >= 2:
            return table[-1]
        return None
    if is_op(node, "Reshape") and len(node.inputs) >= 2 and node.inputs[1] is not None:
        concat = gu.producer(node.inputs[1], "Concat")
        tail = gu.small_constant(concat.inputs[-1]) if concat is not None and concat.inputs else None
        if tail is not None and tail.ndim == 1 and tail.size and tail.dtype.kind in "iu":
            target: list[object] | None = [int(tail[-1])]  # the last piece alone decides the last dim
        else:
            target = list(shape_tensors.shape_dims(node.inputs[1]) or []) or None
        allowzero = node.attributes.get("allowzero")
        if target is None or not target or not isinstance(target[-1], int):
            return None
        if target[-1] > 0:
            return target[-1]
        if target[-1] == 0 and (allowzero is None or allowzero.as_int() == 0) and node.inputs[0] is not None:
            return _last_dim(node.inputs[0], depth - 1, seen)  # 0 copies the input's dim at that position
        return None
    if is_op(node, *_ELEMENTWISE):
        for operand in node.inputs[:2] if not is_op(node, "Pow") else node.inputs[:1]:
            if operand is None:
                continue
            found = _last_dim(operand, depth - 1, seen)
            if found is not None and found > 1:
                return found
    return None


def _from_reader(user: NodeView, value: ValueView, depth: int, seen: set[int]) -> int | None:
    if is_op(user, "MatMul") and user.inputs[0] is value:
        weights = _constant_shape(user.inputs[1]) if len(user.inputs) == 2 else None
        return weights[-2] if weights is not None and len(weights) >= 2 else None
    if is_op(user, "Gemm") and user.inputs[0] is value:
        weights = _constant_shape(user.inputs[1]) if len(user.inputs) >= 2 else None
        trans_a, trans_b = user.attributes.get("transA"), user.attributes.get("transB")
        if weights is None or len(weights) != 2 or (trans_a is not None and trans_a.as_int()):
            return None
        return weights[1] if trans_b is not None and trans_b.as_int() else weights[0]
    return None
