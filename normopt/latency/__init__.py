"""Latency benchmarks on ONNX Runtime (CPU and CUDA)."""

from normopt.latency.results import BenchReport, BenchRow
from normopt.latency.runner import bench

__all__ = ["BenchReport", "BenchRow", "bench"]
