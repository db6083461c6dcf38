"""The contract between the norm passes and the two graph engines.

The passes read a graph through the ``*View`` protocols below: exactly the part of onnx_ir's surface
they use, which ``onnx_ir`` itself (``ir.Graph``/``ir.Node``/``ir.Value``/``ir.Attr``) and the protobuf
engine (``normopt.engines.protograph``) both provide. Tensors are onnx_ir's own ``ir.TensorProtocol``.

They change a graph only through an ``Editor``, giving it ``NewNode`` descriptions: the onnx_ir engine
(``normopt.engines.ir_engine``) turns them into linked ``ir.Node`` objects, the protobuf engine into
``NodeProto`` messages. An ``Engine`` lists the scopes (graph, function, subgraph) to visit, each with its
editor, and owns the side shape inference (one policy, applied the same way by both engines).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import onnx_ir as ir

from normopt.engines.names import Names

if TYPE_CHECKING:
    from normopt.engines.postcondition import ModelFacts


class AttrView(Protocol):
    """A node attribute."""

    @property
    def name(self) -> str:
        """Attribute name."""

    @property
    def type(self) -> ir.AttributeType:
        """Attribute type."""

    @property
    def value(self) -> object:
        """The value as stored (float, int, list, tensor ...)."""

    def is_ref(self) -> bool:
        """True for a reference to a function attribute (no value here)."""

    def as_int(self) -> int:
        """An INT attribute's value."""

    def as_ints(self) -> Sequence[int]:
        """An INTS attribute's value."""

    def as_float(self) -> float:
        """A FLOAT attribute's value."""

    def as_tensor(self) -> ir.TensorProtocol:
        """A TENSOR attribute's value."""


class ValueView(Protocol):
    """A tensor of the graph: who writes it, who reads it, its type and shape, its constant if any."""

    @property
    def name(self) -> str | None:
        """Value name."""

    def producer(self) -> NodeView | None:
        """The node that writes it (None for graph inputs and initializers)."""

    def uses(self) -> Collection[tuple[NodeView, int]]:
        """``(node, input index)`` for every reader."""

    def consumers(self) -> Sequence[NodeView]:
        """Distinct readers."""

    def is_graph_input(self) -> bool:
        """True when the owning graph declares it as an input."""

    def is_graph_output(self) -> bool:
        """True when the owning graph declares it as an output."""

    def is_initializer(self) -> bool:
        """True when an initializer holds it."""

    @property
    def const_value(self) -> ir.TensorProtocol | None:
        """The initializer's tensor (external data is not read), else None."""

    @property
    def dtype(self) -> ir.DataType | None:
        """Element type, when known."""

    @property
    def shape(self) -> ir.Shape | None:
        """Shape, when known."""

    @property
    def type(self) -> ir.TypeProtocol | None:
        """Type, when known."""


class NodeView(Protocol):
    """A node: operator, operands, attributes, and the graph it lives in (None once removed)."""

    @property
    def op_type(self) -> str:
        """Operator type."""

    @property
    def domain(self) -> str:
        """Operator domain (the default domain is ``""``)."""

    @property
    def name(self) -> str | None:
        """Node name."""

    @property
    def inputs(self) -> Sequence[ValueView | None]:
        """Operands (None for an omitted optional input)."""

    @property
    def outputs(self) -> Sequence[ValueView]:
        """Results."""

    @property
    def attributes(self) -> Mapping[str, AttrView]:
        """Attributes by name."""

    @property
    def graph(self) -> object:
        """The graph holding the node (compared by identity only), None once removed."""


class GraphView(Protocol):
    """The nodes of one scope, in order."""

    def __iter__(self) -> Iterator[NodeView]:
        """Live nodes in topological order (a snapshot: edits may follow)."""

    def __len__(self) -> int:
        """Number of live nodes."""


@dataclass(frozen=True)
class NewValue:
    """A value a new node writes (its type and shape, when the engine should record them)."""

    name: str
    dtype: ir.DataType | None = None
    shape: tuple[int, ...] | None = None


@dataclass(frozen=True)
class NewNode:
    """A node to add, described independently of either engine.

    ``inputs`` are values of the graph, earlier ``NewValue`` outputs of the same edit, or None.
    """

    op_type: str
    inputs: tuple[ValueView | NewValue | None, ...]
    outputs: tuple[NewValue, ...]
    attributes: tuple[ir.Attr, ...] = ()
    name: str = ""
    domain: str = ""


class Editor(Protocol):
    """The one way the norm passes change a graph."""

    def replace(self, y: ValueView, nodes: Sequence[NewNode], pattern: Sequence[NodeView]) -> int:
        """Add ``nodes`` after ``y``'s producer, the last one writing ``y`` (same name, type and shape).

        Then remove the ``pattern`` nodes (producers first) that nothing reads any more, and return how
        many of them stay because something outside the pattern reads them.
        """

    def flush(self) -> None:
        """End of a pass over this scope: drop initializers that no node reads any more."""


@dataclass
class Scope:
    """One graph, function or subgraph to match in.

    Attributes:
        graph: Its nodes.
        editor: How to change it.
        name: ``main``, ``function:<domain>.<name>`` or ``subgraph:<name>``.
        opset: Default-domain opset that applies inside it.
        home: What ``NodeView.graph`` is for the nodes that live in it.

    """

    graph: GraphView
    editor: Editor
    name: str
    opset: int
    home: object


class NamesFromFacts:
    """The ``names`` every engine offers: gathered from its ``facts()`` on first use, then kept."""

    _names: Names | None = None

    def facts(self) -> ModelFacts:
        """The model as the postcondition reads it (each engine says how)."""
        raise NotImplementedError

    @property
    def names(self) -> Names:
        """Every name in the model (see ``names.Names``), and the fresh ones handed out since."""
        if self._names is None:
            self._names = Names(self.facts().names())
        return self._names


class Engine(Protocol):
    """A model the passes can run on: its scopes, its opsets, and the side shape inference."""

    @property
    def opset_imports(self) -> Mapping[str, int]:
        """Opset version by domain."""

    def scopes(self) -> list[Scope]:
        """Every scope to match in, the main graph first."""

    def count_nodes(self) -> int:
        """Nodes in every scope."""

    def facts(self) -> ModelFacts:
        """The model as the postcondition reads it (``postcondition.ModelFacts``)."""

    @property
    def names(self) -> Names:
        """Every name in the model, and the fresh ones handed out since (built on first use)."""

    def infer_shapes(self) -> Callable[[], None]:
        """Fill unknown types and shapes for the matcher, on the side; return what undoes it before saving."""
