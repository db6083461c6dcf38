"""What a fusion run did: one record per candidate, counts per rule, and the JSON form of both."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any, Literal

Status = Literal["fused", "rejected"]


@dataclass
class Candidate:
    """One place that looked like a norm, and what the pass decided about it.

    Attributes:
        kind: Norm family: ``LayerNorm``, ``RMSNorm`` or ``SkipNorm``.
        node: Name of the node the candidate was anchored on.
        graph: Name of the graph or function holding it (``main`` for the top level).
        status: ``fused`` or ``rejected``.
        rule: Variant that matched, e.g. ``layernorm/div-sqrt`` (None when rejected early).
        reason: Why it was not fused (None when fused).
        value: Name of the value the refusal concerns, when one does (None when fused).
        epsilon: Epsilon found by data flow, when known.
        axes: Number of trailing axes normalized, when known.
        dtype: Element type of the fused node's input, when known.
        op: Operator emitted, e.g. ``LayerNormalization`` (None when rejected).
        fused_node: Name of the node that replaced the pattern.
        kept_nodes: Pattern nodes kept alive because something outside the pattern reads them.
        pattern_nodes: Names of the nodes the pattern spans (for profiling and localization).

    """

    kind: str
    node: str
    graph: str
    status: Status
    rule: str | None = None
    reason: str | None = None
    value: str | None = None
    epsilon: float | None = None
    axes: int | None = None
    dtype: str | None = None
    op: str | None = None
    fused_node: str | None = None
    kept_nodes: int = 0
    pattern_nodes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (pattern node names omitted: they are long and internal)."""
        return {f.name: getattr(self, f.name) for f in _CANDIDATE_FIELDS}  # (asdict deep-copies: slow)


_CANDIDATE_FIELDS = [f for f in fields(Candidate) if f.name != "pattern_nodes"]


@dataclass
class FusionResult:
    """Outcome of the fusion pipeline over one model.

    JSON schema (``to_dict``): ``schema_version`` (int), ``target`` (str), ``opset`` (int),
    ``candidates`` (int), ``fused`` (int), ``rejected`` (int), ``by_kind`` ({kind: fused count}),
    ``by_rule`` ({rule: fused count}), ``nodes_before`` / ``nodes_after`` (int, all graphs),
    ``existing_norm_ops`` ({op type: count} already in the input), ``details`` (list of ``Candidate.to_dict()``).
    """

    target: str
    opset: int
    nodes_before: int = 0
    nodes_after: int = 0
    details: list[Candidate] = field(default_factory=list)
    existing_norm_ops: dict[str, int] = field(default_factory=dict)  # norm ops the input already had, by type

    SCHEMA_VERSION = 1

    @property
    def candidates(self) -> int:
        """Number of norm candidates found (Skip merges of already fused norms are not counted)."""
        return sum(1 for c in self.details if c.kind != "SkipNorm")

    @property
    def fused(self) -> int:
        """Number of norm candidates replaced by a single node."""
        return sum(1 for c in self.details if c.kind != "SkipNorm" and c.status == "fused")

    @property
    def rejected(self) -> list[Candidate]:
        """Candidates left alone, each with its reason."""
        return [c for c in self.details if c.status == "rejected"]

    def by_kind(self) -> dict[str, int]:
        """Fused count per norm family."""
        return dict(Counter(c.kind for c in self.details if c.status == "fused"))

    def by_rule(self) -> dict[str, int]:
        """Fused count per matched variant."""
        return dict(Counter(c.rule for c in self.details if c.status == "fused" and c.rule))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (see the class docstring for the schema)."""
        return {
            "schema_version": self.SCHEMA_VERSION,
            "target": self.target,
            "opset": self.opset,
            "candidates": self.candidates,
            "fused": self.fused,
            "rejected": len(self.rejected),
            "by_kind": self.by_kind(),
            "by_rule": self.by_rule(),
            "nodes_before": self.nodes_before,
            "nodes_after": self.nodes_after,
            "existing_norm_ops": self.existing_norm_ops,
            "details": [c.to_dict() for c in self.details],
        }
