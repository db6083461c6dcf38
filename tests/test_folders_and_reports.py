"""An export folder is ONNX to every command; random weights are said everywhere; reports escape model text."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import onnx
import pytest

from normopt.exporting import tiny
from tests.conftest import GRAPHS
from tests.helpers import cli

HOSTILE = "<img src=x onerror=alert(1)>"


def _optimum_folder(folder: Path) -> Path:
    """An Optimum-style export folder: model.onnx beside the config.json it was exported from, a tokenizer."""
    tiny.write("gpt2", folder)
    shutil.copy(GRAPHS / "ln_canonical.onnx", folder / "model.onnx")
    (folder / "tokenizer.json").write_text("{}")
    return folder


def test_run_on_an_export_folder_benchmarks_its_onnx(tmp_path: Path) -> None:
    """Harm 7: ``run DIR`` with model.onnx uses it; nothing is exported from config.json with random weights."""
    folder = _optimum_folder(tmp_path / "export")
    out = tmp_path / "out"
    result = cli("run", folder, "--out", out, "--iters", "3", "--warmup", "0", "--format", "json")
    assert result.code == 0, result.stderr
    doc = result.json()
    assert doc["model"] == str(folder / "model.onnx") and doc["export"] is None
    assert doc["fusion"]["fused"] == 1
    assert not (out / "original.onnx").exists()
    assert "nothing exported" in result.stderr
    assert "random weights" not in (out / "report.md").read_text().splitlines()[0]


@pytest.mark.parametrize("command", ["inspect", "verify", "bench"])
def test_every_command_reads_an_export_folder_as_its_model(command: str, tmp_path: Path) -> None:
    folder = _optimum_folder(tmp_path / "export")
    args = {"inspect": [folder], "verify": [folder, folder], "bench": [folder, "--iters", "2", "--warmup", "0"]}
    result = cli(command, *args[command], "--format", "json")
    assert result.code == 0, result.stderr
    text = json.dumps(result.json())
    assert "model.onnx" in text or command == "verify"


def test_a_folder_with_several_models_asks_which(tmp_path: Path) -> None:
    folder = tmp_path / "seq2seq"
    folder.mkdir()
    for name in ("encoder_model.onnx", "decoder_model.onnx"):
        shutil.copy(GRAPHS / "ln_canonical.onnx", folder / name)
    result = cli("inspect", folder)
    assert result.code == 2
    assert "holds 2 ONNX models" in result.stderr and "decoder_model.onnx" in result.stderr


def test_random_weights_are_said_on_stderr_and_in_json(tmp_path: Path) -> None:
    """An export from a config without weights says RANDOM weights in its summary line and JSON."""
    folder = tiny.write("bert", tmp_path / "bert")
    result = cli("export", folder, "-o", tmp_path / "bert.onnx", "--format", "json")
    assert result.code == 0, result.stderr
    assert result.json()["random_weights"] is True
    assert "RANDOM weights" in result.stderr


def _hostile_model(path: Path) -> Path:
    """ln_canonical with its output named like an HTML tag, and a look-alike whose node name is a script."""
    model = onnx.load(GRAPHS / "ln_canonical.onnx")
    old = model.graph.output[0].name
    for node in model.graph.node:
        node.output[:] = [HOSTILE if o == old else o for o in node.output]
    model.graph.output[0].name = HOSTILE
    lookalike = onnx.load(GRAPHS / "neg_ln_pow4.onnx")
    lookalike.graph.node[0].name = "<script>alert(2)</script>|x"
    merged = onnx.compose.merge_models(
        model, onnx.compose.add_prefix(lookalike, "b_"), io_map=[], prefix1="", prefix2=""
    )
    onnx.save(merged, path)
    return path


def test_reports_escape_what_a_model_names(tmp_path: Path) -> None:
    """Harm 8: output names and node names reach report.md and report.html as text, never as markup."""
    source = _hostile_model(tmp_path / "hostile.onnx")
    out = tmp_path / "out"
    result = cli("run", source, "--out", out, "--iters", "2", "--warmup", "0")
    assert result.code == 0, result.stderr
    page = (out / "report.html").read_text()
    assert "<img src=x" not in page and "<script>" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and "&lt;script&gt;" in page
    markdown = (out / "report.md").read_text()
    assert "\\<img src=x onerror=alert(1)\\>" in markdown
    assert "\\<script\\>alert(2)\\</script\\>\\|x" in markdown


def test_run_with_only_an_unusable_provider_is_refused_before_any_work(tmp_path: Path) -> None:
    """``run --provider cuda`` without CUDA: exit 2 at once, naming why, and no output folder created."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        from normopt.feeds import ortsession

        if ortsession.cuda_problem() is None:
            pytest.skip("CUDA is usable here")
    out = tmp_path / "out"
    result = cli("run", "gpt2-tiny", "--out", out, "--provider", "cuda")
    assert result.code == 2, result.stderr
    assert "CUDA is not usable here" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


def test_run_and_bench_take_o_for_their_output(tmp_path: Path) -> None:
    """One spelling for outputs: ``-o`` wherever a command writes (``run``'s folder, ``bench``'s report)."""
    report = tmp_path / "bench.md"
    result = cli("bench", GRAPHS / "ln_canonical.onnx", "--iters", "2", "--warmup", "0", "-o", report)
    assert result.code == 0, result.stderr
    assert report.read_text().startswith("|")
    out = tmp_path / "run"
    result = cli("run", GRAPHS / "ln_canonical.onnx", "-o", out, "--iters", "2", "--warmup", "0", "--no-calibrate")
    assert result.code == 0, result.stderr
    assert (out / "report.json").is_file()


def test_run_report_opens_with_the_decision_and_lists_every_file_to_ship(tmp_path: Path) -> None:
    """Decision first (parity, speed, files to ship, external data included), printed rendered, not as Markdown."""
    from tests.synthetic import layernorm_chain, save

    (tmp_path / "src").mkdir()
    source = save(layernorm_chain(2, (1, 8, 512)), tmp_path / "src" / "m.onnx", external=True)
    assert (tmp_path / "src" / "m.onnx.data").is_file()
    out = tmp_path / "run"
    result = cli("run", source, "-o", out, "--iters", "12", "--warmup", "1", "--opt-level", "disable", "--no-calibrate")
    assert result.code == 0, result.stderr
    markdown = (out / "report.md").read_text()
    headings = [line for line in markdown.splitlines() if line.startswith("## ")]
    assert headings[:2] == ["## Decision", "## Model"], headings
    decision = markdown.split("## Decision")[1].split("## Model")[0]
    assert "**Parity: passed**" in decision and "**Speed** (CPU, ORT opt disable)" in decision
    assert "`fused.onnx`" in decision and "`fused.onnx.data`" in decision and "keep them in one folder" in decision
    doc = json.loads((out / "report.json").read_text())
    shipped = [Path(s["path"]) for s in doc["decision"]["ship"]]
    assert shipped == [out / "fused.onnx", out / "fused.onnx.data"] and all(p.is_file() for p in shipped)
    assert [s["bytes"] for s in doc["decision"]["ship"]] == [p.stat().st_size for p in shipped]
    # the terminal gets the rendered page: headings and tables drawn, no Markdown table syntax
    assert "Decision" in result.stdout and "Parity: passed" in result.stdout
    assert "|---" not in result.stdout and "**" not in result.stdout


def test_run_takes_verify_s_tolerances_and_inputs(tmp_path: Path) -> None:
    """``run --atol/--rtol/--inputs`` as ``verify`` takes them: parity and latency on the given arrays."""
    import numpy as np

    feeds = tmp_path / "in.npz"
    np.savez(feeds, x=(np.random.default_rng(0).standard_normal((2, 4, 16)) * 50 + 3).astype(np.float32))
    out = tmp_path / "run"
    result = cli(
        "run", GRAPHS / "ln_canonical.onnx", "-o", out, "--inputs", feeds, "--atol", "1e-4", "--rtol", "1e-3",
        "--iters", "3", "--warmup", "0", "--no-calibrate", "--format", "json",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    doc = result.json()
    tolerance = doc["parity"]["tolerance"]
    assert (tolerance["atol"], tolerance["rtol"]) == (1e-4, 1e-3) and tolerance["source"]["atol"] == "given"
    assert {o["atol"] for o in doc["parity"]["outputs"]} == {1e-4}
    assert [w["scenario"] for w in doc["bench"]["workloads"]] == ["inputs"]
    clash = cli("run", GRAPHS / "ln_canonical.onnx", "-o", tmp_path / "clash", "--inputs", feeds, "--batch", "3")
    assert clash.code == 2 and "--inputs fixes every input" in clash.stderr and not (tmp_path / "clash").exists()
    bad = cli("run", GRAPHS / "ln_canonical.onnx", "-o", tmp_path / "bad", "--atol", "-1")
    assert bad.code == 2 and "--atol" in bad.stderr and not (tmp_path / "bad").exists()
