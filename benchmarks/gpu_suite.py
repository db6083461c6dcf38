"""CUDA suite: original vs fused on ONNX Runtime's CUDA provider, in one command, through normopt's API.

For a LayerNorm chain, gpt2-small (legacy exporter) and llama-small (dynamo exporter), each in fp32 and fp16:
export, fuse, ``verify`` on the provider (fp16 models against their fp32 export as the reference), and
``bench`` original vs fused at ORT ``disable`` and ``all`` with IO binding (device-resident inputs and outputs),
the per-op profile share of norm kernels included. Prefill only: normopt cannot export a KV cache yet.

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
sys.path.insert(0, str(HERE))


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


def _ln_chain(folder: Path, dry: bool) -> Path:
    from synthetic import layernorm_chain, save

    shape = (1, 8, 64) if dry else (8, 512, 768)
    return save(layernorm_chain(2 if dry else 12, shape, opset=17), folder / "ln_chain.onnx")


def _one(
    name: str,
    original: Path,
    reference: Path,
    provider: str,
    iters: int,
    folder: Path,
) -> dict[str, Any]:
    """Fuse, verify on the provider, bench original vs fused with the profile; return the JSON document."""
    from normopt import bench, fuse, verify
    from normopt.latency.report import to_json

    fused = fuse(original, folder / f"{name}.fused.onnx")
    parity = verify(reference, fused.output, provider=provider)  # type: ignore[arg-type]
    report = bench(
        [original, fused.output],
        providers=[provider],
        opt_levels=["disable", "all"],
        iters=iters,
        warmup=10,
        labels=["original", "fused"],
        profile=True,
    )
    document: dict[str, Any] = json.loads(to_json(report))
    document["case"] = name
    document["fusion"] = {"fused": fused.result.fused, "candidates": fused.result.candidates}
    document["parity"] = parity.to_dict()
    return document


def _summary(documents: list[dict[str, Any]], device: dict[str, str], provider: str, dry: bool) -> str:
    from normopt.latency.stats import SpeedupCI

    env = documents[0]["environment"] if documents else {}
    lines = [
        "# normopt on " + (f"{device['gpu']} (driver {device['driver']})" if device["gpu"] else "CPU (dry run)"),
        "",
        f"Provider {provider}; onnxruntime {env.get('onnxruntime')}, onnx {env.get('onnx')}, "
        f"torch {env.get('torch')} (CUDA {device['cuda']}); ONNX Runtime providers here: {device['ort_providers']}."
        + (" Dry run: tiny models on CPU, numbers mean nothing." if dry else ""),
        "",
        "| case | fused | parity | opt | original p50 ms | fused p50 ms | speedup | 95% CI | verdict | norm share |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    sentences = []
    for doc in documents:
        rows = doc["results"]
        for level in ("disable", "all"):
            pair = [r for r in rows if r["opt_level"] == level]
            original = next(r for r in pair if r["model"] == "original")
            fused = next(r for r in pair if r["model"] == "fused")
            share = (fused.get("profile") or {}).get("norm_share")
            ci = (
                f"{fused['speedup_low']:.2f}-{fused['speedup_high']:.2f}x"
                if fused.get("speedup_low") is not None
                else "-"
            )
            lines.append(
                f"| {doc['case']} | {doc['fusion']['fused']}/{doc['fusion']['candidates']} | "
                f"{'passed' if doc['parity']['passed'] else 'FAILED'} | {level} | {original['p50_ms']:.3f} | "
                f"{fused['p50_ms']:.3f} | {fused['speedup']:.2f}x | {ci} | {fused['verdict']} | "
                + (f"{100 * share:.1f}% |" if share is not None else "- |")
            )
            if fused.get("speedup_low") is not None:
                found = SpeedupCI(
                    fused["speedup"], fused["speedup_low"], fused["speedup_high"], fused["verdict"], fused["iters"]
                )
                sentences.append(f"- {doc['case']} ({level}): {found.sentence('fused')}.")
    providers = {r["provider"] for d in documents for r in d["results"]}
    return "\n".join(
        [*lines, "", *sentences, "", f"Providers used (read back from the sessions): {sorted(providers)}.", ""]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for the JSON documents and summary.md")
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny models: checks the code path, not speed")
    parser.add_argument("--iters", type=int, default=None, help="timed runs per row (default 200; dry run 12)")
    args = parser.parse_args()
    from normopt import export

    provider = "cpu" if args.dry_run else "cuda"
    iters = args.iters or (12 if args.dry_run else 200)
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
        export(model, path, exporter=exporter, dtype=dtype)  # type: ignore[arg-type]
        if dtype == "fp32":
            references[model] = path
        documents.append(_one(name, path, references[model], provider, iters, models))
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
