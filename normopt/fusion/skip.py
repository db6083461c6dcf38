"""Skip pass: residual ``Add`` feeding a fused norm → one com.microsoft ``Skip*LayerNormalization``.

::

    a, b ─► Add ─► s ─► LayerNormalization(γ, β)     ─►  SkipLayerNormalization(a, b, γ, β) ─► y
                   └──► (other readers of s)              └─ output 3 (input_skip_bias_sum) ─► s

Only for ``--target ort``. What must be proved (else the Add is left alone, with a record naming it):

- the operands' roles fit the Skip op's contract: ``input`` of rank 2 or 3 and ``skip`` of the same shape,
  or (input of rank 3) ``skip`` of shape [1, S, H] or [S, H] with S and H those of ``input`` — the sum then
  has ``input``'s shape, as the fused op's output does. Dims are equal only when both are known and equal
  or carry the same name: two unknown dims prove nothing;
- the norm runs over the last axis only, with γ (and β) of one dtype with the input;
- γ/β do not depend on the sum (the fused node produces the sum: that would be a cycle);
- a bias Add in front of one operand (``(m + c) + r``, c a 1-D constant of the proved hidden size, read by
  nothing else) becomes the Skip op's ``bias`` input, as ORT's and onnxscript's own fusions do.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx_ir as ir

from normopt.engines.ir_engine import IrEngine, remove_dead
from normopt.fusion import dims
from normopt.fusion import graph_utils as gu
from normopt.fusion.base import FusionContext
from normopt.fusion.outcome import Refusal
from normopt.fusion.result import Candidate
from normopt.ops import is_op

_SKIP_OPS = {
    "LayerNormalization": "SkipLayerNormalization",
    "SimplifiedLayerNormalization": "SkipSimplifiedLayerNormalization",
}
_SKIP_DTYPES = frozenset({ir.DataType.FLOAT, ir.DataType.FLOAT16, ir.DataType.BFLOAT16})


def _residual_add(norm: ir.Node) -> tuple[ir.Node, ir.Value, ir.Value]:
    """The residual Add feeding ``norm`` and its operands as (input, skip), or a Refusal saying why not."""
    axis = norm.attributes.get("axis")
    x = norm.inputs[0]
    if x is None:
        raise Refusal("norm without input")
    if axis is not None and axis.as_int() != -1 and axis.as_int() != (gu.rank_of(x) or 0) - 1:
        raise Refusal("norm over more than the last axis", x)
    dtype = gu.dtype_of(x)
    if dtype not in _SKIP_DTYPES:
        raise Refusal("element type has no Skip kernel", x)
    add = x.producer()
    if add is None or not is_op(add, "Add"):
        raise Refusal("input is not a residual Add", x)
    if add.graph is not norm.graph:
        raise Refusal("the residual Add is in another graph scope than the norm", x)
    for affine in norm.inputs[1:3]:
        if affine is not None and gu.dtype_of(affine) != dtype:
            found = gu.dtype_of(affine)
            raise Refusal(
                f"scale/bias is {found.name if found else 'of unknown type'} and the input {dtype.name}: "
                "Skip ops take one type for all (ORT's contrib LayerNorm mixes them)",
                affine,
            )
    a, b = add.inputs[0], add.inputs[1]
    total = add.outputs[0]
    if a is None or b is None or gu.is_constant(a) or gu.is_constant(b):
        raise Refusal("Add has a constant operand (a bias, not a residual)", total)
    if len(norm.inputs) > 1 and norm.inputs[1] is not None and norm.inputs[1].shape is not None:
        if len(norm.inputs[1].shape) != 1:
            raise Refusal("scale is not one-dimensional", norm.inputs[1])
    for affine in norm.inputs[1:3]:
        if affine is not None and _depends_on(affine, total):
            raise Refusal("the scale/bias is computed from the residual sum (the fused node would feed itself)", affine)
    return add, *_roles(a, b, total)


@dataclass(frozen=True)
class _Bias:
    """A bias Add before the residual Add, ``(m + c) + r``: the Skip op takes ``c`` as its bias input."""

    add: ir.Node
    value: ir.Value
    data: ir.Value
    skip: ir.Value


def _bias(add: ir.Node, data: ir.Value, skip: ir.Value, dtype: ir.DataType | None) -> _Bias | None:
    """The bias Add feeding ``data`` or ``skip`` only, with a 1-D constant of the hidden size, if there is one.

    The other operand takes its place, so the roles are proved again with it: ``m + c`` has m's shape only
    when m's hidden dim is proved to be c's length (else c could widen it).
    """
    for which, operand in (("data", data), ("skip", skip)):
        inner = operand.producer()
        if inner is None or not is_op(inner, "Add") or gu.only_consumer(operand) is not add:
            continue
        if inner.graph is not add.graph:
            continue
        first, second = inner.inputs[0], inner.inputs[1]
        for m, c in ((first, second), (second, first)):
            if m is None or c is None:
                continue
            shape = gu.constant_shape(c) if gu.is_constant(c) else None
            if shape is None or len(shape) != 1 or gu.is_constant(m) or gu.dtype_of(c) != dtype:
                continue
            hidden = dims.last_dim(m)
            if hidden is None or hidden != shape[0] or hidden == 1:
                continue
            pair = (m, skip) if which == "data" else (data, m)
            try:
                roles = _roles(pair[0], pair[1], add.outputs[0])
            except Refusal:
                continue
            if roles != pair:
                continue
            return _Bias(inner, c, *roles)
    return None


def _roles(a: ir.Value, b: ir.Value, total: ir.Value) -> tuple[ir.Value, ir.Value]:
    """``(input, skip)`` as the Skip op's contract allows them, or a Refusal naming the sum."""
    if gu.same_shape(a.shape, b.shape):
        assert a.shape is not None
        if len(a.shape) not in (2, 3):
            raise Refusal(f"residual of rank {len(a.shape)} (Skip ops take rank 2 or 3)", total)
        return a, b
    for data, skip in ((a, b), (b, a)):
        if _broadcast_skip(data.shape, skip.shape):
            return data, skip
    raise Refusal(
        "cannot prove the Add operands have one shape, or that one is a skip of shape [1,S,H] or [S,H] "
        "for the other's [B,S,H] (unknown dims are never taken as equal)",
        total,
    )


def _broadcast_skip(data: ir.Shape | None, skip: ir.Shape | None) -> bool:
    """True when ``skip`` provably broadcasts into a rank-3 ``data`` as [1, S, H] or [S, H]."""
    if data is None or skip is None or len(data) != 3:
        return False
    if len(skip) == 3 and not (isinstance(skip[0], int) and skip[0] == 1):
        return False
    if len(skip) not in (2, 3):
        return False
    return gu.same_dim(skip[-1], data[-1]) and gu.same_dim(skip[-2], data[-2])


def _depends_on(value: ir.Value, target: ir.Value) -> bool:
    """True when ``value`` is ``target`` or computed from it (within the graph, subgraph reads included)."""
    seen: set[int] = set()
    stack = [value]
    while stack:
        current = stack.pop()
        if current is target:
            return True
        node = current.producer()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        stack.extend(v for v in node.inputs if v is not None)
        stack.extend(_captured(node))
    return False


def _captured(node: ir.Node) -> list[ir.Value]:
    """Values of enclosing scopes that a node's subgraphs read (an If/Loop body reading the sum)."""
    found: list[ir.Value] = []
    for attr in node.attributes.values():
        if attr.type == ir.AttributeType.GRAPH:
            bodies = [attr.as_graph()]
        elif attr.type == ir.AttributeType.GRAPHS:
            bodies = list(attr.as_graphs())
        else:
            continue
        for body in bodies:
            for inner in body:
                found.extend(v for v in inner.inputs if v is not None and v.graph is not body)
                found.extend(_captured(inner))
    return found


class SkipNormPass:
    """Merges residual Adds into the norms the LayerNorm/RMSNorm passes (or the model) already have."""

    kind = "SkipNorm"

    def run(self, ctx: FusionContext, engine: IrEngine) -> list[Candidate]:
        """Rewrite every eligible (Add, norm) pair; record the refused ones that had an Add before them.

        It runs on the onnx_ir engine only (``engine`` is ``ctx.engine``): its node has up to four outputs.
        """
        records: list[Candidate] = []
        for scope, owner in engine.owned_scopes():
            norms = [n for n in owner if is_op(n, *_SKIP_OPS)]
            for norm in norms:
                record = Candidate(self.kind, norm.name or "?", scope.name, "rejected")
                try:
                    add, data, skip = _residual_add(norm)
                    bias = _bias(add, data, skip, gu.dtype_of(norm.inputs[0]))
                except Refusal as refusal:
                    if gu.producer(norm.inputs[0], "Add") is not None:
                        record.reason, record.value = str(refusal), refusal.value
                        records.append(record)
                    continue
                record.op = _SKIP_OPS[norm.op_type]
                record.rule = f"skip/{norm.op_type}" + ("/bias" if bias is not None else "")
                if bias is not None:
                    data, skip = bias.data, bias.skip
                record.fused_node = self._rewrite(ctx, engine, owner, (add, data, skip), norm, bias)
                record.status = "fused"
                records.append(record)
        return records

    def _rewrite(
        self,
        ctx: FusionContext,
        engine: IrEngine,
        owner: ir.Graph | ir.Function,
        residual: tuple[ir.Node, ir.Value, ir.Value],
        norm: ir.Node,
        bias: _Bias | None = None,
    ) -> str:
        add, data, skip_operand = residual
        total = add.outputs[0]
        eps = norm.attributes.get("epsilon")
        beta = norm.inputs[2] if len(norm.inputs) > 2 else None
        extra: list[ir.Value | None] = [beta] if is_op(norm, "LayerNormalization") else []
        if bias is not None:  # SkipLayerNormalization: input, skip, gamma, beta, bias; the simplified one has no beta
            extra.append(bias.value)
        while extra and extra[-1] is None:
            extra.pop()
        out = ir.Value(name=norm.outputs[0].name, type=norm.outputs[0].type, shape=norm.outputs[0].shape)
        norm.outputs[0].name = ctx.engine.names.unique(f"{out.name}.unskipped")
        outputs = [out]
        keep_sum = bool([u for u in total.consumers() if u is not norm]) or total.is_graph_output()
        new_sum = None
        if keep_sum:
            new_sum = ir.Value(name=total.name, type=total.type, shape=total.shape)
            total.name = ctx.engine.names.unique(f"{total.name}.unskipped")
            outputs += [ir.Value(name=""), ir.Value(name=""), new_sum]
        name = ctx.fresh_name(_SKIP_OPS[norm.op_type])
        skip = ir.Node(
            "com.microsoft",
            _SKIP_OPS[norm.op_type],
            [data, skip_operand, norm.inputs[1], *extra],
            attributes=[ir.AttrFloat32("epsilon", eps.as_float() if eps is not None else 1e-5)],
            outputs=outputs,
            name=name,
        )
        owner.insert_after(norm, [skip])
        engine.annotations.derive(out, norm.outputs[0])
        norm.outputs[0].replace_all_uses_with(out, replace_graph_outputs=True)
        if new_sum is not None:
            engine.annotations.derive(new_sum, total)
            total.replace_all_uses_with(new_sum, replace_graph_outputs=True)
        remove_dead(owner, [*([bias.add] if bias is not None else []), add, norm])
        engine.model.opset_imports.setdefault("com.microsoft", 1)
        if isinstance(owner, ir.Function):
            owner.opset_imports.setdefault("com.microsoft", 1)
        return name
