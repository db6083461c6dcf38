"""LayerNorm pass: decomposed mean/variance normalization → one LayerNormalization node.

Pattern (every spelling of the tail is in ``norm_match``)::

    x ─► ReduceMean(axes) ─► μ
    x, μ ─► Sub ─► d ─► Pow(d, 2) | Mul(d, d) ─► ReduceMean(axes) ─► v ─► +ε ─► 1/√ ─► d·(1/√) ─► γ, β

Gates (each refusal carries its reason): keepdims 1; the same trailing axes for both means; the mean
subtracted is the mean of the same x; exponent exactly 2; the variance is the biased mean of squares
(``torch.std``/``var(unbiased=True)`` divide by N−1 and are refused); ε inside the square root. Where d is
never squared, ``v`` may be E[x²] − E[x]² of the same x over the same axes (``moments``; rule ``moments+…``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from normopt.engines.views import NodeView, ValueView
from normopt.fusion import casts, means, ranks
from normopt.fusion import graph_utils as gu
from normopt.fusion.base import NormPass
from normopt.fusion.moments import moment_variance
from normopt.fusion.norm_match import NormMatch, match_with_affine
from normopt.fusion.outcome import MatchResult, Refusal
from normopt.fusion.tail import match_tail
from normopt.ops import is_op


def square_of(value: ValueView, is_base: Callable[[ValueView], bool]) -> list[NodeView]:
    """Nodes reading ``value`` that square it: ``Pow(v, 2)`` or ``Mul(v, v')`` with v' the same tensor.

    Raises:
        Refusal: When the only power taken has an exponent other than 2.

    """
    squares: list[NodeView] = []
    wrong_exponent: float | None = None
    for user in value.consumers():
        if is_op(user, "Pow") and user.inputs[0] is value:
            exponent = gu.scalar_constant(user.inputs[1], max(gu.rank_of(value) or 1, 1))
            if exponent == 2.0:
                squares.append(user)
            elif exponent is not None:
                wrong_exponent = exponent
            elif (held := user.inputs[1]) is not None and gu.overridable(held):
                raise Refusal(f"the exponent {held.name!r} {gu.OVERRIDABLE}", held)
        elif is_op(user, "Mul") and len(user.inputs) == 2:
            a, b = user.inputs
            if a is None or b is None:
                continue
            if (a is value and is_base(b)) or (b is value and is_base(a)):
                squares.append(user)
    if not squares and wrong_exponent is not None:
        raise Refusal(f"power with exponent {wrong_exponent:g}, not a square", value)
    return squares


class LayerNormPass(NormPass):
    """Fuses decomposed LayerNorm, anchored on each mean ``μ`` that some ``Sub(x, μ)`` reads."""

    kind = "LayerNorm"
    anchor_ops = means.REDUCTIONS

    def match(self, anchor: NodeView) -> list[MatchResult[NormMatch]]:
        """The LayerNorm candidate centred by this mean (its subtractions, and its twins' if needed)."""
        if anchor.inputs[0] is None:
            return []
        followed = means.follow_mean(anchor, "mean")
        chain = followed.reached
        subs = _subtractions(chain) if chain is not None else []
        if chain is None or not subs:
            return []
        x = chain.source
        centred = [s for s in subs if casts.same_data(s.inputs[0], x)]
        if not centred:
            return [MatchResult.failure("the mean is subtracted from a different tensor than it was taken of", x)]
        if not followed:
            first: MatchResult[NormMatch] = MatchResult.failed_like(followed)
        else:
            first = self._try(chain, x, centred, [])
            if first:
                return [first]
        twins, another_leads = _other_means_of_x(chain, x)
        if twins and followed:  # the mean is computed twice (x.var() beside x.mean()): the centred tensors are the same
            first = self._try(chain, x, centred, twins)  # it got further: its reason is the one that explains
            if first:
                return [first]
        return [] if another_leads else [first]

    def _try(
        self, chain: means.MeanChain, x: ValueView, subs: list[NodeView], twins: list[_Twin]
    ) -> MatchResult[NormMatch]:
        try:
            return MatchResult.success(self._match_centred(chain, x, subs, twins))
        except Refusal as refusal:
            return MatchResult.refused(refusal)

    def _match_centred(
        self, chain: means.MeanChain, x: ValueView, subs: list[NodeView], twins: list[_Twin]
    ) -> NormMatch:
        subs = [*subs, *(s for twin in twins for s in twin.subs)]
        centred = [s.outputs[0] for s in subs]
        centred += [c.outputs[0] for d in centred for c in d.consumers() if casts.is_float_cast(c)]
        centred_values = {id(v) for v in centred}

        def is_centred(value: ValueView) -> bool:
            return id(value) in centred_values

        for value in centred:
            for square in square_of(value, is_centred):
                reducer = means.next_user(square.outputs[0])  # a Shape of the square may spell the restore
                followed = (
                    means.follow_mean(reducer, "variance", shaped_like=x)
                    if reducer is not None and _is_reduction(reducer)
                    else None
                )
                variance = None if followed is None else followed.reached
                if followed is None or variance is None:
                    raise Refusal("variance is not the mean of squares (unbiased var/std divides by N-1)", value)
                if variance.axes and ranks.canonical_axes(variance.axes, x) != ranks.canonical_axes(chain.axes, x):
                    raise Refusal(f"mean over axes {chain.axes} but variance over axes {variance.axes}", value)
                if not followed:
                    raise Refusal(followed.reason, variance.value)
                return _finish(chain, x, subs, twins, centred, is_centred, variance.value, [square, *variance.nodes])
        moments = moment_variance(chain, x)
        if moments is not None:
            variance_value, variance_nodes = moments
            return _finish(chain, x, subs, twins, centred, is_centred, variance_value, variance_nodes, "moments+")
        raise Refusal("the centred tensor is never squared", x)


def _finish(
    chain: means.MeanChain,
    x: ValueView,
    subs: list[NodeView],
    twins: list[_Twin],
    centred: list[ValueView],
    is_centred: Callable[[ValueView], bool],
    variance: ValueView,
    variance_nodes: list[NodeView],
    spelling: str = "",
) -> NormMatch:
    """The match from the variance on: ε, the inverse square root, the scaling, then γ and β."""
    tail = match_tail(variance, is_centred)
    cast_nodes = [v.producer() for v in centred if v.producer() not in subs]
    twin_nodes = [node for twin in twins for node in twin.chain.nodes]
    nodes = [
        *casts.round_trip(chain.source)[1], *chain.nodes, *twin_nodes, *subs,
        *[c for c in cast_nodes if c is not None], *variance_nodes, *tail.nodes,
    ]  # fmt: skip
    # a Cast between x and the statistics: ε's dtype then says nothing about x's
    cast = any(c is not None for c in cast_nodes) or any(t.chain.source is not x for t in twins)
    scaling = tail.nodes[-1]
    minuend = _numerator_minuend(scaling, is_centred) if any(s.inputs[0] is not x for s in subs) else x
    if minuend is not None and not gu.same_value(minuend, x):
        x, cast = minuend, True  # x16 − mean(float(x16)): normalize what is scaled
    rule = f"layernorm/{spelling}{tail.form}"
    return match_with_affine(x, tail.n, chain.count, tail.epsilon, rule, nodes, tail.epsilon_dtype, casts_input=cast)


@dataclass
class _Twin:
    """Another mean of the same data over the same axes, and the subtractions it centres."""

    chain: means.MeanChain
    subs: list[NodeView]


def _subtractions(chain: means.MeanChain) -> list[NodeView]:
    """``Sub(·, μ)`` nodes reading the mean this chain ends in."""
    mean = chain.value
    return [u for u in mean.consumers() if is_op(u, "Sub") and u.inputs[1] is mean]


def _other_means_of_x(chain: means.MeanChain, x: ValueView) -> tuple[list[_Twin], bool]:
    """Other means of ``x`` over the same axes that something is centred by, and whether one leads.

    ``x`` here includes exact float Casts of it and what it is an exact Cast of. Exporters write ``x.var()``
    beside ``x.mean()`` as two reductions of x (the dynamo exporter's fp16 ``var`` one of them on
    ``Cast(x, float)``); the subtractions of either are the same tensor, up to precision. A twin that
    comes first among the readers leads the group: it reports the group's refusal, so a look-alike
    is one candidate, not two.
    """
    root = casts.widened_root(x)
    readers: list[tuple[NodeView, NodeView | None]] = []
    for user in gu.consumers(root):
        readers.append((user, None))
        if casts.is_float_cast(user):
            readers.extend((inner, user) for inner in gu.consumers(user.outputs[0]))
    twins: list[_Twin] = []
    another_leads = False
    seen_self = False
    for user, via in readers:
        if user is chain.reduce:
            seen_self = True
            continue
        if not _is_reduction(user) or user.graph is not chain.reduce.graph:
            continue
        twin = means.follow_mean(user, "mean").found
        if twin is None or not casts.same_data(twin.source, x):
            continue
        if ranks.canonical_axes(twin.axes, x) != ranks.canonical_axes(chain.axes, x):
            continue
        subs = [s for s in _subtractions(twin) if casts.same_data(s.inputs[0], twin.source)]
        if subs:
            if via is not None:
                twin.nodes.insert(0, via)
            twins.append(_Twin(twin, subs))
            another_leads = another_leads or not seen_self
    return twins, another_leads


def _numerator_minuend(scaling: NodeView, is_centred: Callable[[ValueView], bool]) -> ValueView | None:
    """The ``x`` of the ``x − μ`` (possibly Cast) that ``scaling`` (the Div or Mul of the tail) reads."""
    operands = [scaling.inputs[0]] if is_op(scaling, "Div") else list(scaling.inputs)
    for operand in operands:
        if operand is None or not is_centred(operand):
            continue
        node = operand.producer()
        if node is not None and is_op(node, "Cast") and node.inputs[0] is not None:
            node = node.inputs[0].producer()
        if node is not None and is_op(node, "Sub"):
            return node.inputs[0]
    return None


def _is_reduction(node: NodeView) -> bool:
    return is_op(node, *means.REDUCTIONS) and node.inputs[0] is not None
