"""Numerical parity between a reference and a candidate model, with localization of divergence."""

from normopt.parity.check import ParityReport, verify
from normopt.parity.compare import DEFAULT_TOLERANCES, RULE, TensorStats

__all__ = ["DEFAULT_TOLERANCES", "RULE", "ParityReport", "TensorStats", "verify"]
