"""onnx_ir private APIs: ONNX C-API calls without copying weights, a TensorProto-backed tensor's proto."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import onnx
import onnx_ir as ir

_T = TypeVar("_T")


def call_onnx_api(func: Callable[[onnx.ModelProto], _T], model: ir.Model) -> _T:
    """Call ``func`` on ``model`` serialized without its large weights (onnx_ir's own helper).

    Relied on: initializers over a size limit reach ``func`` as typed graph inputs, not as data, and the
    model is unchanged afterwards (``onnx_ir.passes.common._c_api_utils.call_onnx_api``, onnx_ir 0.1–0.2).
    """
    from onnx_ir.passes.common import _c_api_utils

    return _c_api_utils.call_onnx_api(func, model)


def tensor_proto_of(tensor: ir.serde.TensorProtoTensor) -> onnx.TensorProto:
    """The ``TensorProto`` an onnx_ir ``TensorProtoTensor`` wraps (its private ``_proto``)."""
    proto: onnx.TensorProto = tensor._proto
    return proto
