"""Bad input and file safety through the real CLI: exit 2, one line, nothing written, inputs untouched."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import onnx
import pytest

from tests.helpers import cli
from tests.synthetic import layernorm_chain, save


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def _one_line_exit_2(result: object, needle: str) -> None:
    code, stderr = result.code, result.stderr  # type: ignore[attr-defined]
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], stderr
    assert "Traceback" not in stderr and "unexpected" not in stderr


@pytest.fixture
def external_model(tmp_path: Path) -> Path:
    return save(layernorm_chain(2, (2, 8, 256), opset=17, matmul=True), tmp_path / "big.onnx", external=True)


def test_output_naming_an_input_data_file_is_refused(external_model: Path, tmp_path: Path) -> None:
    before = _snapshot(tmp_path)
    _one_line_exit_2(cli("fuse", external_model, "-o", tmp_path / "big.onnx.data"), "external data file")
    assert _snapshot(tmp_path) == before


def test_in_place_never_writes_new_weights_over_the_ones_it_reads(external_model: Path, tmp_path: Path) -> None:
    before = _snapshot(tmp_path)
    result = cli("fuse", external_model, "-o", external_model, "--in-place", "--external", "new")
    _one_line_exit_2(result, "the input reads it")
    assert _snapshot(tmp_path) == before


def _bare_graph(path: Path) -> Path:
    path.write_bytes(onnx.helper.make_graph([], "g", [], []).SerializeToString())
    return path


def _bare_tensor(path: Path) -> Path:
    path.write_bytes(onnx.numpy_helper.from_array(np.ones(3, np.float32), "t").SerializeToString())
    return path


def _no_opset(path: Path) -> Path:
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [x],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
    )
    model = onnx.helper.make_model(graph, ir_version=10)
    del model.opset_import[:]
    path.write_bytes(model.SerializeToString())
    return path


def _no_graph(path: Path) -> Path:
    model = onnx.ModelProto(ir_version=10)
    model.opset_import.add(domain="", version=17)
    path.write_bytes(model.SerializeToString())
    return path


@pytest.mark.parametrize(
    "make",
    [
        lambda p: (p.write_bytes(b""), p)[1],
        _bare_graph,
        _bare_tensor,
        _no_opset,
        _no_graph,
    ],
    ids=["empty", "graph_proto", "tensor_proto", "no_opset", "no_graph"],
)
@pytest.mark.parametrize("command", ["fuse", "inspect", "verify"])
def test_a_protobuf_that_is_not_a_model_is_exit_2_for_every_command(make: object, command: str, tmp_path: Path) -> None:
    bad = make(tmp_path / "bad.onnx")  # type: ignore[operator]
    args = [command, bad] + ([bad] if command == "verify" else [])
    before = _snapshot(tmp_path)
    _one_line_exit_2(cli(*args), "not an ONNX model")
    assert _snapshot(tmp_path) == before


GRAPH = Path(__file__).resolve().parent.parent / "graphs" / "ln_canonical.onnx"


def test_output_that_is_a_directory_is_exit_2(tmp_path: Path) -> None:
    _one_line_exit_2(cli("fuse", GRAPH, "-o", tmp_path), "is a directory")
    assert list(tmp_path.iterdir()) == []


def test_output_under_a_regular_file_is_exit_2(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    _one_line_exit_2(cli("fuse", GRAPH, "-o", blocker / "out.onnx"), "is a file, not a directory")
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


def test_new_files_follow_the_umask_and_in_place_keeps_the_mode(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        assert cli("fuse", GRAPH, "-o", tmp_path / "out.onnx").code == 0
        assert stat.S_IMODE((tmp_path / "out.onnx").stat().st_mode) == 0o644
        copy = tmp_path / "copy.onnx"
        copy.write_bytes(GRAPH.read_bytes())
        os.chmod(copy, 0o640)
        assert cli("fuse", copy, "-o", copy, "--in-place").code == 0
        assert stat.S_IMODE(copy.stat().st_mode) == 0o640
    finally:
        os.umask(old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.onnx", "out.onnx"]  # no staging leftovers


def test_a_model_with_nothing_left_to_fuse_says_so(tmp_path: Path) -> None:
    """An already fused model: "nothing to fuse: N norm ops already present", no empty table, exit 0."""
    from tests.conftest import GRAPHS

    once = tmp_path / "once.onnx"
    assert cli("fuse", GRAPHS / "ln_canonical.onnx", "-o", once).code == 0
    again = cli("fuse", once, "-o", tmp_path / "twice.onnx", "--format", "json")
    assert again.code == 0, again.stderr
    assert "nothing to fuse: 1 norm op already present (LayerNormalization 1)" in again.stderr
    assert "┏" not in again.stderr  # no empty table drawn
    assert again.json()["existing_norm_ops"] == {"LayerNormalization": 1} and again.json()["candidates"] == 0
    inspected = cli("inspect", once)
    assert inspected.code == 0 and "nothing to fuse: 1 norm op already present" in inspected.stdout
    bare = cli("inspect", GRAPHS / "neg_ln_unbiased_std.onnx")  # a look-alike is a candidate, refused: a table
    assert bare.code == 0 and "nothing to fuse" not in bare.stdout


def test_export_and_fuse_make_the_output_folder_and_take_it_back_on_failure(tmp_path: Path) -> None:
    """``-o decoder/model.onnx`` makes ``decoder/`` (as a README example does); a failure leaves no folder."""
    from tests.conftest import GRAPHS

    made = cli("export", "gpt2-tiny", "-o", tmp_path / "new" / "deep" / "model.onnx")
    assert made.code == 0, made.stderr
    assert (tmp_path / "new" / "deep" / "model.onnx").is_file()
    failed = cli("export", "gpt2-tiny", "-o", tmp_path / "gone" / "model.onnx", "--seq", "100000")
    assert failed.code == 2 and "--seq must be between" in failed.stderr
    assert not (tmp_path / "gone").exists()
    fused = cli("fuse", GRAPHS / "ln_canonical.onnx", "-o", tmp_path / "out" / "f.onnx")
    assert fused.code == 0 and (tmp_path / "out" / "f.onnx").is_file()
    missing = cli("fuse", tmp_path / "missing.onnx", "-o", tmp_path / "never" / "f.onnx")
    assert missing.code == 2 and "no such model file" in missing.stderr and not (tmp_path / "never").exists()
    refused = cli("fuse", GRAPHS / "ln_canonical.onnx", "-o", tmp_path / "n2" / "f.onnx", "--target", "onnx", "--skip")
    assert refused.code == 2 and not (tmp_path / "n2").exists()
