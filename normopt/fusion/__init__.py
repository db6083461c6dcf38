"""Norm fusion passes on onnx_ir models."""

from normopt.choices import TARGETS, Target
from normopt.fusion.pipeline import fuse_model
from normopt.fusion.result import Candidate, FusionResult

__all__ = ["TARGETS", "Candidate", "FusionResult", "Target", "fuse_model"]
