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
    residual: str = "none"  # none | same | broadcast ([1,S,H]) | unknown (dims without value or name) | row ([B,1,H])
    custom: bool = False  # a com.example function (not the standard op) where the inverse square root would be
    as_inputs: bool = False  # every initializer is also a graph input (IR < 4, keep_initializers_as_inputs)
    qdq: bool = False  # QuantizeLinear → DequantizeLinear (a quantized neighbour) before the norm
    symbolic_hidden: bool = False  # the normalized dim is a symbolic "hidden"
    variance: str = "centred"  # LayerNorm only: centred E[(x-μ)²] | moments E[x²]-μ² | clamped max(0, E[x²]-μ²)

    def genuine(self, freeze: bool = False) -> bool:
        """True when the graph is a norm for every input the model accepts (so normopt can prove and fuse it).

        Not: an ε a caller overrides, a custom-domain op, an ε of higher rank (it raises the output's rank),
        every initializer overridable (without ``freeze``), a symbolic normalized dim that a divisor or a
        constant γ of 8 would have to equal (a size-1 input broadcasts in the original).
        """
        if self.custom or len(self.eps_shape) > 3 or ((self.eps_overridable or self.as_inputs) and not freeze):
            return False
        if self.symbolic_hidden and (self.mean != "reduce_mean" or self.gamma != "none"):
            return False
        return True

    def category(self) -> str:
        """``plain``, ``symbolic`` or ``overridable``: the classes the soak reports coverage for."""
        if self.as_inputs or self.gamma == "overridable":
            return "overridable"
        return "symbolic" if self.symbolic_batch or self.symbolic_hidden else "plain"


def build(spec: Spec) -> onnx.ModelProto:
    """The model ``spec`` describes: input ``x`` [batch, 4, 8] float32 (and ``cond`` when in an If)."""
    hidden = 8
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    last: int | str | None = "hidden" if spec.symbolic_hidden else hidden
    dims: list[int | str | None] = ["batch" if spec.symbolic_batch else 2, 4, last]
    if spec.residual == "unknown":
        dims = [None, None, last]
    inputs = [h.make_tensor_value_info("x", T.FLOAT, dims)]
    np_dtype = np.float16 if spec.sandwich else np.float32
    count = [0]
    functions: list[onnx.FunctionProto] = []

    def op(op_type: str, ins: list[str], **attrs: Any) -> str:
        count[0] += 1
        out = f"{op_type.lower()}_{count[0]}"
        nodes.append(h.make_node(op_type, ins, [out], **attrs))
        return out

    def const(name: str, array: np.ndarray, overridable: bool = False) -> str:
        inits.append(onnx.numpy_helper.from_array(array, name))
        if overridable or spec.as_inputs:
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

    def custom(op_type: str, ins: list[str]) -> str:
        """A com.example look-alike of ``op_type`` (a local function computing something else)."""
        count[0] += 1
        out = f"custom_{op_type.lower()}_{count[0]}"
        nodes.append(h.make_node(op_type, ins, [out], domain="com.example"))
        if not functions:
            names = ["X", "E"][: len(ins)]
            body = [h.make_node("Abs", ["X"], ["Y"])] if len(ins) == 1 else [h.make_node("Mul", names, ["Y"])]
            functions.append(h.make_function("com.example", op_type, names, ["Y"], body, [h.make_opsetid("", 17)]))
        return out

    source = "x"
    if spec.qdq:
        scale, zero = const("q_scale", np.array(0.05, np.float32)), const("q_zero", np.array(128, np.uint8))
        source = op("DequantizeLinear", [op("QuantizeLinear", [source, scale, zero]), scale, zero])
    if spec.residual != "none":
        r_dims = {
            "same": dims,
            "broadcast": [1, 4, last],
            "unknown": [None, None, last],
            "row": [dims[0], 1, last],
        }[spec.residual]
        inputs.append(h.make_tensor_value_info("r", T.FLOAT, r_dims))
        source = op("Add", [source, "r"])
    x = op("Cast", [source], to=T.FLOAT16) if spec.sandwich else source

    two = const("two", np.array(2.0, np_dtype)) if spec.square == "pow" else ""

    def square(v: str) -> str:
        return op("Pow", [v, two]) if spec.square == "pow" else op("Mul", [v, v])

    mu = mean(x) if spec.kind == "layernorm" else None
    d = op("Sub", [x, mu]) if mu is not None else x
    if mu is not None and spec.variance != "centred":  # E[x²] − E[x]², as the ONNX LayerNormalization body and Flax
        var = op("Sub", [mean(square(x)), square(mu)])
        if spec.variance == "clamped":
            var = op("Max", [var, const("zero", np.array(0.0, np_dtype))])
    else:
        var = mean(square(d))
    eps = const("eps", np.full(spec.eps_shape, spec.eps, np_dtype), spec.eps_overridable)
    var_eps = op("Add", [eps, var] if spec.eps_left else [var, eps])
    sqrt = (lambda v: custom("Sqrt", [v])) if spec.custom else (lambda v: op("Sqrt", [v]))
    if spec.inverse == "div_sqrt":
        n = op("Div", [d, sqrt(var_eps)])
    elif spec.inverse == "mul_reciprocal":
        n = op("Mul", [d, op("Reciprocal", [sqrt(var_eps)])])
    else:
        half = const("neg_half", np.array(-0.5, np_dtype))
        n = op("Mul", [d, custom("Pow", [var_eps, half]) if spec.custom else op("Pow", [var_eps, half])])
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
    opsets = [h.make_opsetid("", spec.opset)] + ([h.make_opsetid("com.example", 1)] if functions else [])
    return h.make_model(graph, opset_imports=opsets, ir_version=10, functions=functions)


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
        residual=pick(["none", "none", "same", "broadcast", "unknown", "row"]),
        custom=bool(rng.random() < 0.1),
        as_inputs=bool(rng.random() < 0.2),
        qdq=bool(rng.random() < 0.2),
        symbolic_hidden=bool(rng.random() < 0.2),
        variance=pick(["centred", "centred", "moments", "clamped"]),
    )
