"""ONNX Runtime's own norm-fusion test models (../shared/ort_testdata): load, run, match, and meet ORT's counts.

Every fused output must load in ORT and match the original under stress inputs (offsets, all-zero and
constant rows). The norm count must be what ORT's own test expects, except where normopt deliberately
differs; each such difference is listed in ``DIFFERS`` with the reason, and is only allowed because the
parity checks below hold on it.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from normopt import fusing
from normopt.engines.ir_engine import graphs_of
from normopt.modelio import load
from normopt.ops import NORM_OPS
from tests.conftest import ROOT
from tests.stress import MODES, assert_same_computation, feeds, session

DATA = ROOT.parent / "shared" / "ort_testdata"
ENTRIES: list[dict[str, Any]] = json.loads((DATA / "manifest.json").read_text()) if DATA.is_dir() else []

# file -> (norms normopt leaves in the model, why that differs from ORT's expectation)
DIFFERS: dict[str, tuple[int, str]] = {
    "layer_norm.onnx": (
        0,
        "γ and β are graph inputs of shape [None]: a size-1 γ broadcasts in the original but "
        "not in LayerNormalization, and opset 9 has no Shape(start=) for an all-ones scale",
    ),
    "layer_norm_with_cast.onnx": (
        1,
        "the Cast is float→float (exact): ORT's default build refuses it, its training build fuses it like normopt",
    ),
    "layer_norm_sub_dup.onnx": (1, "the two Subs compute the same x − μ: one LayerNorm, with parity"),
    "simplified_layer_norm_with_casts.onnx": (1, "the Casts are exact round trips: fused with parity"),
}
OUTPUT_3 = (
    "the residual sum has another reader (or is a graph output): normopt keeps it as the Skip op's "
    "output 3 (input_skip_bias_sum), which ORT's fusion test does not use; parity holds"
)
# file -> (Skip ops normopt writes with --target ort, why that differs)
SKIP_DIFFERS: dict[str, tuple[int, str]] = {
    "skip_layer_norm_no_beta_with_cast.onnx": (
        0,
        "fp16 input with an fp32 γ: Skip ops bind one type to both, and "
        "rounding γ to fp16 would change the model; the LayerNorm stays",
    ),
    "gpt2_past.onnx": (
        0,
        "the residual Adds read a Reshape whose shape inference cannot prove equal to the other "
        "operand's (a broadcast Add would change shape): the 25 LayerNorms stay unmerged",
    ),
    "gpt2_past_mask_one_layer.onnx": (0, "same as gpt2_past: operand shapes not proven equal"),
    "skip_layer_norm_format3_no_fusion.onnx": (1, OUTPUT_3),
    "skip_layer_norm_format3_graph_output.onnx": (1, OUTPUT_3),
}

WITH_CAST = (
    "the norm runs in float32 on a Cast of the fp16 residual sum: a Skip op binds one type to input, "
    "skip and γ, so normopt keeps the Add, the Cast and a float32 LayerNormalization"
)


def _norms(path: Path) -> Counter[str]:
    model = load(path)
    return Counter(n.op_type for g in graphs_of(model) for n in g if n.op_type in NORM_OPS)


@pytest.mark.skipif(not ENTRIES, reason="../shared/ort_testdata is not beside the project")
@pytest.mark.parametrize("target", ["auto", "ort"])
@pytest.mark.parametrize("entry", ENTRIES, ids=[e["file"][:-5] for e in ENTRIES])
def test_ort_model_fuses_safely(entry: dict[str, Any], target: str, tmp_path: Path) -> None:
    source = DATA / entry["file"]
    before = source.read_bytes()
    outcome = fusing.fuse(source, tmp_path / entry["file"], target=target)
    assert source.read_bytes() == before
    original, fused = session(source), session(outcome.output)  # both must load
    runnable = not entry["file"].startswith("gpt2_past")  # past/mask shapes need matching dims: loaded only
    for mode in MODES if runnable else ():
        assert_same_computation(source, fused, original, feeds(original, mode), mode)
    counts = _norms(outcome.output)
    expected, _why = DIFFERS.get(entry["file"], (entry["norms"], ""))
    assert sum(counts.values()) == expected, counts
    if target == "ort" and "SkipLayerNormalization" in (entry.get("expect_ort") or entry["expect_ops"]):
        ort_skips = (entry.get("expect_ort") or entry["expect_ops"])["SkipLayerNormalization"]
        skips, _why = SKIP_DIFFERS.get(entry["file"], (ort_skips, ""))
        if "_with_cast" in entry["file"]:
            skips, _why = 0, WITH_CAST
        assert counts["SkipLayerNormalization"] == skips, counts


@pytest.mark.skipif(not ENTRIES, reason="../shared/ort_testdata is not beside the project")
def test_gpt2_past_is_read_as_ort_reads_it(tmp_path: Path) -> None:
    """Duplicate Constant outputs and unsorted nodes: ORT loads it, so normopt reads it and writes it sorted."""
    import onnx

    outcome = fusing.fuse(DATA / "gpt2_past.onnx", tmp_path / "g.onnx", target="auto")
    assert outcome.result.fused == 25
    written = onnx.load(outcome.output, load_external_data=False)
    seen: set[str] = {i.name for i in written.graph.input} | {t.name for t in written.graph.initializer}
    for node in written.graph.node:
        assert all(not name or name in seen for name in node.input), node.name
        assert not (set(node.output) & seen), node.output
        seen.update(node.output)
    assert outcome.checker == "skipped: output uses ONNX Runtime ops (LayerNormalization below opset 17)"
