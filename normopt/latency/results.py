"""What ``bench`` measured: one row per (model, provider, opt level, workload), and the report around them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA_VERSION = 1  # scenarios (prefill/decode rows, workloads) were added as new fields


@dataclass
class BenchRow:
    """One (model, provider, opt level) measurement; field meanings are in the README's bench section."""

    model: str
    path: str
    provider: str
    opt_level: str
    threads: int | None
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
    session_ms: float
    first_run_ms: float
    peak_rss_mb: float
    io_binding: bool
    scenario: str = "prefill"
    batch: int | None = None
    seq: int | None = None
    past: int | None = None
    tokens_per_s: float | None = None
    ms_per_token: float | None = None
    speedup: float | None = None
    speedup_low: float | None = None
    speedup_high: float | None = None
    speedup_margin: float | None = None  # the ± band a difference had to clear (MARGIN, or a wider A/A floor)
    verdict: str | None = None
    samples_ms: list[float] = field(default_factory=list, repr=False)
    profile: dict[str, Any] | None = None

    def to_dict(self, samples: bool = False) -> dict[str, Any]:
        """JSON-ready form (raw samples only when asked)."""
        data = asdict(self)
        if not samples:
            data.pop("samples_ms")
        return data


@dataclass
class BenchReport:
    """All rows plus what they were measured on."""

    results: list[BenchRow]
    shapes: dict[str, list[int]]
    environment: dict[str, Any]
    skipped: list[dict[str, str]]
    settings: dict[str, Any]
    workloads: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what a person should know about how it was measured

    def to_dict(self, samples: bool = False) -> dict[str, Any]:
        """JSON-ready form.

        Schema: ``schema_version``, ``results`` (rows; each names its ``scenario``, ``batch``, ``seq``,
        ``past``), ``shapes`` ({input: dims} of the first workload), ``workloads`` ([{scenario, batch,
        seq, past, shapes}]), ``environment`` (versions, CPU model, GPU name), ``skipped`` ([{provider,
        reason}]), ``settings`` (warmup, iters/seconds, opt levels, threads).
        """
        return {
            "schema_version": SCHEMA_VERSION,
            "command": "bench",
            "results": [r.to_dict(samples) for r in self.results],
            "shapes": self.shapes,
            "workloads": self.workloads,
            "environment": self.environment,
            "skipped": self.skipped,
            "settings": self.settings,
            "notes": self.notes,
        }
