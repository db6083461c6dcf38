"""Issue 13's option and input rows through the real CLI: exit 2 (or 1), one line, nothing left behind.

Every case here used to be accepted (and hang, or pass vacuously) or to end in "unexpected <Exception>".
The README's "Bad input" table lists the same cases with their messages.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import TensorProto as T
from onnx import helper as h

from normopt import fusing
from tests.helpers import cli, cli_process
from tests.synthetic import layernorm_chain, save


def _exit(result: object, code: int, needle: str) -> None:
    stderr = result.stderr  # type: ignore[attr-defined]
    assert result.code == code, stderr  # type: ignore[attr-defined]
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], stderr
    assert "Traceback" not in stderr and "unexpected" not in stderr and "internal error" not in stderr


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small model with a dynamic batch dim, and its fused twin."""
    folder = tmp_path_factory.mktemp("pair")
    model = layernorm_chain(2, (2, 4, 16), opset=17)
    model.graph.inputs[0].shape = ir.Shape(["batch", 4, 16])
    source = save(model, folder / "m.onnx")
    fused = fusing.fuse(source, folder / "f.onnx").output
    return source, fused


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--warmup", "-1"], "--warmup must be an integer ≥ 0"),
        (["--seconds", "0"], "--seconds must be"),
        (["--seconds", "-1"], "--seconds must be"),
        (["--seconds", "nan"], "--seconds must be"),
        (["--seconds", "inf"], "--seconds must be"),
        (["--threads", "-1"], "--threads must be between 1 and"),
        (["--threads", "100000"], "--threads must be between 1 and"),
        (["--iters", "0"], "--iters must be an integer ≥ 1"),
        (["--iters", "5", "--seconds", "1"], "give --iters or --seconds, not both"),
        (["--shape", "nosuch=4"], "no input or dim of that name"),
    ],
)
def test_bench_option_out_of_range_is_exit_2(args: list[str], needle: str, pair: tuple[Path, Path]) -> None:
    _exit(cli("bench", pair[0], *args), 2, needle)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--atol", "nan"], "--atol must be a finite number ≥ 0"),
        (["--atol", "-1"], "--atol must be a finite number ≥ 0"),
        (["--rtol", "nan"], "--rtol must be a finite number ≥ 0"),
        (["--rtol", "-1"], "--rtol must be a finite number ≥ 0"),
        (["--seed", "-1"], "--seed must be an integer"),
        (["--trials", "0"], "--trials must be an integer ≥ 1"),
        (["--shape", "seq=64"], "dim names: batch"),
        (["--shape", "x=0x4x16"], "every dim must be at least 1"),
        (["--shape", "x=2x5x16"], "does not fit x float [batch, 4, 16]"),
        (["--shape", "batch=2x3"], "a dim name takes one size"),
    ],
)
def test_verify_option_out_of_range_is_exit_2(args: list[str], needle: str, pair: tuple[Path, Path]) -> None:
    _exit(cli("verify", *pair, *args), 2, needle)


@pytest.mark.parametrize(
    ("array", "needle"),
    [
        (np.zeros((0, 4, 16), np.float32), "x: got float32 [0, 4, 16]: an empty array checks nothing"),
        (np.zeros((2, 4, 16), np.int64), "x: got int64 [2, 4, 16]; the model expects x float [batch, 4, 16]"),
        (np.zeros((2, 4, 16, 1), np.float32), "x: got float32 [2, 4, 16, 1]"),
        (np.zeros((2, 5, 16), np.float32), "x: got float32 [2, 5, 16]"),
    ],
)
def test_npz_of_the_wrong_dtype_rank_or_shape_is_exit_2(
    array: np.ndarray, needle: str, pair: tuple[Path, Path], tmp_path: Path
) -> None:
    np.savez(tmp_path / "in.npz", x=array)
    _exit(cli("verify", *pair, "--inputs", tmp_path / "in.npz"), 2, needle)
    _exit(cli("bench", pair[0], "--iters", "1", "--inputs", tmp_path / "in.npz"), 2, needle)


def test_npz_that_is_not_an_npz_is_exit_2(pair: tuple[Path, Path], tmp_path: Path) -> None:
    (tmp_path / "in.npz").write_text("hello")
    _exit(cli("verify", *pair, "--inputs", tmp_path / "in.npz"), 2, "is not a readable .npz")


def test_input_of_unknown_rank_needs_inputs_or_shape(tmp_path: Path) -> None:
    graph = h.make_graph(
        [h.make_node("Relu", ["x"], ["y"])],
        "g",
        [h.make_tensor_value_info("x", T.FLOAT, None)],
        [h.make_tensor_value_info("y", T.FLOAT, None)],
    )
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)], ir_version=9)
    onnx.save(model, tmp_path / "a.onnx")
    onnx.save(model, tmp_path / "b.onnx")
    _exit(cli("verify", tmp_path / "a.onnx", tmp_path / "b.onnx"), 2, "input x has no shape (unknown rank)")
    result = cli("verify", tmp_path / "a.onnx", tmp_path / "b.onnx", "--shape", "x=2x3")
    assert result.code == 0, result.stderr


def test_first_diverging_node_reading_a_graph_input_is_named(pair: tuple[Path, Path], tmp_path: Path) -> None:
    """The first fused norm reads the graph input x: localizing it must not ask ORT for x as an output."""
    from normopt import modelio

    source, fused = pair
    model = modelio.load(fused)
    node = next(n for n in model.graph if n.op_type == "LayerNormalization")
    assert node.inputs[0] is not None and node.inputs[0].is_graph_input()
    node.attributes["epsilon"] = ir.AttrFloat32("epsilon", 0.5)
    modelio.save(model, tmp_path / "bad.onnx")
    result = cli("verify", source, tmp_path / "bad.onnx", "--format", "json")
    assert result.code == 1, result.stderr
    divergence = result.json()["first_divergence"]
    assert divergence["node"] == node.name and divergence["inputs_matched"] is True


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--opset", "0"], "--opset for the legacy exporter must be between 7 and 20"),
        (["--opset", "99"], "--opset for the legacy exporter must be between 7 and 20"),
        (["--exporter", "dynamo", "--opset", "13"], "use --exporter legacy for older opsets"),
        (["--batch", "0"], "--batch must be an integer ≥ 1"),
        (["--seq", "0"], "--seq must be an integer ≥ 1"),
        (["--seq", "100000"], "--seq must be between 1 and 1024 (the model's positions)"),
    ],
)
def test_export_option_out_of_range_is_exit_2(args: list[str], needle: str, tmp_path: Path) -> None:
    _exit(cli("export", "gpt2-tiny", "-o", tmp_path / "m.onnx", *args), 2, needle)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["fuse"], "Missing argument 'MODEL'"),
        (["fuse", "m.onnx", "--target", "nope"], "Invalid value for '--target'"),
        (["bench"], "Missing argument 'MODELS...'"),
        (["verify", "m.onnx"], "Missing argument 'CANDIDATE'"),
        (["nosuch"], "No such command 'nosuch'"),
        (["fuse", "m.onnx", "--no-such-option"], "No such option"),
    ],
)
def test_usage_errors_are_one_line(args: list[str], needle: str) -> None:
    _exit(cli_process(*args), 2, needle)


def test_help_stays_rich() -> None:
    result = cli_process("fuse", "--help")
    assert result.code == 0 and "--target" in result.stdout and len(result.stdout.splitlines()) > 10


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda d: ["missing.onnx"], "no such model file"),
        (lambda d: [str(_empty(d))], "not an ONNX model"),
        (lambda d: [str(_truncated(d))], "not an ONNX model"),
        (lambda d: ["gpt2-tiny", "--iters", "0"], "--iters must be an integer ≥ 1"),
        (lambda d: ["gpt2-tiny", "--warmup", "-1"], "--warmup must be an integer ≥ 0"),
        (lambda d: ["gpt2-tiny", "--threads", "0"], "--threads must be between 1 and"),
        (lambda d: ["gpt2-tiny", "--opset", "0"], "--opset for the legacy exporter"),
        (lambda d: ["no-such-preset"], "unknown model"),
        (lambda d: ["nosuchmodule_xyz:make"], "cannot import nosuchmodule_xyz:make"),
    ],
)
def test_run_validates_before_creating_out(make: object, needle: str, tmp_path: Path) -> None:
    args = make(tmp_path)  # type: ignore[operator]
    before = sorted(p.name for p in tmp_path.iterdir())
    _exit(cli("run", *args, "--out", tmp_path / "out"), 2, needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_run_out_that_is_a_file_is_exit_2(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("keep")
    _exit(cli("run", "gpt2-tiny", "--out", tmp_path / "f"), 2, "is a file")
    _exit(cli("run", "gpt2-tiny", "--out", tmp_path / "f" / "sub"), 2, "is a file, not a directory")
    assert (tmp_path / "f").read_text() == "keep"


def test_run_failure_after_start_removes_what_it_created(
    pair: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure late in the run (here: the benchmark) removes --out when the run made it, and only the
    run's own files when --out was there before."""
    import normopt.latency

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("simulated failure during the benchmark")

    monkeypatch.setattr(normopt.latency, "bench", broken)
    result = cli("run", pair[0], "--out", tmp_path / "new" / "out", "--iters", "1")
    assert result.code == 3 and "internal error" in result.stderr
    assert not (tmp_path / "new").exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "notes.txt").write_text("mine")
    result = cli("run", pair[0], "--out", existing, "--iters", "1")
    assert result.code == 3
    assert sorted(os.listdir(existing)) == ["notes.txt"]


def test_bench_profile_leaves_no_temp_files(
    pair: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    result = cli("bench", pair[0], "--iters", "2", "--warmup", "1", "--profile", "--format", "json")
    assert result.code == 0, result.stderr
    assert list(tmp_path.iterdir()) == []


def _empty(folder: Path) -> Path:
    (folder / "empty.onnx").write_bytes(b"")
    return folder / "empty.onnx"


def _truncated(folder: Path) -> Path:
    data = save(layernorm_chain(1, (2, 4, 16), opset=17), folder / "whole.onnx").read_bytes()
    (folder / "whole.onnx").unlink()
    (folder / "cut.onnx").write_bytes(data[: len(data) // 2])
    return folder / "cut.onnx"


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs a folder nothing can be created in (/proc)")
@pytest.mark.parametrize(
    "args",
    [
        ["fuse", "{graph}", "-o", "/proc/normopt-x.onnx"],
        ["export", "gpt2-tiny", "-o", "/proc/normopt-x.onnx"],
        ["bench", "{graph}", "--iters", "2", "-o", "/proc/normopt-x.md"],
        ["bench", "{graph}", "--iters", "2", "--chart", "/proc/normopt-x.png"],
        ["run", "{graph}", "--iters", "2", "-o", "/proc/normopt-out"],
    ],
    ids=["fuse", "export", "bench-o", "bench-chart", "run"],
)
def test_an_unwritable_destination_is_exit_2_before_any_work(args: list[str]) -> None:
    """Not "a bug in normopt" after the whole job: one line, exit 2, before exporting, fusing or timing."""
    from tests.conftest import GRAPHS

    argv = [str(GRAPHS / "ln_canonical.onnx") if a == "{graph}" else a for a in args]
    result = cli(*argv)
    assert result.code == 2, result.stderr
    assert result.stderr.startswith("normopt: error: cannot write") and "Traceback" not in result.stderr
    assert "[1/4]" not in result.stderr and "timing" not in result.stderr.lower()


@pytest.mark.parametrize("command", ["export", "run"])
def test_a_hugging_face_hub_id_is_answered_at_once_with_what_to_do(command: str, tmp_path: Path) -> None:
    """normopt downloads nothing: a Hub id is refused before torch is imported, saying how to fetch it."""
    import subprocess
    import sys

    args = ["-o", str(tmp_path / "x.onnx")] if command == "export" else ["-o", str(tmp_path / "out")]
    result = cli_process(command, "openai-community/gpt2", *args)
    assert result.code == 2, result.stderr
    assert "looks like a Hugging Face Hub id" in result.stderr
    assert "huggingface-cli download openai-community/gpt2 --local-dir gpt2" in result.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "x.onnx").exists()
    probe = (  # answered before torch or onnx is imported
        "import sys; sys.argv = ['normopt', *sys.argv[1:]]\n"
        "from normopt.cli.app import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('torch' in sys.modules, 'onnx' in sys.modules)"
    )

    out = subprocess.run(
        [sys.executable, "-c", probe, command, "openai-community/gpt2", *args], capture_output=True, text=True
    ).stdout
    assert out.strip().splitlines()[-1] == "False False", out


def test_run_into_an_earlier_run_s_folder_replaces_it_whole_and_only_on_success(
    pair: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed run leaves the earlier run's folder byte for byte; a finished one replaces its outputs whole
    (no earlier model beside a new report), keeping files the user put there."""
    import json

    import normopt.latency

    out = tmp_path / "out"
    first = cli("run", pair[0], "--out", out, "--iters", "2", "--warmup", "0", "--no-calibrate")
    assert first.code == 0, first.stderr
    (out / "notes.txt").write_text("mine")
    (out / "fused.onnx.data").write_text("stale data an earlier layout left")  # a run output of the old run
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    real_bench = normopt.latency.bench

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("simulated failure during the benchmark")

    monkeypatch.setattr(normopt.latency, "bench", broken)
    assert cli("run", pair[1], "--out", out, "--iters", "2").code == 3
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # as it was, every byte
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # nothing left aside
    monkeypatch.setattr(normopt.latency, "bench", real_bench)
    second = cli("run", pair[1], "--out", out, "--iters", "2", "--warmup", "0", "--no-calibrate")
    assert second.code == 0, second.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["fused.onnx", "latency.png", "notes.txt", "report.html", "report.json", "report.md"]
    )  # the earlier run's stale data file is gone with it; the user's notes stay
    assert json.loads((out / "report.json").read_text())["model"] == str(pair[1])
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    shutil.copy(pair[0], out / "mine.onnx")
    inside = cli("run", out / "mine.onnx", "--out", out, "--iters", "2")
    assert inside.code == 2 and "choose another --out" in inside.stderr


def test_opt_levels_take_the_list_syntax_of_the_size_options(tmp_path: Path) -> None:
    """``--opt-level all,disable`` as ``--batch 1,4``: one list syntax (repeating the option still works)."""
    from tests.conftest import GRAPHS

    source = GRAPHS / "ln_canonical.onnx"
    listed = cli("bench", source, "--iters", "2", "--warmup", "0", "--opt-level", "all,disable", "--format", "json")
    assert listed.code == 0, listed.stderr
    assert [r["opt_level"] for r in listed.json()["results"]] == ["all", "disable"]
    repeated = cli("bench", source, "--iters", "2", "--warmup", "0", "--opt-level", "basic", "--opt-level", "all")
    assert repeated.code == 0
    wrong = cli("bench", source, "--opt-level", "fast")
    assert wrong.code == 2 and "unknown --opt-level 'fast'; choose from disable, basic, extended, all" in wrong.stderr
    run = cli("run", source, "-o", tmp_path / "r", "--opt-level", "disable,fast")
    assert run.code == 2 and "unknown --opt-level 'fast'" in run.stderr and not (tmp_path / "r").exists()


def test_run_bf16_on_cpu_is_refused_before_the_export(tmp_path: Path) -> None:
    """ORT's CPU provider cannot run the bf16 models the exporters write: said at once, not after exporting."""
    result = cli("run", "gpt2-tiny", "--dtype", "bf16", "-o", tmp_path / "out", "--provider", "cpu")
    assert result.code == 2 and "--dtype bf16: ONNX Runtime's CPU provider has no bfloat16 kernel" in result.stderr
    assert "[1/4]" not in result.stderr and not (tmp_path / "out").exists()
