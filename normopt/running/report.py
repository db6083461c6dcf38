"""The run's report: one JSON document, and the Markdown rendered from it (HTML is rendered from that)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from normopt.latency.results import BenchRow


def title(model: str, export_info: dict[str, Any] | None) -> str:
    """The model as every report names it, saying so when its weights are random."""
    return f"{model} (random weights)" if export_info and export_info.get("random_weights") else model


def document(
    model: str,
    export_info: dict[str, Any] | None,
    fusion: dict[str, Any],
    parity: dict[str, Any],
    bench: dict[str, Any],
    seconds: float,
) -> dict[str, Any]:
    """``report.json``: the run's one document (see ``normopt.running``'s docstring for its fields)."""
    env = bench["environment"]
    return {
        "schema_version": 1,
        "model": model,
        "seconds": round(seconds, 1),
        "export": export_info,
        "fusion": {
            "target": fusion["target"],
            "candidates": fusion["candidates"],
            "fused": fusion["fused"],
            "by_kind": fusion["by_kind"],
            "by_rule": fusion["by_rule"],
            "rejected": [
                {"kind": d["kind"], "node": d["node"], "reason": d["reason"]}
                for d in fusion["details"]
                if d["status"] == "rejected"
            ],
            "nodes_before": fusion["nodes_before"],
            "nodes_after": fusion["nodes_after"],
            "checker": fusion["checker"],
        },
        "parity": {"passed": parity["passed"], "tolerance": parity["tolerance"], "outputs": parity["outputs"]},
        "latency": bench["results"],
        "bench_settings": bench["settings"] | {"shapes": bench["shapes"], "workloads": bench["workloads"]},
        "skipped": bench["skipped"],
        "versions": {k: env[k] for k in ("normopt", "torch", "onnx", "onnxruntime", "onnx_ir", "numpy", "python")},
        "machine": {k: env[k] for k in ("cpu", "cpu_count", "gpu", "platform")},
    }


def _verdicts(rows: list[BenchRow]) -> list[str]:
    """One plain sentence per compared row (``report.verdict_sentence``), with its provider and level."""
    from normopt.latency.report import verdict_sentence

    lines = []
    for row in rows:
        sentence = verdict_sentence(row)
        if sentence is not None:
            lines.append(f"- {sentence} ({row.provider.replace('ExecutionProvider', '')}, opt {row.opt_level}).")
    return lines


def _parity_rows(outputs: list[dict[str, Any]], shown: int = 4) -> list[str]:
    """Table rows for the first ``shown`` outputs, then one row for the rest (their worst values)."""
    from normopt.latency.html import md_text

    shown = len(outputs) if len(outputs) <= shown + 1 else shown
    rows = [
        f"| {md_text(o['name'])} | {o['max_abs']:.3g} | {o['max_rel']:.3g} | {o['mean_abs']:.3g} | {o['cosine']:.6f} | "
        f"{o['over_tolerance']} |"
        for o in outputs[:shown]
    ]
    rest = outputs[shown:]
    if rest:
        rows.append(
            f"| {len(rest)} more ({md_text(rest[0]['name'])} … {md_text(rest[-1]['name'])}), worst | "
            f"{max(o['max_abs'] for o in rest):.3g} | {max(o['max_rel'] for o in rest):.3g} | "
            f"{max(o['mean_abs'] for o in rest):.3g} | {min(o['cosine'] for o in rest):.6f} | "
            f"{sum(o['over_tolerance'] for o in rest)} |"
        )
    return rows


def render_markdown(doc: dict[str, Any], chart_name: str) -> str:
    """``report.md``: readable on its own, with the chart embedded."""
    from normopt.feeds.roles import shapes_line
    from normopt.latency.html import md_text
    from normopt.latency.report import workload
    from normopt.latency.results import BenchRow
    from normopt.latency.stats import METHOD

    rows = [BenchRow(**r) for r in doc["latency"]]
    fusion, parity = doc["fusion"], doc["parity"]
    lines = [
        f"# normopt report: {md_text(title(doc['model'], doc.get('export')))}",
        "",
        f"Pipeline took {doc['seconds']} s. Versions: torch {doc['versions']['torch']}, "
        f"onnx {doc['versions']['onnx']}, "
        f"onnxruntime {doc['versions']['onnxruntime']}. Machine: {doc['machine']['cpu']} "
        f"({doc['machine']['cpu_count']} cores), GPU: {doc['machine']['gpu'] or 'none'}.",
        "",
        "## Fusion",
        "",
        f"Fused **{fusion['fused']} of {fusion['candidates']}** norm candidates (target `{fusion['target']}`): "
        + ", ".join(f"{k} {v}" for k, v in fusion["by_kind"].items())
        + f". Nodes {fusion['nodes_before']} → {fusion['nodes_after']}. onnx.checker: {md_text(fusion['checker'])}.",
        "",
        "| rule | fused |",
        "|---|---|",
        *[f"| `{rule}` | {count} |" for rule, count in fusion["by_rule"].items()],
    ]
    if fusion["rejected"]:
        lines += ["", "Left alone:", ""] + [
            f"- {r['kind']} at {md_text(r['node'])}: {md_text(r['reason'])}" for r in fusion["rejected"]
        ]
    lines += [
        "",
        "## Parity",
        "",
        f"**{'Passed' if parity['passed'] else 'FAILED'}** (ONNX Runtime CPU, graph optimizations off; "
        f"{parity['tolerance']['rule']}).",
        "",
        "| output | max_abs | max_rel | mean_abs | cosine | over tolerance |",
        "|---|---|---|---|---|---|",
        *_parity_rows(parity["outputs"]),
        "",
        "## Latency",
        "",
        "`disable` = ONNX Runtime graph optimizations off (what normopt's fusion alone buys); `all` = ORT's own "
        "fusions on as well. Speedup is against `original` under the same provider and level.",
        "",
        "| model | provider | opt level | workload | p50 ms | p90 ms | p99 ms | tok/s | ms/token | speedup | 95% CI "
        "| verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        *[
            f"| {md_text(r['model'])} | {r['provider'].replace('ExecutionProvider', '')} | {r['opt_level']} | "
            f"{workload(row)} | {r['p50_ms']:.2f} | {r['p90_ms']:.2f} | {r['p99_ms']:.2f} | "
            + ("-" if r.get("tokens_per_s") is None else f"{r['tokens_per_s']:.0f}")
            + " | "
            + ("-" if r.get("ms_per_token") is None else f"{r['ms_per_token']:.3f}")
            + f" | {r['speedup']:.2f}x | "
            + (f"{r['speedup_low']:.2f}-{r['speedup_high']:.2f}x" if r.get("speedup_low") is not None else "-")
            + f" | {r.get('verdict') or '-'} |"
            for r, row in zip(doc["latency"], rows, strict=True)
        ],
        "",
        *_verdicts(rows),
        "",
        METHOD,
        "",
        *[
            f"Inputs ({w['scenario']}): {md_text(shapes_line(w['shapes']))}."
            for w in doc["bench_settings"].get("workloads", [])
        ],
        f"Warm-up {doc['bench_settings']['warmup']}, "
        + (
            f"{doc['bench_settings']['iters']} timed runs"
            if doc["bench_settings"].get("iters")
            else f"{doc['bench_settings']['seconds']} s of timed runs"
        )
        + " per row and workload, interleaved.",
    ]
    lines += [f"Skipped {s['provider']}: {md_text(s['reason'])}." for s in doc["skipped"]]
    lines += ["", f"![latency distribution]({chart_name})", ""]
    return "\n".join(lines)
