"""Optimum-style merged decoders for tests: one model, an If on ``use_cache_branch``.

The then branch is a with-past export's graph; the else branch is the same graph fed zero-length pasts
(the first step, where Optimum's no-cache branch ignores the past inputs). Each branch keeps its own
weights, so a test can change one branch of a model and see whether a check notices.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx
from onnx import helper


def _branch(graph: onnx.GraphProto, prefix: str, empty_past: bool) -> onnx.GraphProto:
    """``graph`` as an If branch: inputs read from the outer scope, every inner name prefixed."""
    outer = {v.name for v in graph.input}
    inner: dict[str, str] = {}

    def name(n: str) -> str:
        if not n or (n in outer and not (empty_past and n.startswith("past_key_values."))):
            return n
        return inner.setdefault(n, prefix + n)

    nodes = []
    if empty_past:  # the no-cache branch sees no past: zero-length slices of the past inputs
        zero = helper.make_tensor(prefix + "zero", onnx.TensorProto.INT64, [1], [0])
        axis = helper.make_tensor(prefix + "axis", onnx.TensorProto.INT64, [1], [2])
        nodes += [
            helper.make_node("Constant", [], [prefix + "zero"], value=zero),
            helper.make_node("Constant", [], [prefix + "axis"], value=axis),
        ]
        for value in graph.input:
            if value.name.startswith("past_key_values."):
                nodes.append(
                    helper.make_node(
                        "Slice",
                        [value.name, prefix + "zero", prefix + "zero", prefix + "axis"],
                        [name(value.name)],
                    )
                )
    for node in graph.node:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.name = prefix + node.name
        copy.input[:] = [name(i) for i in node.input]
        copy.output[:] = [name(o) for o in node.output]
        nodes.append(copy)
    initializers = [_renamed(t, name(t.name)) for t in graph.initializer]
    outputs = [_renamed(v, name(v.name)) for v in graph.output]
    return helper.make_graph(nodes, prefix + "branch", [], outputs, initializers)


def _renamed(message: Any, name: str) -> Any:
    """A copy of a named protobuf message (tensor, value info) under ``name``."""
    copy = type(message)()
    copy.CopyFrom(message)
    copy.name = name
    return copy


def make_merged(with_past: Path, output: Path) -> Path:
    """Write a merged decoder built from the with-past export ``with_past`` (inline weights) to ``output``."""
    model = onnx.load(str(with_past))
    graph = model.graph
    flag = helper.make_tensor_value_info("use_cache_branch", onnx.TensorProto.BOOL, [1])
    outputs = [o.name for o in graph.output]
    node = helper.make_node(
        "If",
        ["use_cache_branch"],
        outputs,
        name="optimum::if",
        then_branch=_branch(graph, "with_past_", empty_past=False),
        else_branch=_branch(graph, "no_past_", empty_past=True),
    )
    merged = helper.make_graph([node], "merged", [*graph.input, flag], list(graph.output))
    result = helper.make_model(merged, opset_imports=list(model.opset_import), ir_version=model.ir_version)
    onnx.checker.check_model(result)
    onnx.save(result, str(output))
    return output
