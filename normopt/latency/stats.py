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


#: Fewer interleaved rounds than this give no verdict (a bootstrap over a handful of runs says little).
MIN_ROUNDS = 10
#: A difference is called only when the whole 95% interval lies beyond ±2%: below that, interleaved runs of
#: one model against itself on a shared CPU already differ (session placement, cache and frequency effects).
MARGIN = 0.02
#: How the speedup columns were computed, for the reports that show them.
METHOD = (
    "Speedup = ratio of median latencies; 95% CI: paired bootstrap over the interleaved rounds; a "
    f"difference is called only when the whole interval lies beyond ±{100 * MARGIN:.0f}%."
)


@dataclass(frozen=True)
class SpeedupCI:
    """Speedup of a row over its baseline (ratio of median latencies), its 95% interval and a verdict.

    The interval is a paired bootstrap over the interleaved rounds (round k of both rows resampled together,
    so drifts that hit both alike cancel): 2,000 resamples, percentile interval, fixed seed.
    """

    speedup: float
    low: float
    high: float
    verdict: str  # faster | slower | no significant difference | too few runs for a verdict
    rounds: int

    def sentence(self, what: str) -> str:
        """``fused 4.1% faster (95% CI 3.2-5.0%)`` and the like, in plain words."""
        percent = abs(self.speedup - 1.0) * 100
        interval = f"95% CI {100 * (self.low - 1):+.1f}% to {100 * (self.high - 1):+.1f}%"
        if self.verdict == "faster":
            return f"{what} {percent:.1f}% faster ({interval})"
        if self.verdict == "slower":
            return f"{what} {percent:.1f}% slower ({interval})"
        if self.verdict == "no significant difference":
            if self.low >= 1 - MARGIN and self.high <= 1 + MARGIN:
                return f"{what}: no significant difference, within ±{100 * MARGIN:.0f}% ({interval})"
            return f"{what}: no significant difference ({interval}; more runs would narrow it)"
        return f"{what}: {self.verdict} ({interval}, {self.rounds} rounds)"


def speedup_ci(baseline_ns: list[int] | np.ndarray, row_ns: list[int] | np.ndarray, seed: int = 0) -> SpeedupCI:
    """Paired bootstrap interval of ``median(baseline) / median(row)`` over the rounds both have."""
    rounds = min(len(baseline_ns), len(row_ns))
    if rounds == 0:
        raise ValueError("no timings to compare")
    base = np.asarray(baseline_ns[:rounds], dtype=np.float64)
    row = np.asarray(row_ns[:rounds], dtype=np.float64)
    point = float(np.median(base) / np.median(row))
    rng = np.random.default_rng(seed)
    ratios = []
    for _ in range(20):  # 20 x 100 resamples: bounded memory even for long --seconds runs
        index = rng.integers(0, rounds, size=(100, rounds))
        ratios.append(np.median(base[index], axis=1) / np.median(row[index], axis=1))
    low, high = (float(v) for v in np.percentile(np.concatenate(ratios), [2.5, 97.5]))
    if rounds < MIN_ROUNDS:
        verdict = "too few runs for a verdict"
    elif low > 1 + MARGIN:
        verdict = "faster"
    elif high < 1 - MARGIN:
        verdict = "slower"
    else:
        verdict = "no significant difference"
    return SpeedupCI(point, low, high, verdict, rounds)
