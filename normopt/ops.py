"""The operator names normopt fuses into: one place for the fusion passes, parity, latency and the tests."""

from __future__ import annotations

from typing import Protocol

#: One norm each, without a residual input (standard ops and ONNX Runtime's simplified one).
PLAIN_NORM_OPS = frozenset({"LayerNormalization", "SimplifiedLayerNormalization", "RMSNormalization"})
#: ONNX Runtime's norms that also add the residual (and optionally return the sum).
SKIP_NORM_OPS = frozenset({"SkipLayerNormalization", "SkipSimplifiedLayerNormalization"})
#: Every fused norm operator.
NORM_OPS = PLAIN_NORM_OPS | SKIP_NORM_OPS
#: The same, as (domain, op type): the plain ones in the standard domain, the Skip ones in ORT's.
NORM_OP_IDS = frozenset({("", op) for op in PLAIN_NORM_OPS} | {("com.microsoft", op) for op in SKIP_NORM_OPS})

#: The standard ONNX domain under both of its spellings.
STANDARD_DOMAINS = frozenset({"", "ai.onnx"})


class _HasOp(Protocol):
    @property
    def op_type(self) -> str: ...

    @property
    def domain(self) -> str: ...


def op_id(node: _HasOp) -> tuple[str, str]:
    """An operator's identity: ``(domain, op_type)``, with ``ai.onnx`` spelled ``""``."""
    domain = "" if node.domain in STANDARD_DOMAINS else node.domain
    return domain, node.op_type


def is_norm_op(node: _HasOp) -> bool:
    """True for a fused norm operator (``NORM_OP_IDS``), by domain and op type."""
    return op_id(node) in NORM_OP_IDS


def is_op(node: _HasOp | None, *op_types: str, domain: str = "") -> bool:
    """True when ``node`` is one of ``op_types`` in ``domain`` (default: the standard domain).

    An op is its (domain, op type): ``com.example.Sqrt`` is not ``Sqrt``. Every matcher asks this.
    """
    if node is None or node.op_type not in op_types:
        return False
    return op_id(node)[0] == ("" if domain in STANDARD_DOMAINS else domain)
