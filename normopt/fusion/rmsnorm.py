"""RMSNorm pass: root-mean-square normalization → one RMSNormalization / SimplifiedLayerNormalization.

Pattern (every spelling of the tail is in ``norm_match``)::

    x ─► Pow(x, 2) | Mul(x, x) ─► ReduceMean(axes) ─► v ─► +ε ─► 1/√ ─► x·(1/√) ─► [Cast] ─► γ

``x`` is often ``Cast(x16, to=float)`` in fp16 Hugging Face models, with a Cast back before γ; the fused
node then reads ``x16`` directly. A square of ``x − mean(x)`` belongs to the LayerNorm pass and is skipped.
"""

from __future__ import annotations

from normopt.engines.views import NodeView, ValueView
from normopt.fusion import casts, means
from normopt.fusion import graph_utils as gu
from normopt.fusion.base import NormPass
from normopt.fusion.layernorm import square_of
from normopt.fusion.norm_match import NormMatch, match_with_affine
from normopt.fusion.outcome import MatchResult, Refusal
from normopt.fusion.tail import match_tail
from normopt.ops import is_op


def _is_centred(value: ValueView) -> bool:
    """True for ``x − mean(x)`` (possibly Cast): the LayerNorm pass owns squares of it."""
    cast = gu.producer(value, "Cast")
    if cast is not None and cast.inputs[0] is not None:
        value = cast.inputs[0]
    sub = gu.producer(value, "Sub")
    if sub is None:
        return False
    chain = means.traced_mean(sub.inputs[1])
    return chain is not None and casts.same_data(chain.source, sub.inputs[0])


class RMSNormPass(NormPass):
    """Fuses decomposed RMSNorm, anchored on each mean (ReduceMean, or ReduceSum / N) of a square."""

    kind = "RMSNorm"
    anchor_ops = means.REDUCTIONS

    def match(self, anchor: NodeView) -> list[MatchResult[NormMatch]]:
        """The RMSNorm candidate whose mean of squares is this reduction, if it is one."""
        summed = anchor.inputs[0]
        if summed is None:
            return []
        base = casts.widened_root(summed)  # the square taken in fp16, summed in float32 (a lossless Cast only)
        upcast = summed.producer() if base is not summed else None
        square = base.producer()
        if square is None or not is_op(square, "Pow", "Mul"):
            return []
        x = square.inputs[0]
        if x is None or _is_centred(x):
            return []
        followed = means.follow_mean(anchor, "mean of squares", shaped_like=x)
        if followed.reached is None:
            return []
        try:
            if square not in square_of(x, lambda v: gu.same_value(v, x)):
                return []
            if followed.found is None:
                return [MatchResult.failed_like(followed)]
            return [
                MatchResult.success(self._match(followed.found, [square] if upcast is None else [square, upcast], x))
            ]
        except Refusal as refusal:
            return [MatchResult.refused(refusal)]

    def _match(self, chain: means.MeanChain, squares: list[NodeView], x: ValueView) -> NormMatch:
        if means.in_moment_difference(chain.value):
            raise Refusal(means.MOMENT_VARIANCE, chain.value)
        tail = match_tail(chain.value, lambda v: casts.same_data(v, x))
        nodes = [*squares, *chain.nodes, *tail.nodes]
        rule = f"rmsnorm/{tail.form}"
        return match_with_affine(
            x, tail.n, chain.count, tail.epsilon, rule, nodes, tail.epsilon_dtype, allow_bias=False
        )
