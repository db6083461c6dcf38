"""The onnx_ir engine: an ``ir.Model`` as the passes see it (``views.Engine``), and its ``Editor``.

Every scope of the model is visited: the main graph, each If/Loop/Scan body and each function. Shape
inference runs on the side (``normopt.engines.inference``): the matcher proves with the inferred types
and shapes, and ``infer_shapes``'s undo puts the declared ones back before the model is saved.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import onnx_ir as ir

from normopt.engines.inference import Annotations, infer_model
from normopt.engines.names import Names
from normopt.engines.postcondition import ModelFacts, ir_facts
from normopt.engines.views import Engine, NamesFromFacts, NewNode, NewValue, NodeView, Scope, ValueView


def graphs_of(model: ir.Model) -> Iterator[ir.Graph | ir.Function]:
    """The main graph, every subgraph (If/Loop/Scan bodies) and every function, each once."""
    seen: set[int] = set()
    stack: list[ir.Graph | ir.Function] = [model.graph, *model.functions.values()]
    while stack:
        graph = stack.pop()
        if id(graph) in seen:
            continue
        seen.add(id(graph))
        yield graph
        for node in graph:
            for attr in node.attributes.values():
                if attr.type == ir.AttributeType.GRAPH:
                    stack.append(attr.as_graph())
                elif attr.type == ir.AttributeType.GRAPHS:
                    stack.extend(attr.as_graphs())


def _scope_name(owner: ir.Graph | ir.Function, model: ir.Model) -> str:
    if owner is model.graph:
        return "main"
    if isinstance(owner, ir.Function):
        return f"function:{owner.domain}.{owner.name}"
    return f"subgraph:{owner.name or '?'}"


class IrEngine(NamesFromFacts):
    """An onnx_ir model for the passes (the Skip pass also uses ``model`` and ``annotations`` directly)."""

    def __init__(self, model: ir.Model) -> None:
        self.model = model
        self.annotations = Annotations()
        self._names: Names | None = None

    def facts(self) -> ModelFacts:
        """The model as the postcondition reads it."""
        return ir_facts(self.model)

    @property
    def opset_imports(self) -> dict[str, int]:
        """The model's opsets."""
        return self.model.opset_imports

    def scopes(self) -> list[Scope]:
        """Main graph first, then subgraphs and functions."""
        return [scope for scope, _ in self.owned_scopes()]

    def owned_scopes(self) -> list[tuple[Scope, ir.Graph | ir.Function]]:
        """Each scope with the onnx_ir graph or function behind it; a function's nodes live in its graph."""
        found = []
        default = self.model.opset_imports.get("", 1)
        for owner in graphs_of(self.model):
            if isinstance(owner, ir.Function):
                opset, home = owner.opset_imports.get("", default), owner.graph
            else:
                opset, home = default, owner
            scope = Scope(
                owner, IrEditor(owner, self.annotations, self.names), _scope_name(owner, self.model), opset, home
            )
            found.append((scope, owner))
        return found

    def count_nodes(self) -> int:
        """Nodes in every scope."""
        return sum(len(g) for g in graphs_of(self.model))

    def infer_shapes(self) -> Callable[[], None]:
        """ONNX's shape inference into the values, undone (declared annotations back) by the returned call."""
        self.annotations = infer_model(self.model)
        return self.annotations.restore


def engine_for(model: ir.Model | Engine) -> Engine:
    """The engine that runs the passes on ``model``: onnx_ir's for an ``ir.Model``, else the model itself."""
    return IrEngine(model) if isinstance(model, ir.Model) else model


def ir_engine(engine: Engine) -> IrEngine | None:
    """``engine`` when it is the onnx_ir one (the Skip pass needs onnx_ir's multi-output rewrites)."""
    return engine if isinstance(engine, IrEngine) else None


def _value(value: ValueView) -> ir.Value:
    if not isinstance(value, ir.Value):
        raise TypeError(f"not an onnx_ir value: {value!r}")
    return value


def _node(node: NodeView) -> ir.Node:
    if not isinstance(node, ir.Node):
        raise TypeError(f"not an onnx_ir node: {node!r}")
    return node


def _new_value(new: NewValue) -> ir.Value:
    kind = None if new.dtype is None else ir.TensorType(new.dtype)
    return ir.Value(name=new.name, type=kind, shape=None if new.shape is None else ir.Shape(new.shape))


class IrEditor:
    """Rewrites one onnx_ir graph or function; initializers freed by a pass are dropped in ``flush``."""

    def __init__(self, owner: ir.Graph | ir.Function, annotations: Annotations, names: Names) -> None:
        self.owner = owner
        self.annotations = annotations
        self.names = names
        self._orphans: list[ir.Value] = []

    def replace(self, y: ValueView, nodes: Sequence[NewNode], pattern: Sequence[NodeView]) -> int:
        """See ``views.Editor.replace``; ``y`` keeps its name, the old value becomes ``<name>.unfused``."""
        old = _value(y)
        made: dict[str, ir.Value] = {}
        built: list[ir.Node] = []
        for index, new in enumerate(nodes):
            outputs = [_new_value(out) for out in new.outputs]
            if index == len(nodes) - 1:  # the replacement: y's name, type and shape
                outputs[0] = ir.Value(name=old.name, type=old.type, shape=old.shape)
            made.update((out.name, value) for out, value in zip(new.outputs, outputs, strict=True))
            inputs = [None if v is None else made[v.name] if isinstance(v, NewValue) else _value(v) for v in new.inputs]
            built.append(
                ir.Node(
                    new.domain,
                    new.op_type,
                    inputs,
                    attributes=list(new.attributes),
                    outputs=outputs,
                    name=new.name or None,
                )
            )
        replacement = built[-1].outputs[0]
        old.name = self.names.unique(f"{old.name}.unfused")
        anchor = old.producer()
        if anchor is None:
            raise ValueError(f"{replacement.name} has no producer to replace")
        self.owner.insert_after(anchor, built)
        old.replace_all_uses_with(replacement, replace_graph_outputs=True)
        self.annotations.derive(replacement, old)
        return remove_dead(self.owner, [_node(n) for n in pattern], self._orphans)

    def flush(self) -> None:
        """Drop the initializers the pass's rewrites stopped reading (each checked once)."""
        drop_unused_initializers(self.owner, self._orphans)
        self._orphans = []


def remove_dead(owner: ir.Graph | ir.Function, nodes: list[ir.Node], orphans: list[ir.Value] | None = None) -> int:
    """Remove the nodes of ``nodes`` whose outputs nobody reads; return how many had to stay.

    ``nodes`` must be in topological order (producers first): one pass from the end then frees
    every node whose readers were all removed. Initializers that only the removed nodes read are
    dropped too (shared ε constants go with the last pattern that used them): at once, or, when
    ``orphans`` is given, appended to it for one ``drop_unused_initializers`` after the whole pass
    (an ε shared by 3,000 layers is then checked once, not 3,000 times: ``uses()`` copies).
    """
    kept = 0
    inputs: list[ir.Value] = []
    dead: list[ir.Node] = []
    for node in reversed(list(dict.fromkeys(nodes))):
        if node.graph is None:
            continue
        if any(o.uses() or o.is_graph_output() for o in node.outputs):
            kept += 1
            continue
        inputs.extend(v for v in node.inputs if v is not None)
        for i in range(len(node.inputs)):  # detach first, so the producers' outputs lose this reader
            node.replace_input_with(i, None)
        dead.append(node)
    if dead:
        owner.remove(dead)  # safe by construction: no reader, not a graph output, inputs detached
    if orphans is not None:
        orphans.extend(v for v in inputs if v.is_initializer())
    else:
        drop_unused_initializers(owner, inputs)
    return kept


def drop_unused_initializers(owner: ir.Graph | ir.Function, values: list[ir.Value]) -> None:
    """Delete the initializers among ``values`` that nothing reads any more."""
    if isinstance(owner, ir.Graph):
        for value in dict.fromkeys(values):
            if (
                value.name is not None
                and value.is_initializer()
                and not value.uses()
                and not value.is_graph_output()
                and value.name in owner.initializers
                and owner.initializers[value.name] is value
            ):
                del owner.initializers[value.name]
