"""Generate the reference pattern graphs and their manifest.

Run ``python graphs/make_graphs.py`` to rewrite every ``graphs/*.onnx`` and ``graphs/manifest.json``.
Each graph holds one norm spelling (or one look-alike that must not be fused). The manifest says, per
target, what fusion must produce, and gives the norm's semantics so tests can check parity against an
independent numpy reference.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent
IR_VERSION = 10
F32, F16, BF16 = TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16
DOUBLE = TensorProto.DOUBLE
NP = {F32: np.float32, F16: np.float16}


@dataclass
class G:
    """A tiny graph builder: named inputs, constants in three styles, nodes, outputs."""

    name: str
    opset: int = 18
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    inits: list[onnx.TensorProto] = field(default_factory=list)
    inputs: list[onnx.ValueInfoProto] = field(default_factory=list)
    outputs: list[onnx.ValueInfoProto] = field(default_factory=list)
    count: int = 0
    in_function: bool = False

    def fresh(self, stem: str) -> str:
        self.count += 1
        return f"{stem}_{self.count}"

    def inp(self, name: str, shape: tuple[int | str, ...], dtype: int = F32) -> str:
        self.inputs.append(helper.make_tensor_value_info(name, dtype, list(shape)))
        return name

    def const(self, array: np.ndarray, style: str = "init", dtype: int | None = None, name: str = "") -> str:
        name = name or self.fresh("c")
        if self.in_function and style == "init":
            style = "node"
        if style == "value_float":
            self.nodes.append(helper.make_node("Constant", [], [name], value_float=float(array.reshape(()))))
            return name
        tensor = numpy_helper.from_array(np.asarray(array), name)
        if dtype == BF16:
            tensor = helper.make_tensor(name, BF16, list(array.shape), np.asarray(array, np.float32).ravel().tolist())
        if style == "node":
            self.nodes.append(helper.make_node("Constant", [], [name], value=tensor))
        else:
            self.inits.append(tensor)
        return name

    def op(self, op_type: str, inputs: list[str], domain: str = "", **attrs: Any) -> str:
        out = self.fresh(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, domain=domain, **attrs))
        return out

    def out(self, name: str, dtype: int = F32, shape: tuple[int | str, ...] | None = None) -> None:
        """Declare a graph output; its shape defaults to the first input's (what every norm keeps)."""
        if shape is None:
            dims = self.inputs[0].type.tensor_type.shape.dim if self.inputs else []
            shape = tuple(d.dim_param or d.dim_value for d in dims)
        self.outputs.append(helper.make_tensor_value_info(name, dtype, list(shape)))

    def graph(self) -> onnx.GraphProto:
        return helper.make_graph(self.nodes, self.name, self.inputs, self.outputs, self.inits)

    def model(self, functions: list[onnx.FunctionProto] | None = None) -> onnx.ModelProto:
        opsets = [helper.make_opsetid("", self.opset)]
        if functions:
            opsets.append(helper.make_opsetid("local", 1))
        model = helper.make_model(self.graph(), opset_imports=opsets, functions=functions or [])
        model.ir_version = IR_VERSION
        return model


def _np(dtype: int) -> Any:
    return NP.get(dtype, np.float32)


def reduce_mean(g: G, x: str, axes: list[int], keepdims: int | None, style: str) -> str:
    """ReduceMean with axes as attribute (opset < 18) or input (opset ≥ 18)."""
    attrs: dict[str, Any] = {} if keepdims is None else {"keepdims": keepdims}
    if style == "none":  # no axes at all: every axis
        return g.op("ReduceMean", [x], **attrs)
    if style == "noop":  # no axes and noop_with_empty_axes=1: an identity
        return g.op("ReduceMean", [x], noop_with_empty_axes=1, **attrs)
    if style == "attr" or (style == "auto" and g.opset < 18):
        return g.op("ReduceMean", [x], axes=axes, **attrs)
    return g.op("ReduceMean", [x, g.const(np.array(axes, np.int64))], **attrs)


def square(g: G, d: str, how: str, dtype: int, exponent: float = 2.0, exp_shape: tuple[int, ...] = ()) -> str:
    if how == "mul":
        return g.op("Mul", [d, d])
    if how == "pow_int":  # Pow's exponent may have its own (integer) type
        return g.op("Pow", [d, g.const(np.full(exp_shape, int(exponent), np.int64))])
    return g.op("Pow", [d, g.const(np.full(exp_shape, exponent, _np(dtype)), dtype=dtype)])


def inverse_sqrt(g: G, num: str, var_eps: str, how: str, dtype: int, swap: bool) -> str:
    """``num / sqrt(var_eps)`` in one of the spellings exporters produce."""
    one = np.array(1.0, _np(dtype))

    def mul(a: str, b: str) -> str:
        return g.op("Mul", [b, a] if swap else [a, b])

    if how == "div_sqrt":
        return g.op("Div", [num, g.op("Sqrt", [var_eps])])
    if how == "sqrt_over":  # look-alike: sqrt(v+eps) / num
        return g.op("Div", [g.op("Sqrt", [var_eps]), num])
    if how == "mul_sqrt":  # look-alike: num * sqrt(v+eps)
        return mul(num, g.op("Sqrt", [var_eps]))
    if how == "div_pow_half":
        return g.op("Div", [num, g.op("Pow", [var_eps, g.const(one * 0.5, dtype=dtype)])])
    if how == "mul_reciprocal":
        return mul(num, g.op("Reciprocal", [g.op("Sqrt", [var_eps])]))
    if how == "mul_div_one":
        return mul(num, g.op("Div", [g.const(one, dtype=dtype), g.op("Sqrt", [var_eps])]))
    if how == "mul_pow_neg_half":
        return mul(num, g.op("Pow", [var_eps, g.const(one * -0.5, dtype=dtype)]))
    raise ValueError(how)


@dataclass
class Norm:
    """Parameters of one decomposed norm; ``build`` emits it and returns (output, semantics)."""

    kind: str = "layernorm"
    axes: list[int] = field(default_factory=lambda: [-1])
    axes_style: str = "auto"
    keepdims: int | None = None
    var_keepdims: int | None = None
    square: str = "pow"
    exponent: float = 2.0
    exp_shape: tuple[int, ...] = ()
    inv: str = "div_sqrt"
    eps: float = 1e-5
    eps_style: str = "init"
    eps_shape: tuple[int, ...] = ()
    eps_left: bool = False
    eps_outside: bool = False
    swap: bool = False
    gamma: tuple[int, ...] | None = (16,)
    beta: tuple[int, ...] | None = (16,)
    gamma_cast_from: int | None = None
    dup_sub: bool = False
    unbiased: bool = False
    dtype: int = F32
    cast_wrap: int | None = None
    affine_in_fp32: bool = False
    mean_of: str | None = None
    var_axes: list[int] | None = None
    numerator: str | None = None
    shared: dict[str, str] = field(default_factory=dict)
    var_output: bool = False
    cast_centred: bool = False
    mean_twice: bool = False  # legacy x.var(unbiased=False): the variance centres x with a second mean
    sum_over: float | None = None  # means spelled ReduceSum(·) / N with this N
    var_restore: str | None = None  # variance with keepdims=0, then "reshape" (dynamo) / "unsqueeze" / "unsqueeze_axis1"

    def build(self, g: G, x: str, seed: int = 0) -> tuple[str, dict[str, Any]]:
        rng = np.random.default_rng(seed)
        compute = F32 if self.cast_wrap is not None else self.dtype
        xin = g.op("Cast", [x], to=F32) if self.cast_wrap is not None and not self.cast_centred else x
        if self.kind == "layernorm":
            mean = self._mean(g, self.mean_of or xin, compute)
            d = g.op("Sub", [xin, mean])
            num = g.op("Sub", [xin, mean]) if self.dup_sub else d
            if self.mean_twice:
                d = g.op("Sub", [xin, self._mean(g, xin, compute)])
            if self.cast_centred:
                d = num = g.op("Cast", [d], to=F32)
        else:
            d = num = xin
        sq = square(g, d, self.square, compute, self.exponent, self.exp_shape)
        if self.unbiased:
            total = g.op("ReduceSum", [sq, g.const(np.array(self.axes, np.int64))] if g.opset >= 13 else [sq], keepdims=1)
            var = g.op("Div", [total, g.const(np.array(15.0, _np(compute)), dtype=compute)])
        elif self.var_restore is not None:
            var = self._restored(g, reduce_mean(g, sq, self.axes, 0, self.axes_style), x, sq)
        elif self.sum_over is not None and self.kind == "rmsnorm":
            var = self._mean(g, sq, compute)
        else:
            var = reduce_mean(g, sq, self.var_axes or self.axes, self.var_keepdims, self.axes_style)
        if self.var_output:
            dims = g.inputs[0].type.tensor_type.shape.dim
            g.out(var, compute, tuple(d.dim_value for d in dims)[: -len(self.axes)] + (1,) * len(self.axes))
        eps_name = self.shared.get("eps") or g.const(np.full(self.eps_shape, self.eps, _np(compute)), self.eps_style, compute)
        if self.eps_outside:
            denom = g.op("Add", [g.op("Sqrt", [var]), eps_name])
            n = g.op("Div", [num, denom])
        else:
            var_eps = g.op("Add", [eps_name, var] if self.eps_left else [var, eps_name])
            n = inverse_sqrt(g, self.numerator or num, var_eps, self.inv, compute, self.swap)
        affine_dtype = compute if (self.affine_in_fp32 or self.cast_wrap is None) else self.dtype
        if self.cast_wrap is not None and not self.affine_in_fp32:
            n = g.op("Cast", [n], to=self.cast_wrap)
        gamma = beta = None
        if self.gamma is not None:
            values = (1.0 + 0.5 * rng.standard_normal(self.gamma)).astype(np.float16).astype(np.float32)
            gamma = self._affine(g, values, affine_dtype)
            n = g.op("Mul", [gamma, n] if self.swap else [n, gamma])
        if self.beta is not None:
            values = (0.1 * rng.standard_normal(self.beta)).astype(np.float16).astype(np.float32)
            beta = self._affine(g, values, affine_dtype)
            n = g.op("Add", [beta, n] if self.swap else [n, beta])
        if self.cast_wrap is not None and self.affine_in_fp32:
            n = g.op("Cast", [n], to=self.cast_wrap)
        eps_value = float(np.array(self.eps, _np(compute)))
        semantics = {"kind": self.kind, "eps": eps_value, "axes": len(self.axes), "scale": gamma, "bias": beta}
        return n, semantics

    def _mean(self, g: G, x: str, dtype: int) -> str:
        if self.sum_over is None:
            return reduce_mean(g, x, self.axes, self.keepdims, self.axes_style)
        total = g.op("ReduceSum", [x, g.const(np.array(self.axes, np.int64))], keepdims=1)
        return g.op("Div", [total, g.const(np.array(self.sum_over, _np(dtype)), dtype=dtype)])

    def _restored(self, g: G, var: str, x: str, sq: str) -> str:
        """Put the reduced last axis of ``var`` back: as the dynamo exporter does, with Unsqueeze, or with a
        Reshape whose target is read from ``Shape`` of the square (``square_*``: start/end, Slice, Gather).
        """
        if self.var_restore == "square_shape":
            one = g.const(np.array([1], np.int64))
            return g.op("Reshape", [var, g.op("Concat", [g.op("Shape", [sq], start=0, end=-1), one], axis=0)])
        if self.var_restore == "square_slice":
            shape, one = g.op("Shape", [sq]), g.const(np.array([1], np.int64))
            lead = g.op("Slice", [shape, g.const(np.array([0], np.int64)), g.const(np.array([-1], np.int64))])
            return g.op("Reshape", [var, g.op("Concat", [lead, one], axis=0)])
        if self.var_restore in ("square_gather", "square_gather_swapped"):
            shape, zero, one = g.op("Shape", [sq]), g.const(np.array([0], np.int64)), g.const(np.array([1], np.int64))
            order = (0, 1) if self.var_restore == "square_gather" else (1, 0)
            dims = [g.op("Unsqueeze", [g.op("Gather", [shape, g.const(np.array(i, np.int64))]), zero]) for i in order]
            return g.op("Reshape", [var, g.op("Concat", [*dims, one], axis=0)])
        if self.var_restore == "unsqueeze":
            return g.op("Unsqueeze", [var, g.const(np.array([-1], np.int64))])
        if self.var_restore == "unsqueeze_axis1":
            return g.op("Unsqueeze", [var, g.const(np.array([1], np.int64))])
        minus_one, one = g.const(np.array([-1], np.int64)), g.const(np.array([1], np.int64))
        dims = [g.op("Reshape", [g.op("Shape", [var], start=i, end=i + 1), minus_one]) for i in range(2)]
        restored = g.op("Reshape", [var, g.op("Concat", [*dims, one], axis=0)])
        target = g.op("Concat", [g.op("Shape", [x], start=0, end=1), g.op("Shape", [x], start=1, end=2), one], axis=0)
        return g.op("Expand", [restored, target])

    def _affine(self, g: G, values: np.ndarray, dtype: int) -> str:
        if self.gamma_cast_from is not None:
            stored = g.const(values.astype(_np(self.gamma_cast_from)), dtype=self.gamma_cast_from)
            return g.op("Cast", [stored], to=dtype)
        return g.const(values.astype(_np(dtype)), dtype=dtype)


ENTRIES: list[dict[str, Any]] = []


def single(
    name: str,
    claim: str,
    norm: Norm,
    expect: dict[str, dict[str, Any]],
    opset: int = 18,
    shape: tuple[int | str, ...] = (2, 4, 16),
    lookalike: bool = False,
) -> None:
    """One graph holding one norm (or look-alike) from a single input ``x``.

    ``lookalike`` marks graphs whose output must differ from the true norm the semantics describe.
    """
    g = G(name, opset=opset)
    dtype = norm.dtype
    x = g.inp("x", shape, dtype)
    y, semantics = norm.build(g, x)
    g.out(y, dtype if norm.cast_wrap is None else norm.cast_wrap)
    _save(g.model(), name, claim, expect, [semantics | {"input": "x", "output": y, "lookalike": lookalike}])


def _save(model: onnx.ModelProto, name: str, claim: str, expect: dict[str, Any], semantics: list[dict[str, Any]], **extra: Any) -> None:
    onnx.checker.check_model(model, full_check=False)
    onnx.save(model, HERE / f"{name}.onnx")
    ENTRIES.append({"file": f"{name}.onnx", "claim": claim, "expect": expect, "semantics": semantics} | extra)


def fused(op: str, n: int = 1, **extra: Any) -> dict[str, Any]:
    return {"fused": n, "candidates": n, "ops": {op: n}} | extra


def refused(candidates: int = 1, reason: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"fused": 0, "candidates": candidates, "unchanged": True}
    if reason:
        out["reason"] = reason
    return out


LN = fused("LayerNormalization")
SIMPLIFIED = fused("SimplifiedLayerNormalization")
RMS23 = fused("RMSNormalization")


def layernorm_variants() -> None:
    every = {"auto": LN, "onnx": LN, "ort": LN}
    single("ln_canonical", "ReduceMean→Sub→Pow→ReduceMean→Add→Sqrt→Div→Mul→Add, axes input", Norm(), every)
    single("ln_axes_attr_opset17", "axes as attribute at opset 17", Norm(), every, opset=17)
    single("ln_axes_positive", "positive axis with known rank", Norm(axes=[2]), every)
    single("ln_multi_axes", "normalization over the two trailing axes", Norm(axes=[-2, -1], gamma=(4, 16), beta=(4, 16)), every)
    single("ln_keepdims_explicit", "keepdims=1 spelled out", Norm(keepdims=1, var_keepdims=1), every)
    single("ln_square_mul", "square as Mul(d, d)", Norm(square="mul"), every)
    single("ln_pow_exp_1d", "Pow exponent of shape [1]", Norm(exp_shape=(1,)), every)
    single("ln_mul_reciprocal", "Mul(d, Reciprocal(Sqrt(v+eps)))", Norm(inv="mul_reciprocal"), every)
    single("ln_mul_div_one_swapped", "Mul(Div(1, Sqrt), d) and γ·n, β+n operand order", Norm(inv="mul_div_one", swap=True), every)
    single("ln_pow_neg_half", "Mul(d, Pow(v+eps, -0.5))", Norm(inv="mul_pow_neg_half"), every)
    single("ln_div_pow_half", "Div(d, Pow(v+eps, 0.5))", Norm(inv="div_pow_half"), every)
    single("ln_eps_left_node", "Add(eps, var) with eps a Constant node of shape [1]", Norm(eps_left=True, eps_style="node", eps_shape=(1,)), every)
    single("ln_eps_value_float", "eps as Constant(value_float)", Norm(eps_style="value_float", eps=1e-6), every)
    single("ln_gamma_11h", "γ and β of shape [1,1,H]", Norm(gamma=(1, 1, 16), beta=(1, 1, 16)), every)
    single("ln_no_beta", "γ only", Norm(beta=None), every)
    single("ln_no_affine", "no γ, no β", Norm(gamma=None, beta=None), every)
    single("ln_dup_sub", "two identical Sub(x, mean) as old exporters write", Norm(dup_sub=True), every)
    single("ln_fp16_native", "fp16 throughout", Norm(dtype=F16), every)
    single(
        "ln_fp16_legacy_mixed", "legacy exporter fp16: mean and Sub in fp16, the rest upcast, cast back before γ/β",
        Norm(dtype=F16, cast_wrap=F16, cast_centred=True), every,
    )
    single("ln_fp16_cast_wrapped", "fp16 input cast to float32, cast back, γ/β in fp16", Norm(dtype=F16, cast_wrap=F16), every)
    single(
        "ln_fp16_gamma_cast", "cast-wrapped fp16 with γ/β stored fp16 and Cast to float32",
        Norm(dtype=F16, cast_wrap=F16, affine_in_fp32=True, gamma_cast_from=F16), every,
    )
    single("ln_var_used_elsewhere", "variance also a graph output: fuse and keep it", Norm(var_output=True), every)
    single("ln_pow_int_exponent", "Pow exponent stored as int64 2", Norm(square="pow_int"), every)
    single("ln_reduce_all_axes", "ReduceMean without axes over a rank-2 input: every axis, which are the trailing ones",
           Norm(axes=[-2, -1], axes_style="none", gamma=(16,), beta=(16,)), every, shape=(4, 16))
    single("ln_var_mean_twice", "legacy x.var(unbiased=False): a second ReduceMean(x) centres the variance", Norm(mean_twice=True, square="mul"), every)
    single("ln_dynamo_var_restored", "dynamo x.var(unbiased=False): variance with keepdims=0, Reshape(Concat(Shape..., [1])), identity Expand",
           Norm(mean_twice=True, square="mul", var_restore="reshape"), every, shape=("batch", "seq", 16))
    single("ln_var_unsqueezed", "variance with keepdims=0 and Unsqueeze(-1)", Norm(var_restore="unsqueeze"), every)
    for how, spelled in (("shape", "Shape(sq, end=-1)"), ("slice", "Slice(Shape(sq), 0, -1)"), ("gather", "Unsqueeze(Gather(Shape(sq), i))")):
        single(f"ln_var_restored_from_square_{how}", f"variance with keepdims=0, Reshape to Concat({spelled}, [1])",
               Norm(var_restore=f"square_{how}"), every, shape=("batch", "seq", 16))
    single("ln_mean_sum_div_n", "mean as ReduceSum(x) / 16", Norm(sum_over=16.0), every)
    single("ln_dynamic_dims", "symbolic batch and sequence dims", Norm(), every, shape=("batch", "seq", 16))
    below17 = {"auto": LN, "ort": LN, "onnx": refused(reason="opset 13 has no LayerNormalization")}
    single("ln_opset13", "legacy exporter spelling at opset 13", Norm(), below17, opset=13)
    _shared_constants()
    _subgraph()
    _function()


def _shared_constants() -> None:
    g = G("ln_shared_constants", opset=18)
    x = g.inp("x", (2, 4, 16))
    eps = g.const(np.array(1e-5, np.float32), name="shared_eps")
    h, s1 = Norm(shared={"eps": eps}).build(g, x, seed=1)
    y, s2 = Norm(shared={"eps": eps}).build(g, h, seed=2)
    g.out(y)
    expect = fused("LayerNormalization", 2)
    _save(g.model(), "ln_shared_constants", "two layers sharing one eps initializer", {"auto": expect, "onnx": expect, "ort": expect},
          [s1 | {"input": "x", "output": h}, s2 | {"input": h, "output": y}])


def _subgraph() -> None:
    g = G("ln_in_if", opset=18)
    x = g.inp("x", (2, 4, 16))
    cond = g.inp("cond", (), TensorProto.BOOL)
    branches = []
    for branch in ("then", "else"):
        b = G(f"{branch}_branch", opset=18, inputs=[g.inputs[0]])
        y, semantics = Norm(inv="mul_reciprocal" if branch == "then" else "div_sqrt").build(b, x, seed=3)
        b.out(y)
        b.inputs = []
        branches.append(b.graph())
    out = g.op("If", [cond], then_branch=branches[0], else_branch=branches[1])
    g.out(out)
    expect = fused("LayerNormalization", 2)
    _save(g.model(), "ln_in_if", "one LayerNorm in each branch of an If", {"auto": expect, "onnx": expect, "ort": expect},
          [semantics | {"input": "x", "output": out, "feeds": {"cond": True}}])


def _function() -> None:
    body = G("body", opset=18, in_function=True, inputs=[helper.make_tensor_value_info("fx", F32, [2, 4, 16])])
    y, semantics = Norm(gamma=None, beta=None).build(body, "fx")
    function = helper.make_function("local", "Norm", ["fx"], [y], body.nodes, [helper.make_opsetid("", 18)])
    g = G("ln_in_function", opset=18)
    x = g.inp("x", (2, 4, 16))
    out = g.op("Norm", [x], domain="local")
    g.out(out)
    expect = fused("LayerNormalization")
    _save(g.model([function]), "ln_in_function", "LayerNorm inside a model-local function", {"auto": expect, "onnx": expect, "ort": expect},
          [semantics | {"input": "x", "output": out}])


def layernorm_lookalikes() -> None:
    def no(reason: str) -> dict[str, dict[str, Any]]:
        return {t: refused(reason=reason) for t in ("auto", "onnx", "ort")}

    single("neg_ln_eps_outside_sqrt", "(x-μ)/(σ+ε) is not LayerNorm", Norm(eps_outside=True, eps=0.1), no("outside the square root"), lookalike=True)
    single("neg_ln_unbiased_std", "variance divided by N-1 (torch.std)", Norm(unbiased=True), no("N-1"), lookalike=True)
    single("neg_ln_pow4", "fourth power instead of square", Norm(exponent=4.0), no("exponent 4"), lookalike=True)
    single("neg_ln_keepdims0", "mean with keepdims=0 broadcasts along the wrong axis", Norm(keepdims=0, gamma=None, beta=None),
           no("keepdims=0"), shape=(4, 4, 4), lookalike=True)
    single("unproven_ln_sum_div_dynamic_hidden", "ReduceSum(x)/16 over a hidden dim of unknown size: a LayerNorm that cannot be proved "
           "(16 may not be the element count), refused with the reason, never silently skipped", Norm(sum_over=16.0),
           no("reduced dims unknown"), shape=("batch", "seq", "hidden"))
    single("neg_ln_non_trailing_axis", "normalization over axis 1 of 3", Norm(axes=[1], gamma=None, beta=None), no("not the trailing"), lookalike=True)
    single("neg_ln_axes_mismatch", "mean over one axis, variance over another", Norm(var_axes=[-2], gamma=None, beta=None), no("variance over axes"),
           shape=(2, 16, 16), lookalike=True)
    single("neg_ln_sqrt_over_centred", "sqrt(v+ε)/(x-μ): the Div's operands swapped", Norm(inv="sqrt_over"), no("same tensor"), lookalike=True)
    single("neg_ln_mul_sqrt", "(x-μ)·sqrt(v+ε): no inverse", Norm(inv="mul_sqrt"), no("same tensor"), lookalike=True)
    single("neg_ln_numerator_x", "x/sqrt(var(x)+ε): the centred tensor is not what is scaled", Norm(numerator="x"), no("same tensor"), lookalike=True)
    single("neg_ln_noop_empty_axes", "ReduceMean with no axes and noop_with_empty_axes=1 is an identity, not a mean",
           Norm(axes_style="noop", gamma=None, beta=None), no("identity"), lookalike=True)
    single("neg_ln_var_unsqueezed_wrong_axis", "variance with keepdims=0 put back at axis 1: broadcasts along the wrong axis",
           Norm(var_restore="unsqueeze_axis1", gamma=None, beta=None), no("keepdims=0"), shape=(4, 4, 4), lookalike=True)
    single("neg_ln_var_restore_gather_swapped", "variance restored to [dim 1, dim 0, 1] read from Shape of the square: the same only while "
           "the two dims are equal (runs only then), which the matcher does not take from dim names", Norm(var_restore="square_gather_swapped", gamma=None, beta=None), no("keepdims=0"),
           shape=("n", "n", 16))
    kept = fused("LayerNormalization") | {"ops": {"LayerNormalization": 1, "Mul": 1}}
    single("ln_scale_other_axis_left_outside", "a [4,1] multiplier after the norm varies over another axis: the norm is fused, the Mul stays",
           Norm(gamma=(4, 1), beta=None), {"auto": kept, "onnx": kept, "ort": kept})
    g = G("neg_ln_mean_of_other", opset=18)
    x, z = g.inp("x", (2, 4, 16)), g.inp("z", (2, 4, 16))
    y, _ = Norm(mean_of=z).build(g, x)
    g.out(y)
    rms_of_d = {
        "auto": fused("SimplifiedLayerNormalization", candidates=2, reason="different tensor"),
        "ort": fused("SimplifiedLayerNormalization", candidates=2, reason="different tensor"),
        "onnx": refused(2, "different tensor"),
    }
    _save(g.model(), "neg_ln_mean_of_other", "x - mean(z) is no LayerNorm; what follows is an exact RMSNorm of it", rms_of_d, [])
    rms_of_d = {
        "auto": fused("SimplifiedLayerNormalization"),
        "ort": fused("SimplifiedLayerNormalization"),
        "onnx": refused(1, "no RMSNormalization"),
    }
    single("neg_ln_mean_sum_div_wrong_n", "x - ReduceSum(x)/15 over 16 elements is no LayerNorm; what follows is an exact RMSNorm of it",
           Norm(sum_over=15.0), rms_of_d, lookalike=True)
    g = G("neg_ln_eps_runtime", opset=18)
    x, e = g.inp("x", (2, 4, 16)), g.inp("e", ())
    y, _ = Norm(shared={"eps": e}).build(g, x)
    g.out(y)
    _save(g.model(), "neg_ln_eps_runtime", "ε is a runtime input, not a constant", no("epsilon"), [])
    g = G("neg_ln_variance_of_fp16_copy", opset=18)
    x = g.inp("x", (2, 4, 16))
    d = g.op("Sub", [x, reduce_mean(g, x, [-1], None, "auto")])
    x16 = g.op("Cast", [x], to=F16)
    d16 = g.op("Sub", [x16, reduce_mean(g, x16, [-1], None, "auto")])
    var = g.op("Cast", [reduce_mean(g, g.op("Mul", [d16, d16]), [-1], None, "auto")], to=F32)
    y = g.op("Div", [d, g.op("Sqrt", [g.op("Add", [var, g.const(np.array(1e-5, np.float32))])])])
    g.out(y)
    _save(g.model(), "neg_ln_variance_of_fp16_copy", "fp32 x centred by its mean, but the variance is of an fp16 copy: a lossy Cast, not the same data",
          {t: refused(2, "same tensor") for t in ("auto", "onnx", "ort")}, [])


def rmsnorm_variants() -> None:
    rms = Norm(kind="rmsnorm", beta=None, inv="mul_reciprocal")
    legacy = {"auto": SIMPLIFIED, "ort": SIMPLIFIED, "onnx": refused(reason="no RMSNormalization")}
    single("rms_dynamo", "dynamo spelling: Pow→ReduceMean→Add→Sqrt→Reciprocal→Mul→Mul", rms, legacy)
    single("rms_div_sqrt", "legacy Div(x, Sqrt(..)) at opset 13", Norm(kind="rmsnorm", beta=None), legacy | {"onnx": refused(reason="opset 13")}, opset=13)
    single("rms_mul_div_one", "Mul(x, Div(1, Sqrt(..)))", Norm(kind="rmsnorm", beta=None, inv="mul_div_one"), legacy)
    single("rms_pow_neg_half_swapped", "Mul(Pow(v+eps, -0.5), x), γ·n", Norm(kind="rmsnorm", beta=None, inv="mul_pow_neg_half", swap=True), legacy)
    single("rms_square_mul", "square as Mul(x, x)", Norm(kind="rmsnorm", beta=None, square="mul", inv="mul_reciprocal"), legacy)
    single("rms_eps_left_value_float", "Add(eps, ms) with Constant(value_float)", Norm(kind="rmsnorm", beta=None, eps_left=True, eps_style="value_float", eps=1e-6), legacy)
    single("rms_no_gamma", "no γ", Norm(kind="rmsnorm", gamma=None, beta=None, inv="mul_reciprocal"), legacy)
    single("rms_multi_axes", "over the two trailing axes", Norm(kind="rmsnorm", axes=[-2, -1], gamma=(4, 16), beta=None), legacy)
    single("rms_ms_used_elsewhere", "mean square also a graph output", Norm(kind="rmsnorm", beta=None, var_output=True), legacy)
    single("rms_sum_div_n", "mean square as ReduceSum(x²) / 16", Norm(kind="rmsnorm", beta=None, inv="mul_reciprocal", sum_over=16.0), legacy)
    cast16 = Norm(kind="rmsnorm", beta=None, inv="mul_reciprocal", dtype=F16, cast_wrap=F16)
    single("rms_fp16_cast_wrapped", "HF LLaMA fp16: Cast up, RMS in float32, Cast down, γ in fp16", cast16, legacy)
    single("rms_fp16_cast_wrapped_opset17", "the same at opset 17 (axes attribute)", cast16, legacy | {"onnx": refused(reason="opset 17")}, opset=17)
    gemma = Norm(kind="rmsnorm", beta=None, inv="mul_reciprocal", dtype=F16, cast_wrap=F16, affine_in_fp32=True)
    single("rms_fp16_gamma_fp32", "Gemma style: γ applied in float32 before the Cast down", gemma, legacy)
    single("rms_fp16_native", "fp16 throughout", Norm(kind="rmsnorm", beta=None, dtype=F16), legacy)
    for how in ("shape", "slice", "gather"):
        single(f"rms_ms_restored_from_square_{how}", f"mean square with keepdims=0, Reshape to Shape of the square ({how}) with 1 last",
               Norm(kind="rmsnorm", beta=None, inv="mul_reciprocal", var_restore=f"square_{how}"), legacy, shape=("batch", "seq", 16))
    every23 = {"auto": RMS23, "onnx": RMS23, "ort": SIMPLIFIED}
    single("rms_opset23", "opset 23: standard RMSNormalization", rms, every23, opset=23)
    single("rms_opset23_fp16_cast_wrapped", "opset 23, fp16 cast-wrapped", cast16, every23, opset=23)
    bf16 = {"auto": SIMPLIFIED, "ort": SIMPLIFIED, "onnx": refused(reason="bfloat16")}
    single("rms_bf16_opset23", "bfloat16 at opset 23: ORT has no bf16 RMSNormalization kernel", Norm(kind="rmsnorm", beta=None, dtype=BF16, inv="mul_reciprocal"), bf16, opset=23)


def rmsnorm_lookalikes() -> None:
    def no(reason: str | None, candidates: int = 1) -> dict[str, dict[str, Any]]:
        return {t: refused(candidates, reason) for t in ("auto", "onnx", "ort")}

    single("neg_rms_eps_outside_sqrt", "x/(rms+ε)", Norm(kind="rmsnorm", beta=None, eps_outside=True, eps=0.1), no("outside the square root"), lookalike=True)
    single("neg_rms_pow3", "mean of cubes", Norm(kind="rmsnorm", beta=None, exponent=3.0), no("exponent 3"), lookalike=True)
    single("neg_rms_non_trailing_axis", "mean square over axis 1 of 3", Norm(kind="rmsnorm", axes=[1], gamma=None, beta=None), no("not the trailing"),
           lookalike=True)
    single("neg_rms_sum_div_wrong_n", "ReduceSum(x²) / 15 over 16 elements", Norm(kind="rmsnorm", beta=None, sum_over=15.0),
           {t: refused(0) for t in ("auto", "onnx", "ort")}, lookalike=True)
    single("unproven_rms_sum_div_dynamic_hidden", "ReduceSum(x²)/16 over a hidden dim of unknown size: an RMSNorm that cannot be proved, "
           "refused with the reason, never silently skipped", Norm(kind="rmsnorm", beta=None, sum_over=16.0), no("reduced dims unknown"),
           shape=("batch", "seq", "hidden"))
    single("neg_rms_keepdims0", "mean square with keepdims=0", Norm(kind="rmsnorm", gamma=None, beta=None, var_keepdims=0), no("keepdims=0"), shape=(4, 4, 4), lookalike=True)
    g = G("neg_rms_scales_other", opset=18)
    x, z = g.inp("x", (2, 4, 16)), g.inp("z", (2, 4, 16))
    y, _ = Norm(kind="rmsnorm", beta=None, numerator=z).build(g, x)
    g.out(y)
    _save(g.model(), "neg_rms_scales_other", "rsqrt of mean(x²) scales a different tensor", no("same tensor"), [])
    g = G("neg_rms_square_rounded_fp16", opset=18)
    x = g.inp("x", (2, 4, 16))
    sq = g.op("Cast", [g.op("Mul", [x, x])], to=F16)
    ms = g.op("Cast", [reduce_mean(g, sq, [-1], None, "auto")], to=F32)
    y = g.op("Mul", [x, g.op("Reciprocal", [g.op("Sqrt", [g.op("Add", [ms, g.const(np.array(1e-6, np.float32))])])])])
    g.out(y)
    _save(g.model(), "neg_rms_square_rounded_fp16", "fp32 squares rounded to fp16 before the mean: a lossy Cast, not an fp32 RMSNorm",
          no(None, 0), [])


def skip_variants() -> None:
    for kind, op in (("layernorm", "SkipLayerNormalization"), ("rmsnorm", "SkipSimplifiedLayerNormalization")):
        name = f"skip_{kind}_residual"
        g = G(name, opset=18)
        a, b = g.inp("a", ("batch", "seq", 16)), g.inp("b", ("batch", "seq", 16))
        total = g.op("Add", [a, b])
        y, semantics = Norm(kind=kind, beta=None if kind == "rmsnorm" else (16,)).build(g, total)
        g.out(y)
        g.out(total)
        plain = "LayerNormalization" if kind == "layernorm" else "SimplifiedLayerNormalization"
        expect = {
            "auto": fused(plain),
            "ort": fused(plain, skips=1) | {"ops": {op: 1}, "absent": [plain, "Add"]},
        }
        if kind == "layernorm":
            expect["onnx"] = fused(plain)
        _save(g.model(), name, "residual Add + norm, sum reused as an output", expect, [semantics | {"input": total, "output": y, "feeds_sum": [a, b]}])
    # a bias Add before the residual Add (attention/MLP projection + bias, then + residual): the Skip op's bias input
    for kind, op in (("layernorm", "SkipLayerNormalization"), ("rmsnorm", "SkipSimplifiedLayerNormalization")):
        name = f"skip_{kind}_bias_residual"
        g = G(name, opset=18)
        a, r = g.inp("a", ("batch", "seq", 16)), g.inp("r", ("batch", "seq", 16))
        projected = g.op("MatMul", [a, g.const(np.linspace(-0.1, 0.1, 256).astype(np.float32).reshape(16, 16))])
        biased = g.op("Add", [projected, g.const(np.linspace(-0.5, 0.5, 16).astype(np.float32))])
        total = g.op("Add", [biased, r])
        y, semantics = Norm(kind=kind, beta=None if kind == "rmsnorm" else (16,)).build(g, total)
        g.out(y)
        plain = "LayerNormalization" if kind == "layernorm" else "SimplifiedLayerNormalization"
        expect = {"auto": fused(plain), "ort": fused(plain, skips=1) | {"ops": {op: 1, "MatMul": 1}, "absent": [plain, "Add"]}}
        if kind == "layernorm":
            expect["onnx"] = fused(plain)
        _save(g.model(), name, "projection + bias Add + residual Add + norm: the bias becomes the Skip op's bias input", expect, [])
    # position embeddings: [B,S,H] + [1,S,H] is what the Skip op's skip input may be (ORT's optimizer fuses it)
    g = G("skip_broadcast_embeddings", opset=18)
    a, pos = g.inp("a", ("batch", "seq", 16)), g.inp("pos", (1, "seq", 16))
    total = g.op("Add", [pos, a])
    y, semantics = Norm().build(g, total)
    g.out(y)
    plain = fused("LayerNormalization")
    _save(g.model(), "skip_broadcast_embeddings", "a [1,S,H] operand (position embeddings) is the Skip op's skip input",
          {"auto": plain, "onnx": plain, "ort": fused("LayerNormalization", skips=1) | {"ops": {"SkipLayerNormalization": 1}, "absent": ["LayerNormalization", "Add"]}},
          [semantics | {"input": total, "output": y, "feeds_sum": [a, pos]}])
    # broadcasting along the sequence ([B,S,H] + [B,1,H]) is outside the Skip op's contract
    g = G("neg_skip_broadcast_add", opset=18)
    a, per_row = g.inp("a", (2, 4, 16)), g.inp("per_row", (2, 1, 16))
    total = g.op("Add", [a, per_row])
    y, semantics = Norm().build(g, total)
    g.out(y)
    expect = fused("LayerNormalization")
    _save(g.model(), "neg_skip_broadcast_add", "a [B,1,H] operand broadcasts along the sequence: not a skip input",
          {"auto": expect, "onnx": expect, "ort": expect | {"skips": 0, "skip_reason": "cannot prove"}}, [semantics | {"input": total, "output": y, "feeds_sum": [a, per_row]}])


def soundness_cases() -> None:
    """Proofs that must use only what holds for every input: unknown dims, op domains, names, cycles."""
    # two unknown dims (no value, no name) are not equal: a=[1,4,8], b=[2,4,8] broadcast to [2,4,8]
    g = G("neg_skip_unknown_dims", opset=18)
    a, b = g.inp("a", (None, None, 16)), g.inp("b", (None, None, 16))
    total = g.op("Add", [a, b])
    y, _ = Norm().build(g, total)
    g.outputs.append(helper.make_tensor_value_info(y, F32, [None, None, 16]))
    expect = fused("LayerNormalization")
    _save(g.model(), "neg_skip_unknown_dims", "Add(a[?,?,16], b[?,?,16]): unknown dims prove no equal shapes",
          {"auto": expect, "onnx": expect, "ort": expect | {"skips": 0, "skip_reason": "unknown dims are never taken as equal"}}, [])
    # γ computed from the residual sum: a Skip op would read its own output
    g = G("neg_skip_scale_from_sum", opset=18)
    a, b = g.inp("a", (2, 4, 16)), g.inp("b", (2, 4, 16))
    total = g.op("Add", [a, b])
    gamma = g.op("ReduceMean", [total, g.const(np.array([0, 1], np.int64))], keepdims=0)
    n, _ = Norm(gamma=None, beta=None).build(g, total)
    y = g.op("Mul", [n, gamma])
    g.out(y)
    expect = fused("LayerNormalization")
    _save(g.model(), "neg_skip_scale_from_sum", "γ = mean of the residual sum over rows: fusing the Add would make a cycle",
          {"auto": expect, "onnx": expect, "ort": expect | {"skips": 0, "skip_reason": "computed from the residual sum"}}, [])
    # custom-domain ops named like standard ones are not them (model-local functions ORT can run)
    for name, kind, op, body, claim in (
        ("neg_ln_custom_domain_sqrt", "layernorm", "Sqrt", "Abs", "com.example.Sqrt (a local function computing |v|) where Sqrt would be"),
        ("neg_rms_custom_domain_pow", "rmsnorm", "Pow", "Mul", "com.example.Pow (a local function computing v·e) where the square would be"),
    ):
        g = G(name, opset=18)
        x = g.inp("x", (2, 4, 16))
        axes = g.const(np.array([-1], np.int64))
        if kind == "layernorm":
            d = g.op("Sub", [x, g.op("ReduceMean", [x, axes])])
            var = g.op("ReduceMean", [g.op("Pow", [d, g.const(np.array(2.0, np.float32))]), axes])
            y = g.op("Div", [d, g.op(op, [g.op("Add", [var, g.const(np.array(1e-5, np.float32))])], domain="com.example")])
            inputs = ["X"]
            nodes = [helper.make_node(body, ["X"], ["Y"])]
            candidates = 1
        else:
            var = g.op("ReduceMean", [g.op(op, [x, g.const(np.array(2.0, np.float32))], domain="com.example"), axes])
            y = g.op("Mul", [x, g.op("Reciprocal", [g.op("Sqrt", [g.op("Add", [var, g.const(np.array(1e-6, np.float32))])])])])
            inputs = ["X", "E"]
            nodes = [helper.make_node(body, ["X", "E"], ["Y"])]
            candidates = 0
        g.out(y)
        function = helper.make_function("com.example", op, inputs, ["Y"], nodes, [helper.make_opsetid("", 18)])
        model = g.model([function])
        model.opset_import.append(helper.make_opsetid("com.example", 1))
        reason = "no Sqrt" if candidates else None
        _save(model, name, claim, {t: refused(candidates, reason) for t in ("auto", "onnx", "ort")}, [])
    # a symbolic normalized dim may be 1 at run time, where the original broadcasts γ[16]: γ stays outside
    g = G("neg_ln_gamma_symbolic_hidden", opset=18)
    x = g.inp("x", ("batch", "seq", "hidden"))
    y, _ = Norm().build(g, x)
    g.out(y, shape=("batch", "seq", 16))
    outside = fused("LayerNormalization") | {"ops": {"LayerNormalization": 1, "Mul": 1, "Add": 1}}
    _save(g.model(), "neg_ln_gamma_symbolic_hidden", "γ, β of shape [16] on a symbolic hidden dim: not proved equal (size 1 broadcasts)",
          {t: outside for t in ("auto", "onnx", "ort")}, [])
    # the hidden size proved through an Add by its other operand (a MatMul by [8,16]): ONNX's inference cannot
    # see through com.microsoft.Gelu, so the sum's shape is unknown to it
    g = G("ln_hidden_proved_by_matmul", opset=18)
    a, b = g.inp("a", ("batch", "seq", 16)), g.inp("b", ("batch", "seq", 8))
    x = g.op("Add", [g.op("Gelu", [a], domain="com.microsoft"), g.op("MatMul", [b, g.const(np.full((8, 16), 0.1, np.float32))])])
    y, _ = Norm().build(g, x)
    g.out(y, shape=("batch", "seq", 16))
    model = g.model()
    model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    inside = LN | {"absent": ["Mul"], "ops": {"LayerNormalization": 1, "Add": 1}}
    _save(model, "ln_hidden_proved_by_matmul", "Add(Gelu(a), MatMul(b, W[8,16])) has hidden size 16 (no broadcast can widen it): γ and β go into the fused node",
          {t: inside for t in ("auto", "onnx", "ort")}, [])
    # positive axes need the rank: proved through ops ONNX's inference does not know (a Kokoro-style norm over time)
    for name, op, extra, claim, expect_fused in (
        ("ln_positive_axes_rank_proved", "Gelu", {}, "ReduceMean axes [2] on com.microsoft.Gelu(a[2,4,16]): rank 3 proved by the op's rule", True),
        ("neg_ln_positive_axes_rank_unknown", "ExpandDims", {}, "ReduceMean axes [2] on com.microsoft.ExpandDims(a, axis): no rule, rank unknown", False),
    ):
        g = G(name, opset=18)
        a = g.inp("a", (2, 4, 16) if op == "Gelu" else (2, 16))
        inputs = [a] if op == "Gelu" else [a, g.const(np.array(1, np.int32))]
        x = g.op(op, inputs, domain="com.microsoft", **extra)
        y, _ = Norm(axes=[2], gamma=None, beta=None).build(g, x)
        g.out(y, shape=(2, 4, 16) if op == "Gelu" else (2, 1, 16))
        model = g.model()
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
        expect = LN if expect_fused else refused(1, "positive axes [2] with unknown input rank")
        _save(model, name, claim, {t: expect for t in ("auto", "onnx", "ort")}, [])
    # the legacy exporter's float→float Cast (and an Identity) between the normalized value and γ: γ is absorbed
    for name, kind, hop in (("rms_identity_cast_before_gamma", "rmsnorm", "Cast"), ("ln_identity_before_gamma", "layernorm", "Identity")):
        g = G(name, opset=18)
        x = g.inp("x", (2, 4, 16))
        n, _ = Norm(kind=kind, gamma=None, beta=None, inv="mul_reciprocal").build(g, x)
        n = g.op(hop, [n], **({"to": F32} if hop == "Cast" else {}))
        y = g.op("Mul", [g.const(np.linspace(0.5, 1.5, 16).astype(np.float32)), n])
        if kind == "layernorm":
            y = g.op("Add", [y, g.const(np.linspace(-0.2, 0.2, 16).astype(np.float32))])
        g.out(y)
        op = "LayerNormalization" if kind == "layernorm" else "SimplifiedLayerNormalization"
        done = fused(op) | {"absent": ["Mul", "Add", hop]}
        expect = {"auto": done, "ort": done, "onnx": done if kind == "layernorm" else refused(reason="no RMSNormalization")}
        _save(g.model(), name, f"{hop} (value-preserving) between the normalized value and γ: γ{' and β' if kind == 'layernorm' else ''} absorbed, no all-ones scale", expect, [])
    # every initializer is also a graph input (IR < 4, keep_initializers_as_inputs): ε may be overridden
    g = G("neg_ln_all_initializers_inputs", opset=18)
    x = g.inp("x", (2, 4, 16))
    y, _ = Norm().build(g, x)
    g.out(y)
    for tensor in g.inits:
        g.inputs.append(helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims)))
    _save(g.model(), "neg_ln_all_initializers_inputs", "every initializer is a graph input: nothing provable without --freeze-initializers",
          {t: refused(1, "--freeze-initializers") for t in ("auto", "onnx", "ort")}, [])
    # the model already holds normopt's names (fused before): new names must not collide with them
    g = G("ln_names_taken", opset=18)
    x = g.inp("x", (2, 4, 16))
    ones = g.const(np.ones(16, np.float32), name="normopt/LayerNorm_0.scale")
    g.nodes.append(helper.make_node("LayerNormalization", [x, ones], ["normopt_out"], name="normopt/LayerNorm_0", axis=-1, epsilon=1e-5))
    g.const(np.zeros(1, np.float32), name="normopt/LayerNorm_1")  # a value (not a node) named like the next node
    g.nodes.append(helper.make_node("Identity", ["normopt/LayerNorm_1"], ["y.unfused"]))
    y, _ = Norm(gamma=None, beta=None).build(g, "normopt_out")
    g.out(y)
    g.out("y.unfused", shape=(1,))
    both = fused("LayerNormalization") | {"ops": {"LayerNormalization": 2}}
    _save(g.model(), "ln_names_taken", "a model already fused by normopt, names like normopt/LayerNorm_0.scale taken",
          {"auto": both, "onnx": both, "ort": both}, [])


def harm_cases() -> None:
    """Graphs where a fusion that looks right changes the model (issue: do no harm), and their safe variants."""
    def no(reason: str | None, candidates: int = 1) -> dict[str, dict[str, Any]]:
        return {t: refused(candidates, reason) for t in ("auto", "onnx", "ort")}

    # an initializer that is also a graph input is an overridable default, not a constant
    g = G("neg_ln_eps_overridable", opset=18)
    x = g.inp("x", (2, 4, 16))
    eps = g.const(np.array(1e-5, np.float32), name="eps")
    g.inputs.append(helper.make_tensor_value_info(eps, F32, []))
    y, _ = Norm(shared={"eps": eps}).build(g, x)
    g.out(y)
    _save(g.model(), "neg_ln_eps_overridable", "ε is an initializer that is also a graph input: a caller may override it", no("epsilon"), [])
    # a one-element ε of higher rank broadcasts the variance (and the output) to rank 4
    g = G("neg_rms_eps_rank4", opset=18)
    x = g.inp("x", (2, 4, 16))
    y, _ = Norm(kind="rmsnorm", beta=None, inv="mul_reciprocal", eps_shape=(1, 1, 1, 1)).build(g, x)
    g.out(y, shape=(1, 2, 4, 16))
    _save(g.model(), "neg_rms_eps_rank4", "ε of shape [1,1,1,1] on a rank-3 input raises the output's rank", no("epsilon"), [])
    single("ln_eps_rank3", "ε of shape [1,1,1] on a rank-3 input: a scalar in effect", Norm(eps_shape=(1, 1, 1)),
           {"auto": LN, "onnx": LN, "ort": LN})
    # ReduceSum(keepdims=0) over the only axis, a [1]-shaped 1/N and an Unsqueeze: rank 0 → 1 → 2
    g = G("neg_rms_sum_keepdims0_factor_rank1", opset=18)
    x = g.inp("x", (16,))
    total = g.op("ReduceSum", [g.op("Mul", [x, x]), g.const(np.array([-1], np.int64))], keepdims=0)
    ms = g.op("Unsqueeze", [g.op("Mul", [total, g.const(np.array([1 / 16], np.float32))]), g.const(np.array([-1], np.int64))])
    y = g.op("Mul", [x, g.op("Reciprocal", [g.op("Sqrt", [g.op("Add", [ms, g.const(np.array(1e-6, np.float32))])])])])
    g.out(y, shape=(1, 16))
    _save(g.model(), "neg_rms_sum_keepdims0_factor_rank1", "sum with keepdims=0 times a [1]-shaped 1/N is rank 1: the Unsqueeze makes the output [1,16]",
          no(None, 0), [])
    # a float64 ε that float32 cannot hold (ORT: LayerNormFusionsRejectLossyDoubleEpsilon), and one it can
    for name, eps, claim, expect in (
        ("neg_ln_double_eps_underflow", 1e-50, "float64 ε = 1e-50 becomes 0 in the float32 epsilon attribute (all-zero rows: NaN)",
         no("does not survive")),
        ("ln_double_eps", 1e-5, "float64 LayerNorm with ε = 1e-5 (float32 holds it to its precision)", {"auto": LN, "onnx": LN, "ort": LN}),
    ):
        g = G(name, opset=18)
        x = g.inp("x", (2, 4, 16), TensorProto.DOUBLE)
        d = g.op("Sub", [x, reduce_mean(g, x, [-1], None, "auto")])
        var = reduce_mean(g, g.op("Mul", [d, d]), [-1], None, "auto")
        y = g.op("Div", [d, g.op("Sqrt", [g.op("Add", [var, g.const(np.array(eps, np.float64))])])])
        g.out(y, TensorProto.DOUBLE)
        _save(g.model(), name, claim, expect, [])
    # x32 → Cast(fp16) → RMSNorm in fp16 → Cast(fp32): the norm reads rounded data; fused in fp16, Casts kept
    g = G("rms_fp16_between_downcast_and_upcast", opset=18)
    x = g.inp("x", (2, 4, 16))
    x16 = g.op("Cast", [x], to=F16)
    n, _ = Norm(kind="rmsnorm", beta=None, inv="mul_reciprocal", dtype=F16).build(g, x16)
    g.out(g.op("Cast", [n], to=F32))
    expect = SIMPLIFIED | {"ops": {"SimplifiedLayerNormalization": 1, "Cast": 2}}
    _save(g.model(), "rms_fp16_between_downcast_and_upcast", "fp32 → fp16 Cast, fp16 RMSNorm, Cast back: the fused norm must read the rounded fp16 data",
          {"auto": expect, "ort": expect, "onnx": refused(reason="no RMSNormalization")}, [], tolerance=2e-2)
    # the Pow exponent is a Cast of a constant (ORT's layer_norm_with_cast_2)
    g = G("ln_fp16_pow_exponent_cast", opset=18)
    x = g.inp("x", (2, 4, 16), F16)
    mean = reduce_mean(g, x, [-1], None, "auto")
    d = g.op("Sub", [x, mean])
    var = reduce_mean(g, g.op("Pow", [d, g.op("Cast", [g.const(np.array(2.0, np.float32))], to=F16)]), [-1], None, "auto")
    y = g.op("Div", [d, g.op("Sqrt", [g.op("Add", [var, g.const(np.array(1e-5, np.float16))])])])
    g.out(y, F16)
    ln_no_cast = LN | {"absent": ["Cast", "Pow"]}
    _save(g.model(), "ln_fp16_pow_exponent_cast", "fp16 LayerNorm whose Pow exponent is Cast(2.0, fp16)", {"auto": ln_no_cast, "onnx": ln_no_cast, "ort": ln_no_cast}, [])


def runtime_affine() -> None:
    """γ/β that are graph inputs or computed at run time: fused ops take them as inputs where the shape is exact."""
    # (name, kind, γ shape, computed γ, with β, opset, claim, expectation per target)
    ln_all = {"ops": {"LayerNormalization": 1}, "absent": ["Mul", "Add"]}
    cases: list[tuple[str, str, tuple[int, ...], bool, bool, int, str, dict[str, Any]]] = [
        ("ln_runtime_gamma_beta", "layernorm", (16,), False, True, 18, "γ and β are graph inputs of shape [16]: LayerNormalization's Scale and B",
         {t: fused("LayerNormalization") | ln_all for t in ("auto", "onnx", "ort")}),
        ("ln_runtime_gamma_computed", "layernorm", (16,), True, True, 18, "γ = w·s computed at run time, shape [16]: taken as the Scale input",
         {t: fused("LayerNormalization") | {"ops": {"LayerNormalization": 1, "Mul": 1}, "absent": ["Add"]} for t in ("auto", "onnx", "ort")}),
        ("rms_runtime_gamma", "rmsnorm", (16,), False, False, 23, "RMSNorm γ is a graph input of shape [16]: the scale input",
         {"auto": RMS23 | {"absent": ["Mul"]}, "onnx": RMS23 | {"absent": ["Mul"]}, "ort": SIMPLIFIED | {"absent": ["Mul"]}}),
        ("ln_runtime_gamma_over_rows", "layernorm", (4, 16), False, True, 18,
         "γ input of shape [4,16] varies over a non-normalized axis: the norm is fused, γ·n and +β stay outside",
         {t: fused("LayerNormalization") | {"ops": {"LayerNormalization": 1, "Mul": 1, "Add": 1}} for t in ("auto", "onnx", "ort")}),
        ("ln_runtime_gamma_rank3", "layernorm", (1, 1, 16), False, True, 18,
         "γ input of shape [1,1,16]: broadcasting a run-time value is not rewritten, γ·n and +β stay outside",
         {t: fused("LayerNormalization") | {"ops": {"LayerNormalization": 1, "Mul": 1, "Add": 1}} for t in ("auto", "onnx", "ort")}),
    ]
    for name, kind, shape, computed, with_beta, opset, claim, expect in cases:
        g = G(name, opset=opset)
        x = g.inp("x", ("batch", 4, 16))
        gamma = g.inp("gamma", shape)
        if computed:
            gamma = g.op("Mul", [gamma, g.inp("s", shape)])
        n, _ = Norm(kind=kind, gamma=None, beta=None, inv="div_sqrt" if kind == "layernorm" else "mul_reciprocal").build(g, x)
        y = g.op("Mul", [n, gamma])
        if with_beta:
            y = g.op("Add", [y, g.inp("beta", shape)])
        g.out(y)
        _save(g.model(), name, claim, expect, [])


def round_trips() -> None:
    """Statistics of ``Cast(Cast(x, wider), x's type)`` (exact: x itself) and of a lossy round trip (not x)."""
    for name, kind, via, where, claim in (
        ("ln_mean_of_f64_round_trip", "layernorm", DOUBLE, "mean", "μ = mean(Cast(Cast(x, float64), float32)): exactly mean(x)"),
        ("rms_square_of_f64_round_trip", "rmsnorm", DOUBLE, "square", "x · rsqrt(mean(r²)+ε), r = Cast(Cast(x, float64), float32) = x"),
        ("neg_rms_square_of_fp16_round_trip", "rmsnorm", F16, "square", "r = Cast(Cast(x, float16), float32) rounds x: x · rsqrt(mean(r²)+ε) is not RMSNorm(x)"),
    ):
        g = G(name, opset=18)
        x = g.inp("x", ("batch", 4, 16))
        r = g.op("Cast", [g.op("Cast", [x], to=via)], to=F32)
        axes = g.const(np.array([-1], np.int64))
        if kind == "layernorm":
            d = g.op("Sub", [x, g.op("ReduceMean", [r, axes])])
            num, base = d, d
        else:
            num, base = x, r
        var = g.op("ReduceMean", [g.op("Mul", [base, base]), axes])
        y = g.op("Div", [num, g.op("Sqrt", [g.op("Add", [var, g.const(np.array(1e-5, np.float32))])])])
        g.out(y)
        if via == F16:
            expect = {t: refused(1, "does not scale the same tensor") for t in ("auto", "onnx", "ort")}
        else:
            op = "LayerNormalization" if kind == "layernorm" else "SimplifiedLayerNormalization"
            done = fused(op) | {"absent": ["Cast"]}
            expect = {"auto": done, "ort": done, "onnx": done if kind == "layernorm" else refused(reason="no RMSNormalization")}
        _save(g.model(), name, claim, expect, [])


def computed_axes() -> None:
    """Reduction axes computed from a rank, as ONNX's own RMSNormalization body spells them: Range(Add(Rank, axis), Rank, 1)."""
    # (the same axes on an x of unknown rank, which nothing proves, is built by tests/test_onnx_function_bodies.py:
    # onnx.checker refuses a graph input without a shape, and every graph here is checked)
    legacy = {"auto": SIMPLIFIED, "ort": SIMPLIFIED, "onnx": refused(reason="no RMSNormalization")}
    for name, claim, expect in (
        ("rms_axes_range_of_rank", "axes = Range(Size(Shape(x)) - 1, Size(Shape(x)), 1) on x of rank 3: [2], proved", legacy),
    ):
        g = G(name, opset=18)
        x = g.inp("x", (2, 4, 16))
        rank = g.op("Size", [g.op("Shape", [x])])
        start = g.op("Add", [rank, g.const(np.array(-1, np.int64), "node")])
        axes = g.op("Range", [start, rank, g.const(np.array(1, np.int64), "node")])
        ms = g.op("ReduceMean", [g.op("Mul", [x, x]), axes])
        gamma = g.const(np.linspace(0.5, 1.5, 16).astype(np.float32))
        n = g.op("Div", [x, g.op("Sqrt", [g.op("Add", [ms, g.const(np.array(1e-6, np.float32))])])])
        y = g.op("Mul", [n, gamma])
        g.out(y)
        semantics = [{"kind": "rmsnorm", "eps": 1e-6, "axes": 1, "scale": gamma, "bias": None, "input": "x", "output": y,
                      "lookalike": False}]
        _save(g.model(), name, claim, expect, semantics)


def moment_variances() -> None:
    """The variance as E[x²] − E[x]² (ONNX's LayerNormalization-17 body, Flax with its clamp at 0), and look-alikes."""
    every = {"auto": LN, "onnx": LN, "ort": LN}

    def no(reason: str, candidates: int = 1) -> dict[str, dict[str, Any]]:
        return {t: refused(candidates, reason) for t in ("auto", "onnx", "ort")}

    def build(name: str, claim: str, expect: dict[str, Any], square: str = "mul", clamp: str | None = None,
              of_other: bool = False, sq_axis: int = -1, reversed_sub: bool = False, lookalike: bool = False,
              dtype: int = F32) -> None:
        g = G(name, opset=18)
        np_dtype = _np(dtype)
        x = g.inp("x", (2, 16, 16), dtype)
        z = g.inp("z", (2, 16, 16), dtype) if of_other else x
        two = g.const(np.array(2.0, np_dtype)) if square == "pow" else ""

        def sq(v: str) -> str:
            return g.op("Pow", [v, two]) if square == "pow" else g.op("Mul", [v, v])

        mu = reduce_mean(g, x, [-1], None, "auto")
        ex2 = reduce_mean(g, sq(z), [sq_axis], None, "auto")
        var = g.op("Sub", [sq(mu), ex2] if reversed_sub else [ex2, sq(mu)])
        if clamp == "relu":
            var = g.op("Relu", [var])
        elif clamp is not None:
            var = g.op("Max", [var, g.const(np.array(float(clamp), np_dtype))])
        inv = g.op("Sqrt", [g.op("Add", [var, g.const(np.array(1e-5, np_dtype))])])
        n = g.op("Div", [g.op("Sub", [x, mu]), inv])
        gamma = g.const(np.linspace(0.5, 1.5, 16).astype(np_dtype))
        beta = g.const(np.linspace(-0.2, 0.2, 16).astype(np_dtype))
        y = g.op("Add", [g.op("Mul", [n, gamma]), beta])
        g.out(y, dtype)
        semantics = [{"kind": "layernorm", "eps": 1e-5, "axes": 1, "scale": gamma, "bias": beta, "input": "x", "output": y,
                      "lookalike": lookalike}]
        _save(g.model(), name, claim, expect, semantics)

    build("ln_moments", "variance as E[x²] − E[x]² with Mul squares (ONNX's LayerNormalization-17 body)", every)
    build("ln_moments_pow", "variance as E[x²] − E[x]² with Pow(·, 2) squares", every, square="pow")
    build("ln_moments_fp16", "E[x²] − E[x]² in fp16 throughout (x² overflows where |x| > 255: the original's NaN, the "
          "fused node's finite value)", every, dtype=F16)
    build("ln_moments_clamped_max", "Flax: max(0, E[x²] − E[x]²), a clamp no true variance reaches", every, clamp="0")
    build("ln_moments_clamped_relu", "Relu(E[x²] − E[x]²)", every, clamp="relu")
    build("neg_ln_moments_of_other", "E[z²] − E[x]²: the mean of squares of another tensor", no("different tensor", 2),
          of_other=True, lookalike=True)
    build("neg_ln_moments_axes_mismatch", "E[x] over the last axis, E[x²] over the one before", no("axes [-2]", 2), sq_axis=-2,
          lookalike=True)
    build("neg_ln_moments_reversed", "E[x]² − E[x²]: the negated variance", no("never squared", 3), reversed_sub=True,
          lookalike=True)
    build("neg_ln_moments_floored", "max(100, E[x²] − E[x]²): a floor a true variance may sit below (no clamp at 0)",
          no("no constant epsilon Add", 2), clamp="100", lookalike=True)


GENERATORS: list[Callable[[], None]] = [
    layernorm_variants, layernorm_lookalikes, rmsnorm_variants, rmsnorm_lookalikes, skip_variants, soundness_cases, harm_cases, runtime_affine, round_trips,
    computed_axes, moment_variances,
]


def main() -> None:
    for old in HERE.glob("*.onnx"):
        old.unlink()
    for generate in GENERATORS:
        generate()
    manifest = {"schema_version": 1, "ir_version": IR_VERSION, "graphs": ENTRIES}
    (HERE / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"wrote {len(ENTRIES)} graphs and manifest.json to {HERE}")


if __name__ == "__main__":
    main()
