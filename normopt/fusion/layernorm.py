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
from normopt.fusion import means
from normopt.fusion.base import NormPass
from normopt.fusion.norm_match import NormMatch, Refusal, finish, match_tail


def square_of(value: ir.Value, is_base: Callable[[ir.Value], bool]) -> list[ir.Node]:
    """Nodes reading ``value`` that square it: ``Pow(v, 2)`` or ``Mul(v, v')`` with v' the same tensor.

    Raises:
        Refusal: When the only power taken has an exponent other than 2.

    """
    squares: list[ir.Node] = []
    wrong_exponent: float | None = None
    for user in value.consumers():
        if user.op_type == "Pow" and user.inputs[0] is value:
            exponent = gu.scalar_constant(user.inputs[1], max(gu.rank_of(value) or 1, 1))
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
    """Fuses decomposed LayerNorm, anchored on each mean ``μ`` that some ``Sub(x, μ)`` reads."""

    kind = "LayerNorm"
    anchor_ops = means.REDUCTIONS

    def match(self, anchor: ir.Node) -> list[NormMatch | Refusal]:
        """The LayerNorm candidate centred by this mean (its subtractions, and its twins' if needed)."""
        if anchor.inputs[0] is None:
            return []
        chain = means.follow(anchor, "mean")
        subs = _subtractions(chain) if chain.is_mean else []
        if not subs:
            return []
        x = chain.source
        centred = [s for s in subs if means.same_data(s.inputs[0], x)]
        if not centred:
            return [Refusal("the mean is subtracted from a different tensor than it was taken of")]
        try:
            if chain.problem:
                raise Refusal(chain.problem)
            return [self._match_centred(chain, x, centred, [])]
        except Refusal as refusal:
            first = refusal
        twins, led = _twins(chain, x)
        if twins and not chain.problem:
            try:  # the mean is computed twice (x.var() beside x.mean()): the centred tensors are the same
                return [self._match_centred(chain, x, centred, twins)]
            except Refusal as refusal:
                first = refusal  # it got further: its reason is the one that explains
        return [] if led else [first]

    def _match_centred(self, chain: means.MeanChain, x: ir.Value, subs: list[ir.Node], twins: list[_Twin]) -> NormMatch:
        subs = [*subs, *(s for _, twin_subs in twins for s in twin_subs)]
        centred = [s.outputs[0] for s in subs]
        centred += [c.outputs[0] for d in centred for c in d.consumers() if means.is_float_cast(c)]
        centred_values = {id(v) for v in centred}

        def is_centred(value: ir.Value) -> bool:
            return id(value) in centred_values

        for value in centred:
            for square in square_of(value, is_centred):
                reducer = means.next_user(square.outputs[0])  # a Shape of the square may spell the restore
                variance = (
                    means.follow(reducer, "variance", like=x)
                    if reducer is not None and _is_reduction(reducer)
                    else None
                )
                if variance is None or not variance.is_mean:
                    raise Refusal("variance is not the mean of squares (unbiased var/std divides by N-1)")
                if variance.axes and _canonical(variance.axes, x) != _canonical(chain.axes, x):
                    raise Refusal(f"mean over axes {chain.axes} but variance over axes {variance.axes}")
                if variance.problem:
                    raise Refusal(variance.problem)
                n, form, eps, eps_dtype, tail = match_tail(variance.value, is_centred)
                casts = [v.producer() for v in centred if v.producer() not in subs]
                twin_nodes = [node for twin, _ in twins for node in twin.nodes]
                nodes = [
                    *means.round_trip(chain.source)[1], *chain.nodes, *twin_nodes, *subs,
                    *[c for c in casts if c is not None], square, *variance.nodes, *tail,
                ]  # fmt: skip
                # a Cast between x and the statistics: ε's dtype then says nothing about x's
                cast = any(c is not None for c in casts) or any(t.source is not x for t, _ in twins)
                minuend = _numerator_minuend(tail[-1], is_centred) if any(s.inputs[0] is not x for s in subs) else x
                if minuend is not None and not gu.same_value(minuend, x):
                    x, cast = minuend, True  # x16 − mean(float(x16)): normalize what is scaled
                return finish(x, n, chain.count, eps, f"layernorm/{form}", nodes, eps_dtype, casts_input=cast)
        raise Refusal("the centred tensor is never squared")


_Twin = tuple[means.MeanChain, list[ir.Node]]


def _subtractions(chain: means.MeanChain) -> list[ir.Node]:
    """``Sub(·, μ)`` nodes reading the mean this chain ends in."""
    mean = chain.value
    return [u for u in mean.consumers() if u.op_type == "Sub" and u.domain in ("", "ai.onnx") and u.inputs[1] is mean]


def _twins(chain: means.MeanChain, x: ir.Value) -> tuple[list[_Twin], bool]:
    """Other means of ``x`` over the same axes that something is centred by, and whether one leads.

    ``x`` here includes exact float Casts of it and what it is an exact Cast of. Exporters write ``x.var()``
    beside ``x.mean()`` as two reductions of x (the dynamo exporter's fp16 ``var`` one of them on
    ``Cast(x, float)``); the subtractions of either are the same tensor, up to precision. A twin that
    comes first among the readers leads the group: it reports the group's refusal, so a look-alike
    is one candidate, not two.
    """
    root = means.widened_root(x)
    readers: list[tuple[ir.Node, ir.Node | None]] = []
    for user in gu.consumers(root):
        readers.append((user, None))
        if means.is_float_cast(user):
            readers.extend((inner, user) for inner in gu.consumers(user.outputs[0]))
    twins: list[_Twin] = []
    led = False
    seen_self = False
    for user, via in readers:
        if user is chain.reduce:
            seen_self = True
            continue
        if not _is_reduction(user) or user.graph is not chain.reduce.graph:
            continue
        twin = means.follow(user, "mean")
        if not twin.is_mean or twin.problem or not means.same_data(twin.source, x):
            continue
        if _canonical(twin.axes, x) != _canonical(chain.axes, x):
            continue
        subs = [s for s in _subtractions(twin) if means.same_data(s.inputs[0], twin.source)]
        if subs:
            if via is not None:
                twin.nodes.insert(0, via)
            twins.append((twin, subs))
            led = led or not seen_self
    return twins, led


def _numerator_minuend(scaling: ir.Node, is_centred: Callable[[ir.Value], bool]) -> ir.Value | None:
    """The ``x`` of the ``x − μ`` (possibly Cast) that ``scaling`` (the Div or Mul of the tail) reads."""
    operands = [scaling.inputs[0]] if scaling.op_type == "Div" else list(scaling.inputs)
    for operand in operands:
        if operand is None or not is_centred(operand):
            continue
        node = operand.producer()
        if node is not None and node.op_type == "Cast" and node.inputs[0] is not None:
            node = node.inputs[0].producer()
        if node is not None and node.op_type == "Sub":
            return node.inputs[0]
    return None


def _is_reduction(node: ir.Node) -> bool:
    return node.op_type in means.REDUCTIONS and node.domain in ("", "ai.onnx") and node.inputs[0] is not None


def _canonical(axes: list[int], x: ir.Value) -> list[int]:
    rank = gu.rank_of(x)
    if rank is None:
        return sorted(axes)
    return sorted(a + rank if a < 0 else a for a in axes)
