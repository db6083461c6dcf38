"""LayerNorm pass: decomposed mean/variance normalization → one LayerNormalization node.

Pattern (every spelling of the tail is in ``norm_match``)::

    x ─► ReduceMean(axes) ─► μ
    x, μ ─► Sub ─► d ─► Pow(d, 2) | Mul(d, d) ─► ReduceMean(axes) ─► v ─► +ε ─► 1/√ ─► d·(1/√) ─► γ, β

Gates (each refusal carries its reason): keepdims 1; the same trailing axes for both means; the mean
subtracted is the mean of the same x; exponent exactly 2; the variance is the biased mean of squares
(``torch.std``/``var(unbiased=True)`` divide by N−1 and are refused); ε inside the square root.
"""

from __future__ import annotations

from collections.abc import Callable

import onnx_ir as ir

from normopt.fusion import graph_utils as gu
from normopt.fusion.base import NormPass
from normopt.fusion.norm_match import NormMatch, Refusal, finish, match_tail, trailing_reduction


def square_of(value: ir.Value, is_base: Callable[[ir.Value], bool]) -> list[ir.Node]:
    """Nodes reading ``value`` that square it: ``Pow(v, 2)`` or ``Mul(v, v')`` with v' the same tensor.

    Raises:
        Refusal: When the only power taken has an exponent other than 2.

    """
    squares: list[ir.Node] = []
    wrong_exponent: float | None = None
    for user in value.consumers():
        if user.op_type == "Pow" and user.inputs[0] is value:
            exponent = gu.scalar_constant(user.inputs[1])
            if exponent == 2.0:
                squares.append(user)
            elif exponent is not None:
                wrong_exponent = exponent
        elif user.op_type == "Mul" and len(user.inputs) == 2:
            a, b = user.inputs
            if a is None or b is None:
                continue
            if (a is value and is_base(b)) or (b is value and is_base(a)):
                squares.append(user)
    if not squares and wrong_exponent is not None:
        raise Refusal(f"power with exponent {wrong_exponent:g}, not a square")
    return squares


class LayerNormPass(NormPass):
    """Fuses decomposed LayerNorm, anchored on each ``Sub(x, ReduceMean(x))``."""

    kind = "LayerNorm"
    anchor_op = "ReduceMean"

    def match(self, anchor: ir.Node) -> list[NormMatch | Refusal]:
        """Every LayerNorm candidate centred by this ReduceMean (one per distinct subtraction)."""
        mean = anchor.outputs[0]
        x = anchor.inputs[0]
        subs = [u for u in mean.consumers() if u.op_type == "Sub" and u.inputs[1] is mean]
        if x is None or not subs:
            return []
        centred = [s for s in subs if gu.same_value(s.inputs[0], x)]
        if not centred:
            return [Refusal("the mean is subtracted from a different tensor than it was taken of")]
        try:
            return [self._match_centred(anchor, x, centred)]
        except Refusal as refusal:
            return [refusal]

    def _match_centred(self, anchor: ir.Node, x: ir.Value, subs: list[ir.Node]) -> NormMatch:
        axes, count = trailing_reduction(anchor, x, "mean")
        centred = [s.outputs[0] for s in subs]
        centred += [c.outputs[0] for d in centred for c in d.consumers() if _is_float_cast(c)]
        centred_values = {id(v) for v in centred}

        def is_centred(value: ir.Value) -> bool:
            return id(value) in centred_values

        for value in centred:
            for square in square_of(value, is_centred):
                variance_node = gu.only_consumer(square.outputs[0])
                if variance_node is None or variance_node.op_type != "ReduceMean":
                    raise Refusal("variance is not the mean of squares (unbiased var/std divides by N-1)")
                v_axes, v_keep, reason = gu.reduce_axes(variance_node, gu.rank_of(x))
                if reason or v_axes is None:
                    raise Refusal(reason or "variance axes unknown")
                if v_keep != 1:
                    raise Refusal("variance taken with keepdims=0 (reduced axis dropped)")
                if _canonical(v_axes, x) != _canonical(axes, x):
                    raise Refusal(f"mean over axes {axes} but variance over axes {v_axes}")
                n, form, eps, eps_dtype, tail = match_tail(variance_node.outputs[0], is_centred)
                casts = [v.producer() for v in centred if v.producer() not in subs]
                nodes = [anchor, *subs, *[c for c in casts if c is not None], square, variance_node, *tail]
                cast = any(c is not None for c in casts)  # then ε's dtype says nothing about x's
                return finish(x, n, count, eps, f"layernorm/{form}", nodes, eps_dtype, casts_input=cast)
        raise Refusal("the centred tensor is never squared")


def _is_float_cast(node: ir.Node) -> bool:
    to = node.attributes.get("to") if node.op_type == "Cast" else None
    return to is not None and ir.DataType(to.as_int()) in gu.FLOAT_TYPES


def _canonical(axes: list[int], x: ir.Value) -> list[int]:
    rank = gu.rank_of(x)
    if rank is None:
        return sorted(axes)
    return sorted(a + rank if a < 0 else a for a in axes)
