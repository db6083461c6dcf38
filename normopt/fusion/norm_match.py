"""The affine end every decomposed norm shares, and the proofs that finish a match into a ``NormMatch``.

Once ``tail.match_tail`` has found the normalized value ``n``::

    n ─► [Cast | Identity] ─► [Mul γ] ─► [Cast | Identity] ─► [Add β] ─► y

γ and β are absorbed when constant and shaped as the normalized dims (``finish`` proves it), or kept as
runtime inputs of the fused op. A Cast may sit anywhere in the scale/shift chain (fp16 models computing
in float32).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir

from normopt.engines.views import NodeView, ValueView
from normopt.fusion import casts, ranks
from normopt.fusion import graph_utils as gu
from normopt.fusion.dims import trailing_dims as proven_dims
from normopt.fusion.outcome import Refusal
from normopt.ops import is_op

__all__ = ["NormMatch", "Refusal", "constant_array", "constant_producers", "match_with_affine"]


@dataclass
class NormMatch:
    """A matched norm, ready to be rewritten.

    Attributes:
        x: Value the norm reads (before any Cast to float32 that the pattern starts with).
        y: Value the fused node replaces.
        axes: Number of trailing axes normalized.
        epsilon: ε as the model computes it (read in its own dtype).
        scale: Constant γ value (possibly a Cast of a constant), or None.
        bias: Constant β value (possibly a Cast of a constant), or None.
        dtype: Element type of ``x`` and of the fused node's output.
        rule: Variant name for statistics, e.g. ``layernorm/mul-reciprocal-sqrt``.
        nodes: Every node of the pattern (removed once nothing else reads their outputs).

    """

    x: ValueView
    y: ValueView
    axes: int
    epsilon: float
    scale: ValueView | None
    bias: ValueView | None
    dtype: ir.DataType
    rule: str
    nodes: list[NodeView] = field(default_factory=list)


@dataclass
class _Affine:
    value: ValueView
    after_cast: bool
    node: NodeView

    @property
    def runtime(self) -> bool:
        """A γ/β computed at run time or fed by the caller (the fused op takes it as an input, unchanged)."""
        return not gu.is_constant(self.value)


@dataclass
class _AffineChain:
    """The Cast / Mul(γ) / Add(β) nodes after the normalized value, in order."""

    nodes: list[NodeView]
    cast: NodeView | None
    scale: _Affine | None
    bias: _Affine | None


def _affine_chain(n: ValueView, allow_bias: bool) -> _AffineChain:
    """Walk Cast / Mul(γ) / Add(β) after ``n`` while each value has exactly one reader."""
    nodes: list[NodeView] = []
    cast: NodeView | None = None
    scale: _Affine | None = None
    bias: _Affine | None = None
    current = n
    while True:
        user = gu.only_consumer(current)
        if user is None:
            break
        if _value_preserving(user, current):  # Identity, or a Cast to the type the value already has
            nodes.append(user)
            current = user.outputs[0]
            continue
        if is_op(user, "Cast") and cast is None:
            to = user.attributes.get("to")
            if to is None or ir.DataType(to.as_int()) not in gu.FLOAT_TYPES:
                break
            cast = user
        elif is_op(user, "Mul", "Add") and len(user.inputs) == 2:
            if is_op(user, "Mul") and (scale is not None or bias is not None):
                break
            if is_op(user, "Add") and (bias is not None or not allow_bias):
                break
            other = next((o for v, o in gu.operand_pairs(user) if v is current), None)
            if other is None or not (gu.is_constant(other) or gu.static_shape(other) is not None):
                break
            affine = _Affine(other, after_cast=cast is not None, node=user)
            if is_op(user, "Mul"):
                scale = affine
            else:
                bias = affine
        else:
            break
        nodes.append(user)
        current = user.outputs[0]
    return _AffineChain(nodes, cast, scale, bias)


def _value_preserving(node: NodeView, value: ValueView) -> bool:
    """True for ``Identity`` and for a Cast to the element type ``value`` already has.

    The legacy exporter writes float→float Casts before γ: the chain walks through them, so γ and β are
    absorbed (an all-ones scale beside a separate ``Mul(γ)`` would leave the next tool worse off).
    """
    if is_op(node, "Identity"):
        return True
    to = node.attributes.get("to") if is_op(node, "Cast") else None
    return to is not None and gu.dtype_of(value) is not None and ir.DataType(to.as_int()) == gu.dtype_of(value)


def _check_affine_shape(affine: _Affine, axes: int, x: ValueView, what: str) -> None:
    value = affine.value
    if affine.runtime:  # taken as it is: exactly the normalized dims, no broadcasting to rewrite
        dims = proven_dims(x, axes) if (ranks.rank(x) or 0) >= axes else None
        if dims is None or gu.static_shape(value) != dims:
            raise Refusal(f"{what} computed at run time is not of the normalized dims' static shape")
        return
    shape = gu.constant_shape(value)
    if shape is None:
        raise Refusal(f"{what} shape is unknown")
    stripped = list(shape)
    while stripped and stripped[0] == 1 and len(stripped) > axes:
        stripped.pop(0)
    if len(stripped) > axes:
        raise Refusal(f"{what} of shape {list(shape)} varies over axes that are not normalized")
    rank = ranks.rank(x)
    if rank is None and len(shape) > axes:
        raise Refusal(f"{what} of shape {list(shape)} may raise the rank of an input of unknown rank")
    if rank is not None and len(shape) > rank:
        raise Refusal(f"{what} of shape {list(shape)} raises the output rank above {rank}")
    dims = proven_dims(x, len(stripped)) if stripped else ()
    if dims is not None and any(s not in (1, d) for s, d in zip(stripped, dims, strict=True)):
        raise Refusal(f"{what} of shape {list(shape)} does not match the normalized dims {list(dims)}")
    if dims is None and any(s != 1 for s in stripped):
        # a normalized dim of unknown size may be 1 at run time: the original broadcasts it against the constant
        raise Refusal(f"{what} of shape {list(shape)} on normalized dims of unknown size (a size-1 input broadcasts)")


def match_with_affine(
    x: ValueView,
    n: ValueView,
    axes: int,
    epsilon: float,
    rule: str,
    nodes: list[NodeView],
    compute_dtype: ir.DataType | None,
    allow_bias: bool = True,
    casts_input: bool = False,
) -> NormMatch:
    """Extend a matched core with its scale/shift chain and settle the dtype of the fused node.

    When the core runs in float32 on a Cast of an fp16/bf16 tensor and the chain casts back to that
    type, the fused node reads the original tensor directly (its stash_type keeps float32 math).
    With ``casts_input`` (a Cast between ``x`` and the statistics) an untyped ``x`` is refused instead of
    being assumed to have the compute dtype.
    """
    affine_chain = _affine_chain(n, allow_bias)
    chain, cast, scale, bias = affine_chain.nodes, affine_chain.cast, affine_chain.scale, affine_chain.bias
    for affine, what in ((scale, "scale"), (bias, "bias")):
        if affine is None:
            continue
        try:
            _check_affine_shape(affine, axes, x, what)
        except Refusal:
            # Not a γ/β of this norm (e.g. it varies over other axes): fuse the norm, leave the op outside.
            chain = chain[: chain.index(affine.node)]
            scale = scale if scale is not None and scale.node in chain else None
            bias = bias if bias is not None and bias.node in chain else None
            cast = cast if cast in chain else None
            break
    x_dtype = gu.dtype_of(x)
    if x_dtype is None and casts_input:
        raise Refusal("element type of the input is unknown and the pattern casts it (no declared type)", x)
    x_dtype = x_dtype or compute_dtype
    if x_dtype is None:
        raise Refusal("element type of the input is unknown", x)
    source = _cast_source(x)
    if source is None and compute_dtype is not None and compute_dtype != x_dtype:
        source = x  # mean taken in x's type, the rest upcast (legacy exporter, fp16 LayerNorm)
    target_dtype = ir.DataType(cast.attributes["to"].as_int()) if cast is not None else None
    shortcut = source is not None and gu.dtype_of(source) == target_dtype
    if shortcut and target_dtype is not None:
        shortcut = all(
            a is None or a.after_cast or (not a.runtime and representable(a.value, target_dtype)) for a in (scale, bias)
        )
    if cast is not None and not shortcut:
        cut = chain.index(cast)
        chain = chain[:cut]
        scale = scale if scale is not None and not scale.after_cast else None
        bias = bias if bias is not None and not bias.after_cast else None
        cast = None
    if cast is not None and source is not None:
        x, x_dtype = source, gu.dtype_of(source) or x_dtype
        rule += "/cast-wrapped"
    elif compute_dtype is not None and compute_dtype != x_dtype:
        raise Refusal(f"computes in {compute_dtype.name} on a {x_dtype.name} input without casting back", x)
    for affine in (scale, bias):  # Mul/Add bind one type to both operands, so this holds in valid models
        if affine is not None and affine.runtime and gu.dtype_of(affine.value) != x_dtype:
            raise Refusal("a scale/bias computed at run time has another element type than the fused input")
    y = chain[-1].outputs[0] if chain else n
    x, round_trip = casts.round_trip(x)  # read x itself, not its exact float64 round trip
    nodes = [*round_trip, *nodes]
    return NormMatch(
        x=x,
        y=y,
        axes=axes,
        epsilon=epsilon,
        scale=scale.value if scale else None,
        bias=bias.value if bias else None,
        dtype=x_dtype,
        rule=rule,
        nodes=[*nodes, *chain],
    )


def constant_array(value: ValueView) -> np.ndarray:
    """Read a constant (initializer, Constant node, or a Cast of one) as numpy, applying the Cast."""
    cast = gu.producer(value, "Cast")
    if cast is not None and cast.inputs[0] is not None:
        to = ir.DataType(cast.attributes["to"].as_int())
        return constant_array(cast.inputs[0]).astype(to.numpy())
    tensor = gu.const_tensor(value)
    if tensor is None:
        raise Refusal(f"{value.name} is not a constant", value)
    return np.asarray(tensor.numpy())


def representable(value: ValueView, dtype: ir.DataType) -> bool:
    """True when the constant ``value`` converts to ``dtype`` and back without change."""
    if gu.dtype_of(value) == dtype:
        return True
    array = constant_array(value)
    converted = array.astype(dtype.numpy())
    return bool(np.array_equal(converted.astype(array.dtype), array))


def _cast_source(x: ValueView) -> ValueView | None:
    """The lower-precision tensor ``x`` was exactly cast up from, if ``x`` is such a Cast.

    Only a widening Cast qualifies (fp16 → float32, float32 → float64): a norm of ``Cast(x32, fp16)``
    computes on rounded data, and reading ``x32`` instead would skip that rounding.
    """
    cast = gu.producer(x, "Cast")
    if cast is None or cast.inputs[0] is None or not casts.is_float_cast(cast):
        return None
    source_dtype = gu.dtype_of(cast.inputs[0])
    target = ir.DataType(cast.attributes["to"].as_int())
    if source_dtype in (ir.DataType.FLOAT16, ir.DataType.BFLOAT16, ir.DataType.FLOAT) and source_dtype != target:
        if casts.fits_exactly(source_dtype, target):
            return cast.inputs[0]
    return None


def constant_producers(nodes: list[NodeView]) -> list[NodeView]:
    """Constant nodes (and Casts of constants) feeding ``nodes``: ε, exponents, axes; producers first.

    Also the int computations of axes from ranks (``gu.computed_ints``: Shape, Size, Range ...). They go
    with the pattern when nothing else reads them.
    """
    found: list[NodeView] = []

    def visit(value: ValueView | None) -> None:
        node = value.producer() if value is not None else None
        if node is None or node in found:
            return
        if is_op(node, "Cast") and gu.is_constant(node.inputs[0]):
            visit(node.inputs[0])
        elif is_op(node, *gu.INT_STEPS) and value is not None and gu.computed_ints(value) is not None:
            inner = gu.producer(node.inputs[0], "Shape") if is_op(node, "Size") and node.inputs[0] else None
            if inner is not None and inner not in found:
                found.append(inner)  # Size(Shape(x)): the Shape goes too, when nothing else reads it
            elif not is_op(node, "Shape", "Size"):
                for operand in node.inputs:
                    visit(operand)
        elif not is_op(node, "Constant"):
            return
        found.append(node)

    for pattern_node in nodes:
        for value in pattern_node.inputs:
            visit(value)
    return found
