"""The loop every norm pass shares: find anchors, match, choose the operator, rewrite, record."""

from __future__ import annotations

from dataclasses import dataclass, field

import onnx_ir as ir

from normopt.choices import Target
from normopt.fusion import graph_utils as gu
from normopt.fusion.emit import choose_op, drop_unused_initializers, rewrite
from normopt.fusion.norm_match import NormMatch, Refusal
from normopt.fusion.result import Candidate
from normopt.modelio.inference import Annotations
from normopt.modelio.protograph import ProtoGraph


@dataclass
class FusionContext:
    """What every pass needs to know about the model being rewritten."""

    model: ir.Model | ProtoGraph
    target: Target
    annotations: Annotations = field(default_factory=Annotations)
    names: set[str] = field(default_factory=set)

    def opset(self, owner: ir.Graph | ir.Function) -> int:
        """Default-domain opset that applies inside ``owner``."""
        if isinstance(owner, ir.Function):
            return owner.opset_imports.get("", self.model.opset_imports.get("", 1))
        return self.model.opset_imports.get("", 1)

    def fresh_name(self, stem: str) -> str:
        """A node name not used before in this run (``normopt/LayerNorm_0`` ...)."""
        index = len(self.names)
        name = f"normopt/{stem}_{index}"
        while name in self.names:
            index += 1
            name = f"normopt/{stem}_{index}"
        self.names.add(name)
        return name


def owner_name(owner: ir.Graph | ir.Function, model: ir.Model | ProtoGraph) -> str:
    """Readable name for a graph or function (``main`` for the top-level graph)."""
    if owner is model.graph:
        return "main"
    if isinstance(owner, ir.Function):
        return f"function:{owner.domain}.{owner.name}"
    return f"subgraph:{owner.name or '?'}"


class NormPass:
    """Base of the per-family passes: subclasses say what to anchor on and how to match."""

    kind = ""
    anchor_ops: tuple[str, ...] = ()

    def match(self, anchor: ir.Node) -> list[NormMatch | Refusal]:
        """Candidates anchored on ``anchor``: a match, a refusal with its reason, or nothing."""
        raise NotImplementedError

    def run(self, ctx: FusionContext) -> list[Candidate]:
        """Match and rewrite every candidate in every graph, subgraph and function of the model."""
        records: list[Candidate] = []
        for owner in gu.graphs_of(ctx.model):
            anchors = [n for n in owner if n.op_type in self.anchor_ops and n.domain in ("", "ai.onnx")]
            orphans: list[ir.Value] = []  # initializers the rewrites stopped reading, checked once at the end
            for anchor in anchors:
                if anchor.graph is None:
                    continue
                for outcome in self.match(anchor):
                    records.append(self._apply(ctx, owner, anchor, outcome, orphans))
            drop_unused_initializers(owner, orphans)
        return records

    def _apply(
        self,
        ctx: FusionContext,
        owner: ir.Graph | ir.Function,
        anchor: ir.Node,
        outcome: NormMatch | Refusal,
        orphans: list[ir.Value],
    ) -> Candidate:
        record = Candidate(
            kind=self.kind, node=anchor.name or "?", graph=owner_name(owner, ctx.model), status="rejected"
        )
        if isinstance(outcome, Refusal):
            record.reason = str(outcome)
            return record
        scope = owner.graph if isinstance(owner, ir.Function) else owner  # a function's nodes live in its graph
        if any(node.graph is not scope for node in outcome.nodes):
            record.reason = "the pattern spans more than one graph scope (a subgraph and its enclosing graph)"
            return record
        record.rule, record.epsilon, record.axes = outcome.rule, outcome.epsilon, outcome.axes
        record.pattern_nodes = [n.name for n in outcome.nodes if n.name]
        record.dtype = outcome.dtype.name
        try:
            opset = ctx.opset(owner)
            op_type = choose_op(self.kind, ctx.target, opset, outcome.dtype)
            record.op = op_type
            emitted = rewrite(owner, outcome, op_type, ctx.fresh_name(self.kind), opset, orphans)
            record.fused_node, record.kept_nodes = emitted.node.name, emitted.kept
            ctx.annotations.derive(emitted.node.outputs[0], outcome.y)
        except Refusal as refusal:
            record.reason, record.op = str(refusal), None
            return record
        record.status = "fused"
        return record
