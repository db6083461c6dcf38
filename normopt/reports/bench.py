"""Rendering a BenchReport for people (table, Markdown) and machines (JSON, CSV).

Every format is rendered from the same ``BenchReport`` object; the JSON schema is written down in
``BenchReport.to_dict``.
"""

from __future__ import annotations

import csv
import io
import json
from typing import IO

from normopt.feeds.roles import shapes_line
from normopt.latency.results import BenchReport, BenchRow
from normopt.latency.scenarios import workload_label
from normopt.reports.html import md_text

COLUMNS = [
    ("model", "model"),
    ("provider", "provider"),
    ("opt_level", "opt"),
    ("workload", "workload"),
    ("p50_ms", "p50 ms"),
    ("p90_ms", "p90 ms"),
    ("p99_ms", "p99 ms"),
    ("mean_ms", "mean ms"),
    ("std_ms", "std ms"),
    ("tokens_per_s", "tok/s"),
    ("ms_per_token", "ms/tok"),
    ("session_ms", "session ms"),
    ("first_run_ms", "1st run ms"),
    ("peak_rss_mb", "RSS+ MB"),
    ("speedup", "speedup"),
    ("speedup_ci", "95% CI"),
    ("verdict", "verdict"),
]
CSV_FIELDS = [
    "model",
    "path",
    "provider",
    "opt_level",
    "scenario",
    "batch",
    "seq",
    "past",
    "threads",
    "iters",
    "p50_ms",
    "p90_ms",
    "p95_ms",
    "p99_ms",
    "mean_ms",
    "std_ms",
    "min_ms",
    "max_ms",
    "throughput",
    "tokens_per_s",
    "ms_per_token",
    "session_ms",
    "first_run_ms",
    "peak_rss_mb",
    "io_binding",
    "speedup",
    "speedup_low",
    "speedup_high",
    "verdict",
]


def workload(row: BenchRow) -> str:
    """``prefill b2 s16``, ``decode b1 p128`` (``inputs`` for an .npz)."""
    return workload_label(row.scenario, row.batch, row.seq, row.past)


def _cell(row: BenchRow, key: str) -> str:
    if key == "workload":
        return workload(row)
    if key == "speedup_ci":
        if row.speedup_low is None or row.speedup_high is None:
            return "-"
        return f"{row.speedup_low:.2f}-{row.speedup_high:.2f}x"
    value = getattr(row, key)
    if key == "provider":
        return str(value).replace("ExecutionProvider", "")
    if key == "speedup":
        return "-" if value is None else f"{value:.2f}x"
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}" if key in ("tokens_per_s", "peak_rss_mb", "session_ms") else f"{value:.3f}"
    return str(value)


def table_rows(report: BenchReport) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the human table."""
    return [h for _, h in COLUMNS], [[_cell(r, k) for k, _ in COLUMNS] for r in report.results]


def to_markdown(report: BenchReport) -> str:
    """A Markdown table plus the settings and environment lines it was measured under."""
    header, rows = table_rows(report)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(md_text(c) for c in r) + " |" for r in rows]
    env = report.environment
    s = report.settings
    facts = []  # one list item each: separate lines stay separate wherever the Markdown is rendered
    for load in report.workloads or [{"scenario": "inputs", "shapes": report.shapes}]:
        facts.append(f"Inputs ({load['scenario']}): {md_text(shapes_line(load['shapes']))}.")
    facts += [
        f"Warm-up {s['warmup']}, "
        + (f"{s['iters']} timed runs" if s.get("iters") else f"{s['seconds']} s of timed runs")
        + f" per row, interleaved; threads: {s['threads'] or 'ORT default'}.",
        f"onnxruntime {env['onnxruntime']}, onnx {env['onnx']}, torch {env['torch']}, Python {env['python']}; "
        f"CPU: {env['cpu']} ({env['cpu_count']} cores); GPU: {env['gpu'] or 'none'}.",
    ]
    facts += [f"Note: {md_text(note)}." for note in report.notes]
    facts += [f"Skipped {skip['provider']}: {md_text(skip['reason'])}." for skip in report.skipped]
    verdicts = verdict_lines(report)
    facts += verdicts[:-1] + profile_lines(report)
    lines += ["", *(f"- {fact}" for fact in facts)]
    if verdicts:
        lines += ["", verdicts[-1]]  # how a verdict is reached, as its own paragraph
    return "\n".join(lines) + "\n"


def verdict_lines(report: BenchReport) -> list[str]:
    """One plain sentence per compared row: faster, slower or no significant difference, with the 95% CI."""
    from normopt.latency.stats import METHOD

    lines = []
    for row in report.results:
        sentence = verdict_sentence(row)
        if sentence is not None:
            provider = row.provider.replace("ExecutionProvider", "")
            lines.append(f"{sentence}, against the first model ({provider}, opt {row.opt_level}).")
    return [*lines, METHOD] if lines else []


def verdict_sentence(row: BenchRow) -> str | None:
    """``fused decode b1 p128 4.1% faster (95% CI ...)`` for a compared row; None for a baseline."""
    from normopt.latency.stats import MARGIN, SpeedupCI

    if row.speedup is None or row.speedup_low is None or row.speedup_high is None or row.verdict is None:
        return None
    margin = row.speedup_margin if row.speedup_margin is not None else MARGIN
    ci = SpeedupCI(row.speedup, row.speedup_low, row.speedup_high, row.verdict, row.iters, margin)
    return ci.sentence(f"{row.model} {workload(row)}")


def profile_lines(report: BenchReport) -> list[str]:
    """One line per profiled row: time in norm ops against total kernel time, and the top op types."""
    lines = []
    for row in report.results:
        if row.profile:
            top = ", ".join(f"{o['op']} {100 * o['share']:.0f}%" for o in row.profile["by_op"][:4])
            lines.append(
                f"Profile {row.model} ({row.opt_level}, {workload(row)}): norm ops {row.profile['norm_ms']:.3f} ms of "
                f"{row.profile['total_ms']:.3f} ms kernel time ({100 * row.profile['norm_share']:.1f}%); top: {top}."
            )
    return lines


def to_csv(report: BenchReport) -> str:
    """One CSV line per row with every numeric field."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for row in report.results:
        writer.writerow(row.to_dict())
    return buffer.getvalue()


def to_json(report: BenchReport, samples: bool = False) -> str:
    """The JSON document (schema in ``BenchReport.to_dict``)."""
    return json.dumps(report.to_dict(samples), indent=2)


def print_table(report: BenchReport, file: IO[str] | None = None) -> None:
    """The human table via rich (to ``file``, default stdout)."""
    from rich.console import Console
    from rich.table import Table

    header, rows = table_rows(report)
    table = Table(title="normopt bench", show_lines=False)
    for name in header:
        table.add_column(name, justify="left" if name in ("model", "provider", "opt") else "right")
    for cells in rows:
        table.add_row(*cells)
    Console(file=file, width=200).print(table)
    for line in profile_lines(report):
        Console(file=file, width=200).print(line)
