"""Numerical parity between a reference and a candidate model, with localization of divergence."""

from normopt.verify.compare import DEFAULT_TOLERANCES, RULE, TensorStats
from normopt.verify.parity import ParityReport, verify

__all__ = ["DEFAULT_TOLERANCES", "RULE", "ParityReport", "TensorStats", "verify"]
