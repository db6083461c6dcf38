"""A PNG chart of latency distributions: one box per (model, provider, opt level)."""

from __future__ import annotations

from pathlib import Path

from normopt.latency.runner import BenchReport


def latency_chart(report: BenchReport, path: str | Path, title: str = "Latency per run") -> Path:
    """Draw box plots of every row's timed runs (ms) and write them to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report.results if r.samples_ms]
    labels = [f"{r.model}\n{r.provider.replace('ExecutionProvider', '')} / {r.opt_level}" for r in rows]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(rows)), 4.5), dpi=110)
    ax.boxplot([r.samples_ms for r in rows], showfliers=True, whis=(1, 99))
    ax.set_xticks(range(1, len(rows) + 1), labels, fontsize=8)
    for index, row in enumerate(rows, start=1):
        ax.annotate(
            f"p50 {row.p50_ms:.2f}", (index, row.p50_ms), textcoords="offset points", xytext=(18, 0), fontsize=7
        )
    ax.set_ylabel("latency per run (ms)")
    ax.set_title(f"{title} (whiskers p1-p99)")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
