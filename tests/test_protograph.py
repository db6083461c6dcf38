"""The protobuf fast path (``ProtoGraph``) fuses exactly what the onnx_ir engine fuses, node for node."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from normopt import fusing, modelio
from normopt.engines import protograph
from normopt.fusion.pipeline import fuse_model
from normopt.modelio.repair import flat_graph_problem
from tests.conftest import GRAPHS, manifest, op_counts, run_ort
from tests.engines import assert_engines_agree
from tests.synthetic import layernorm_chain, save

FLAT = [e["file"] for e in manifest() if flat_graph_problem(onnx.load(GRAPHS / e["file"])) is None]
TARGETS = ("auto", "onnx", "ort")


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", FLAT, ids=[f[:-5] for f in FLAT])
def test_both_engines_agree(name: str, target: str, tmp_path: Path) -> None:
    assert_engines_agree(GRAPHS / name, target, tmp_path)


def test_most_reference_graphs_are_flat() -> None:
    assert len(FLAT) >= 0.8 * len(manifest()), FLAT


@pytest.mark.parametrize(
    ("name", "problem"), [("ln_in_if.onnx", "model has subgraphs"), ("ln_in_function.onnx", "model has functions")]
)
def test_graphs_with_subgraphs_or_functions_take_the_onnx_ir_engine(name: str, problem: str, tmp_path: Path) -> None:
    assert flat_graph_problem(onnx.load(GRAPHS / name)) == problem
    assert protograph.load_flat(GRAPHS / name, min_nodes=0) is None
    assert fusing.fuse(GRAPHS / name, tmp_path / name).result.fused >= 1


def test_fuse_takes_the_fast_path_for_big_flat_graphs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, count_weight_reads: list[str]
) -> None:
    source = save(layernorm_chain(4, (2, 8, 64), opset=17, matmul=True), tmp_path / "chain.onnx", external=True)
    data_before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    loads: list[str] = []
    real_load = modelio.load
    monkeypatch.setattr(modelio, "load", lambda p, proto=None: loads.append(str(p)) or real_load(p, proto))
    monkeypatch.setattr(fusing, "FLAT_PATH_MIN_NODES", 0)
    outcome = fusing.fuse(source, tmp_path / "chain.fused.onnx")
    assert loads == [], "the onnx_ir loader ran: the fast path was not taken"
    assert count_weight_reads == []
    assert outcome.result.fused == outcome.result.candidates == 4
    assert outcome.checker == "passed"
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name in data_before} == data_before
    assert op_counts(outcome.output)["LayerNormalization"] == 4
    feeds = {
        i.name: np.random.default_rng(0).standard_normal((2, 8, 64)).astype(np.float32)
        for i in onnx.load(source, load_external_data=False).graph.input
    }
    np.testing.assert_allclose(run_ort(outcome.output, feeds)[0], run_ort(source, feeds)[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("options", "why"),
    [({"target": "ort"}, "Skip pass"), ({"external": "new"}, "new data file"), ({"external": "inline"}, "inline")],
)
def test_fuse_uses_onnx_ir_where_the_fast_path_cannot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, options: dict[str, str], why: str
) -> None:
    source = save(layernorm_chain(2, (2, 8, 64), opset=17, matmul=True), tmp_path / "chain.onnx", external=True)
    loads: list[str] = []
    real_load = modelio.load
    monkeypatch.setattr(modelio, "load", lambda p, proto=None: loads.append(str(p)) or real_load(p, proto))
    monkeypatch.setattr(fusing, "FLAT_PATH_MIN_NODES", 0)
    outcome = fusing.fuse(source, tmp_path / "chain.fused.onnx", **options)  # type: ignore[arg-type]
    assert loads, why
    assert outcome.result.fused == 2


def test_untyped_export_gets_shape_inference_on_the_fast_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from normopt import export, verify

    exported = export("gpt2-tiny", tmp_path / "gpt2.onnx", dtype="fp16").output  # legacy: few value_info
    without = protograph.load_flat(exported, min_nodes=0)
    assert without is not None
    blind = fuse_model(without, infer_shapes=False)
    assert blind.fused < blind.candidates, "this export no longer needs inferred types: pick another case"
    reasons = {c.reason for c in blind.details if c.status == "rejected"}
    assert reasons == {"element type of the input is unknown and the pattern casts it (no declared type)"}
    loads: list[str] = []
    real_load = modelio.load
    monkeypatch.setattr(modelio, "load", lambda p, proto=None: loads.append(str(p)) or real_load(p, proto))
    monkeypatch.setattr(fusing, "FLAT_PATH_MIN_NODES", 0)
    outcome = fusing.fuse(exported, tmp_path / "gpt2.fused.onnx")
    assert loads == []
    assert outcome.result.fused == outcome.result.candidates == blind.candidates
    monkeypatch.undo()
    assert verify(exported, outcome.output).passed
