"""Reading what ONNX Runtime reads: duplicate Constant outputs and nodes out of order.

ONNX requires each value to be written once and nodes to be listed producers first, but ONNX Runtime
accepts two looser forms that real models use (its own ``gpt2_past.onnx`` test model has both):

- several ``Constant`` nodes writing the same name: ORT turns Constant nodes into initializers and
  "will use the latest encountered initializer" (its warning, checked on ORT 1.31), so the last one in
  node order is the value every reader gets;
- nodes listed before the nodes that produce their inputs: ORT sorts the graph itself.

``repair`` rewrites a ``GraphProto`` (and its subgraphs) into the strict form with the same meaning: the
earlier duplicate Constants dropped, the nodes sorted (stable: an already sorted graph is unchanged).
Anything else written twice, or a cycle, is refused: there is no meaning to keep.
"""

from __future__ import annotations

import heapq

import onnx

from normopt.errors import UsageError

_GRAPH_ATTRIBUTES = (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
_CONTROL_FLOW = frozenset({"If", "Loop", "Scan", "SequenceMap"})
_DEFAULT_DOMAINS = ("", "ai.onnx")


def flat_graph_problem(model: onnx.ModelProto) -> str | None:
    """Why ``model`` cannot take the protobuf path (functions, subgraphs), or None when it can."""
    if len(model.functions):
        return "model has functions"
    for node in model.graph.node:
        # Only control flow (If/Loop/Scan/SequenceMap) and custom-domain ops can hold a graph attribute.
        if node.op_type in _CONTROL_FLOW or node.domain not in _DEFAULT_DOMAINS:
            if any(attribute.type in _GRAPH_ATTRIBUTES for attribute in node.attribute):
                return "model has subgraphs"
    return None


def repair(graph: onnx.GraphProto, outer: frozenset[str] = frozenset()) -> list[str]:
    """Make ``graph`` strict in place (see module docstring); return what was changed, one line each.

    Args:
        graph: The graph to repair; its subgraphs are repaired too.
        outer: Names visible from enclosing graphs (a subgraph may read them).

    Raises:
        UsageError: A value written by two nodes that are not both Constants, or a cycle.

    """
    changes: list[str] = []
    dropped = _drop_shadowed_constants(graph)
    if dropped:
        changes.append(
            f"{graph.name or 'graph'}: {dropped} duplicate Constant output(s); the last one kept, as ORT does"
        )
    if not _is_sorted(graph, outer):
        _sort(graph, outer)
        changes.append(f"{graph.name or 'graph'}: nodes sorted into dependency order")
    visible = outer | _defined(graph)
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                changes += repair(attribute.g, visible)
            elif attribute.type == onnx.AttributeProto.GRAPHS:
                for sub in attribute.graphs:
                    changes += repair(sub, visible)
    return changes


def needs_repair(graph: onnx.GraphProto) -> bool:
    """Cheap test for the main graph: a name written twice, or a node reading a value defined later."""
    return _has_duplicates(graph) or not _is_sorted(graph, frozenset())


def _defined(graph: onnx.GraphProto) -> frozenset[str]:
    names = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    names.update(o for n in graph.node for o in n.output if o)
    return frozenset(names)


def _has_duplicates(graph: onnx.GraphProto) -> bool:
    seen: set[str] = set()
    for node in graph.node:
        for name in node.output:
            if name in seen:
                return True
            if name:
                seen.add(name)
    return False


def _drop_shadowed_constants(graph: onnx.GraphProto) -> int:
    writers: dict[str, list[int]] = {}
    for index, node in enumerate(graph.node):
        for name in node.output:
            if name:
                writers.setdefault(name, []).append(index)
    inits = {t.name for t in graph.initializer} | {i.name for i in graph.input}
    drop: set[int] = set()
    for name, indices in writers.items():
        if len(indices) == 1 and name not in inits:
            continue
        if name in inits:
            raise UsageError(f"value {name!r} is both a graph input/initializer and a node output")
        if any(graph.node[i].op_type != "Constant" or graph.node[i].domain not in ("", "ai.onnx") for i in indices):
            raise UsageError(f"value {name!r} is written by {len(indices)} nodes that are not all Constants")
        drop.update(indices[:-1])
    if drop:
        kept = [n for i, n in enumerate(graph.node) if i not in drop]
        del graph.node[:]
        graph.node.extend(kept)
    return len(drop)


def _reads(node: onnx.NodeProto) -> list[str]:
    """Names ``node`` reads, its subgraphs' outer-scope reads included."""
    names = [i for i in node.input if i]
    for attribute in node.attribute:
        if attribute.type in _GRAPH_ATTRIBUTES:
            for sub in [attribute.g] if attribute.type == onnx.AttributeProto.GRAPH else list(attribute.graphs):
                local = _defined(sub)
                names += [i for n in sub.node for i in _reads(n) if i not in local]
    return names


def _is_sorted(graph: onnx.GraphProto, outer: frozenset[str]) -> bool:
    produced = {o for n in graph.node for o in n.output if o}
    available = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    for node in graph.node:
        if any(name in produced and name not in available for name in _reads(node)):
            return False
        available.update(o for o in node.output if o)
    return True


def _sort(graph: onnx.GraphProto, outer: frozenset[str]) -> None:
    nodes = list(graph.node)
    producer = {o: i for i, n in enumerate(nodes) for o in n.output if o}
    waiting = [0] * len(nodes)
    readers: list[list[int]] = [[] for _ in nodes]
    for index, node in enumerate(nodes):
        sources = {producer[name] for name in _reads(node) if name in producer}
        sources.discard(index)
        waiting[index] = len(sources)
        for source in sources:
            readers[source].append(index)
    order: list[int] = []
    heap = [i for i, count in enumerate(waiting) if count == 0]  # lowest index first: stable order
    heapq.heapify(heap)
    while heap:
        index = heapq.heappop(heap)
        order.append(index)
        for reader in readers[index]:
            waiting[reader] -= 1
            if waiting[reader] == 0:
                heapq.heappush(heap, reader)
    if len(order) != len(nodes):
        raise UsageError("the graph has a cycle: its nodes cannot be put in dependency order")
    del graph.node[:]
    graph.node.extend(nodes[i] for i in order)
