"""Real exports: tiny random-weight Hugging Face models of 49 families, both exporters, fp32 and fp16.

For every combination, export then fuse must leave one norm operator per norm call the torch model makes
(counted from the torch model itself, by calls that reach the output), the export summary's candidates
must be what fuse finds, and the fused model must match the exported one on ONNX Runtime. Combinations
torch cannot export are an exit-2 error naming the cause (``CANNOT``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import onnx
import pytest

transformers = pytest.importorskip("transformers")

from normopt import export, fuse, modelio, verify  # noqa: E402
from normopt.engines.ir_engine import graphs_of  # noqa: E402
from normopt.errors import UsageError  # noqa: E402
from normopt.exporting import tiny  # noqa: E402
from normopt.modelio.repair import flat_graph_problem  # noqa: E402
from normopt.ops import PLAIN_NORM_OPS as NORM_OPS  # noqa: E402
from tests.engines import assert_engines_agree  # noqa: E402
from tests.export_pool import ExportPool  # noqa: E402
from tests.helpers import cli  # noqa: E402

# Combinations torch itself cannot export (the README lists them): export must exit 2 with this cause.
# torch's legacy exporter traces Cohere's interleaved rotary embedding with the example's sizes baked in:
# ORT fails a broadcast (8 by 16) on the example inputs themselves; the dynamo export runs.
# BART and Marian encoders clamp fp16 activations behind `if not torch.isfinite(h).all()`: torch.export cannot
# trace a branch on tensor values; the legacy exporter (which records the branch taken) exports them.
CANNOT: dict[tuple[str, str, str], str] = {
    ("cohere", "legacy", "fp32"): "cannot run on the example inputs .*try exporter='dynamo'",
    ("cohere", "legacy", "fp16"): "cannot run on the example inputs .*try exporter='dynamo'",
    ("bart", "dynamo", "fp16"): "branch on tensor values .*modeling_bart.py.*isfinite.*try exporter='legacy'",
    ("marian", "dynamo", "fp16"): "branch on tensor values .*modeling_marian.py.*isfinite.*try exporter='legacy'",
}

CASES = [(f, e, d) for f in tiny.FAMILIES for e in ("legacy", "dynamo") for d in ("fp32", "fp16")]


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("families")
    return {family: tiny.write(family, root / family, weights=True) for family in tiny.FAMILIES}


@pytest.fixture(scope="module")
def matrix_exports(
    request: pytest.FixtureRequest, model_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ExportPool, Path]]:
    """The matrix's exports, started at once in worker processes: only the cases this run selected."""
    root = tmp_path_factory.mktemp("matrix")
    pool = ExportPool()
    name = test_export_then_fuse_catches_every_norm_call.__name__
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        if getattr(item, "originalname", None) == name and callspec is not None:
            case = (callspec.params["family"], callspec.params["exporter"], callspec.params["dtype"])
            folder = root / "-".join(case)
            folder.mkdir()
            pool.submit(case, str(model_dirs[case[0]]), folder / "model.onnx", exporter=case[1], dtype=case[2])
    try:
        yield pool, root
    finally:
        pool.close()


@pytest.mark.slow
@pytest.mark.parametrize(("family", "exporter", "dtype"), CASES, ids=["-".join(c) for c in CASES])
def test_export_then_fuse_catches_every_norm_call(
    family: str, exporter: str, dtype: str, matrix_exports: tuple[ExportPool, Path], tmp_path: Path
) -> None:
    pool, root = matrix_exports
    case = (family, exporter, dtype)
    if case in CANNOT:
        with pytest.raises(UsageError, match=CANNOT[case]):
            pool.result(case)
        assert not (root / "-".join(case) / "model.onnx").exists()
        return
    exported = pool.result(case)  # export(model_dirs[family], ..., exporter=exporter, dtype=dtype), in a worker
    assert exported.checker == "passed"
    fused = fuse(exported.output, tmp_path / "fused.onnx")
    assert fused.result.candidates == exported.norm_candidates  # the summary's count is what fuse finds
    model = modelio.load(fused.output)
    norm_ops = sum(1 for g in graphs_of(model) for n in g if n.op_type in NORM_OPS)
    assert exported.norm_calls > 0
    assert norm_ops == exported.norm_calls, fused.result.to_dict()  # every call the torch model makes
    # counted apart: the norms the exporter wrote as one op itself, and those normopt fused
    native = sum(1 for g in graphs_of(modelio.load(exported.output)) for n in g if n.op_type in NORM_OPS)
    assert native + fused.result.fused == exported.norm_calls, (native, fused.result.to_dict())
    assert fused.result.fused == fused.result.candidates
    assert verify(exported.output, fused.output).passed
    if flat_graph_problem(onnx.load(exported.output, load_external_data=False)) is None:
        assert_engines_agree(exported.output, "auto", tmp_path / "engines")


def test_albert_counts_norm_calls_not_modules(model_dirs: dict[str, Path], tmp_path: Path) -> None:
    exported = export(str(model_dirs["albert"]), tmp_path / "m.onnx")
    assert (exported.norm_modules, exported.norm_calls) == (3, 5)  # one shared layer, called twice
    assert fuse(exported.output, tmp_path / "f.onnx").result.fused == 5


def test_a_norm_no_output_reads_is_not_counted(model_dirs: dict[str, Path], tmp_path: Path) -> None:
    exported = export(str(model_dirs["clip_vision_model"]), tmp_path / "m.onnx")
    # post_layernorm feeds only the pooled output; last_hidden_state does not depend on it
    assert (exported.norm_modules, exported.norm_calls, exported.norm_candidates) == (6, 5, 5)


@pytest.mark.parametrize(
    ("family", "input_name"),
    [("swin", "pixel_values"), ("convnext", "pixel_values"), ("whisper", "input_features"), ("mamba", "input_ids")],
)
def test_inputs_come_from_the_config(family: str, input_name: str, model_dirs: dict[str, Path], tmp_path: Path) -> None:
    exported = export(str(model_dirs[family]), tmp_path / "m.onnx")
    assert exported.inputs[0]["name"] == input_name


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
    assert norm_ops == data["norm_modules"] > 0
    native = sum(1 for g in graphs_of(modelio.load(tmp_path / "m.onnx")) for n in g if n.op_type in NORM_OPS)
    assert native + data["fusion"]["fused"] == data["norm_modules"]  # the exporter's own norm ops, and normopt's
    assert data["fusion"]["fused"] == data["fusion"]["candidates"]
    report = verify(tmp_path / "m.onnx", fused)
    assert report.passed and report.outputs[0].shape == shape


def test_task_without_that_head_is_exit_2(model_dirs: dict[str, Path], tmp_path: Path) -> None:
    result = cli("export", str(model_dirs["t5"]), "-o", tmp_path / "m.onnx", "--task", "causal-lm")
    assert result.code == 2 and "t5 is an encoder-decoder" in result.stderr and "--part decoder" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    preset = cli("export", "gpt2-tiny", "-o", tmp_path / "p.onnx", "--task", "masked-lm")
    assert preset.code == 2 and "applies to Hugging Face directories" in preset.stderr


@pytest.mark.slow
@pytest.mark.parametrize("family", ["t5", "bart"])
def test_part_decoder_exports_the_decoder_with_encoder_states(
    family: str, model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    exported = export(str(model_dirs[family]), tmp_path / "d.onnx", part="decoder")
    assert [i["name"] for i in exported.inputs] == ["input_ids", "encoder_hidden_states"]
    assert exported.inputs[1]["dims"] == ["batch", "encoder_sequence_length", 32]
    assert "decoder" in exported.description
    fused = fuse(exported.output, tmp_path / "f.onnx")
    norm_ops = sum(1 for g in graphs_of(modelio.load(fused.output)) for n in g if n.op_type in NORM_OPS)
    assert norm_ops == exported.norm_calls == fused.result.fused > 0
    assert verify(exported.output, fused.output).passed


def test_part_applies_to_encoder_decoders_only(model_dirs: dict[str, Path], tmp_path: Path) -> None:
    result = cli("export", str(model_dirs["bert"]), "-o", tmp_path / "m.onnx", "--part", "decoder")
    assert result.code == 2 and "bert is not one" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    preset = cli("export", "gpt2-tiny", "-o", tmp_path / "p.onnx", "--part", "encoder")
    assert preset.code == 2 and "--part applies to Hugging Face encoder-decoder" in preset.stderr


def test_version_flag() -> None:
    result = cli("--version")
    assert result.code == 0 and result.stdout.startswith("normopt ")
