"""``benchmarks/gpu_suite.py --dry-run``: the CUDA suite's code path, on CPU with tiny models.

No GPU was lent while it was written, so this is the only run it has had; it proves the suite runs end to end
(export, fuse, verify, bench with profile, JSON documents, summary), not anything about speed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytest.importorskip("transformers")


@pytest.mark.slow
def test_gpu_suite_dry_run_writes_documents_and_summary(tmp_path: Path) -> None:
    out = tmp_path / "cuda"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_suite.py"), "--dry-run", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    cases = ["ln_chain-fp32", "gpt2-tiny-fp32", "gpt2-tiny-fp16", "llama-tiny-fp32", "llama-tiny-fp16"]
    for case in cases:
        doc = json.loads((out / f"{case}.json").read_text())
        assert doc["parity"]["passed"], case
        assert doc["fusion"]["fused"] == doc["fusion"]["candidates"]
        rows = doc["results"]
        peers = {"ort-optimized", "ort-optimized (fused)"}  # ORT's optimizer on the original and on normopt's output
        models = {"original", "fused", "original-again"} | (peers if case != "ln_chain-fp32" else set())
        assert {(r["model"], r["opt_level"]) for r in rows} == {(m, lv) for m in models for lv in ("disable", "all")}
        if case != "ln_chain-fp32":  # decoders with a KV cache: a prefill and a decode step
            assert {r["scenario"] for r in rows} == {"prefill", "decode"}
        assert all(r["provider"] == "CPUExecutionProvider" for r in rows)  # dry run: CPU, said so
        assert all(r["profile"] and 0 <= r["profile"]["norm_share"] <= 1 for r in rows)
        assert all(r["verdict"] for r in rows)
    summary = (out / "summary.md").read_text()
    assert "Dry run" in summary and all(case in summary for case in cases)
    assert "original-again" in summary and "decode b1 p16" in summary
    assert set(json.loads((out / "parity.json").read_text())) == set(cases)
