"""The operator names normopt fuses into: one place for the fusion passes, parity, latency and the tests."""

from __future__ import annotations

#: One norm each, without a residual input (standard ops and ONNX Runtime's simplified one).
PLAIN_NORM_OPS = frozenset({"LayerNormalization", "SimplifiedLayerNormalization", "RMSNormalization"})
#: ONNX Runtime's norms that also add the residual (and optionally return the sum).
SKIP_NORM_OPS = frozenset({"SkipLayerNormalization", "SkipSimplifiedLayerNormalization"})
#: Every fused norm operator.
NORM_OPS = PLAIN_NORM_OPS | SKIP_NORM_OPS
