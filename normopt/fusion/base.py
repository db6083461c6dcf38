"""The loop every norm pass shares: find anchors, match, choose the operator, rewrite, record."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from normopt.choices import Target
from normopt.engines.views import Engine, NodeView, Scope
from normopt.fusion.emit import choose_op, rewrite
from normopt.fusion.norm_match import NormMatch, Refusal
from normopt.fusion.outcome import MatchResult
from normopt.fusion.result import Candidate
from normopt.ops import is_op


@dataclass
class FusionContext:
    """What every pass needs to know about the model being rewritten."""

    engine: Engine
    target: Target
    progress: Callable[[str, int, int], None] | None = None  # (phase, anchors done, anchors in all scopes)

    def fresh_name(self, stem: str) -> str:
        """A node name no node or value of the model has (``normopt/LayerNorm_0`` ...), with its derived names."""
        return self.engine.names.fresh(stem)


class NormPass:
    """Base of the per-family passes: subclasses say what to anchor on and how to match."""

    kind = ""
    anchor_ops: tuple[str, ...] = ()

    def match(self, anchor: NodeView) -> list[MatchResult[NormMatch]]:
        """Candidates anchored on ``anchor``: a match, or a failure with its reason; none when not a candidate."""
        raise NotImplementedError

    def run(self, ctx: FusionContext) -> list[Candidate]:
        """Match and rewrite every candidate in every graph, subgraph and function of the model."""
        records: list[Candidate] = []
        report = ctx.progress
        phase = f"{self.kind} pass"
        total = sum(1 for s in ctx.engine.scopes() for n in s.graph if is_op(n, *self.anchor_ops)) if report else 0
        every = max(1, total // 200)  # a few hundred updates, however big the graph
        done = 0
        for scope in ctx.engine.scopes():
            anchors = [n for n in scope.graph if is_op(n, *self.anchor_ops)]
            for anchor in anchors:
                done += 1
                if report is not None and done % every == 0:
                    report(phase, done, total)
                if anchor.graph is None:
                    continue
                for outcome in self.match(anchor):
                    records.append(self._apply(ctx, scope, anchor, outcome))
            scope.editor.flush()
        if report is not None:
            report(phase, total, total)
        return records

    def _apply(self, ctx: FusionContext, scope: Scope, anchor: NodeView, outcome: MatchResult[NormMatch]) -> Candidate:
        record = Candidate(kind=self.kind, node=anchor.name or "?", graph=scope.name, status="rejected")
        match = outcome.found
        if match is None:
            record.reason, record.value = outcome.reason, outcome.value
            return record
        if any(node.graph is not scope.home for node in match.nodes):
            record.reason = "the pattern spans more than one graph scope (a subgraph and its enclosing graph)"
            return record
        record.rule, record.epsilon, record.axes = match.rule, match.epsilon, match.axes
        record.pattern_nodes = [n.name for n in match.nodes if n.name]
        record.dtype = match.dtype.name
        try:
            op_type = choose_op(self.kind, ctx.target, scope.opset, match.dtype)
            record.op = op_type
            name = ctx.fresh_name(self.kind)
            record.kept_nodes = rewrite(scope.editor, match, op_type, name, scope.opset)
            record.fused_node = name
        except Refusal as refusal:
            record.reason, record.value, record.op = str(refusal), refusal.value, None
            return record
        record.status = "fused"
        return record
