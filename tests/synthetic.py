"""Synthetic graphs for the benchmarks, built with onnx_ir: chains of decomposed LayerNorms.

``layernorm_chain`` writes the canonical legacy-exporter spelling (ReduceMean → Sub → Pow → ReduceMean →
Add → Sqrt → Div → Mul → Add), optionally with a MatMul after every norm so the graph looks like layers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx_ir as ir

F32 = ir.DataType.FLOAT


class _Builder:
    def __init__(self, opset: int) -> None:
        self.nodes: list[ir.Node] = []
        self.initializers: list[ir.Value] = []
        self.opset = opset
        self.count = 0

    def const(self, array: np.ndarray, name: str) -> ir.Value:
        dtype = ir.DataType.from_numpy(array.dtype)
        value = ir.Value(name=name, type=ir.TensorType(dtype), shape=ir.Shape(array.shape))
        value.const_value = ir.tensor(array, name=name)
        self.initializers.append(value)
        return value

    def op(self, op_type: str, inputs: list[ir.Value], **attrs: object) -> ir.Value:
        self.count += 1
        name = f"{op_type}_{self.count}"
        out = ir.Value(name=f"{name}_out")
        attributes = [ir.convenience.convert_attribute(k, v) for k, v in attrs.items()]  # type: ignore[arg-type]
        self.nodes.append(ir.Node("", op_type, inputs, attributes=attributes, outputs=[out], name=name))
        return out

    def reduce_mean(self, x: ir.Value, axes: ir.Value) -> ir.Value:
        if self.opset >= 18:
            return self.op("ReduceMean", [x, axes])
        return self.op("ReduceMean", [x], axes=[-1])


def layernorm_chain(
    layers: int, shape: tuple[int, ...], opset: int = 17, matmul: bool = False, seed: int = 0
) -> ir.Model:
    """``layers`` decomposed LayerNorms over the last axis of ``shape`` (each followed by a MatMul if asked)."""
    rng = np.random.default_rng(seed)
    hidden = shape[-1]
    b = _Builder(opset)
    x = ir.Value(name="x", type=ir.TensorType(F32), shape=ir.Shape(shape))
    two = b.const(np.array(2.0, np.float32), "two")
    eps = b.const(np.array(1e-5, np.float32), "eps")
    axes = b.const(np.array([-1], np.int64), "axes")
    h = x
    for i in range(layers):
        mean = b.reduce_mean(h, axes)
        d = b.op("Sub", [h, mean])
        var = b.reduce_mean(b.op("Pow", [d, two]), axes)
        n = b.op("Div", [d, b.op("Sqrt", [b.op("Add", [var, eps])])])
        gamma = b.const((1 + 0.1 * rng.standard_normal(hidden)).astype(np.float32), f"gamma_{i}")
        beta = b.const((0.1 * rng.standard_normal(hidden)).astype(np.float32), f"beta_{i}")
        h = b.op("Add", [b.op("Mul", [n, gamma]), beta])
        if matmul:
            weight = (rng.standard_normal((hidden, hidden)) / np.sqrt(hidden)).astype(np.float32)
            h = b.op("MatMul", [h, b.const(weight, f"w_{i}")])
    h.name = "y"
    h.type, h.shape = ir.TensorType(F32), ir.Shape(shape)
    graph = ir.Graph([x], [h], nodes=b.nodes, initializers=b.initializers, opset_imports={"": opset}, name="chain")
    return ir.Model(graph, ir_version=8, producer_name="normopt-benchmarks")


def save(model: ir.Model, path: Path, external: bool = False) -> Path:
    """Write ``model`` (weights into ``<name>.data`` beside it when ``external``)."""
    if external:
        ir.save(model, path, external_data=f"{path.name}.data", size_threshold_bytes=1024)
    else:
        ir.save(model, path)
    return path
