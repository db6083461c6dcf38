"""torch private APIs: the opset limits of its two ONNX exporters."""

from __future__ import annotations


def exporter_opsets() -> tuple[int, int, int]:
    """(lowest opset, highest for the TorchScript exporter, highest for the dynamo exporter).

    Read from ``torch.onnx._constants`` (no public API says which opsets an exporter accepts).
    """
    from torch.onnx import _constants

    return _constants.ONNX_MIN_OPSET, _constants.ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET, _constants.ONNX_MAX_OPSET
