"""Shape tensors read as dims: a constant, or a Concat of ``Shape`` slices (Gather / Slice / hops) and constants.

A dim is a literal int or ``(tensor, position)``: dim ``position`` of ``tensor``, whatever its size is at run
time. The mean chains prove a Reshape target with them, and the trailing-dim proofs read Reshape targets.
"""

from __future__ import annotations

from normopt.engines.views import NodeView, ValueView
from normopt.fusion import graph_utils as gu
from normopt.ops import is_op

_SHAPE_HOPS = ("Reshape", "Squeeze", "Unsqueeze", "Identity")
Dim = tuple[ValueView, int] | int


def shape_dims(value: ValueView) -> list[Dim] | None:
    """The dims a 1-D shape tensor holds (a literal int, or a dim read from ``Shape``), or None when unknown."""
    return dims_of(value)[0]


def dims_of(value: ValueView) -> tuple[list[Dim] | None, list[NodeView]]:
    """The dims a 1-D shape tensor holds, from a constant or a Concat of Shape slices and constants."""
    literal = constant_ints(value)
    if literal is not None:
        return list(literal), []
    concat = gu.producer(value, "Concat")
    pieces = list(concat.inputs) if concat is not None else [value]
    dims: list[Dim] = []
    nodes: list[NodeView] = []
    for piece in pieces:
        literal = constant_ints(piece)
        if literal is not None:
            dims.extend(literal)
            continue
        if piece is not None and gu.producer(piece, "Concat") is not None:  # a Concat of Concats
            found, inner = dims_of(piece)
            nodes.extend(n for n in inner if n not in nodes)
        else:
            found = _shape_slice(piece, nodes)
        if found is None:
            return None, []
        dims.extend(found)
    if concat is not None:
        nodes.append(concat)
    return dims, nodes


def _shape_slice(value: ValueView | None, nodes: list[NodeView]) -> list[Dim] | None:
    """Dims of a piece of ``Shape(t)`` (through 1-D Reshape/Squeeze/Unsqueeze hops), appending its nodes."""
    hops: list[NodeView] = []
    node = value.producer() if value is not None else None
    while node is not None and is_op(node, *_SHAPE_HOPS):
        hops.append(node)
        inner = node.inputs[0]
        node = inner.producer() if inner is not None else None
    found = _shape_source(node)
    if found is None:
        return None
    dims, used = found
    if hops and len(dims) != 1:
        return None  # a hop over a longer slice could reorder or drop dims
    nodes.extend(n for n in [*used, *reversed(hops)] if n not in nodes)
    return dims


def _shape_source(node: NodeView | None) -> tuple[list[Dim], list[NodeView]] | None:
    """Dims held by ``Shape(t, start, end)``, or a ``Gather`` / ``Slice`` of one (constant indices), with the nodes."""
    if node is None or node.inputs[0] is None:
        return None
    if is_op(node, "Shape"):
        tensor = node.inputs[0]
        rank = gu.rank_of(tensor)
        if rank is None:
            return None
        start_attr, end_attr = node.attributes.get("start"), node.attributes.get("end")
        start = start_attr.as_int() if start_attr is not None else 0
        end = end_attr.as_int() if end_attr is not None else rank
        start, end = (max(0, min(rank, p + rank if p < 0 else p)) for p in (start, end))
        return [(tensor, position) for position in range(start, end)], [node]
    inner = _shape_source(node.inputs[0].producer())
    if inner is None:
        return None
    dims, used = inner
    if is_op(node, "Gather") and len(node.inputs) == 2:
        axis = node.attributes.get("axis")
        index = constant_ints(node.inputs[1])
        if (axis is not None and axis.as_int() not in (0, -1)) or index is None or len(index) != 1:
            return None
        if not -len(dims) <= index[0] < len(dims):
            return None
        return [dims[index[0]]], [*used, node]
    if is_op(node, "Slice"):
        bounds = _slice_bounds(node)
        if bounds is None:
            return None
        return dims[bounds[0] : bounds[1]], [*used, node]
    return None


def _slice_bounds(node: NodeView) -> tuple[int, int] | None:
    """``(start, end)`` of a step-1 Slice along axis 0 with constant bounds (inputs, or opset-1 attributes)."""
    if len(node.inputs) >= 3:
        starts, ends = constant_ints(node.inputs[1]), constant_ints(node.inputs[2])
        axes = constant_ints(node.inputs[3]) if len(node.inputs) > 3 and node.inputs[3] is not None else [0]
        steps = constant_ints(node.inputs[4]) if len(node.inputs) > 4 and node.inputs[4] is not None else [1]
    else:
        attrs = {name: node.attributes.get(name) for name in ("starts", "ends", "axes")}
        if attrs["starts"] is None or attrs["ends"] is None:
            return None
        starts, ends = list(attrs["starts"].as_ints()), list(attrs["ends"].as_ints())
        axes, steps = list(attrs["axes"].as_ints()) if attrs["axes"] is not None else [0], [1]
    if starts is None or ends is None or axes is None or steps is None:
        return None
    if len(starts) != 1 or len(ends) != 1 or axes not in ([0], [-1]) or steps != [1]:
        return None
    return starts[0], ends[0]  # Python's slice clamps as ONNX does for step 1


def root(value: ValueView) -> ValueView:
    """``value`` with every Cast in front of it stripped (a Cast keeps the shape)."""
    for _ in range(4):
        cast = gu.producer(value, "Cast")
        if cast is None or cast.inputs[0] is None:
            break
        value = cast.inputs[0]
    return value


def constant_ints(value: ValueView | None) -> list[int] | None:
    """The ints of a small constant of rank 0 or 1, or None."""
    array = gu.small_constant(value)
    if array is None or array.ndim > 1 or array.dtype.kind not in "iu":
        return None
    return [int(v) for v in array.reshape(-1)]
