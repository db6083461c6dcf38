"""Latency statistics from raw timings (nanoseconds in, milliseconds out)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LatencyStats:
    """Summary of one series of timed runs, in milliseconds (throughput in inferences per second)."""

    iters: int
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float
    max_ms: float
    throughput: float


def summarize(samples_ns: list[int] | np.ndarray, batch: int = 1) -> LatencyStats:
    """Percentiles (linear interpolation), mean, sample std, extremes and throughput of ``samples_ns``.

    Throughput counts ``batch`` inferences per run and uses the mean latency.
    """
    ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
    if ms.size == 0:
        raise ValueError("no timings to summarize")
    p50, p90, p95, p99 = np.percentile(ms, [50, 90, 95, 99])
    mean = float(ms.mean())
    return LatencyStats(
        iters=int(ms.size),
        p50_ms=float(p50),
        p90_ms=float(p90),
        p95_ms=float(p95),
        p99_ms=float(p99),
        mean_ms=mean,
        std_ms=float(ms.std(ddof=1)) if ms.size > 1 else 0.0,
        min_ms=float(ms.min()),
        max_ms=float(ms.max()),
        throughput=batch * 1000.0 / mean if mean > 0 else float("inf"),
    )
