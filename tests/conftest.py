"""Shared fixtures: paths, the graph manifest, and running models on ONNX Runtime with fusions off."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx_ir as ir
import pytest

ROOT = Path(__file__).resolve().parent.parent
GRAPHS = ROOT / "graphs"


def manifest() -> list[dict[str, Any]]:
    """Entries of graphs/manifest.json."""
    return json.loads((GRAPHS / "manifest.json").read_text())["graphs"]


def op_counts(path: Path) -> Counter[str]:
    """Node op types over the main graph, subgraphs and functions."""
    from normopt.engines.ir_engine import graphs_of

    model = ir.load(path)
    return Counter(n.op_type for g in graphs_of(model) for n in g)


def float32_io(path: Path, out: Path) -> Path:
    """Copy of a model whose bf16 inputs/outputs are float32, cast at the edges (ORT's Python API
    cannot feed bfloat16 arrays)."""
    model = onnx.load(path)
    graph = model.graph
    nodes = []
    for value in list(graph.input) + list(graph.output):
        if value.type.tensor_type.elem_type != onnx.TensorProto.BFLOAT16:
            continue
        is_input = value in graph.input
        inner = f"{value.name}.bf16"
        if is_input:
            for node in graph.node:
                node.input[:] = [inner if i == value.name else i for i in node.input]
            nodes.insert(0, onnx.helper.make_node("Cast", [value.name], [inner], to=onnx.TensorProto.BFLOAT16))
        else:
            for node in graph.node:
                node.output[:] = [inner if o == value.name else o for o in node.output]
            nodes.append(onnx.helper.make_node("Cast", [inner], [value.name], to=onnx.TensorProto.FLOAT))
        value.type.tensor_type.elem_type = onnx.TensorProto.FLOAT
    for node in reversed([n for n in nodes if n.output[0].endswith(".bf16")]):
        graph.node.insert(0, node)
    graph.node.extend(n for n in nodes if not n.output[0].endswith(".bf16"))
    onnx.save(model, out)
    return out


def run_ort(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Run a model on the CPU provider with every ORT graph optimization off."""
    from normopt.feeds import ortsession
    from normopt.feeds.inputs import cast_for
    from normopt.feeds.runs import specs_of

    session = ortsession.create(path, "cpu", "disable")
    return session.run(None, cast_for(feeds, specs_of(session)))


def constant(model: onnx.ModelProto, name: str) -> np.ndarray:
    """An initializer or Constant output anywhere in the model, following one Cast."""
    graphs = [model.graph]
    while graphs:
        graph = graphs.pop()
        for init in graph.initializer:
            if init.name == name:
                return onnx.numpy_helper.to_array(init).astype(np.float64)
        for node in graph.node:
            if name in node.output and node.op_type == "Cast":
                return constant(model, node.input[0])
            if name in node.output and node.op_type == "Constant":
                return onnx.numpy_helper.to_array(node.attribute[0].t).astype(np.float64)
            graphs.extend(a.g for a in node.attribute if a.type == onnx.AttributeProto.GRAPH)
    raise KeyError(name)


def reference(model: onnx.ModelProto, semantics: dict[str, Any], feeds: dict[str, np.ndarray]) -> np.ndarray:
    """The norm the manifest says the graph computes, in float64 numpy."""
    if "feeds_sum" in semantics:
        x = sum(feeds[n].astype(np.float64) for n in semantics["feeds_sum"])
    else:
        x = feeds[semantics["input"]].astype(np.float64)
    axes = tuple(range(-semantics["axes"], 0))
    d = x - x.mean(axis=axes, keepdims=True) if semantics["kind"] == "layernorm" else x
    y = d / np.sqrt((d * d).mean(axis=axes, keepdims=True) + semantics["eps"])
    if semantics["scale"]:
        y = y * constant(model, semantics["scale"])
    if semantics["bias"]:
        y = y + constant(model, semantics["bias"])
    return y


@pytest.fixture
def tmp_out(tmp_path: Path) -> Path:
    """A fresh output directory."""
    out = tmp_path / "out"
    out.mkdir()
    return out


@pytest.fixture
def count_weight_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every external tensor whose bytes are materialized."""
    reads: list[str] = []
    original = ir.ExternalTensor._load

    def counting_load(self: ir.ExternalTensor) -> None:
        reads.append(self.name or "?")
        original(self)

    monkeypatch.setattr(ir.ExternalTensor, "_load", counting_load)
    return reads
