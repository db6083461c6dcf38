"""Skip pass: residual ``Add`` feeding a fused norm → one com.microsoft ``Skip*LayerNormalization``.

::

    a, b ─► Add ─► s ─► LayerNormalization(γ, β)     ─►  SkipLayerNormalization(a, b, γ, β) ─► y
                   └──► (other readers of s)              └─ output 3 (input_skip_bias_sum) ─► s

Only for ``--target ort``. The Add must join two runtime tensors of one proven shape (rank 2 or 3, as
ORT's kernels require) — a broadcasting Add such as token + position embeddings is left alone — and
the norm must run over the last axis only. A reused residual sum stays available as output 3.
"""

from __future__ import annotations

import onnx_ir as ir

from normopt.fusion import graph_utils as gu
from normopt.fusion.base import FusionContext
from normopt.fusion.ir_engine import IrEngine, remove_dead
from normopt.fusion.outcome import Refusal
from normopt.fusion.result import Candidate

_SKIP_OPS = {
    "LayerNormalization": "SkipLayerNormalization",
    "SimplifiedLayerNormalization": "SkipSimplifiedLayerNormalization",
}
_SKIP_DTYPES = frozenset({ir.DataType.FLOAT, ir.DataType.FLOAT16, ir.DataType.BFLOAT16})


def _residual_add(norm: ir.Node) -> ir.Node:
    axis = norm.attributes.get("axis")
    x = norm.inputs[0]
    if x is None:
        raise Refusal("norm without input")
    if axis is not None and axis.as_int() != -1 and axis.as_int() != (gu.rank_of(x) or 0) - 1:
        raise Refusal("norm over more than the last axis")
    dtype = gu.dtype_of(x)
    if dtype not in _SKIP_DTYPES:
        raise Refusal("element type has no Skip kernel")
    add = x.producer()
    if add is None or add.op_type != "Add" or add.domain not in ("", "ai.onnx"):
        raise Refusal("input is not a residual Add")
    if add.graph is not norm.graph:
        raise Refusal("the residual Add is in another graph scope than the norm")
    for affine in norm.inputs[1:3]:
        if affine is not None and gu.dtype_of(affine) != dtype:
            found = gu.dtype_of(affine)
            raise Refusal(
                f"scale/bias is {found.name if found else 'of unknown type'} and the input {dtype.name}: "
                "Skip ops take one type for all (ORT's contrib LayerNorm mixes them)"
            )
    a, b = add.inputs[0], add.inputs[1]
    if a is None or b is None or gu.is_constant(a) or gu.is_constant(b):
        raise Refusal("Add has a constant operand (a bias, not a residual)")
    if a.shape is None or b.shape is None or a.shape != b.shape:
        raise Refusal("cannot prove both Add operands have the same shape")
    if len(a.shape) not in (2, 3):
        raise Refusal(f"residual of rank {len(a.shape)} (Skip ops take rank 2 or 3)")
    if len(norm.inputs) > 1 and norm.inputs[1] is not None and norm.inputs[1].shape is not None:
        if len(norm.inputs[1].shape) != 1:
            raise Refusal("scale is not one-dimensional")
    return add


class SkipNormPass:
    """Merges residual Adds into the norms the LayerNorm/RMSNorm passes (or the model) already have."""

    kind = "SkipNorm"

    def run(self, ctx: FusionContext, engine: IrEngine) -> list[Candidate]:
        """Rewrite every eligible (Add, norm) pair; record the refused ones that had an Add before them.

        It runs on the onnx_ir engine only (``engine`` is ``ctx.engine``): its node has up to four outputs.
        """
        records: list[Candidate] = []
        for scope, owner in engine.owned_scopes():
            norms = [n for n in owner if n.op_type in _SKIP_OPS and n.domain in ("", "ai.onnx")]
            for norm in norms:
                record = Candidate(self.kind, norm.name or "?", scope.name, "rejected")
                try:
                    add = _residual_add(norm)
                except Refusal as refusal:
                    if gu.producer(norm.inputs[0], "Add") is not None:
                        record.reason = str(refusal)
                        records.append(record)
                    continue
                record.op = _SKIP_OPS[norm.op_type]
                record.rule = f"skip/{norm.op_type}"
                record.fused_node = self._rewrite(ctx, engine, owner, add, norm)
                record.status = "fused"
                records.append(record)
        return records

    def _rewrite(
        self, ctx: FusionContext, engine: IrEngine, owner: ir.Graph | ir.Function, add: ir.Node, norm: ir.Node
    ) -> str:
        total = add.outputs[0]
        eps = norm.attributes.get("epsilon")
        extra = list(norm.inputs[2:3]) if norm.op_type == "LayerNormalization" else []
        out = ir.Value(name=norm.outputs[0].name, type=norm.outputs[0].type, shape=norm.outputs[0].shape)
        norm.outputs[0].name = f"{out.name}.unskipped"
        outputs = [out]
        keep_sum = bool([u for u in total.consumers() if u is not norm]) or total.is_graph_output()
        new_sum = None
        if keep_sum:
            new_sum = ir.Value(name=total.name, type=total.type, shape=total.shape)
            total.name = f"{total.name}.unskipped"
            outputs += [ir.Value(name=""), ir.Value(name=""), new_sum]
        name = ctx.fresh_name(_SKIP_OPS[norm.op_type])
        skip = ir.Node(
            "com.microsoft",
            _SKIP_OPS[norm.op_type],
            [add.inputs[0], add.inputs[1], norm.inputs[1], *extra],
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
        remove_dead(owner, [add, norm])
        engine.model.opset_imports.setdefault("com.microsoft", 1)
        if isinstance(owner, ir.Function):
            owner.opset_imports.setdefault("com.microsoft", 1)
        return name
