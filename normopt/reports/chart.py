"""A PNG chart of latency distributions: one panel per workload, one box per (model, provider, opt level).

Prefill and decode-step latencies differ by orders of magnitude, so each workload gets its own panel
and y scale (a log scale inside a panel whose boxes span more than 20x).
"""

from __future__ import annotations

from pathlib import Path

from normopt.latency.results import BenchReport, BenchRow
from normopt.reports.bench import workload


def latency_chart(report: BenchReport, path: str | Path, title: str = "Latency per run") -> Path:
    """Draw box plots of every row's timed runs (ms), a panel per workload, and write them to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels: dict[str, list[BenchRow]] = {}
    for row in report.results:
        if row.samples_ms:
            panels.setdefault(workload(row), []).append(row)
    count = max(1, len(panels))
    widest = max((len(rows) for rows in panels.values()), default=1)
    fig, axes = plt.subplots(1, count, figsize=(max(5.0, 0.9 * widest + 1.5) * count, 5.0), dpi=110, squeeze=False)
    for ax, (name, rows) in zip(axes[0], panels.items(), strict=False):
        labels = [f"{r.model}\n{r.provider.replace('ExecutionProvider', '')} {r.opt_level}" for r in rows]
        ax.boxplot([r.samples_ms for r in rows], showfliers=False, whis=(5, 95))
        ax.set_xticks(range(1, len(rows) + 1), labels, fontsize=7, rotation=35, ha="right")
        low = min(min(r.samples_ms) for r in rows)
        high = max(max(r.samples_ms) for r in rows)
        if low > 0 and high / low > 20:
            ax.set_yscale("log")
        for index, row in enumerate(rows, start=1):
            ax.annotate(f"{row.p50_ms:.3g}", (index, row.p50_ms), xytext=(0, 4), textcoords="offset points",
                        ha="center", fontsize=6)  # fmt: skip
        ax.set_title(name, fontsize=9)
        ax.set_ylabel("ms per run")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"{title} (boxes p25-p75, whiskers p5-p95, labels p50 ms)", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
