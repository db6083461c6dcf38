"""The tail every decomposed norm shares: variance → ε → inverse square root → the normalized value.

Both families end the same way once the mean of squares ``v`` is known::

    v ─► Add(ε) ─► Sqrt ──────────────► Div(num, ·) ─┐
                 ├► Sqrt ─► Reciprocal ─► Mul(num, ·) ┤
                 ├► Sqrt ─► Div(1, ·) ──► Mul(num, ·) ┤─► n
                 └► Pow(·, -0.5) ───────► Mul(num, ·) ┘

``num`` is ``x − μ`` for LayerNorm and ``x`` for RMSNorm; the caller says which values qualify. ε may sit
on either side of the Add and be an initializer, a Constant node or ``Constant(value_float)``, scalar or
[1]; one a caller can override is refused with its name.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from normopt.engines.views import NodeView, ValueView
from normopt.fusion import graph_utils as gu
from normopt.fusion import ranks
from normopt.fusion.means import RESCALED_VARIANCE
from normopt.fusion.outcome import Refusal
from normopt.ops import is_op


def rank_floor(value: ValueView) -> int:
    """The rank ``value`` has, or 1 (a mean with keepdims over at least one axis) when unknown."""
    return max(ranks.rank(value) or 1, 1)


@dataclass(frozen=True)
class _Epsilon:
    """The Add of ε to the variance, ε's value, and the dtype it is written in."""

    add: NodeView
    value: float
    dtype: ir.DataType | None


def _epsilon_add(variance: ValueView) -> _Epsilon:
    held: ValueView | None = None  # an ε a caller may override: named in the refusal
    for user in variance.consumers():
        if not is_op(user, "Add"):
            continue
        for operand, other in gu.operand_pairs(user):
            if operand is variance:
                eps = gu.scalar_constant(other, rank_floor(variance))
                if eps is not None and math.isfinite(eps) and eps >= 0:
                    eps_dtype = gu.dtype_of(other)
                    _check_epsilon_survives(eps, eps_dtype, other)
                    return _Epsilon(user, eps, eps_dtype)
                if held is None and gu.overridable(other):
                    held = other
    if held is not None:
        raise Refusal(f"epsilon {held.name!r} {gu.OVERRIDABLE}", held)
    for user in variance.consumers():
        if is_op(user, "Sqrt"):
            after_sqrt = list(user.outputs[0].consumers())
            after_sqrt += [a for c in after_sqrt if is_op(c, "Cast") for a in c.outputs[0].consumers()]
            if any(is_op(after, "Add") for after in after_sqrt):
                raise Refusal("epsilon is added outside the square root: (x-mean)/(std+eps)", variance)
    if any(is_op(user, "Mul", "Div") for user in variance.consumers()):
        raise Refusal(RESCALED_VARIANCE, variance)
    raise Refusal("no constant epsilon Add after the variance", variance)


def _check_epsilon_survives(eps: float, dtype: ir.DataType | None, value: ValueView) -> None:
    """Refuse an ε that the fused op's float32 ``epsilon`` attribute cannot hold to its own precision.

    An ε of the compute type float16/bfloat16/float32 converts exactly; a float64 ε must round to a
    float32 within float32's relative precision (1e-50 underflows to 0, and all-zero rows then give NaN).
    """
    if eps == 0.0 or dtype in (ir.DataType.FLOAT, ir.DataType.FLOAT16, ir.DataType.BFLOAT16):
        return
    with np.errstate(all="ignore"):
        stored = float(np.float32(eps))
    if stored == 0.0 or not math.isfinite(stored) or abs(stored - eps) > eps * 2.0**-23:
        raise Refusal(f"epsilon {eps:g} does not survive the float32 epsilon attribute (it becomes {stored:g})", value)


def _is_exponent(value: ValueView | None, exponent: float, base: ValueView) -> bool:
    found = gu.scalar_constant(value, rank_floor(base))
    return found is not None and found == exponent


@dataclass(frozen=True)
class _InverseSqrt:
    """A value computing √(var+ε) (``divides``: the numerator is divided by it) or 1/√(var+ε)."""

    form: str
    value: ValueView
    nodes: list[NodeView]
    divides: bool


def _inverse_sqrt_steps(var_eps: ValueView) -> list[_InverseSqrt]:
    """Every value reachable from var+ε that computes sqrt or 1/sqrt of it."""
    steps: list[_InverseSqrt] = []
    for user in var_eps.consumers():
        out = user.outputs[0]
        is_pow = is_op(user, "Pow") and user.inputs[0] is var_eps
        if is_op(user, "Sqrt") or (is_pow and _is_exponent(user.inputs[1], 0.5, var_eps)):
            sqrt_form = "sqrt" if is_op(user, "Sqrt") else "pow-half"
            steps.append(_InverseSqrt(f"div-{sqrt_form}", out, [user], True))
            for after in out.consumers():
                if is_op(after, "Reciprocal"):
                    steps.append(_InverseSqrt(f"mul-reciprocal-{sqrt_form}", after.outputs[0], [user, after], False))
                elif is_op(after, "Div") and after.inputs[1] is out and _is_exponent(after.inputs[0], 1.0, out):
                    steps.append(_InverseSqrt(f"mul-div-one-{sqrt_form}", after.outputs[0], [user, after], False))
        elif is_pow and _is_exponent(user.inputs[1], -0.5, var_eps):
            steps.append(_InverseSqrt("mul-pow-neg-half", out, [user], False))
    return steps


@dataclass(frozen=True)
class Tail:
    """A norm's tail from the ε Add to the normalized value.

    Attributes:
        n: The normalized value (numerator scaled by 1/√(var+ε)).
        form: Spelling of the inverse square root, for the rule name.
        epsilon: ε's value.
        epsilon_dtype: The dtype the core computes in (Add binds both operands to one), known even where
            values carry no types, as inside functions.
        nodes: From the ε Add to ``n``.

    """

    n: ValueView
    form: str
    epsilon: float
    epsilon_dtype: ir.DataType | None
    nodes: list[NodeView]


def match_tail(variance: ValueView, is_numerator: Callable[[ValueView], bool]) -> Tail:
    """Follow a mean of squares down to the normalized value ``n``.

    Args:
        variance: Output of the ReduceMean over the squares.
        is_numerator: Says whether a value is the tensor being normalized (x−μ or x).

    Raises:
        Refusal: With the reason when the chain is not a norm.

    """
    eps = _epsilon_add(variance)
    steps = _inverse_sqrt_steps(eps.add.outputs[0])
    if not steps:
        raise Refusal("no Sqrt, Reciprocal or Pow(-0.5) of variance+epsilon", eps.add.outputs[0])
    for step in steps:
        for user in step.value.consumers():
            found = False
            if step.divides:
                numerator = user.inputs[0]
                found = (
                    is_op(user, "Div")
                    and user.inputs[1] is step.value
                    and numerator is not None
                    and is_numerator(numerator)
                )
            elif is_op(user, "Mul"):
                found = any(operand is step.value and is_numerator(other) for operand, other in gu.operand_pairs(user))
            if found:
                return Tail(user.outputs[0], step.form, eps.value, eps.dtype, [eps.add, *step.nodes, user])
    raise Refusal("the inverse square root does not scale the same tensor the variance came from", variance)
