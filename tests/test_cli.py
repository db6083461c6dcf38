"""The CLI end to end on tiny presets: every command, JSON on stdout, exit codes, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import cli, cli_process

VERDICTS = {"faster", "slower", "no significant difference", "too few runs for a verdict"}

COMMANDS = ["export", "fuse", "inspect", "verify", "bench", "run"]


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gpt2") / "gpt2.onnx"
    assert cli("export", "gpt2-tiny", "-o", out).code == 0
    return out


@pytest.fixture(scope="module")
def llama_dynamo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("llama") / "llama.onnx"
    result = cli("export", "llama-tiny", "-o", out, "--exporter", "dynamo")
    assert result.code == 0, result.stderr
    return out


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    result = cli(command, "--help")
    assert result.code == 0
    assert "Usage" in result.stdout


def test_top_level_help_does_not_import_torch() -> None:
    code = (
        "import sys, normopt_cli; from normopt.cli.app import app; "
        "print('torch' in sys.modules, 'onnxruntime' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]
    assert cli_process("--help").code == 0


def test_export_list_shows_presets_as_json() -> None:
    doc = cli("export", "--list", "--format", "json").json()
    assert doc["schema_version"] == 1 and doc["command"] == "export"
    presets = doc["presets"]
    names = {p["name"] for p in presets}
    assert {"gpt2-tiny", "gpt2-small", "llama-tiny", "llama-small"} <= names
    assert all(p["norms"] == 2 * p["layers"] + 1 for p in presets)


def test_fuse_legacy_gpt2_fuses_every_layernorm(gpt2: Path, tmp_path: Path) -> None:
    before = gpt2.read_bytes()
    result = cli("fuse", gpt2, "-o", tmp_path / "f.onnx", "--format", "json")
    assert result.code == 0, result.stderr
    data = result.json()
    assert data["fused"] == data["candidates"] == 5
    assert data["by_kind"] == {"LayerNorm": 5}
    assert gpt2.read_bytes() == before
    assert "fused 5/5" in result.stderr


def test_fuse_dynamo_rmsnorm_and_verify(llama_dynamo: Path, tmp_path: Path) -> None:
    fused = tmp_path / "f.onnx"
    data = cli("fuse", llama_dynamo, "-o", fused, "--format", "json").json()
    assert data["fused"] == data["candidates"] == 5
    assert data["by_rule"] == {"rmsnorm/mul-reciprocal-sqrt": 5}
    check = cli("verify", llama_dynamo, fused, "--format", "json", "--trials", "2")
    assert check.code == 0
    assert check.json()["passed"] is True


def test_inspect_lists_candidates_with_eps_axes_dtype(gpt2: Path) -> None:
    data = cli("inspect", gpt2, "--format", "json").json()
    assert data["candidates"] == data["fusable"] == 5
    first = data["details"][0]
    assert first["epsilon"] == pytest.approx(1e-5) and first["axes"] == 1 and first["dtype"] == "FLOAT"
    table = cli("inspect", gpt2)
    assert table.code == 0 and "layernorm/div-sqrt" in table.stdout


def test_bench_two_models_gives_one_row_each(gpt2: Path, tmp_path: Path) -> None:
    fused = tmp_path / "f.onnx"
    cli("fuse", gpt2, "-o", fused)
    result = cli("bench", gpt2, fused, "--iters", "5", "--warmup", "1", "--opt-level", "disable", "--format", "json")
    assert result.code == 0, result.stderr
    data = result.json()
    assert data["schema_version"] == 1
    rows = data["results"]
    assert [r["model"] for r in rows] == ["gpt2", "f"]
    for row in rows:
        assert row["provider"] == "CPUExecutionProvider" and row["iters"] == 5
        assert row["p50_ms"] > 0 and row["min_ms"] <= row["p50_ms"] <= row["max_ms"]
    assert rows[0]["speedup"] == 1.0
    assert data["environment"]["onnxruntime"]


def test_bench_cuda_on_a_machine_without_it_is_exit_2(gpt2: Path) -> None:
    from normopt.feeds.ortsession import cuda_problem

    if cuda_problem() is None:
        pytest.skip("CUDA is usable on this machine")
    result = cli("bench", gpt2, "--provider", "cuda", "--iters", "2")
    assert result.code == 2
    assert result.stderr.strip().startswith("normopt: error: CUDA is not usable here")
    assert "Traceback" not in result.stderr
    all_result = cli("bench", gpt2, "--provider", "all", "--iters", "2", "--warmup", "0", "--format", "json")
    assert all_result.code == 0
    assert all_result.json()["skipped"][0]["provider"] == "cuda"


def test_run_writes_report_json_md_and_chart(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = cli("run", "gpt2-tiny", "--out", out, "--iters", "5", "--warmup", "1", "--format", "json")
    assert result.code == 0, result.stderr
    doc = json.loads((out / "report.json").read_text())
    assert doc == result.json()
    assert doc["fusion"]["fused"] == doc["fusion"]["candidates"] == 5
    assert doc["parity"]["passed"] is True
    assert {"max_abs", "max_rel"} <= set(doc["parity"]["outputs"][0])
    assert doc["schema_version"] == 2 and doc["command"] == "run"
    assert doc["decision"]["parity"] == "passed"
    assert [Path(s["path"]).name for s in doc["decision"]["ship"]] == ["fused.onnx"]  # weights inline: one file
    assert {(s["opt_level"], s["verdict"] in VERDICTS) for s in doc["decision"]["speed"]} == {
        ("disable", True),
        ("all", True),
    }
    rows = doc["bench"]["results"]
    assert {(r["model"], r["opt_level"]) for r in rows} == {
        (m, level) for m in ("original", "fused", "original (A/A)") for level in ("disable", "all")
    }  # run times the original against itself too: the A/A noise floor its verdicts must clear
    floors = [r for r in rows if r["model"] == "original (A/A)"]
    assert all(r["verdict"].startswith("A/A noise floor ±") for r in floors)
    assert doc["bench"]["settings"]["calibrate"] is True
    assert all(r["provider"] == "CPUExecutionProvider" for r in rows)
    env = doc["bench"]["environment"]
    assert {"torch", "onnx", "onnxruntime"} <= set(env) and env["cpu"]
    assert doc["parity"]["tolerance"]["atol"] == 1e-5 and doc["parity"]["tolerance"]["rtol"] == 1e-4  # fp32 defaults
    assert (out / "latency.png").read_bytes()[:4] == b"\x89PNG"
    assert "![latency distribution](latency.png)" in (out / "report.md").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fuse", "missing.onnx"], "no such model file"),
        (["inspect", "missing.onnx"], "no such model file"),
        (["verify", "a.onnx", "b.onnx"], "no such model file"),
        (["export", "no-such-preset", "-o", "x.onnx"], "unknown model"),
    ],
)
def test_bad_input_is_exit_2_with_one_line(
    args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = cli(*args)
    assert result.code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]


def test_not_an_onnx_file_is_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_text("not a model")
    result = cli_process("fuse", bad)
    assert result.code == 2 and "not an ONNX model" in result.stderr
    assert "Traceback" not in result.stderr


def test_fuse_refuses_to_overwrite_input_without_in_place(gpt2: Path, tmp_path: Path) -> None:
    copy = tmp_path / "m.onnx"
    copy.write_bytes(gpt2.read_bytes())
    result = cli("fuse", copy, "-o", copy)
    assert result.code == 2 and "--in-place" in result.stderr
    assert copy.read_bytes() == gpt2.read_bytes()
    assert cli("fuse", copy, "-o", copy, "--in-place").code == 0
    assert copy.read_bytes() != gpt2.read_bytes()


def test_verify_mismatched_inputs_is_exit_2(gpt2: Path) -> None:
    graph = Path(__file__).resolve().parent.parent / "graphs" / "ln_canonical.onnx"
    result = cli("verify", gpt2, graph)
    assert result.code == 2 and "input names differ" in result.stderr


def test_cuda_is_never_silently_replaced_by_cpu(gpt2: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from normopt.feeds.ortsession import cuda_problem

    if cuda_problem() is None:
        pytest.skip("CUDA is usable on this machine")
    verify_result = cli("verify", gpt2, gpt2, "--provider", "cuda")
    assert verify_result.code == 2 and "CUDA is not usable here" in verify_result.stderr
    # Skip the device-file shortcut: ONNX Runtime itself is asked, and its CPU fallback must be caught.
    monkeypatch.setenv("NORMOPT_ASSUME_GPU", "1")
    probed = cli("bench", gpt2, "--provider", "cuda", "--iters", "1")
    assert probed.code == 2
    assert len(probed.stderr.strip().splitlines()) == 1 and "CUDA" in probed.stderr
