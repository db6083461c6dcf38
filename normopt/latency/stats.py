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
    "Speedup = median over the interleaved rounds of the paired ratio baseline/row (each round times both "
    "back to back, so load that drifts hits both); 95% CI: moving-block bootstrap of the paired log-ratios "
    "(blocks keep load bursts together); a difference is called only when the whole interval lies beyond "
    f"±{100 * MARGIN:.0f}%, or beyond the A/A noise floor where one was measured (the baseline timed against "
    "a second session of itself in the same rounds), whichever is wider."
)


@dataclass(frozen=True)
class SpeedupCI:
    """Speedup of a row over its baseline, its 95% interval and a verdict.

    The speedup is the median of the per-round ratios baseline/row (rounds are interleaved, so each pair
    shares the machine's state); the interval is a moving-block bootstrap of the log-ratios (blocks of
    about n^(1/3) rounds, 2,000 resamples, percentile interval, fixed seed), so bursts of load that last
    several rounds are resampled together instead of being taken as independent evidence.
    """

    speedup: float
    low: float
    high: float
    verdict: str  # faster | slower | no significant difference | too few runs for a verdict
    rounds: int
    margin: float = MARGIN  # the ± band a difference had to clear (the A/A floor where that was wider)

    def sentence(self, what: str) -> str:
        """``fused 4.1% faster (95% CI 3.2-5.0%)`` and the like, in plain words."""
        percent = abs(self.speedup - 1.0) * 100
        interval = f"95% CI {100 * (self.low - 1):+.1f}% to {100 * (self.high - 1):+.1f}%"
        band = f"±{100 * self.margin:.1f}%" if self.margin > MARGIN else f"±{100 * MARGIN:.0f}%"
        if self.verdict == "faster":
            return f"{what} {percent:.1f}% faster ({interval})"
        if self.verdict == "slower":
            return f"{what} {percent:.1f}% slower ({interval})"
        if self.verdict == "no significant difference":
            if self.margin > MARGIN:
                return f"{what}: no difference beyond this run's A/A noise floor {band} ({interval})"
            if self.low >= 1 - self.margin and self.high <= 1 + self.margin:
                return f"{what}: no significant difference, within {band} ({interval})"
            return f"{what}: no significant difference ({interval}; more runs would narrow it)"
        return f"{what}: {self.verdict} ({interval}, {self.rounds} rounds)"


def speedup_ci(
    baseline_ns: list[int] | np.ndarray, row_ns: list[int] | np.ndarray, seed: int = 0, floor: float = 0.0
) -> SpeedupCI:
    """Paired speedup ``baseline / row`` over the rounds both have, its interval and verdict.

    ``floor``: the A/A noise floor (a fraction, e.g. 0.03): a difference must clear the wider of it and
    ``MARGIN``.
    """
    rounds = min(len(baseline_ns), len(row_ns))
    if rounds == 0:
        raise ValueError("no timings to compare")
    base = np.asarray(baseline_ns[:rounds], dtype=np.float64)
    row = np.asarray(row_ns[:rounds], dtype=np.float64)
    logs = np.log(base) - np.log(row)
    point = float(np.median(base / row))
    low, high = _block_bootstrap(logs, seed)
    margin = max(MARGIN, floor)
    if rounds < MIN_ROUNDS:
        verdict = "too few runs for a verdict"
    elif low > 1 + margin:
        verdict = "faster"
    elif high < 1 - margin:
        verdict = "slower"
    else:
        verdict = "no significant difference"
    return SpeedupCI(point, min(low, point), max(high, point), verdict, rounds, margin)


def _block_bootstrap(logs: np.ndarray, seed: int, resamples: int = 2000) -> tuple[float, float]:
    """95% percentile interval of exp(median) of ``logs`` under a moving-block bootstrap."""
    rounds = logs.size
    block = max(1, round(rounds ** (1 / 3)))
    starts = rounds - block + 1
    blocks = -(-rounds // block)  # ceil: enough blocks to cover the series
    rng = np.random.default_rng(seed)
    medians = []
    for _ in range(resamples // 100):  # 100 resamples at a time: bounded memory for long --seconds runs
        first = rng.integers(0, starts, size=(100, blocks))
        index = (first[:, :, None] + np.arange(block)).reshape(100, -1)[:, :rounds]
        medians.append(np.median(logs[index], axis=1))
    low, high = np.percentile(np.concatenate(medians), [2.5, 97.5])
    return float(np.exp(low)), float(np.exp(high))


def noise_floor(ci: SpeedupCI) -> float:
    """How far from 1 an A/A comparison's interval reaches: differences within it are noise."""
    return max(0.0, 1 - ci.low, ci.high - 1)
