"""Decoders with a KV cache: inputs bound by role, --with-past exports, merged decoders, decode benchmarks.

The layouts below are the three that users bring: Optimum (``past_sequence_length + sequence_length``
mask dim), onnxruntime-genai (``total_sequence_length``) and an unrenamed dynamo export (``s0``, ``s5``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from normopt import export, fuse, verify
from normopt.errors import UsageError
from normopt.feeds import roles
from normopt.feeds.inputs import InputSpec, generate
from normopt.feeds.roles import Sizes
from tests.conftest import op_counts
from tests.helpers import cli
from tests.merged import make_merged

F32, I64 = "tensor(float)", "tensor(int64)"


def _layout(kind: str, layers: int = 2) -> list[InputSpec]:
    batch, seq, past, mask = {
        "optimum": ("batch_size", "sequence_length", "past_sequence_length", "past_sequence_length + sequence_length"),
        "genai": ("batch_size", "sequence_length", "past_sequence_length", "total_sequence_length"),
        "dynamo": ("s0", "s1", "s2", "s5"),
    }[kind]
    specs = [
        InputSpec("input_ids", I64, (batch, seq)),
        InputSpec("attention_mask", I64, (batch, mask)),
        InputSpec("position_ids", I64, (batch, seq)),
    ]
    for layer in range(layers):
        for part in ("key", "value"):
            specs.append(InputSpec(f"past_key_values.{layer}.{part}", F32, (batch, 4, past, 8)))
    return specs


@pytest.mark.parametrize("kind", ["optimum", "genai", "dynamo"])
def test_decoder_inputs_are_bound_by_role(kind: str) -> None:
    feeds = generate(_layout(kind), {}, seed=0, sizes=Sizes(batch=3, seq=5, past=7))
    assert feeds["input_ids"].shape == (3, 5)
    assert feeds["attention_mask"].shape == (3, 12) and feeds["attention_mask"].all()
    assert feeds["position_ids"].tolist() == [list(range(7, 12))] * 3
    assert feeds["past_key_values.1.value"].shape == (3, 4, 7, 8)


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(["optimum", "genai", "dynamo"]),
    batch=st.integers(1, 4),
    seq=st.integers(1, 9),
    past=st.integers(0, 9),
)
def test_mask_covers_past_and_new_tokens_for_any_sizes(kind: str, batch: int, seq: int, past: int) -> None:
    feeds = generate(_layout(kind, layers=1), {}, seed=1, sizes=Sizes(batch, seq, past))
    assert feeds["attention_mask"].shape == (batch, past + seq)
    assert feeds["past_key_values.0.key"].shape == (batch, 4, past, 8)
    assert feeds["position_ids"][0].tolist() == list(range(past, past + seq))


def test_shape_option_wins_over_sizes() -> None:
    feeds = generate(_layout("optimum"), {"past_sequence_length": [3]}, seed=0, sizes=Sizes(1, 2, 9))
    assert feeds["past_key_values.0.key"].shape == (1, 4, 3, 8)
    assert feeds["attention_mask"].shape == (1, 5)


@pytest.mark.parametrize(
    ("text", "value"),
    [("a + b", 7), ("a*2 - 1", 5), ("(a + b) // 2", 3), ("a + c", None), ("a", None), ("__import__('os')", None)],
)
def test_dim_expressions(text: str, value: int | None) -> None:
    assert roles.dim_size(text, {"a": 3, "b": 4}) == value


def test_sizes_the_model_cannot_take_are_usage_errors() -> None:
    encoder = [InputSpec("input_ids", I64, ("batch", "seq")), InputSpec("attention_mask", I64, ("batch", "seq"))]
    with pytest.raises(UsageError, match="pasts applies to decoders with past"):
        roles.check_sizes(Sizes(past=4), encoder)
    vision = [InputSpec("pixel_values", F32, ("batch", 3, 32, 32))]
    with pytest.raises(UsageError, match="seqs applies to models with token inputs"):
        roles.check_sizes(Sizes(seq=4), vision)
    with pytest.raises(UsageError, match="batches must be an integer ≥ 1"):
        roles.check_sizes(Sizes(batch=0), vision)


def test_merged_decoder_cases_cover_both_branches() -> None:
    specs = [*_layout("optimum"), InputSpec("use_cache_branch", "tensor(bool)", (1,))]
    (first_label, first), (later_label, later) = roles.cases(specs, Sizes(batch=1, seq=4, past=6))
    assert "false" in first_label and first.past == 0 and "true" in later_label and later.past == 6
    assert not generate(specs, {}, seed=0, sizes=first)["use_cache_branch"].any()
    assert generate(specs, {}, seed=0, sizes=later)["use_cache_branch"].all()


def _io(path: Path) -> tuple[dict[str, list[object]], dict[str, list[object]]]:
    graph = onnx.load(str(path), load_external_data=False).graph

    def dims(value: onnx.ValueInfoProto) -> list[object]:
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    return {v.name: dims(v) for v in graph.input}, {v.name: dims(v) for v in graph.output}


def _run(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return list(session.run(None, feeds))


@pytest.mark.slow
@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
@pytest.mark.parametrize("preset", ["gpt2-tiny", "llama-tiny"])
def test_with_past_export_matches_torch_and_fuses(tmp_path: Path, preset: str, exporter: str) -> None:
    import torch

    from normopt.exporting import cache, presets

    out = tmp_path / "decoder.onnx"
    outcome = export(preset, out, exporter=exporter, with_past=True)  # type: ignore[arg-type]
    inputs, outputs = _io(out)
    assert inputs["attention_mask"] == ["batch_size", "past_sequence_length + sequence_length"]
    assert inputs["past_key_values.1.value"] == ["batch_size", 4, "past_sequence_length", 16]
    assert ("position_ids" in inputs) == (preset == "gpt2-tiny")
    assert list(outputs)[:3] == ["logits", "present.0.key", "present.0.value"]
    assert outputs["present.1.key"] == ["batch_size", 4, "past_sequence_length + sequence_length", 16]
    # one decode step on ONNX Runtime equals the torch model's step on the same cache
    model, _, spec = presets.build(preset)
    feeds = generate(
        [InputSpec(n, I64 if "past" not in n else F32, tuple(d)) for n, d in inputs.items()],  # type: ignore[arg-type]
        {},
        seed=3,
        limits={"input_ids": spec.vocab},
        sizes=Sizes(batch=1, seq=1, past=9),
    )
    wrapper = cache.PresetWithPast(model, positions="position_ids" in inputs)
    with torch.no_grad():
        expected = wrapper(*(torch.from_numpy(feeds[n]) for n in inputs))
    got = _run(out, feeds)
    for want, have in zip(expected, got, strict=True):
        np.testing.assert_allclose(have, want.numpy(), atol=1e-4, rtol=1e-4)
    result = fuse(out, tmp_path / "fused.onnx")
    native = sum(op_counts(out).get(op, 0) for op in ("LayerNormalization", "RMSNormalization"))  # dynamo writes LN
    assert native + result.result.fused == outcome.norm_modules, (native, result.result.to_dict())
    assert result.result.fused == outcome.norm_candidates
    for sizes in (Sizes(1, 1, 0), Sizes(2, 3, 5), Sizes(1, 1, 40)):
        report = verify(out, tmp_path / "fused.onnx", sizes=sizes)
        assert report.passed, (sizes, report.to_dict())


@pytest.mark.slow
@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
def test_hugging_face_with_past_matches_transformers(tmp_path: Path, exporter: str) -> None:
    transformers = pytest.importorskip("transformers")
    import torch

    config = transformers.LlamaConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
        vocab_size=128,
        max_position_embeddings=64,
    )
    config.save_pretrained(tmp_path / "llama")
    out = tmp_path / "llama.onnx"
    outcome = export(str(tmp_path / "llama"), out, exporter=exporter, with_past=True)  # type: ignore[arg-type]
    inputs, _ = _io(out)
    assert inputs["past_key_values.0.key"] == ["batch_size", 2, "past_sequence_length", 8]  # kv heads, head dim
    assert outcome.norm_candidates == outcome.norm_modules == 5
    # the exported step against transformers' own cached forward
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation="eager").eval()
    ids = torch.randint(0, 128, (1, 8))
    with torch.no_grad():
        full = model(input_ids=ids).logits[:, -1]
        cached = model(input_ids=ids[:, :7], use_cache=True).past_key_values
    feeds = {
        "input_ids": ids[:, 7:].numpy(),
        "attention_mask": np.ones((1, 8), np.int64),
        "position_ids": np.array([[7]], np.int64),
    }
    for layer, kv in enumerate(cached.layers):
        feeds[f"past_key_values.{layer}.key"] = kv.keys.numpy()
        feeds[f"past_key_values.{layer}.value"] = kv.values.numpy()
    logits = _run(out, feeds)[0]
    np.testing.assert_allclose(logits[:, -1], full.numpy(), atol=1e-4, rtol=1e-4)
    fused = fuse(out, tmp_path / "fused.onnx")
    assert fused.result.fused == 5
    result = cli("verify", out, tmp_path / "fused.onnx", "--batch", "1", "--seq", "1", "--past", "20", "-f", "json")
    assert result.code == 0, result.stderr
    (checked,) = json.loads(result.stdout)["cases"]  # read from the feeds that ran: batch 1, 1 token, 20 cached
    assert checked.startswith("input_ids=1x1, attention_mask=1x21, position_ids=1x1, past_key_values.*=1x"), checked
    assert "x20x" in checked


def _scale_norm_weight(path: Path, prefix: str, out: Path) -> Path:
    """Copy of a merged model with the first norm weight of one If branch (``prefix``) scaled by 1.5."""
    model = onnx.load(str(path))
    node = next(n for n in model.graph.node if n.op_type == "If")
    branch = next(a.g for a in node.attribute if a.g.name.startswith(prefix))
    norm = next(n for n in branch.node if n.op_type == "LayerNormalization")
    weight = next(t for t in branch.initializer if t.name == norm.input[1])
    array = onnx.numpy_helper.to_array(weight) * 1.5
    weight.CopyFrom(onnx.numpy_helper.from_array(array.astype(np.float32), weight.name))
    onnx.save(model, str(out))
    return out


@pytest.mark.slow
def test_merged_decoder_is_fused_and_verified_on_both_branches(tmp_path: Path) -> None:
    steps: list[str] = []
    export("gpt2-tiny", tmp_path / "with_past.onnx", with_past=True, step=steps.append)
    assert [line[:5] for line in steps] == [f"[{k}/5]" for k in range(1, 6)], steps  # every phase, in order
    merged = make_merged(tmp_path / "with_past.onnx", tmp_path / "merged.onnx")
    progress: list[tuple[str, int, int]] = []
    fused = fuse(merged, tmp_path / "merged.fused.onnx", progress=lambda *call: progress.append(call))
    assert fused.result.fused == fused.result.candidates == 10  # five norms in each branch
    # the merged decoder's norms sit in If branches: the LayerNorm pass counts its anchors in every scope
    assert ("LayerNorm pass", 20, 20) in progress  # 10 norms x 2 ReduceMeans, both branches
    report = verify(merged, fused.output)
    assert report.passed and len(report.cases) == 2
    for prefix in ("with_past_", "no_past_"):  # a change in either branch alone is caught
        broken = _scale_norm_weight(fused.output, prefix, tmp_path / f"broken_{prefix}.onnx")
        assert not verify(merged, broken, localize=False).passed, prefix


@pytest.mark.slow
def test_bench_times_prefill_and_decode_steps(tmp_path: Path) -> None:
    out = tmp_path / "decoder.onnx"
    export("llama-tiny", out, with_past=True)
    result = cli(
        "bench", out, "--iters", "12", "--warmup", "2", "--opt-level", "all", "--batch", "1",
        "--seq", "8", "--past", "4,32", "--format", "json",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    data = json.loads(result.stdout)
    rows = [(r["scenario"], r["batch"], r["seq"], r["past"]) for r in data["results"]]
    assert rows == [("prefill", 1, 8, 0), ("decode", 1, 1, 4), ("decode", 1, 1, 32)]
    assert [w["shapes"]["attention_mask"] for w in data["workloads"]] == [[1, 8], [1, 5], [1, 33]]
    decode = data["results"][1]
    assert decode["tokens_per_s"] == pytest.approx(1000 / decode["p50_ms"])
    prefill = data["results"][0]
    assert prefill["ms_per_token"] == pytest.approx(prefill["p50_ms"] / 8)


def test_bench_scenarios_the_model_cannot_run_are_usage_errors(tmp_path: Path) -> None:
    from tests.conftest import GRAPHS

    model = GRAPHS / "ln_canonical.onnx"
    result = cli("bench", model, "--scenario", "decode", "--iters", "1")
    assert result.code == 2 and "needs a decoder with past key/value inputs" in result.stderr
    result = cli("bench", model, "--past", "x", "--iters", "1")
    assert result.code == 2 and "--past takes integers" in result.stderr


@pytest.mark.slow
def test_run_reports_prefill_and_decode_with_the_ort_peer(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = cli(
        "run", "gpt2-tiny", "--out", out, "--iters", "12", "--warmup", "2", "--provider", "cpu",
        "--opt-level", "disable", "--past", "8", "--compare-ort", "--format", "json",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert any(i["name"] == "past_key_values.0.key" for i in doc["export"]["inputs"])
    rows = {(r["model"], r["scenario"], r["past"]) for r in doc["bench"]["results"]}
    assert rows == {
        (m, s, p)
        for m in (
            "original",
            "fused",
            "ort-optimized",
            "ort-optimized (fused)",
            "original (A/A)",
        )  # A/A: run calibrates
        for s, p in (("prefill", 0), ("decode", 8))
    }
    page = (out / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "data:image/png;base64," in page and "<table>" in page
    assert "decode b2 p8" in (out / "report.md").read_text()
    assert "{'" not in (out / "report.md").read_text()  # no Python reprs for people


def test_seq2seq_decoder_cross_attention_cache_keeps_the_encoder_length() -> None:
    """Optimum's decoder_with_past of an encoder-decoder: the encoder caches follow the encoder's length."""
    specs = [
        InputSpec("encoder_attention_mask", I64, ("batch_size", "encoder_sequence_length")),
        InputSpec("input_ids", I64, ("batch_size", "decoder_sequence_length")),
        InputSpec("encoder_hidden_states", F32, ("batch_size", "encoder_sequence_length", 32)),
        InputSpec("past_key_values.0.decoder.key", F32, ("batch_size", 4, "past_decoder_sequence_length", 8)),
        InputSpec("past_key_values.0.encoder.key", F32, ("batch_size", 4, "encoder_sequence_length", 8)),
    ]
    feeds = generate(specs, {"encoder_sequence_length": [11]}, seed=0, sizes=Sizes(batch=1, seq=1, past=30))
    assert feeds["past_key_values.0.decoder.key"].shape == (1, 4, 30, 8)
    assert feeds["past_key_values.0.encoder.key"].shape == (1, 4, 11, 8)
    assert feeds["encoder_attention_mask"].shape == (1, 11) and feeds["input_ids"].shape == (1, 1)
