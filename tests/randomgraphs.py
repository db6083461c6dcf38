"""Random norm-like graphs for property tests and the fuzz soak, composed from known spellings and traps.

Each draw picks a family (LayerNorm / RMSNorm), the spellings (square, inverse sqrt, ε side and shape,
mean as ReduceMean or ReduceSum/N), the traps normopt must not fall into (an overridable initializer as ε or
γ, a one-element ε of higher rank, a float16 Cast sandwich around the norm, the norm inside an If branch,
symbolic dims), and returns a ModelProto plus the names of its inputs that need fixed values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h


@dataclass(frozen=True)
class Spec:
    """One random graph's choices (hypothesis draws these; the soak draws them from a seeded RNG)."""

    kind: str  # layernorm | rmsnorm
    square: str  # pow | mul
    inverse: str  # div_sqrt | mul_reciprocal | pow_neg_half
    mean: str  # reduce_mean | sum_div_n | sum_keepdims0_unsqueeze
    eps: float
    eps_shape: tuple[int, ...]
    eps_overridable: bool
    eps_left: bool
    gamma: str  # none | const | overridable
    sandwich: bool  # x32 → Cast(fp16) → norm in fp16 → Cast(fp32)
    in_if: bool
    symbolic_batch: bool
    opset: int


def build(spec: Spec) -> onnx.ModelProto:
    """The model ``spec`` describes: input ``x`` [batch, 4, 8] float32 (and ``cond`` when in an If)."""
    hidden = 8
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    inputs = [h.make_tensor_value_info("x", T.FLOAT, ["batch" if spec.symbolic_batch else 2, 4, hidden])]
    np_dtype = np.float16 if spec.sandwich else np.float32
    count = [0]

    def op(op_type: str, ins: list[str], **attrs: Any) -> str:
        count[0] += 1
        out = f"{op_type.lower()}_{count[0]}"
        nodes.append(h.make_node(op_type, ins, [out], **attrs))
        return out

    def const(name: str, array: np.ndarray, overridable: bool = False) -> str:
        inits.append(onnx.numpy_helper.from_array(array, name))
        if overridable:
            inputs.append(
                h.make_tensor_value_info(name, onnx.helper.np_dtype_to_tensor_dtype(array.dtype), list(array.shape))
            )
        return name

    axes = const("axes", np.array([-1], np.int64))

    def mean(v: str) -> str:
        if spec.mean == "reduce_mean":
            return op("ReduceMean", [v], axes=[-1]) if spec.opset < 18 else op("ReduceMean", [v, axes])
        if spec.mean == "sum_div_n":
            return op("Div", [op("ReduceSum", [v, axes]), const(f"n{count[0]}", np.array(hidden, np_dtype))])
        total = op("ReduceSum", [v, axes], keepdims=0)
        scaled = op("Mul", [total, const(f"inv_n{count[0]}", np.array([1 / hidden], np_dtype))])
        return op("Unsqueeze", [scaled, axes])

    x = op("Cast", ["x"], to=T.FLOAT16) if spec.sandwich else "x"
    d = op("Sub", [x, mean(x)]) if spec.kind == "layernorm" else x
    sq = op("Pow", [d, const("two", np.array(2.0, np_dtype))]) if spec.square == "pow" else op("Mul", [d, d])
    var = mean(sq)
    eps = const("eps", np.full(spec.eps_shape, spec.eps, np_dtype), spec.eps_overridable)
    var_eps = op("Add", [eps, var] if spec.eps_left else [var, eps])
    if spec.inverse == "div_sqrt":
        n = op("Div", [d, op("Sqrt", [var_eps])])
    elif spec.inverse == "mul_reciprocal":
        n = op("Mul", [d, op("Reciprocal", [op("Sqrt", [var_eps])])])
    else:
        n = op("Mul", [d, op("Pow", [var_eps, const("neg_half", np.array(-0.5, np_dtype))])])
    if spec.gamma != "none":
        gamma = np.linspace(0.5, 1.5, hidden).astype(np_dtype)
        n = op("Mul", [n, const("gamma", gamma, spec.gamma == "overridable")])
    y = op("Cast", [n], to=T.FLOAT) if spec.sandwich else n
    outputs = [h.make_tensor_value_info(y, T.FLOAT, None)]
    if spec.in_if:
        body = h.make_graph(nodes, "then", [], [h.make_tensor_value_info(y, T.FLOAT, None)])
        other = h.make_graph(
            [h.make_node("Identity", ["x"], ["x_out"])], "else", [], [h.make_tensor_value_info("x_out", T.FLOAT, None)]
        )
        nodes = [h.make_node("If", ["cond"], ["y_out"], then_branch=body, else_branch=other)]
        inputs.append(h.make_tensor_value_info("cond", T.BOOL, []))
        outputs = [h.make_tensor_value_info("y_out", T.FLOAT, None)]
    graph = h.make_graph(nodes, "random_norm", inputs, outputs, inits)
    return h.make_model(graph, opset_imports=[h.make_opsetid("", spec.opset)], ir_version=10)


def draw(rng: np.random.Generator) -> Spec:
    """A random ``Spec`` from a numpy generator (the soak's source of variety)."""

    def pick(options: list[Any]) -> Any:
        return options[int(rng.integers(len(options)))]

    return Spec(
        kind=pick(["layernorm", "rmsnorm"]),
        square=pick(["pow", "mul"]),
        inverse=pick(["div_sqrt", "mul_reciprocal", "pow_neg_half"]),
        mean=pick(["reduce_mean", "sum_div_n", "sum_keepdims0_unsqueeze"]),
        eps=pick([1e-5, 1e-6, 1e-12, 0.1]),
        eps_shape=pick([(), (1,), (1, 1, 1), (1, 1, 1, 1)]),
        eps_overridable=bool(rng.random() < 0.2),
        eps_left=bool(rng.random() < 0.5),
        gamma=pick(["none", "const", "overridable"]),
        sandwich=bool(rng.random() < 0.3),
        in_if=bool(rng.random() < 0.3),
        symbolic_batch=bool(rng.random() < 0.5),
        opset=pick([17, 18]),
    )
