"""CUDA suite: original vs fused on ONNX Runtime's CUDA provider, in one command, through normopt's API.

For a LayerNorm chain, gpt2-small (legacy exporter) and llama-small (dynamo exporter), each in fp32 and fp16 and
exported with its KV cache (``export --with-past``): fuse, ``verify`` on the provider (fp16 models against their
fp32 export as the reference), and ``bench`` at ORT ``disable`` and ``all`` with IO binding (device-resident
inputs, cache and outputs) for a prefill (batch 1, 128 tokens) and a decode step (1 token after 128 cached):
the original, the fused model, ONNX Runtime's transformers optimizer on the original (``--compare-ort``) and a
byte copy of the original (an A/A row: the noise floor of that run), with the per-op profile share of norm
kernels. Sized for one H200 in under 6 minutes by its CPU dry run's counts (exports dominate; 100 timed runs a
row); ``--iters`` trims it.

    python benchmarks/gpu_suite.py --out results/cuda            # on a machine with CUDA
    python benchmarks/gpu_suite.py --out /tmp/dry --dry-run      # the same code on CPU, tiny sizes (CI)

Writes ``<out>/<case>.json`` (``normopt bench --format json`` documents, with parity added), ``<out>/parity.json``
and ``<out>/summary.md`` (device, driver, versions, the table, each speedup with its 95% CI in words).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the repository root: normopt and tests.synthetic


def _cases(dry: bool) -> list[tuple[str, str, str, str]]:
    """(case name, model, exporter, dtype): presets at full size, or their tiny twins for a dry run."""
    gpt2, llama = ("gpt2-tiny", "llama-tiny") if dry else ("gpt2-small", "llama-small")
    return [
        (f"{model}-{dtype}", model, exporter, dtype)
        for model, exporter in ((gpt2, "legacy"), (llama, "dynamo"))
        for dtype in ("fp32", "fp16")
    ]


def _device() -> dict[str, str]:
    """GPU name and driver (nvidia-smi; empty where there is none), torch's CUDA, ORT's providers."""
    try:
        text = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        text = ""
    name, _, driver = text.splitlines()[0].partition(",") if text else ("", "", "")
    import onnxruntime as ort
    import torch

    return {
        "gpu": name.strip(),
        "driver": driver.strip(),
        "cuda": str(torch.version.cuda or "-"),
        "ort_providers": ", ".join(ort.get_available_providers()),
    }


def _sizes(dry: bool) -> dict[str, list[int]]:
    """Prefill length and cached tokens of the decoder workloads (tiny in a dry run)."""
    return {"batches": [1], "seqs": [16 if dry else 128], "pasts": [16 if dry else 128]}


def _ln_chain(folder: Path, dry: bool) -> Path:
    from tests.synthetic import layernorm_chain, save

    shape = (1, 8, 64) if dry else (8, 512, 768)
    return save(layernorm_chain(2 if dry else 12, shape, opset=17), folder / "ln_chain.onnx")


def _one(
    name: str,
    original: Path,
    reference: Path,
    provider: str,
    iters: int,
    folder: Path,
    sizes: dict[str, list[int]] | None = None,
) -> dict[str, Any]:
    """Fuse, verify on the provider, bench original vs fused vs ORT's optimizer vs an A/A copy; the JSON document."""
    import shutil

    from normopt import bench, fuse, verify
    from normopt.reports.bench import to_json

    fused = fuse(original, folder / f"{name}.fused.onnx")
    parity = verify(reference, fused.output, provider=provider)  # type: ignore[arg-type]
    copy = folder / f"{name}.copy.onnx"
    shutil.copyfile(original, copy)  # the same bytes (external data, if any, is named inside and shared)
    report = bench(
        [original, fused.output, copy],
        providers=[provider],
        opt_levels=["disable", "all"],
        iters=iters,
        warmup=10,
        labels=["original", "fused", "original-again"],
        profile=True,
        compare_ort=sizes is not None,
        **(sizes or {}),  # type: ignore[arg-type]
    )
    document: dict[str, Any] = json.loads(to_json(report))
    document["case"] = name
    document["fusion"] = {"fused": fused.result.fused, "candidates": fused.result.candidates}
    document["parity"] = parity.to_dict()
    return document


def _summary(documents: list[dict[str, Any]], device: dict[str, str], provider: str, dry: bool) -> str:
    from normopt.latency.scenarios import workload_label
    from normopt.latency.stats import SpeedupCI

    env = documents[0]["environment"] if documents else {}
    lines = [
        "# normopt on " + (f"{device['gpu']} (driver {device['driver']})" if device["gpu"] else "CPU (dry run)"),
        "",
        f"Provider {provider}; onnxruntime {env.get('onnxruntime')}, onnx {env.get('onnx')}, "
        f"torch {env.get('torch')} (CUDA {device['cuda']}); ONNX Runtime providers here: {device['ort_providers']}."
        + (" Dry run: tiny models on CPU, numbers mean nothing." if dry else ""),
        "",
        "`original-again` is a byte copy of the original timed in the same rounds: its interval is this run's "
        "noise floor (an A/A comparison).",
        "",
        "| case | fused | parity | workload | opt | model | p50 ms | speedup | 95% CI | verdict | norm share |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    sentences = []
    for doc in documents:
        for row in doc["results"]:
            share = (row.get("profile") or {}).get("norm_share")
            low, high = row.get("speedup_low"), row.get("speedup_high")
            ci = f"{low:.2f}-{high:.2f}x" if low is not None else "-"
            where = workload_label(row["scenario"], row.get("batch"), row.get("seq"), row.get("past"))
            lines.append(
                f"| {doc['case']} | {doc['fusion']['fused']}/{doc['fusion']['candidates']} | "
                f"{'passed' if doc['parity']['passed'] else 'FAILED'} | {where} | "
                f"{row['opt_level']} | {row['model']} | {row['p50_ms']:.3f} | {row['speedup']:.2f}x | {ci} | "
                f"{row.get('verdict') or '-'} | " + (f"{100 * share:.1f}% |" if share is not None else "- |")
            )
            if low is not None and high is not None and row["model"] != "original":
                found = SpeedupCI(row["speedup"], low, high, row["verdict"], row["iters"])
                sentences.append(f"- {doc['case']} {where} ({row['opt_level']}): {found.sentence(row['model'])}.")
    providers = {r["provider"] for d in documents for r in d["results"]}
    return "\n".join(
        [*lines, "", *sentences, "", f"Providers used (read back from the sessions): {sorted(providers)}.", ""]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for the JSON documents and summary.md")
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny models: checks the code path, not speed")
    parser.add_argument("--iters", type=int, default=None, help="timed runs per row (default 100; dry run 12)")
    args = parser.parse_args()
    from normopt import export

    provider = "cpu" if args.dry_run else "cuda"
    iters = args.iters or (12 if args.dry_run else 100)
    args.out.mkdir(parents=True, exist_ok=True)
    models = args.out / "models"
    models.mkdir(exist_ok=True)
    started = time.perf_counter()
    documents = []
    chain = _ln_chain(models, args.dry_run)
    documents.append(_one("ln_chain-fp32", chain, chain, provider, iters, models))
    references: dict[str, Path] = {}
    for name, model, exporter, dtype in _cases(args.dry_run):
        path = models / f"{name}.onnx"
        export(model, path, exporter=exporter, dtype=dtype, with_past=True)  # type: ignore[arg-type]
        if dtype == "fp32":
            references[model] = path
        documents.append(_one(name, path, references[model], provider, iters, models, _sizes(args.dry_run)))
        print(f"{name}: done in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    for doc in documents:
        (args.out / f"{doc['case']}.json").write_text(json.dumps(doc, indent=2) + "\n")
    (args.out / "parity.json").write_text(json.dumps({d["case"]: d["parity"] for d in documents}, indent=2) + "\n")
    summary = _summary(documents, _device(), provider, args.dry_run)
    (args.out / "summary.md").write_text(summary)
    print(summary)
    print(f"total {time.perf_counter() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
