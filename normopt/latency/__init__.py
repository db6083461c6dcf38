"""Latency benchmarks on ONNX Runtime (CPU and CUDA)."""

from normopt.latency.runner import BenchReport, BenchRow, bench

__all__ = ["BenchReport", "BenchRow", "bench"]
