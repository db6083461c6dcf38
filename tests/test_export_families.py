"""Real exports: tiny random-weight Hugging Face models of each family, both exporters, fp32 and fp16.

For every combination the exporter supports, export then fuse must leave one norm operator per norm
module of the torch model (counted from the torch model itself), and the fused model must match the
exported one on ONNX Runtime.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx
import pytest

transformers = pytest.importorskip("transformers")

from normopt import export, fuse, modelio, verify  # noqa: E402
from normopt.fusion.ir_engine import graphs_of  # noqa: E402
from normopt.fusion.ops import PLAIN_NORM_OPS as NORM_OPS  # noqa: E402
from normopt.modelio.protograph import flat_graph_problem  # noqa: E402
from tests.engines import assert_engines_agree  # noqa: E402
from tests.helpers import cli  # noqa: E402

TINY: dict[str, Any] = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "vocab_size": 128,
}
DECODER = TINY | {"num_key_value_heads": 2, "max_position_embeddings": 64}


def _configs() -> dict[str, Any]:
    t = transformers
    return {
        "gpt2": t.GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=128, n_positions=64),
        "bert": t.BertConfig(**TINY, max_position_embeddings=64),
        "roberta": t.RobertaConfig(**TINY, max_position_embeddings=64),
        "llama": t.LlamaConfig(**DECODER),
        "mistral": t.MistralConfig(**DECODER),
        "qwen2": t.Qwen2Config(**DECODER),
        "gemma": t.GemmaConfig(**DECODER, head_dim=16),
        "phi": t.PhiConfig(**TINY, max_position_embeddings=64),
        "opt": t.OPTConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            ffn_dim=64,
            vocab_size=128,
            max_position_embeddings=64,
            word_embed_proj_dim=32,
        ),
        "t5": t.T5Config(d_model=32, d_kv=16, d_ff=64, num_layers=2, num_heads=2, vocab_size=128),
        "vit": t.ViTConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            image_size=32,
            patch_size=8,
        ),
        "whisper": t.WhisperConfig(
            d_model=32,
            encoder_layers=2,
            decoder_layers=2,
            encoder_attention_heads=2,
            decoder_attention_heads=2,
            encoder_ffn_dim=64,
            decoder_ffn_dim=64,
            num_mel_bins=16,
            max_source_positions=32,
            vocab_size=128,
            pad_token_id=0,
            bos_token_id=1,
            eos_token_id=2,
            decoder_start_token_id=1,
        ),
    }


FAMILIES = list(_configs())
CASES = [(f, e, d) for f in FAMILIES for e in ("legacy", "dynamo") for d in ("fp32", "fp16")]


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    dirs = {}
    for family, config in _configs().items():
        folder = tmp_path_factory.mktemp(family)
        config.save_pretrained(folder)
        dirs[family] = folder
    return dirs


@pytest.mark.slow
@pytest.mark.parametrize(("family", "exporter", "dtype"), CASES, ids=["-".join(c) for c in CASES])
def test_export_then_fuse_catches_every_norm_module(
    family: str, exporter: str, dtype: str, model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    exported = export(str(model_dirs[family]), tmp_path / "model.onnx", exporter=exporter, dtype=dtype)
    assert exported.checker == "passed"
    assert exported.notes and "initialized randomly" in exported.notes[0]
    fused = fuse(exported.output, tmp_path / "fused.onnx")
    model = modelio.load(fused.output)
    norm_ops = sum(1 for g in graphs_of(model) for n in g if n.op_type in NORM_OPS)
    assert exported.norm_modules > 0
    assert norm_ops == exported.norm_modules, fused.result.to_dict()
    assert fused.result.fused == fused.result.candidates
    assert verify(exported.output, fused.output).passed
    if flat_graph_problem(onnx.load(exported.output, load_external_data=False)) is None:
        assert_engines_agree(exported.output, "auto", tmp_path / "engines")


def test_export_without_config_is_exit_2(tmp_path: Path) -> None:
    result = cli("export", str(tmp_path), "-o", tmp_path / "m.onnx")
    assert result.code == 2 and "has no config.json" in result.stderr


def test_export_unknown_architecture_is_exit_2(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "no-such-arch"}')
    result = cli("export", str(tmp_path), "-o", tmp_path / "m.onnx")
    assert result.code == 2 and "unknown or unsupported architecture" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_export_function_source(tmp_path: Path) -> None:
    result = cli("export", "tests.factories:tiny_rmsnorm_mlp", "-o", tmp_path / "m.onnx", "--fuse", "--format", "json")
    assert result.code == 0, result.stderr
    data = result.json()
    assert data["norm_modules"] == 1 and data["fusion"]["fused"] == 1


TASK_CASES = [
    ("gpt2", "causal-lm", "legacy", [2, 16, 128]),
    ("llama", "causal-lm", "dynamo", [2, 16, 128]),
    ("bert", "masked-lm", "dynamo", [2, 16, 128]),
    ("roberta", "sequence-classification", "legacy", [2, 2]),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("family", "task", "exporter", "shape"), TASK_CASES, ids=[c[0] + "-" + c[1] for c in TASK_CASES]
)
def test_task_heads_export_logits_and_fuse_every_norm(
    family: str, task: str, exporter: str, shape: list[int], model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    result = cli(
        "export", str(model_dirs[family]), "-o", tmp_path / "m.onnx", "--task", task,
        "--exporter", exporter, "--fuse", "--format", "json",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    data = result.json()
    assert data["outputs"] == ["logits"] and f"({task})" in data["description"]
    fused = Path(data["fusion"]["output"])
    norm_ops = sum(1 for g in graphs_of(modelio.load(fused)) for n in g if n.op_type in NORM_OPS)
    assert norm_ops == data["norm_modules"] > 0  # the dynamo exporter writes LayerNormalization itself
    assert data["fusion"]["fused"] == data["fusion"]["candidates"]
    report = verify(tmp_path / "m.onnx", fused)
    assert report.passed and report.outputs[0].shape == shape


def test_task_without_that_head_is_exit_2(model_dirs: dict[str, Path], tmp_path: Path) -> None:
    result = cli("export", str(model_dirs["t5"]), "-o", tmp_path / "m.onnx", "--task", "causal-lm")
    assert result.code == 2 and "has no causal-lm head" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    preset = cli("export", "gpt2-tiny", "-o", tmp_path / "p.onnx", "--task", "masked-lm")
    assert preset.code == 2 and "applies to Hugging Face directories" in preset.stderr
