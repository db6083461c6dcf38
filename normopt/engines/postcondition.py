"""The postcondition every model normopt writes must pass, checked on the model about to be written.

Facts (each violation names the fact, the scope and the value or node):

- SSA: every value is defined once in its scope, and a subgraph never redefines a value of the scopes
  around it (sibling bodies, such as an If's two branches, may reuse a name);
- order: every node reads only values defined before it (graph inputs, initializers, earlier nodes,
  the enclosing scopes' values for a subgraph): the graph is topologically sorted and complete;
- outputs: every graph output is defined;
- operators: every node's domain is imported, at a version that has the op (ONNX's schemas for the
  standard domain; the ops ONNX Runtime registers itself are known by name);
- interface: the main graph's inputs and outputs keep their names, element types and declared shapes.

A fusion is judged by the violations it adds: an input that already breaks a fact (and is still
loadable) is not normopt's doing. Engines describe their model as ``ModelFacts``; the checks read only that.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import onnx
import onnx_ir as ir

from normopt.ops import STANDARD_DOMAINS

# (name, element type, declared dims: int, dim name, or None for unknown; None for an unknown rank)
Port = tuple[str, int | None, tuple[int | str | None, ...] | None]

#: Default-domain ops ONNX Runtime registers at every opset (its contrib LayerNorms), and its com.microsoft Skip ops.
ORT_OPS = frozenset(
    {
        ("", "LayerNormalization"),
        ("", "SimplifiedLayerNormalization"),
        ("com.microsoft", "SkipLayerNormalization"),
        ("com.microsoft", "SkipSimplifiedLayerNormalization"),
    }
)


class PostconditionFailed(Exception):
    """normopt was about to write a model that breaks a structural fact: a bug in normopt (exit 3)."""


@dataclass
class NodeFacts:
    """What the checks read of a node (``index``: its position, for a label when it has no name)."""

    name: str
    domain: str
    op_type: str
    inputs: Sequence[str]
    outputs: Sequence[str]
    index: int
    bodies: list[GraphFacts] = field(default_factory=list)

    @property
    def label(self) -> str:
        """How a violation names the node."""
        if self.name:
            return f"node {self.name!r} ({self.op_type})"
        first = next((o for o in self.outputs if o), None)
        return f"{self.op_type} #{self.index} writing {first!r}"


@dataclass
class GraphFacts:
    """What the checks read of a graph, subgraph or function body."""

    label: str
    inputs: list[str]
    initializers: list[str]
    nodes: list[NodeFacts]
    outputs: list[str]


@dataclass
class ModelFacts:
    """A model as the checks see it: the main graph, functions with their opsets, the main interface."""

    main: GraphFacts
    opsets: Mapping[str, int]
    functions: Sequence[tuple[tuple[str, str], GraphFacts, Mapping[str, int]]]
    interface: tuple[tuple[Port, ...], tuple[Port, ...]]

    def names(self) -> Iterator[str]:
        """Every name in the model, for ``names.Names``.

        Function names, and the inputs, initializers, outputs, node names and node outputs of every graph,
        subgraph and function body.
        """
        yield from (name for (_, name), _, _ in self.functions)
        stack = [self.main, *(body for _, body, _ in self.functions)]
        while stack:
            graph = stack.pop()
            yield from graph.inputs
            yield from graph.initializers
            yield from graph.outputs
            for node in graph.nodes:
                yield node.name
                yield from node.outputs
                stack.extend(node.bodies)


def _domain(domain: str) -> str:
    return "" if domain in STANDARD_DOMAINS else domain


@functools.lru_cache(maxsize=4096)
def _has_schema(op_type: str, version: int, domain: str) -> bool:
    try:
        onnx.defs.get_schema(op_type, version, domain)
    except onnx.defs.SchemaError:
        return False
    return True


def _op_problem(node: NodeFacts, imported: Mapping[str, int], functions: set[tuple[str, str]]) -> str | None:
    """Why ``node``'s operator is not available (``imported``: opsets by normalized domain), or None."""
    domain = _domain(node.domain)
    if (domain, node.op_type) in functions:
        return None
    if domain not in imported:
        return f"{node.label} uses domain {domain or 'ai.onnx'!r}, which the model does not import"
    if (domain, node.op_type) in ORT_OPS or domain not in ("", "ai.onnx.ml"):
        return None
    if not _has_schema(node.op_type, imported[domain], domain):
        return f"{node.label}: {node.op_type} does not exist at {domain or 'ai.onnx'} opset {imported[domain]}"
    return None


def _check_graph(
    graph: GraphFacts,
    outer: frozenset[str],
    opsets: Mapping[str, int],
    functions: set[tuple[str, str]],
    found: list[str],
) -> None:
    """Check one scope; ``outer`` holds the enclosing scopes' values visible here (sibling bodies may reuse names)."""
    visible = set(outer)
    local: set[str] = set()
    imported = {_domain(d): v for d, v in opsets.items()}

    def define(name: str) -> None:
        if name in local or name in outer:
            found.append(f"SSA: {graph.label}: value {name!r} is defined more than once")
        local.add(name)
        visible.add(name)

    for name in dict.fromkeys([*graph.inputs, *graph.initializers]):  # an initializer may also be an input
        define(name)
    for node in graph.nodes:
        for name in node.inputs:
            if name and name not in visible:
                found.append(f"order: {graph.label}: {node.label} reads {name!r}, which is not defined before it")
        if node.bodies:
            frozen = frozenset(visible)
            for body in node.bodies:
                _check_graph(body, frozen, opsets, functions, found)
        problem = _op_problem(node, imported, functions)
        if problem is not None:
            found.append(f"operator: {graph.label}: {problem}")
        for name in node.outputs:
            if name:
                define(name)
    for name in graph.outputs:
        if name not in visible:
            found.append(f"outputs: {graph.label}: graph output {name!r} is not defined")


def violations(facts: ModelFacts) -> list[str]:
    """Every fact ``facts`` breaks (empty when the model is sound)."""
    found: list[str] = []
    functions = {key for key, _, _ in facts.functions}
    _check_graph(facts.main, frozenset(), facts.opsets, functions, found)
    for _, body, opsets in facts.functions:
        merged = {**facts.opsets, **opsets}
        _check_graph(body, frozenset(), merged, functions, found)
    return found


def ort_only_ops(facts: ModelFacts) -> list[str]:
    """Operators in the model that only ONNX Runtime defines (``onnx.checker`` cannot know them), sorted.

    Read from the model itself, so the same model is described the same way whichever run fused it.
    """
    found: set[str] = set()
    opset = {_domain(d): v for d, v in facts.opsets.items()}.get("", 1)
    graphs = [facts.main, *(body for _, body, _ in facts.functions)]
    while graphs:
        graph = graphs.pop()
        for node in graph.nodes:
            graphs.extend(node.bodies)
            key = (_domain(node.domain), node.op_type)
            if key == ("", "LayerNormalization"):
                if opset < 17:
                    found.add("LayerNormalization below opset 17")
            elif key in ORT_OPS:
                found.add(node.op_type)
    return sorted(found)


@dataclass
class Snapshot:
    """The model before the passes: its interface, and the facts it already broke."""

    interface: tuple[tuple[Port, ...], tuple[Port, ...]]
    broken: frozenset[str]

    @classmethod
    def of(cls, facts: ModelFacts) -> Snapshot:
        """Take the snapshot (run before any rewrite)."""
        return cls(facts.interface, frozenset(violations(facts)))

    def ensure(self, facts: ModelFacts) -> None:
        """Raise ``PostconditionFailed`` naming every fact the rewrite broke."""
        added = [v for v in violations(facts) if v not in self.broken]
        for which, old, new in zip(("input", "output"), self.interface, facts.interface, strict=True):
            if old != new:
                added.append(f"interface: the main graph's {which}s changed from {list(old)} to {list(new)}")
        if added:
            more = f" (and {len(added) - 1} more)" if len(added) > 1 else ""
            raise PostconditionFailed(f"normopt would write a broken model: {added[0]}{more}; nothing written")


# -- the onnx_ir engine's description ---------------------------------------------------------------


def port(value: ir.Value) -> Port:
    """A graph input/output as the interface check compares it."""
    dtype = value.dtype.value if value.dtype is not None else None
    if value.shape is None:
        return value.name or "", dtype, None
    dims = tuple(d if isinstance(d, int) else d.value for d in value.shape)
    return value.name or "", dtype, dims


def _label(node: ir.Node, index: int) -> str:
    return NodeFacts(node.name or "", node.domain, node.op_type, [], [v.name or "" for v in node.outputs], index).label


def _graph_facts(graph: ir.Graph | ir.Function, label: str) -> GraphFacts:
    nodes = []
    for index, node in enumerate(graph):
        bodies = []
        for attr in node.attributes.values():
            if attr.type == ir.AttributeType.GRAPH:
                bodies.append(_graph_facts(attr.as_graph(), f"{label}/{attr.name} of {_label(node, index)}"))
            elif attr.type == ir.AttributeType.GRAPHS:
                where = f"{label}/{attr.name} of {_label(node, index)}"
                bodies.extend(_graph_facts(g, where) for g in attr.as_graphs())
        nodes.append(
            NodeFacts(
                node.name or "",
                node.domain,
                node.op_type,
                [v.name or "" if v is not None else "" for v in node.inputs],
                [v.name or "" for v in node.outputs],
                index,
                bodies,
            )
        )
    initializers = list(graph.initializers) if isinstance(graph, ir.Graph) else []
    return GraphFacts(
        label, [v.name or "" for v in graph.inputs], initializers, nodes, [v.name or "" for v in graph.outputs]
    )


def ir_facts(model: ir.Model) -> ModelFacts:
    """``ModelFacts`` of an onnx_ir model."""
    functions = [
        ((_domain(f.domain), f.name), _graph_facts(f, f"function {f.domain}.{f.name}"), dict(f.opset_imports))
        for f in model.functions.values()
    ]
    interface = (tuple(port(v) for v in model.graph.inputs), tuple(port(v) for v in model.graph.outputs))
    return ModelFacts(_graph_facts(model.graph, "main graph"), dict(model.opset_imports), functions, interface)
