"""Prove it or refuse: each harm a sound proof removes, met through the CLI as a user would meet it."""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort
import pytest
from onnx import helper as h

from normopt import fusing
from normopt.engines.names import Names
from normopt.engines.postcondition import PostconditionFailed
from normopt.passes import FuseNorms
from tests.conftest import GRAPHS, op_counts
from tests.helpers import cli

IR = 10


def _session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _run(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    return _session(path).run(None, feeds)


def _skip_on_unknown_dims(path: Path) -> Path:
    """What normopt wrote before dims were proved: Add(a[?,?,16], b[?,?,16]) + LayerNorm as one Skip op."""
    source = onnx.load(GRAPHS / "neg_skip_unknown_dims.onnx")
    vectors = {t.name: t for t in source.graph.initializer if list(t.dims) == [16]}
    affine = {
        n.op_type: next(i for i in n.input if i in vectors) for n in source.graph.node if set(n.input) & set(vectors)
    }
    gamma, beta = vectors[affine["Mul"]], vectors[affine["Add"]]  # the original's own γ and β: right at equal sizes
    node = h.make_node("SkipLayerNormalization", ["a", "b", gamma.name, beta.name], [source.graph.output[0].name],
                       domain="com.microsoft", epsilon=1e-5)  # fmt: skip
    graph = h.make_graph([node], "wrong", list(source.graph.input), list(source.graph.output), [gamma, beta])
    model = h.make_model(
        graph, opset_imports=[h.make_opsetid("", 18), h.make_opsetid("com.microsoft", 1)], ir_version=IR
    )
    onnx.save(model, path)
    return path


def test_unknown_dims_are_not_taken_as_equal(tmp_path: Path) -> None:
    """Harm 1: Add(a[?,?,16], b[?,?,16]) is not fused into a Skip op; the record names the Add's output."""
    out = tmp_path / "fused.onnx"
    result = cli("fuse", GRAPHS / "neg_skip_unknown_dims.onnx", "-o", out, "--target", "ort", "--format", "json")
    assert result.code == 0, result.stderr
    counts = op_counts(out)
    assert counts["SkipLayerNormalization"] == 0 and counts["Add"] == 1, counts
    skips = [d for d in result.json()["details"] if d["kind"] == "SkipNorm"]
    assert skips and skips[0]["status"] == "rejected" and skips[0]["value"] is not None, skips
    feeds = {"a": np.random.default_rng(0).standard_normal((1, 4, 16), np.float32),
             "b": np.random.default_rng(1).standard_normal((2, 4, 16), np.float32)}  # fmt: skip
    (want,), (got,) = _run(GRAPHS / "neg_skip_unknown_dims.onnx", feeds), _run(out, feeds)
    assert got.shape == want.shape == (2, 4, 16)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_verify_probes_distinct_sizes_for_distinct_dims(tmp_path: Path) -> None:
    """Harm 6: verify gives unknown dims different sizes (and 1), so the wrong Skip fusion fails, saying the sizes."""
    wrong = _skip_on_unknown_dims(tmp_path / "wrong.onnx")
    result = cli("verify", GRAPHS / "neg_skip_unknown_dims.onnx", wrong)
    assert result.code == 1, (result.stdout, result.stderr)
    assert "free dims at 1" in result.stdout or "distinct dims" in result.stdout, result.stdout
    assert "a=1x1x16" in result.stdout, result.stdout  # the sizes used are printed
    assert "the reference runs and the candidate does not" in result.stdout
    assert "checked: a=2x16x16, b=2x16x16" in result.stdout  # the default sizes pass: only the probes tell
    good = cli("verify", GRAPHS / "neg_skip_unknown_dims.onnx", GRAPHS / "neg_skip_unknown_dims.onnx")
    assert good.code == 0, good.stdout + good.stderr
    assert "distinct dims: a=" in good.stdout


def test_skip_fusion_never_makes_a_cycle(tmp_path: Path) -> None:
    """Harm 2: γ computed from the residual sum keeps the Add; the output is acyclic, loads and matches."""
    source = GRAPHS / "neg_skip_scale_from_sum.onnx"
    out = tmp_path / "fused.onnx"
    result = cli("fuse", source, "-o", out, "--target", "ort", "--format", "json")
    assert result.code == 0, result.stderr
    assert op_counts(out)["SkipLayerNormalization"] == 0
    reasons = [d["reason"] for d in result.json()["details"] if d["kind"] == "SkipNorm"]
    assert any("residual sum" in (r or "") for r in reasons), reasons
    onnx.checker.check_model(onnx.load(out))  # sorted, every input defined (ORT ops: none here besides LN-18)
    rng = np.random.default_rng(0)
    feeds = {n: rng.standard_normal((2, 4, 16), np.float32) for n in ("a", "b")}
    np.testing.assert_allclose(_run(out, feeds)[0], _run(source, feeds)[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["neg_ln_custom_domain_sqrt", "neg_rms_custom_domain_pow"])
def test_custom_domain_ops_are_not_standard_ops(name: str, tmp_path: Path) -> None:
    """Harm 3: com.example.Sqrt / com.example.Pow inside a norm shape is not fused; the output still runs."""
    source = GRAPHS / f"{name}.onnx"
    out = tmp_path / "fused.onnx"
    result = cli("fuse", source, "-o", out, "--format", "json")
    assert result.code == 0, result.stderr
    assert result.json()["fused"] == 0
    assert op_counts(out) == op_counts(source)
    feeds = {"x": np.random.default_rng(0).standard_normal((2, 4, 16), np.float32)}
    np.testing.assert_allclose(_run(out, feeds)[0], _run(source, feeds)[0], rtol=1e-6, atol=1e-6)


def _duplicates(model: onnx.ModelProto) -> list[str]:
    """Names defined twice: node names among nodes, value names among values (two namespaces)."""
    graph = model.graph
    nodes = Counter(n.name for n in graph.node if n.name)
    inputs = {i.name for i in graph.input}
    outputs = [o for n in graph.node for o in n.output if o]
    values = Counter(outputs + [t.name for t in graph.initializer] + list(inputs))
    values.subtract(t.name for t in graph.initializer if t.name in inputs)  # an initializer listed as an input
    return [n for n, c in (nodes + values).items() if c > 1 and (nodes[n] > 1 or values[n] > 1)]


@pytest.mark.parametrize("target", ["auto", "onnx", "ort"])
def test_fusing_twice_is_idempotent(target: str, tmp_path: Path) -> None:
    """Harm 4: fusing a fused model again with the same target changes nothing."""
    source = GRAPHS / "skip_layernorm_residual.onnx"
    once, twice = tmp_path / "once.onnx", tmp_path / "twice.onnx"
    first = cli("fuse", source, "-o", once, "--target", target, "--format", "json")
    assert first.code == 0, first.stderr
    result = cli("fuse", once, "-o", twice, "--target", target, "--format", "json")
    assert result.code == 0, result.stderr
    assert result.json()["fused"] == 0
    assert result.json()["checker"] == first.json()["checker"]  # the same graph is described the same way
    assert op_counts(twice) == op_counts(once)
    assert _duplicates(onnx.load(twice)) == []


def test_refusing_with_skip_after_auto_keeps_names_unique(tmp_path: Path) -> None:
    """Harm 4: ``--target ort`` on an ``auto`` output merges the residual under a fresh name; it loads and matches."""
    source = GRAPHS / "skip_layernorm_residual.onnx"
    once, twice = tmp_path / "once.onnx", tmp_path / "twice.onnx"
    assert cli("fuse", source, "-o", once).code == 0
    assert cli("fuse", once, "-o", twice, "--target", "ort").code == 0
    model = onnx.load(twice)
    assert _duplicates(model) == [] and op_counts(twice)["SkipLayerNormalization"] == 1
    rng = np.random.default_rng(0)
    feeds = {n: rng.standard_normal((2, 3, 16), np.float32) for n in ("a", "b")}
    for got, want in zip(_run(twice, feeds), _run(source, feeds), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_names_already_taken_are_not_reused(tmp_path: Path) -> None:
    """Harm 4: a model holding normopt/LayerNorm_0(.scale) and a value normopt/LayerNorm_1 gets fresh names."""
    out = tmp_path / "fused.onnx"
    assert cli("fuse", GRAPHS / "ln_names_taken.onnx", "-o", out).code == 0
    model = onnx.load(out)
    assert _duplicates(model) == []
    fused = [n.name for n in model.graph.node if n.op_type == "LayerNormalization"]
    assert "normopt/LayerNorm_0" in fused and len(set(fused)) == 2
    with warnings.catch_warnings():
        _session(out)  # loads: no duplicate initializer


def test_names_fresh_against_every_derived_name() -> None:
    names = Names(["normopt/LayerNorm_0", "normopt/LayerNorm_1.scale", "normopt/LayerNorm_2"])
    assert names.fresh("LayerNorm") == "normopt/LayerNorm_3"
    assert names.fresh("LayerNorm") == "normopt/LayerNorm_4"
    assert names.unique("y.unfused") == "y.unfused"
    assert names.unique("y.unfused") == "y.unfused_1"


def _break_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """A deliberately broken pass: every fused node gets the same name (so the written model is not SSA)."""
    monkeypatch.setattr(Names, "fresh", lambda self, stem: "normopt/same")


def test_postcondition_stops_a_broken_write_with_exit_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Harm 5: a rewrite that breaks SSA is a normopt bug: exit 3 naming the fact, nothing written."""
    source = tmp_path / "two.onnx"
    model = onnx.load(GRAPHS / "ln_no_affine.onnx")  # no γ: each fused node creates '<name>.scale'
    twice = onnx.compose.add_prefix(model, "second_")
    merged = onnx.compose.merge_models(model, twice, io_map=[(model.graph.output[0].name, "second_x")])
    onnx.save(merged, source)
    assert fusing.fuse(source, tmp_path / "ok.onnx").result.fused == 2
    _break_names(monkeypatch)
    out = tmp_path / "broken.onnx"
    result = cli("fuse", source, "-o", out)
    assert result.code == 3, result.stderr
    assert "SSA" in result.stderr and "nothing written" in result.stderr
    assert not out.exists() and not list(tmp_path.glob(".broken*"))


def test_fuse_norms_pass_ensures_the_postcondition(monkeypatch: pytest.MonkeyPatch) -> None:
    """Harm 5: pipelines that use FuseNorms get the postcondition through onnx_ir's ensures hook."""
    model = onnx.load(GRAPHS / "ln_no_affine.onnx")
    merged = onnx.compose.merge_models(
        model, onnx.compose.add_prefix(model, "b_"), io_map=[(model.graph.output[0].name, "b_x")]
    )
    assert FuseNorms()(ir.serde.deserialize_model(merged)).modified
    _break_names(monkeypatch)
    with pytest.raises(ir.passes.PostconditionError) as raised:
        FuseNorms()(ir.serde.deserialize_model(merged))
    assert isinstance(raised.value.__cause__, PostconditionFailed)


def test_freeze_initializers_lets_overridable_constants_prove_a_norm(tmp_path: Path) -> None:
    """Every initializer a graph input: refused, naming --freeze-initializers; with it fused, and said so."""
    source = GRAPHS / "neg_ln_all_initializers_inputs.onnx"
    refused = cli("fuse", source, "-o", tmp_path / "r.onnx", "--format", "json")
    assert refused.code == 0 and refused.json()["fused"] == 0
    assert "--freeze-initializers" in refused.json()["details"][0]["reason"]
    out = tmp_path / "f.onnx"
    frozen = cli("fuse", source, "-o", out, "--freeze-initializers", "--format", "json")
    assert frozen.code == 0, frozen.stderr
    doc = frozen.json()
    assert doc["fused"] == 1 and len(doc["frozen_initializers"]) == len(onnx.load(source).graph.initializer)
    assert "froze" in frozen.stderr
    assert [i.name for i in onnx.load(out).graph.input] == ["x"]
    feeds = {"x": np.random.default_rng(0).standard_normal((2, 4, 16), np.float32)}
    np.testing.assert_allclose(_run(out, feeds)[0], _run(source, feeds)[0], rtol=1e-5, atol=1e-5)


def test_fuse_norms_pass_can_freeze_initializers() -> None:
    model = ir.serde.deserialize_model(onnx.load(GRAPHS / "neg_ln_all_initializers_inputs.onnx"))
    fuse = FuseNorms(freeze_initializers=True)
    assert fuse(model).modified and fuse.result is not None and fuse.result.fused == 1
    assert [v.name for v in model.graph.inputs] == ["x"] and fuse.frozen


def test_inspect_says_fusable_for_what_it_did_not_change() -> None:
    result = cli("inspect", GRAPHS / "ln_canonical.onnx", "--format", "json")
    assert result.code == 0
    (record,) = result.json()["details"]
    assert record["status"] == "fusable" and record["fused_node"] is None
    assert result.json()["fusable"] == 1
