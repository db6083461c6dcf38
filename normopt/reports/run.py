"""The run's report: one typed model (``RunReport``) rendered as JSON, Markdown, HTML and the terminal summary.

The page answers the decision first (parity, speed, what to ship), then the model's facts, then the
evidence (fusion records, parity per output, latency rows). Every number on it is read from what ran:
the export, fuse, verify and bench results themselves, never a default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from normopt.exporting.exporter import ExportOutcome
    from normopt.fusing import FuseOutcome
    from normopt.latency.results import BenchReport, BenchRow
    from normopt.parity.check import ParityReport

SCHEMA_VERSION = 2  # 2: the step documents embedded whole (export, fusion, parity, bench) and a decision


@dataclass
class RunReport:
    """Everything ``run`` did, as the typed results of its steps."""

    model: str
    out_dir: Path
    original: Path
    fusion: FuseOutcome
    parity: ParityReport
    bench: BenchReport
    seconds: float
    export: ExportOutcome | None = None

    @property
    def random_weights(self) -> bool:
        """True when the exported weights were drawn at random (a preset, a config without weights)."""
        return self.export is not None and self.export.random_weights

    @property
    def title(self) -> str:
        """The model as every report names it, saying so when its weights are random."""
        return f"{self.model} (random weights)" if self.random_weights else self.model

    def ship(self) -> list[Path]:
        """The files a deployment needs: the fused model and every external data file it reads."""
        return [self.fusion.output, *self.fusion.data_files]

    def compared(self) -> list[BenchRow]:
        """The fused model's rows, each with its verdict against the original."""
        return [r for r in self.bench.results if r.model == "fused" and r.verdict not in (None, "baseline")]

    def to_dict(self) -> dict[str, Any]:
        """``report.json``: the decision, then each step's own document, as its command writes it."""
        from normopt.reports.bench import verdict_sentence

        return {
            "schema_version": SCHEMA_VERSION,
            "command": "run",
            "model": self.model,
            "title": self.title,
            "random_weights": self.random_weights,
            "seconds": round(self.seconds, 1),
            "decision": {
                "parity": "passed" if self.parity.passed else "failed",
                "speed": [
                    {
                        "provider": r.provider,
                        "opt_level": r.opt_level,
                        "scenario": r.scenario,
                        "batch": r.batch,
                        "seq": r.seq,
                        "past": r.past,
                        "speedup": r.speedup,
                        "speedup_low": r.speedup_low,
                        "speedup_high": r.speedup_high,
                        "verdict": r.verdict,
                        "sentence": verdict_sentence(r),
                    }
                    for r in self.compared()
                ],
                "ship": [{"path": str(p), "bytes": _size(p)} for p in self.ship()],
            },
            "export": self.export.to_dict() if self.export is not None else None,
            "fusion": self.fusion.to_dict(),
            "parity": self.parity.to_dict(),
            "bench": self.bench.to_dict(),
        }


def _size(path: Path) -> int | None:
    try:
        return os.path.getsize(path)
    except OSError:
        return None


def _megabytes(path: Path) -> str:
    size = _size(path)
    return "?" if size is None else f"{size / 1e6:.1f} MB" if size >= 1e5 else f"{size / 1e3:.1f} kB"


def _shown(path: Path, base: Path) -> str:
    """``path`` relative to the output folder when inside it, else as given."""
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path)


def decision_lines(report: RunReport) -> list[str]:
    """The answer first: parity, speed (one line per fused row), the files to ship."""
    from normopt.feeds.roles import shapes_line
    from normopt.reports.bench import verdict_sentence
    from normopt.reports.html import md_text

    parity = report.parity
    shapes = {i["name"]: i["shape"] for i in parity.inputs}
    if parity.passed:
        verdict = f"**Parity: passed** — every output within tolerance on {md_text(shapes_line(shapes))}."
    else:
        over = [o.name for o in parity.outputs if not o.passed]
        verdict = (
            f"**Parity: FAILED** — {len(over)} of {len(parity.outputs)} outputs over tolerance "
            f"(first: {md_text(over[0]) if over else '?'}); do not ship without reading the Parity section."
        )
    lines = [f"- {verdict}"]
    for row in report.compared():
        sentence = verdict_sentence(row)
        provider = row.provider.replace("ExecutionProvider", "")
        lines.append(f"- **Speed** ({provider}, ORT opt {row.opt_level}): {md_text(sentence)}.")
    if not report.compared():
        lines.append("- **Speed**: no fused row was compared (see Latency).")
    files = ", ".join(f"`{md_text(_shown(p, report.out_dir))}` ({_megabytes(p)})" for p in report.ship())
    together = (
        " — keep them in one folder: the model reads its weights by relative name" if len(report.ship()) > 1 else ""
    )
    lines.append(f"- **Ship**: {files}{together}.")
    if report.random_weights:
        lines.append("- **Random weights**: the outputs mean nothing; parity and latency do.")
    return lines


def _fact_rows(report: RunReport) -> list[str]:
    from normopt.reports.html import md_text

    result = report.fusion.result
    rows = [
        "| | original | fused |",
        "|---|---|---|",
        f"| file | `{md_text(_shown(report.original, report.out_dir))}` ({_megabytes(report.original)}) | "
        f"`{md_text(_shown(report.fusion.output, report.out_dir))}` ({_megabytes(report.fusion.output)}) |",
        "| external data | "
        + (", ".join(f"`{md_text(_shown(p, report.out_dir))}`" for p in report.fusion.input_data_files) or "none")
        + " | "
        + (", ".join(f"`{md_text(_shown(p, report.out_dir))}`" for p in report.fusion.data_files) or "none")
        + " |",
        f"| nodes | {result.nodes_before} | {result.nodes_after} |",
    ]
    export = report.export
    if export is not None:
        rows.append(f"| export | {export.exporter} exporter, {export.dtype}, opset {export.opset} | |")
    else:
        rows.append(f"| opset | {result.opset} | {result.opset} |")
    return rows


def _parity_rows(report: RunReport, shown: int = 4) -> list[str]:
    """Table rows for the first ``shown`` outputs, then one row for the rest (their worst values)."""
    from normopt.reports.html import md_text

    outputs = report.parity.outputs
    shown = len(outputs) if len(outputs) <= shown + 1 else shown
    rows = [
        f"| {md_text(o.name)} | {o.max_abs:.3g} | {o.max_rel:.3g} | {o.mean_abs:.3g} | {o.cosine:.6f} | "
        f"{o.over_tolerance} | {o.atol:g} / {o.rtol:g} |"
        for o in outputs[:shown]
    ]
    rest = outputs[shown:]
    if rest:
        rows.append(
            f"| {len(rest)} more ({md_text(rest[0].name)} … {md_text(rest[-1].name)}), worst | "
            f"{max(o.max_abs for o in rest):.3g} | {max(o.max_rel for o in rest):.3g} | "
            f"{max(o.mean_abs for o in rest):.3g} | {min(o.cosine for o in rest):.6f} | "
            f"{sum(o.over_tolerance for o in rest)} | |"
        )
    return rows


def _latency_rows(report: RunReport, compact: bool = False) -> list[str]:
    from normopt.reports.bench import workload
    from normopt.reports.html import md_text

    def cell(value: float | None, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    rows = []
    for r in report.bench.results:
        interval = f"{r.speedup_low:.2f}-{r.speedup_high:.2f}x" if r.speedup_low is not None else "-"
        if compact:
            rows.append(
                f"| {md_text(r.model)} | {r.opt_level} | {workload(r)} | {r.p50_ms:.2f} | {cell(r.speedup, '.2f')}x | "
                f"{interval} | {md_text(r.verdict or '-')} |"
            )
            continue
        rows.append(
            f"| {md_text(r.model)} | {r.provider.replace('ExecutionProvider', '')} | {r.opt_level} | "
            f"{workload(r)} | {r.p50_ms:.2f} | {r.p90_ms:.2f} | {r.p99_ms:.2f} | {cell(r.tokens_per_s, '.0f')} | "
            f"{cell(r.ms_per_token, '.3f')} | {r.session_ms:.0f} | {r.first_run_ms:.1f} | "
            f"{cell(r.speedup, '.2f')}x | {interval} | {md_text(r.verdict or '-')} |"
        )
    return rows


_LATENCY_HEAD = [
    "| model | provider | opt level | workload | p50 ms | p90 ms | p99 ms | tok/s | ms/token | session ms "
    "| 1st run ms | speedup | 95% CI | verdict |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
]
_LATENCY_HEAD_COMPACT = [
    "| model | opt | workload | p50 ms | speedup | 95% CI | verdict |",
    "|---|---|---|---|---|---|---|",
]


def render_markdown(report: RunReport, chart_name: str | None, compact: bool = False) -> str:
    """``report.md``: the decision, the model's facts, then the evidence; the chart embedded when given.

    ``compact``: the latency table with its deciding columns only (the terminal's width).
    """
    from normopt.feeds.roles import shapes_line
    from normopt.latency.stats import METHOD
    from normopt.reports.html import md_text

    result, parity, bench = report.fusion.result, report.parity, report.bench
    inputs = shapes_line({i["name"]: i["shape"] for i in parity.inputs})
    others = [case for case in parity.cases if case != inputs]
    source = parity.tolerance()["source"]
    given = ", ".join(f"{name} {how}" for name, how in source.items())
    lines = [
        f"# normopt report: {md_text(report.title)}",
        "",
        "## Decision",
        "",
        *decision_lines(report),
        "",
        "## Model",
        "",
        *_fact_rows(report),
        "",
        f"Fused **{result.fused} of {result.candidates}** norm candidates (target `{result.target}`)"
        + "".join(f", {k} {v}" for k, v in result.by_kind().items())
        + f". onnx.checker on the output: {md_text(report.fusion.checker)}.",
        "",
        "| rule | fused |",
        "|---|---|",
        *[f"| `{rule}` | {count} |" for rule, count in result.by_rule().items()],
    ]
    if result.rejected:
        lines += ["", "Left alone:", ""] + [
            f"- {c.kind} at {md_text(c.node)}: {md_text(c.reason)}" for c in result.rejected
        ]
    lines += [
        "",
        "## Parity",
        "",
        f"**{'Passed' if parity.passed else 'FAILED'}**: ONNX Runtime {parity.provider}, graph optimizations off; "
        f"{md_text(parity.trials)} trial(s), seed {parity.seed}; an element fails where |fused − original| > "
        f"atol + rtol·|original| ({given}; per output below).",
        "",
        f"Inputs: {md_text(inputs)}.",
        *([f"Also checked: {md_text('; '.join(others))}."] if others else []),
        "",
        "| output | max_abs | max_rel | mean_abs | cosine | over tolerance | atol / rtol |",
        "|---|---|---|---|---|---|---|",
        *_parity_rows(report),
        "",
        "## Latency",
        "",
        "`disable` = ONNX Runtime graph optimizations off (what normopt's fusion alone buys); `all` = ORT's own "
        "fusions on as well. Speedup is against `original` under the same provider and level."
        + ("" if compact else " `session ms`: creating the session; `1st run ms`: its first run (not timed)."),
        "",
        *(_LATENCY_HEAD_COMPACT if compact else _LATENCY_HEAD),
        *_latency_rows(report, compact),
        "",
        METHOD,
        "",
        *[f"- Inputs ({w['scenario']}): {md_text(shapes_line(w['shapes']))}." for w in bench.workloads],
        f"- Warm-up {bench.settings['warmup']}, "
        + (f"{bench.settings['iters']} timed runs" if bench.settings.get("iters") else f"{bench.settings['seconds']} s")
        + " per row and workload, interleaved.",
    ]
    peak = max((r.peak_rss_mb for r in bench.results), default=0.0)
    lines.append(
        f"- Memory: the process grew by at most {peak:.0f} MB while a session was created and run. All sessions "
        "share one process, so this is not a per-model comparison."
    )
    lines += [f"- Skipped {s['provider']}: {md_text(s['reason'])}." for s in bench.skipped]
    lines += [f"- Note: {md_text(note)}." for note in bench.notes]
    if chart_name:
        lines += ["", f"![latency distribution]({chart_name})"]
    env = bench.environment
    lines += [
        "",
        f"Run took {report.seconds:.1f} s. normopt {env['normopt']}, torch {env['torch']}, onnx {env['onnx']}, "
        f"onnxruntime {env['onnxruntime']}. Machine: {md_text(env['cpu'])} ({env['cpu_count']} cores), "
        f"GPU: {md_text(env['gpu'] or 'none')}.",
        "",
    ]
    return "\n".join(lines)


def print_summary(report: RunReport) -> None:
    """The report rendered for the terminal (rich's Markdown: headings, tables, bold), on stdout."""
    from rich.console import Console
    from rich.markdown import Markdown

    Console(width=min(160, max(100, Console().width))).print(Markdown(render_markdown(report, None, compact=True)))
