"""Small, side-effect-free helpers for reading a graph (either engine, through ``views``) during matching.

Every helper here answers a local question (who produced this value, is it a constant, which axes does
this reduction use) in O(1) or O(consumers) so the passes stay linear in the number of nodes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from normopt.engines.views import NodeView, ValueView
from normopt.fusion.outcome import MatchResult
from normopt.ops import is_op

FLOAT_TYPES = frozenset({ir.DataType.FLOAT, ir.DataType.FLOAT16, ir.DataType.BFLOAT16, ir.DataType.DOUBLE})

# Constants larger than this are never read while matching: weights stay on disk.
_SMALL_CONSTANT_ELEMENTS = 16


def producer(value: ValueView | None, op_type: str) -> NodeView | None:
    """Return the default-domain node of type ``op_type`` that produces ``value``, if any."""
    if value is None:
        return None
    node = value.producer()
    if not is_op(node, op_type):
        return None
    return node


#: Why an initializer that is also a graph input is no constant (and what lets normopt take it as one).
OVERRIDABLE = (
    "is an initializer that is also a graph input: a caller may override it "
    "(fuse's freeze_initializers, --freeze-initializers on the CLI, asserts that none does)"
)


def overridable(value: ValueView | None) -> bool:
    """True for an initializer that is also a graph input: a default the caller may replace."""
    return value is not None and value.const_value is not None and value.is_graph_input()


def consumers(value: ValueView) -> list[NodeView]:
    """Distinct nodes that read ``value`` (a node reading it twice counts once)."""
    seen: dict[int, NodeView] = {}
    for user, _ in value.uses():
        seen.setdefault(id(user), user)
    return list(seen.values())


def is_graph_output(value: ValueView) -> bool:
    """True when ``value`` is an output of the graph (or function) that owns it."""
    return value.is_graph_output()


def only_consumer(value: ValueView) -> NodeView | None:
    """The single node reading ``value``, or None when it has several readers or is a graph output."""
    users = consumers(value)
    if len(users) != 1 or is_graph_output(value):
        return None
    return users[0]


def const_tensor(value: ValueView) -> ir.TensorProtocol | None:
    """The constant tensor behind ``value``: its initializer, or the attribute of the Constant node writing it.

    As ``onnx_ir.convenience.get_const_tensor`` reads it, for either engine; None where there is none
    (a reference attribute, a sparse or string constant, a malformed Constant).
    """
    if value.const_value is not None:
        return value.const_value
    node = value.producer()
    if node is None or not is_op(node, "Constant"):
        return None
    if len(node.outputs) != 1 or len(node.attributes) != 1:
        return None
    name, attr = next(iter(node.attributes.items()))
    if attr.is_ref():
        return None
    if name in ("value_float", "value_floats"):
        return ir.Tensor(np.array(attr.value, dtype=np.float32), name=value.name)
    if name in ("value_int", "value_ints"):
        return ir.Tensor(np.array(attr.value, dtype=np.int64), name=value.name)
    if name == "value":
        return attr.as_tensor()
    return None


def small_constant(value: ValueView | None) -> np.ndarray | None:
    """Return the value of a small constant (initializer, Constant node, or a float Cast of one), else None.

    A constant is a value nobody can override: an initializer that is also a graph input (an overridable
    default) is not one. Only tensors with at most a handful of elements are read, so matching never
    touches weight bytes.
    """
    if value is None or value.is_graph_input():
        return None
    if value.const_value is None:
        node = value.producer()
        if node is None:
            return None
        if is_op(node, "Cast"):
            return _cast_constant(node)
        if not is_op(node, "Constant"):
            return None
    elif value.const_value.size > _SMALL_CONSTANT_ELEMENTS:
        return None
    tensor = const_tensor(value)
    if tensor is None or tensor.size > _SMALL_CONSTANT_ELEMENTS or tensor.dtype == ir.DataType.STRING:
        return None
    return np.asarray(tensor.numpy())


def _cast_constant(cast: NodeView) -> np.ndarray | None:
    """``Cast(constant, to)`` evaluated as ONNX does (numpy's conversion for numeric types)."""
    to = cast.attributes.get("to")
    source = small_constant(cast.inputs[0])
    if to is None or source is None:
        return None
    try:
        target = ir.DataType(to.as_int()).numpy()
    except (TypeError, ValueError):
        return None
    if source.dtype.kind not in "fiub" or np.dtype(target).kind not in "fiu":
        return None
    with np.errstate(all="ignore"):
        return source.astype(target)


def scalar_constant(value: ValueView | None, max_rank: int | None = 1) -> float | None:
    """Value of a constant holding exactly one element, else None.

    Args:
        value: The operand.
        max_rank: The rank the constant may have without changing the rank of what it is combined
            with (the other operand's rank; None when that is unknown, which allows rank 0 and 1 only):
            ``v + ε`` with ε of shape [1,1,1,1] broadcasts a rank-3 ``v`` to rank 4.

    """
    array = small_constant(value)
    if array is None or array.size != 1 or array.ndim > (1 if max_rank is None else max_rank):
        return None
    try:
        return float(array.astype(np.float64).reshape(()))
    except (TypeError, ValueError):
        return None


def is_constant(value: ValueView | None) -> bool:
    """True for initializers, Constant outputs, and Casts of either (weights are not read)."""
    if value is None:
        return False
    if value.const_value is not None and not value.is_graph_input():
        return True
    node = value.producer()
    if node is None:
        return False
    if is_op(node, "Constant"):
        return True
    return is_op(node, "Cast") and is_constant(node.inputs[0])


def constant_shape(value: ValueView) -> tuple[int, ...] | None:
    """Static shape of a constant value without reading its data."""
    if value.const_value is not None:
        return tuple(value.const_value.shape.numpy())
    node = value.producer()
    if node is None:
        return None
    if is_op(node, "Cast"):
        return constant_shape(node.inputs[0]) if node.inputs[0] is not None else None
    if is_op(node, "Constant"):
        tensor = const_tensor(value)
        return None if tensor is None else tuple(tensor.shape.numpy())
    return None


def dtype_of(value: ValueView | None, depth: int = 8) -> ir.DataType | None:
    """Element type of ``value``: declared, or followed back through Casts and elementwise ops."""
    if value is None:
        return None
    if value.dtype is not None:
        return value.dtype
    if value.const_value is not None:
        return value.const_value.dtype
    node = value.producer()
    if node is None or depth == 0:
        return None
    if is_op(node, "Cast"):
        to = node.attributes.get("to")
        return ir.DataType(to.as_int()) if to is not None else None
    if is_op(node, "Constant"):
        tensor = small_constant(value)
        return None if tensor is None else ir.DataType.from_numpy(tensor.dtype)
    if is_op(node, "Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Reciprocal", "ReduceMean", "Neg"):
        for operand in node.inputs[:1]:
            found = dtype_of(operand, depth - 1)
            if found is not None:
                return found
    return None


def same_dim(a: int | ir.SymbolicDim, b: int | ir.SymbolicDim) -> bool:
    """True only when two dims are equal for every input the model accepts.

    Both known and equal, or both carrying the same name (``dim_param``). Two unknown dims (no value,
    no name) are not equal: onnx_ir compares them as equal, which proves nothing.
    """
    if isinstance(a, int) or isinstance(b, int):
        return isinstance(a, int) and isinstance(b, int) and a == b
    return a.value is not None and a.value == b.value


def same_shape(a: ir.Shape | None, b: ir.Shape | None) -> bool:
    """True when two shapes are provably equal: the same rank and ``same_dim`` at every position."""
    if a is None or b is None or len(a) != len(b):
        return False
    return all(same_dim(a[i], b[i]) for i in range(len(a)))


def rank_of(value: ValueView) -> int | None:
    """Rank of ``value`` when its shape is known."""
    return None if value.shape is None else len(value.shape)


def static_shape(value: ValueView) -> tuple[int, ...] | None:
    """``value``'s shape (declared or inferred) when every dim of it is a number."""
    shape = value.shape
    if shape is None:
        return None
    numbers = [d for d in (shape[i] for i in range(len(shape))) if isinstance(d, int)]
    return tuple(numbers) if len(numbers) == len(shape) else None


def static_dims(value: ValueView, axes: Iterable[int]) -> tuple[int, ...] | None:
    """Concrete sizes of ``value`` along ``axes`` (negative, counted from the end), or None."""
    if value.shape is None:
        return None
    dims = []
    for axis in axes:
        dim = value.shape[axis]
        if not isinstance(dim, int):
            return None
        dims.append(dim)
    return tuple(dims)


@dataclass(frozen=True)
class Reduction:
    """What a ReduceMean/ReduceSum reduces: ``axes`` as written (or every axis), and ``keepdims``."""

    axes: list[int]
    keepdims: int


def reduce_axes(node: NodeView, rank: int | None = None) -> MatchResult[Reduction]:
    """The axes and keepdims of a ReduceMean/ReduceSum node (attribute or input form), or why not known.

    No axes (or an empty axes input) means every axis unless ``noop_with_empty_axes`` is set, in which
    case the node is an identity; every axis needs ``rank`` (the input's rank) to be known.
    """
    keepdims_attr = node.attributes.get("keepdims")
    keepdims = 1 if keepdims_attr is None else keepdims_attr.as_int()
    axes_attr = node.attributes.get("axes")
    if axes_attr is not None:
        return MatchResult.success(Reduction(list(axes_attr.as_ints()), keepdims))
    axes: list[int] = []
    operand = node.inputs[1] if len(node.inputs) > 1 else None
    if operand is not None:
        found = computed_ints(operand)
        if found is None:
            why = f"reduction axes {OVERRIDABLE}" if overridable(operand) else "reduction axes are not a constant"
            return MatchResult.failure(why, operand)
        axes = found
    if axes:
        return MatchResult.success(Reduction(axes, keepdims))
    noop = node.attributes.get("noop_with_empty_axes")
    if noop is not None and noop.as_int() != 0:
        return MatchResult.failure("no reduction axes and noop_with_empty_axes=1: the node is an identity")
    if rank is None:
        return MatchResult.failure("reduction over all axes of an input of unknown rank", node.inputs[0])
    return MatchResult.success(Reduction(list(range(rank)), keepdims))


INT_STEPS = ("Identity", "Size", "Shape", "Range", "Add", "Sub", "Mul", "Neg")
_INTS = (ir.DataType.INT64, ir.DataType.INT32)


def computed_ints(value: ValueView | None, depth: int = 8) -> list[int] | None:
    """The ints a small int tensor holds, when they hold for every input the model accepts; else None.

    A constant (``small_constant``), or computed from constants and ranks alone: ``Size(Shape(t))`` is
    t's rank when that rank is known, ``Shape(t)`` its dims when all are numbers, then ``Identity``,
    ``Range``, and ``Add``/``Sub``/``Mul``/``Neg`` of such (how ONNX's own function bodies spell their
    reduction axes: ``Range(axis, Size(Shape(X)), 1)``).
    """
    array = small_constant(value)
    if array is not None:
        return [int(a) for a in array.reshape(-1)] if array.dtype.kind in "iu" else None
    node = value.producer() if value is not None else None
    if node is None or depth == 0 or value is None or value.dtype not in _INTS or not is_op(node, *INT_STEPS):
        return None
    if is_op(node, "Shape", "Size"):
        source = node.inputs[0]
        if source is None:
            return None
        if is_op(node, "Size"):
            inner = source.producer()
            if inner is None or not is_op(inner, "Shape") or inner.attributes or inner.inputs[0] is None:
                dims = static_shape(source)
                return None if dims is None else [int(np.prod(dims))]
            rank = rank_of(inner.inputs[0])
            return None if rank is None else [rank]
        dims = static_shape(source)
        return None if dims is None or node.attributes else list(dims)
    operands = [computed_ints(v, depth - 1) for v in node.inputs]
    if any(o is None for o in operands):
        return None
    values = [o for o in operands if o is not None]
    if is_op(node, "Identity"):
        return values[0]
    if any(len(v) != 1 for v in values):
        return None
    scalars = [v[0] for v in values]
    if is_op(node, "Range"):
        start, limit, delta = scalars
        return list(range(start, limit, delta)) if delta != 0 and abs(limit - start) <= 64 * abs(delta) else None
    if is_op(node, "Neg"):
        return [-scalars[0]]
    a, b = scalars
    return [a + b] if is_op(node, "Add") else [a - b] if is_op(node, "Sub") else [a * b]


def trailing_axis_count(axes: list[int], rank: int | None) -> MatchResult[int]:
    """How many trailing axes ``axes`` covers, or why they are not exactly the trailing ones."""
    if not axes:
        return MatchResult.failure("empty reduction axes")
    if rank is None:
        if any(a >= 0 for a in axes):
            return MatchResult.failure(f"positive axes {axes} with unknown input rank")
        normalized = sorted(axes)
        count = len(normalized)
        if normalized != list(range(-count, 0)):
            return MatchResult.failure(f"axes {axes} are not the trailing axes")
        return MatchResult.success(count)
    normalized = sorted(a + rank if a < 0 else a for a in axes)
    if len(set(normalized)) != len(normalized) or any(a < 0 or a >= rank for a in normalized):
        return MatchResult.failure(f"axes {axes} are invalid for rank {rank}")
    count = len(normalized)
    if normalized != list(range(rank - count, rank)):
        return MatchResult.failure(f"axes {axes} are not the trailing axes of a rank-{rank} input")
    return MatchResult.success(count)


def same_value(a: ValueView | None, b: ValueView | None) -> bool:
    """True when ``a`` and ``b`` are the same tensor, or identical Casts of the same tensor."""
    if a is None or b is None:
        return False
    if a is b:
        return True
    pa, pb = producer(a, "Cast"), producer(b, "Cast")
    if pa is None or pb is None:
        return False
    ta, tb = pa.attributes.get("to"), pb.attributes.get("to")
    if ta is None or tb is None or ta.as_int() != tb.as_int():
        return False
    return pa.inputs[0] is pb.inputs[0]


def operand_pairs(node: NodeView) -> Iterator[tuple[ValueView, ValueView]]:
    """Both orders of a commutative binary node's operands."""
    a, b = node.inputs[0], node.inputs[1]
    if a is None or b is None:
        return
    yield a, b
    if a is not b:
        yield b, a
