"""The variance written as E[x²] − E[x]² (the ONNX LayerNormalization-17 and GroupNormalization-21 bodies, Flax).

Pattern, beside the mean ``μ = E[x]`` a LayerNorm candidate is centred by::

    x ─► Mul(x, x) | Pow(x, 2) ─► ReduceMean(axes) ─► E[x²] ─┐
    μ ─► Mul(μ, μ) | Pow(μ, 2) ──────────────────────────────┴► Sub ─► [Relu | Max(·, 0)] ─► v

``v`` is the biased variance of x over the same axes, in exact arithmetic: E[x²] − E[x]² = E[(x − E[x])²]. The
fused ``LayerNormalization`` computes the same function (ONNX Runtime's CPU kernel itself takes it as
E[x²] − E[x]²). Where float rounding tells the two spellings apart — |μ| ≫ σ, where E[x²] − E[x]² cancels and may
even turn negative — the centred form is the closer to the exact value: the fused model is never the worse one.
A clamp at 0 (Flax's ``maximum(0, ·)``) changes nothing a true variance can take, so it is absorbed.

Gates (each refusal names what failed): E[x]² squares this very mean; E[x²] is a mean (1/N proved like any
other) of the square of the same x, over the same axes; the clamp, if any, is at exactly 0.
"""

from __future__ import annotations

from normopt.engines.views import NodeView, ValueView
from normopt.fusion import casts, means, ranks
from normopt.fusion import graph_utils as gu
from normopt.fusion.outcome import Refusal
from normopt.ops import is_op


def _square(node: NodeView) -> ValueView | None:
    """The base of ``Mul(b, b)`` or ``Pow(b, 2)``, else None."""
    if is_op(node, "Mul") and len(node.inputs) == 2 and node.inputs[0] is node.inputs[1]:
        return node.inputs[0]
    if is_op(node, "Pow") and len(node.inputs) == 2 and node.inputs[0] is not None:
        rank = max(gu.rank_of(node.inputs[0]) or 1, 1)
        return node.inputs[0] if gu.scalar_constant(node.inputs[1], rank) == 2.0 else None
    return None


def _clamp_at_zero(value: ValueView) -> NodeView | None:
    """The only reader of ``value`` when it is ``Relu(value)`` or ``Max(value, 0)`` (0 a true constant)."""
    readers = list(value.consumers())
    if len(readers) != 1 or gu.is_graph_output(value):
        return None
    (node,) = readers
    if is_op(node, "Relu") and node.inputs[0] is value:
        return node
    if is_op(node, "Max") and len(node.inputs) == 2:
        others = [b for a, b in gu.operand_pairs(node) if a is value]
        rank = max(gu.rank_of(value) or 1, 1)
        if others and gu.scalar_constant(others[0], rank) == 0.0:
            return node
    return None


def moment_variance(chain: means.MeanChain, x: ValueView) -> tuple[ValueView, list[NodeView]] | None:
    """The variance ``v`` spelled E[x²] − E[x]² with E[x] = ``chain``, and its nodes; None if μ is never squared.

    Raises:
        Refusal: μ² is subtracted from something, but it is not provably the mean of x² over the same axes.

    """
    mean = chain.value
    for squaring in mean.consumers():
        if _square(squaring) is not mean:
            continue
        squared = squaring.outputs[0]
        for sub in squared.consumers():
            if not is_op(sub, "Sub") or sub.inputs[1] is not squared or sub.inputs[0] is None:
                continue
            second = means.traced_mean(sub.inputs[0])
            if second is None:
                raise Refusal("E[x]² is subtracted from something that is not a mean (no E[x²] − E[x]²)", sub.inputs[0])
            square = second.source.producer()
            base = _square(square) if square is not None else None
            if square is None or base is None or not casts.same_data(base, x):
                raise Refusal("E[·²] − E[x]² takes the mean of squares of a different tensor than x", second.source)
            followed = means.follow_mean(second.reduce, "variance", shaped_like=x)
            if not followed or followed.reached is None or followed.reached.value is not sub.inputs[0]:
                raise Refusal(followed.reason or "E[x²] is not a mean of x² (no E[x²] − E[x]²)", second.source)
            if ranks.canonical_axes(second.axes, x) != ranks.canonical_axes(chain.axes, x):
                raise Refusal(f"E[x] over axes {chain.axes} but E[x²] over axes {second.axes}", second.source)
            nodes = [square, *followed.reached.nodes, squaring, sub]
            clamp = _clamp_at_zero(sub.outputs[0])
            if clamp is not None:
                nodes.append(clamp)
            return (clamp or sub).outputs[0], nodes
    return None
