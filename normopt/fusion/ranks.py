"""Ranks proved by a forward pass over op rules, where ONNX's shape inference gives up.

A reduction's positive axes mean "the trailing axes" only when the input's rank is known. ONNX's inference
stops at ops it has no (or only a partial) rule for: STFT, contrib and quantization ops, a Reshape whose
target is computed, a Gather of an unknown-rank table. The rank needs far less than the shape: it follows
from each op's definition (an elementwise op has its operands' largest rank, Unsqueeze adds as many axes as
it is given, STFT always returns rank 4 …). A rank here is proved for every input the model accepts, or None.
"""

from __future__ import annotations

from normopt.engines.views import NodeView, ValueView
from normopt.fusion import graph_utils as gu
from normopt.ops import is_op

#: Output 0 has the rank of input 0 (shape-preserving or per-element ops, norms, quantization, convolutions).
SAME_RANK = (
    "Abs", "Cast", "CastLike", "Ceil", "Celu", "Clip", "Cos", "Dropout", "Elu", "Erf", "Exp", "Floor",
    "Gelu", "HardSigmoid", "HardSwish", "Identity", "IsInf", "IsNaN", "LeakyRelu", "Log", "LogSoftmax",
    "Mish", "Neg", "Not", "Reciprocal", "Relu", "Round", "Selu", "Sigmoid", "Sign", "Sin", "Softmax",
    "Softplus", "Softsign", "Sqrt", "Tanh", "ThresholdedRelu", "QuantizeLinear", "DequantizeLinear",
    "DynamicQuantizeLinear", "LayerNormalization", "InstanceNormalization", "BatchNormalization",
    "GroupNormalization", "RMSNormalization", "LpNormalization", "MeanVarianceNormalization", "Conv",
    "ConvInteger", "ConvTranspose", "QLinearConv", "MaxPool", "AveragePool", "LpPool", "Pad", "Slice",
    "Split", "Transpose", "Resize", "Upsample", "Trilu", "CumSum", "Shrink", "Hardmax", "PRelu",
)  # fmt: skip
#: Output 0 has the largest rank of its inputs (multidirectional broadcasting).
BROADCAST = ("Add", "Sub", "Mul", "Div", "Pow", "Mod", "Max", "Min", "Mean", "Sum", "Where", "Equal", "Less",
             "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor", "BitShift")  # fmt: skip
#: ONNX Runtime's contrib ops (com.microsoft) whose output 0 has input 0's rank.
CONTRIB_SAME_RANK = ("Gelu", "FastGelu", "BiasGelu", "QuickGelu", "SkipLayerNormalization",
                     "SkipSimplifiedLayerNormalization", "BiasAdd")  # fmt: skip
#: com.microsoft matrix products: MatMul's rank rule.
CONTRIB_MATMUL = ("FusedMatMul", "MatMulIntegerToFloat", "DynamicQuantizeMatMul", "MatMulNBits")
_DEPTH = 64


def rank(value: ValueView | None) -> int | None:
    """``value``'s rank: declared or inferred, else proved from its producers, else None."""
    return _rank(value, _DEPTH, {})


def canonical_axes(axes: list[int], x: ValueView) -> list[int]:
    """``axes`` of ``x`` sorted, negative ones made positive where x's rank is known."""
    known = rank(x)
    if known is None:
        return sorted(axes)
    return sorted(a + known if a < 0 else a for a in axes)


def _rank(value: ValueView | None, depth: int, memo: dict[int, int | None]) -> int | None:
    if value is None:
        return None
    if value.shape is not None:
        return len(value.shape)
    if value.const_value is not None and not value.is_graph_input():
        return len(value.const_value.shape)
    key = id(value)
    if key in memo:
        return memo[key]
    memo[key] = None  # a cycle guard while this value is being proved
    node = value.producer()
    found = None if node is None or depth == 0 else _from(node, value, depth - 1, memo)
    memo[key] = found
    return found


def _from(node: NodeView, value: ValueView, depth: int, memo: dict[int, int | None]) -> int | None:
    def of(index: int) -> int | None:
        return _rank(node.inputs[index], depth, memo) if index < len(node.inputs) else None

    if is_op(node, *CONTRIB_SAME_RANK, domain="com.microsoft"):
        return of(0) if value is node.outputs[0] else None
    if is_op(node, *CONTRIB_MATMUL, domain="com.microsoft"):
        a, b = of(0), of(1)
        return None if a is None or b is None or min(a, b) < 2 else max(a, b)
    if is_op(node, *SAME_RANK):
        return of(0) if value is node.outputs[0] or is_op(node, "Split") else None
    if is_op(node, *BROADCAST):
        ranks = [_rank(v, depth, memo) for v in node.inputs if v is not None]
        return None if not ranks or any(r is None for r in ranks) else max(r for r in ranks if r is not None)
    if is_op(node, "Concat", "Expand") and node.inputs:
        if is_op(node, "Concat"):
            return of(0)
        target = node.inputs[1].shape if len(node.inputs) > 1 and node.inputs[1] is not None else None
        data = of(0)
        if target is None or len(target) != 1 or not isinstance(target[0], int) or data is None:
            return None
        return max(data, target[0])
    if is_op(node, "Shape"):
        return 1
    if is_op(node, "Size"):
        return 0
    if is_op(node, "STFT"):
        return 4  # [batch, frames, unique bins, 2] whatever the signal's layout
    if is_op(node, "Reshape") and len(node.inputs) > 1 and node.inputs[1] is not None:
        target = node.inputs[1].shape
        if target is not None and len(target) == 1 and isinstance(target[0], int):
            return target[0]
        const = gu.constant_shape(node.inputs[1]) if gu.is_constant(node.inputs[1]) else None
        return const[0] if const is not None and len(const) == 1 else None
    if is_op(node, "Unsqueeze", "Squeeze"):
        axes = _axes(node)
        data = of(0)
        if data is None or axes is None:
            return None
        return data + len(axes) if is_op(node, "Unsqueeze") else data - len(axes)
    if is_op(node, "Gather") and len(node.inputs) == 2:
        data, indices = of(0), of(1)
        return None if data is None or indices is None else data + indices - 1
    if is_op(node, "MatMul", "MatMulInteger", "QLinearMatMul"):
        a, b = (of(0), of(1)) if not is_op(node, "QLinearMatMul") else (of(0), of(3))
        if a is None or b is None:
            return None
        if a == 1 and b == 1:
            return 0
        if a == 1 or b == 1:
            return max(a, b) - 1
        return max(a, b)
    if is_op(node, "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL2", "ReduceL1"):
        data = of(0)
        keep = node.attributes.get("keepdims")
        if data is None or keep is None or keep.as_int() != 0:
            return data
        reduction = gu.reduce_axes(node, data)
        return None if reduction.found is None else data - len(set(reduction.found.axes))
    return None


def _axes(node: NodeView) -> list[int] | None:
    attr = node.attributes.get("axes")
    if attr is not None:
        return list(attr.as_ints())
    array = gu.small_constant(node.inputs[1]) if len(node.inputs) > 1 else None
    if array is None or array.ndim > 1:
        return None
    return [int(a) for a in array.reshape(-1)]
