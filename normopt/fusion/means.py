"""Means as exporters spell them, proved from the graph's structure.

A mean over the trailing axes of ``x`` reaches the norm patterns in several forms::

    ReduceMean(x, keepdims=1)                                     legacy exporter, hand-written ONNX
    ReduceMean(x, keepdims=0) ─► Reshape | Unsqueeze ─► [Expand]  dynamo exporter (``var``/``var_mean``)
    ReduceSum(x) ─► … ─► Div(·, N) | Mul(·, 1/N)                  ``x.sum(-1, keepdim=True) / H``

with float Casts anywhere along the way (fp16 models computing the statistics in float32).
The Reshape must only put the reduced axes back as 1s (its target is proved dim by dim: a dim of the
reduced tensor or of ``x`` at the same position, or a literal that equals the static dim), and the
Expand may not change anything (every target dim is 1 or the dim already there). ``N`` must equal the
number of reduced elements, read from static dims: ``ReduceSum / (N-1)`` (unbiased variance) is not a
mean, and a ``ReduceSum / c`` over dims of unknown size is a candidate refused as unproven, never a
silent non-candidate. ``follow`` walks forward from a reduction; ``traced_mean`` finds the reduction
behind a value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import onnx_ir as ir

from normopt.engines.views import NodeView, ValueView
from normopt.fusion import graph_utils as gu
from normopt.fusion import ranks, shape_tensors
from normopt.fusion.casts import fits_exactly, is_float_cast, widened_root
from normopt.fusion.outcome import MatchResult
from normopt.fusion.shape_tensors import Dim
from normopt.ops import is_op

REDUCTIONS = ("ReduceMean", "ReduceSum")
RESCALED_VARIANCE = "the variance is rescaled before epsilon is added (unbiased var/std: N/(N-1))"


@dataclass
class MeanChain:
    """A reduction followed forward to the value that holds the mean, shaped as with keepdims=1.

    Attributes:
        reduce: The ReduceMean / ReduceSum node.
        source: The tensor reduced.
        value: The mean (end of the chain).
        axes: Axes as written in the model.
        count: Number of trailing axes covered (when they are trailing).
        nodes: The chain's nodes, producers first (shape computations included).

    """

    reduce: NodeView
    source: ValueView
    value: ValueView
    axes: list[int] = field(default_factory=list)
    count: int = 0
    nodes: list[NodeView] = field(default_factory=list)


UNPROVEN_COUNT = "reduced dims unknown: cannot prove the divisor is the number of reduced elements"


def follow_mean(reduce: NodeView, role: str, shaped_like: ValueView | None = None) -> MatchResult[MeanChain]:
    """Walk from ``reduce`` through the steps that keep it a mean (restore, identity Expand, 1/N).

    ``shaped_like``: a tensor known to have the reduced tensor's shape (x for a square of x or of x − μ),
    whose Shape may also spell the restore target.

    Returns:
        The chain on success. A failure carries the chain as ``partial`` when it is a mean (or a
        ``ReduceSum / c`` that could be one) that a norm cannot be built on, with the reason; a failure
        without ``partial`` is not a mean at all (a ReduceSum never divided by the element count).

    """
    source = reduce.inputs[0]
    assert source is not None
    chain = MeanChain(reduce, source, reduce.outputs[0], nodes=[reduce])
    rank = ranks.rank(source)
    summed = is_op(reduce, "ReduceSum")
    reduction = gu.reduce_axes(reduce, rank)
    if reduction.found is None:
        return _unusable(reduction.reason, source, None if summed else chain)
    axes, keepdims = reduction.found.axes, reduction.found.keepdims
    chain.axes = axes
    trailing = gu.trailing_axis_count(axes, rank)
    if trailing.found is None:
        return _unusable(trailing.reason, source, None if summed else chain)
    count = chain.count = trailing.found
    restored, expanded, divided, unproven = keepdims == 1, False, not summed, ""
    user: NodeView | None = None
    while True:
        user = next_user(chain.value)
        if user is None:
            break
        step: list[NodeView] | None = None
        if is_float_cast(user):  # the mean in another precision (fp16 models computing in float32)
            data_dtype = (
                gu.dtype_of(widened_root(shaped_like if shaped_like is not None else source)) or ir.DataType.FLOAT
            )
            if not fits_exactly(data_dtype, ir.DataType(user.attributes["to"].as_int())):
                break  # rounded below the data's own precision: not the same mean any more
            step = [user]
        elif not restored and rank is not None:
            step = _restore(user, chain.value, (source, shaped_like), rank, count)
            restored = step is not None
        elif restored and not expanded and rank is not None and is_op(user, "Expand"):
            step = _identity_expand(user, chain.value, (source, shaped_like), rank, count)
            expanded = step is not None
        if step is None and not divided:
            division = _divide_by_count(user, chain.value, source, axes, _current_rank(rank, count, restored))
            divided = division is not None
            unproven = division.reason if division is not None and division.found is None else unproven
            step = None if division is None else division.reached
        if step is None:
            break
        chain.nodes.extend(step)
        chain.value = step[-1].outputs[0]
    if not divided:
        return MatchResult.failure(f"{reduce.op_type} is not divided by the number of reduced elements", source)
    if unproven:
        return _unusable(unproven, source, chain)
    if not restored and user is not None and is_op(user, "Mul", "Div") and role == "variance":
        return _unusable(RESCALED_VARIANCE, chain.value, chain)
    if not restored:
        return _unusable(f"{role} taken with keepdims=0 (reduced axis dropped)", chain.value, chain)
    return MatchResult.success(chain)


def _unusable(reason: str, value: ValueView, chain: MeanChain | None) -> MatchResult[MeanChain]:
    """A mean (``chain``) that a norm cannot be built on; with ``chain`` None, no mean at all."""
    return MatchResult.failure(reason, value, partial=chain)


def _current_rank(rank: int | None, count: int, restored: bool) -> int | None:
    """Rank of the chain's value: the input's, less the reduced axes while they are not put back."""
    return None if rank is None else (rank if restored else rank - count)


def next_user(value: ValueView) -> NodeView | None:
    """The one reader of ``value`` other than Shape nodes (which may compute its restore target)."""
    readers = value.consumers()
    if len(readers) == 1:  # the common case, without building a list
        user = readers[0]
        return None if is_op(user, "Shape") or value.is_graph_output() else user
    if value.is_graph_output():
        return None
    users = [u for u in gu.consumers(value) if not is_op(u, "Shape")]
    return users[0] if len(users) == 1 else None


def traced_mean(value: ValueView | None) -> MeanChain | None:
    """The mean chain that ends in ``value`` (found by walking back to its reduction), or None.

    The chain may be one a norm cannot be built on (``follow`` failed with it as ``partial``): it is still a mean.
    """
    current = value
    for _ in range(6):
        node = current.producer() if current is not None else None
        if node is None:
            return None
        if is_op(node, *REDUCTIONS) and node.inputs[0] is not None:
            chain = follow_mean(node, "mean").reached
            return chain if chain is not None and chain.value is value else None
        if not is_op(node, "Reshape", "Unsqueeze", "Expand", "Div", "Mul", "Cast"):  # follow's steps
            return None
        current = node.inputs[0] if not is_op(node, "Mul") or gu.is_constant(node.inputs[1]) else node.inputs[1]
    return None


def _restore(user: NodeView, value: ValueView, sources: _Sources, rank: int, count: int) -> list[NodeView] | None:
    """Nodes of a Reshape/Unsqueeze that only puts the ``count`` reduced trailing axes back as 1s."""
    if user.inputs[0] is not value or len(user.outputs) != 1:
        return None
    if is_op(user, "Unsqueeze"):
        attr = user.attributes.get("axes")
        operand = user.inputs[1] if len(user.inputs) > 1 else None
        axes = list(attr.as_ints()) if attr is not None else shape_tensors.constant_ints(operand)
        if axes is None:
            return None
        wanted = list(range(rank - count, rank))
        return [user] if sorted(a + rank if a < 0 else a for a in axes) == wanted else None
    if not is_op(user, "Reshape") or len(user.inputs) < 2 or user.inputs[1] is None:
        return None
    allowzero = user.attributes.get("allowzero")
    dims, nodes = shape_tensors.dims_of(user.inputs[1])
    if dims is None or len(dims) != rank:
        return None
    inferred = 0
    for position, dim in enumerate(dims):
        if position >= rank - count:
            ok = dim == 1
        elif dim == -1:
            inferred += 1
            ok = True
        elif dim == 0:
            ok = allowzero is None or allowzero.as_int() == 0  # copies the reduced tensor's dim
        else:
            ok = _same_dim(dim, position, value, sources)
        if not ok or inferred > 1:
            return None
    return [*nodes, user]


def _identity_expand(
    user: NodeView, value: ValueView, sources: _Sources, rank: int, count: int
) -> list[NodeView] | None:
    """Nodes of an Expand whose target is, at every position, 1 or the dim the tensor already has."""
    if user.inputs[0] is not value or len(user.inputs) < 2 or user.inputs[1] is None:
        return None
    dims, nodes = shape_tensors.dims_of(user.inputs[1])
    if dims is None or len(dims) != rank:
        return None
    for position, dim in enumerate(dims):
        if dim != 1 and (position >= rank - count or not _same_dim(dim, position, value, sources)):
            return None
    return [*nodes, user]


def _divide_by_count(
    user: NodeView, value: ValueView, source: ValueView, axes: list[int], rank: int | None
) -> MatchResult[list[NodeView]] | None:
    """``[Div(value, N)]`` or ``[Mul(value, 1/N)]`` where N is the number of reduced elements.

    ``rank`` is ``value``'s own rank (the reduced axes dropped or not): N may not raise it. None when
    ``user`` is no such division; a failure (with the step as ``partial``) when it divides by a
    constant but the reduced dims are not known, so N cannot be proved.
    """
    if not is_op(user, "Div", "Mul") or len(user.inputs) != 2:
        return None
    operands = [user.inputs[1]] if is_op(user, "Div") and user.inputs[0] is value else []
    if is_op(user, "Mul"):
        operands = [other for operand, other in gu.operand_pairs(user) if operand is value]
    constants = [c for o in operands if (c := gu.scalar_constant(o, rank)) is not None]
    if not constants:
        held = next((o for o in operands if gu.overridable(o)), None)
        if held is not None:
            return MatchResult.failure(f"the divisor {held.name!r} {gu.OVERRIDABLE}", held, partial=[user])
        return None
    dims = gu.static_dims(source, axes)
    if dims is None or rank is None:
        return MatchResult.failure(UNPROVEN_COUNT, source, partial=[user])
    elements = math.prod(dims)
    if is_op(user, "Div"):
        return MatchResult.success([user]) if constants[0] == elements else None
    if any(abs(factor * elements - 1.0) <= 1e-6 for factor in constants):
        return MatchResult.success([user])
    return None


# The reduced tensor, and a tensor of the same shape (or None).
_Sources = tuple[ValueView, ValueView | None]


# A dim is ("dim", tensor, position) when read from a Shape, or an int when written as a literal.
def _same_dim(dim: Dim, position: int, value: ValueView, sources: _Sources) -> bool:
    """True when ``dim`` is, for sure, dim ``position`` of the reduced tensor (the same in its source)."""
    source, like = sources
    if isinstance(dim, tuple):
        tensor, index = dim
        if index != position:
            return False
        root = shape_tensors.root(tensor)
        return any(t is not None and shape_tensors.root(t) is root for t in (value, source, like))
    rank = gu.rank_of(source)
    static = gu.static_dims(source, [position - rank]) if rank is not None else None
    return static is not None and static[0] == dim


MOMENT_VARIANCE = (
    "this mean of squares is the E[x²] of a variance written as E[x²] − E[x]², not an RMSNorm's "
    "(the LayerNorm pass takes that variance)"
)


def _square_of(node: NodeView, base: ValueView) -> bool:
    """True for ``Mul(base, base)`` or ``Pow(base, 2)``."""
    if is_op(node, "Mul") and len(node.inputs) == 2:
        return node.inputs[0] is base and node.inputs[1] is base
    return is_op(node, "Pow") and node.inputs[0] is base and gu.scalar_constant(node.inputs[1], 1) == 2.0


def in_moment_difference(value: ValueView) -> bool:
    """True when ``value`` (a mean of squares, or a mean) takes part in ``E[x²] − E[x]²``.

    For a mean of squares: it is the minuend of a Sub whose subtrahend squares a mean. For a mean: its
    square is the subtrahend of such a Sub.
    """
    for user in value.consumers():
        if is_op(user, "Sub") and user.inputs[0] is value and user.inputs[1] is not None:
            square = user.inputs[1].producer()
            base = square.inputs[0] if square is not None else None
            if square is not None and base is not None and _square_of(square, base) and traced_mean(base):
                return True
        if _square_of(user, value):
            if any(is_op(s, "Sub") and s.inputs[1] is user.outputs[0] for s in user.outputs[0].consumers()):
                return True
    return False
