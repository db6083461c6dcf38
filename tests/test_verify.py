"""Parity: statistics and the tolerance rule, tampered models caught and localized, fp16 vs fp32."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx_ir as ir
import pytest

from normopt import fusing, modelio
from normopt.feeds.inputs import InputSpec, bind_shape, generate, parse_shape
from normopt.parity import verify
from normopt.parity.compare import compare, default_tolerance, narrowest_float
from tests.helpers import cli


def test_tolerance_rule_is_atol_plus_rtol_times_reference() -> None:
    ref = np.array([1.0, 100.0], np.float32)
    inside = compare("y", ref, ref + np.array([0.9e-3, 0.9e-1], np.float32), atol=1e-3, rtol=0.0)
    assert inside.over_tolerance == 1  # 0.09 > 1e-3 at the large element
    scaled = compare("y", ref, ref + np.array([0.5e-3, 0.09], np.float32), atol=1e-3, rtol=1e-3)
    assert scaled.passed and scaled.over_tolerance == 0  # 0.09 <= 1e-3 + 1e-3 * 100


def test_stats_report_max_mean_p99_cosine_and_nans() -> None:
    ref = np.linspace(1, 2, 100)
    cand = ref.copy()
    cand[3] += 0.5
    cand[7] = np.nan
    stats = compare("y", ref, cand, atol=1e-5, rtol=1e-5)
    assert stats.max_abs == pytest.approx(0.5)
    assert stats.nan_candidate == 1 and stats.nan_reference == 0
    assert stats.over_tolerance == 1 and not stats.passed
    assert 0.99 < stats.cosine < 1.0
    assert stats.mean_abs == pytest.approx(0.5 / 100)


def test_matching_nans_and_infs_pass() -> None:
    ref = np.array([np.nan, np.inf, 1.0])
    assert compare("y", ref, ref.copy(), 1e-6, 1e-6).passed
    assert not compare("y", ref, np.array([np.nan, -np.inf, 1.0]), 1e-6, 1e-6).passed


# The documented defaults (README "Parity"): (atol, rtol) by the candidate's element type.
DOCUMENTED = {"float32": (1e-5, 1e-4), "float16": (2e-2, 2e-2), "bfloat16": (1e-1, 5e-2)}


def test_dtype_defaults_are_the_documented_ones() -> None:
    for dtype, tolerance in DOCUMENTED.items():
        assert default_tolerance(dtype) == tolerance


@pytest.mark.parametrize(
    ("graph", "narrowest"),
    [("ln_canonical", None), ("ln_fp16_legacy_mixed", "float16"), ("rms_bf16_opset23", "bfloat16")],
)
def test_tolerance_floor_is_the_narrowest_type_the_model_computes_in(graph: str, narrowest: str | None) -> None:
    model = modelio.load(Path(__file__).parent.parent / "graphs" / f"{graph}.onnx")
    assert narrowest_float(model) == narrowest
    # a float32 output of an fp16 computation gets the fp16 defaults, never tighter ones
    assert default_tolerance("float32", narrowest) == DOCUMENTED[narrowest or "float32"]
    assert default_tolerance("bfloat16", "float16") == DOCUMENTED["bfloat16"]  # the looser of the two


def test_generated_inputs_are_seeded_and_typed() -> None:
    specs = [
        InputSpec("input_ids", "tensor(int64)", ("batch", "seq")),
        InputSpec("attention_mask", "tensor(int64)", ("batch", "seq")),
        InputSpec("x", "tensor(float16)", (None, 8)),
    ]
    a = generate(specs, {"seq": [5]}, seed=3, limits={"input_ids": 10})
    b = generate(specs, {"seq": [5]}, seed=3, limits={"input_ids": 10})
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert a["input_ids"].shape == (2, 5) and a["input_ids"].max() < 10
    assert (a["attention_mask"] == 1).all()
    assert a["x"].dtype == np.float16 and a["x"].shape == (2, 8)
    assert parse_shape("input_ids=1x128") == ("input_ids", [1, 128])
    assert bind_shape(specs[0], {"input_ids": [3, 4]}) == [3, 4]


def test_a_dim_name_used_twice_is_one_size() -> None:
    """ONNX reads one dim_param name as one size: ``[n, n]`` and a later ``[m, n]`` get the same n."""
    specs = [InputSpec("a", "tensor(float)", ("n", "n", 16)), InputSpec("b", "tensor(float)", ("m", "n"))]
    feeds = generate(specs, {}, seed=0)
    n = feeds["a"].shape[0]
    assert feeds["a"].shape == (n, n, 16) and feeds["b"].shape[1] == n


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("verify")
    original, fused = folder / "gpt2.onnx", folder / "gpt2.fused.onnx"
    assert cli("export", "gpt2-tiny", "-o", original).code == 0
    fusing.fuse(original, fused)
    return original, fused


def _tamper(fused: Path, out: Path, change: str) -> str:
    model = modelio.load(fused)
    node = [n for n in model.graph if n.op_type == "LayerNormalization"][2]
    if change == "epsilon":
        node.attributes["epsilon"] = ir.AttrFloat32("epsilon", 1e-1)
    else:
        scale = node.inputs[1]
        assert scale is not None and scale.const_value is not None
        values = scale.const_value.numpy().copy()
        values[5] += 1e-2
        scale.const_value = ir.tensor(values, name=scale.name)
    modelio.save(model, out)
    return node.name or ""


def test_faithful_fusion_passes(exported: tuple[Path, Path]) -> None:
    original, fused = exported
    report = verify(original, fused, trials=2)
    assert report.passed and report.first_divergence is None
    assert report.outputs[0].max_abs < 1e-4


@pytest.mark.parametrize("change", ["epsilon", "gamma"])
def test_tampered_node_fails_and_is_named(change: str, exported: tuple[Path, Path], tmp_path: Path) -> None:
    original, fused = exported
    tampered = tmp_path / "tampered.onnx"
    culprit = _tamper(fused, tampered, change)
    result = cli("verify", original, tampered, "--format", "json")
    assert result.code == 1
    data = result.json()
    assert data["passed"] is False
    divergence = data["first_divergence"]
    assert divergence["node"] == culprit
    assert divergence["inputs_matched"] is True
    assert divergence["stats"]["over_tolerance"] > 0


def test_fuse_verify_refuses_to_write_a_failing_model(exported: tuple[Path, Path], tmp_path: Path) -> None:
    original, _ = exported
    out = tmp_path / "out.onnx"
    result = cli("fuse", original, "-o", out, "--verify")
    assert result.code == 0 and out.exists() and "parity passed" in result.stderr
    # zero tolerance: the fused model's last-bit float differences must make it refuse to write
    strict = cli("fuse", original, "-o", tmp_path / "strict.onnx", "--verify", "--atol", "0", "--rtol", "0")
    assert strict.code == 1 and "parity failed" in strict.stderr
    assert not (tmp_path / "strict.onnx").exists()
    assert not list(tmp_path.glob(".strict*"))


def test_fp16_fused_model_passes_against_fp32_reference(tmp_path: Path) -> None:
    ref, half = tmp_path / "fp32.onnx", tmp_path / "fp16.onnx"
    assert cli("export", "gpt2-tiny", "-o", ref).code == 0
    assert cli("export", "gpt2-tiny", "-o", half, "--dtype", "fp16", "--fuse").code == 0
    fused = tmp_path / "fp16.fused.onnx"
    report = verify(ref, fused)
    assert report.passed, [o.to_dict() for o in report.outputs]
    assert report.outputs[0].atol == DOCUMENTED["float16"][0]


def test_npz_inputs_must_match_model_inputs(exported: tuple[Path, Path], tmp_path: Path) -> None:
    original, fused = exported
    good, bad = tmp_path / "good.npz", tmp_path / "bad.npz"
    np.savez(good, input_ids=np.zeros((1, 8), np.int64))
    np.savez(bad, ids=np.zeros((1, 8), np.int64))
    assert cli("verify", original, fused, "--inputs", good).code == 0
    result = cli("verify", original, fused, "--inputs", bad)
    assert result.code == 2 and "model's inputs are" in result.stderr


def test_an_fp16_tolerance_below_the_dtype_s_resolution_is_named_not_blamed_on_a_node(tmp_path: Path) -> None:
    """fp16 model, fused: with the defaults it passes; with atol finer than one float16 step it fails, and the
    failure is put on the tolerance (a note), not on a fused node."""
    half, fused = tmp_path / "h.onnx", tmp_path / "h.fused.onnx"
    assert cli("export", "gpt2-tiny", "-o", half, "--dtype", "fp16", "--fuse").code == 0
    assert cli("verify", half, fused).code == 0
    strict = cli("verify", half, fused, "--atol", "1e-4", "--rtol", "1e-4", "--format", "json")
    assert strict.code == 1, strict.stderr
    doc = strict.json()
    logits = doc["outputs"][0]
    assert logits["dtype"] == "float16" and not logits["passed"] and logits["below_resolution"]
    # one float16 step at the largest |logit| is larger than atol, and the difference is within two of them
    assert logits["max_abs"] > 1e-4
    assert len(doc["notes"]) == 1 and "below float16's resolution" in doc["notes"][0]
    assert doc["first_divergence"] is None  # not localized onto a fused node
    fp32 = tmp_path / "f.onnx"
    assert cli("export", "gpt2-tiny", "-o", fp32, "--fuse").code == 0
    loose = cli("verify", fp32, tmp_path / "f.fused.onnx", "--atol", "1e-12", "--rtol", "0", "--format", "json")
    assert loose.code == 1 and loose.json()["notes"] == []  # float32: no such excuse
    assert not loose.json()["outputs"][0]["below_resolution"]
