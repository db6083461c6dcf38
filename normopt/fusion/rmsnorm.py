"""RMSNorm pass: root-mean-square normalization → one RMSNormalization / SimplifiedLayerNormalization.

Pattern (every spelling of the tail is in ``norm_match``)::

    x ─► Pow(x, 2) | Mul(x, x) ─► ReduceMean(axes) ─► v ─► +ε ─► 1/√ ─► x·(1/√) ─► [Cast] ─► γ

``x`` is often ``Cast(x16, to=float)`` in fp16 Hugging Face models, with a Cast back before γ; the fused
node then reads ``x16`` directly. A square of ``x − mean(x)`` belongs to the LayerNorm pass and is skipped.
"""

from __future__ import annotations

import onnx_ir as ir

from normopt.fusion import graph_utils as gu
from normopt.fusion.base import NormPass
from normopt.fusion.layernorm import square_of
from normopt.fusion.norm_match import NormMatch, Refusal, finish, match_tail, trailing_reduction


def _is_centred(value: ir.Value) -> bool:
    cast = gu.producer(value, "Cast")
    if cast is not None and cast.inputs[0] is not None:
        value = cast.inputs[0]
    sub = gu.producer(value, "Sub")
    if sub is None:
        return False
    mean = gu.producer(sub.inputs[1], "ReduceMean")
    return mean is not None and gu.same_value(mean.inputs[0], sub.inputs[0])


class RMSNormPass(NormPass):
    """Fuses decomposed RMSNorm, anchored on each ``ReduceMean`` of a square."""

    kind = "RMSNorm"
    anchor_op = "ReduceMean"

    def match(self, anchor: ir.Node) -> list[NormMatch | Refusal]:
        """The RMSNorm candidate whose mean of squares is this ReduceMean, if it is one."""
        square = anchor.inputs[0].producer() if anchor.inputs[0] is not None else None
        if square is None or square.op_type not in ("Pow", "Mul") or square.domain not in ("", "ai.onnx"):
            return []
        x = square.inputs[0]
        if x is None or _is_centred(x):
            return []
        try:
            if square not in square_of(x, lambda v: gu.same_value(v, x)):
                return []
        except Refusal as refusal:
            return [refusal]
        try:
            return [self._match(anchor, square, x)]
        except Refusal as refusal:
            return [refusal]

    def _match(self, anchor: ir.Node, square: ir.Node, x: ir.Value) -> NormMatch:
        _, count = trailing_reduction(anchor, x, "mean of squares")
        n, form, eps, eps_dtype, tail = match_tail(anchor.outputs[0], lambda v: gu.same_value(v, x))
        nodes = [square, anchor, *tail]
        return finish(x, n, count, eps, f"rmsnorm/{form}", nodes, eps_dtype, allow_bias=False)
