"""``normopt fuse DIR -o OUTDIR``: an export folder fused whole, names and external data kept, nothing lost."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import onnx
import pytest

from normopt import export, verify
from tests.conftest import GRAPHS
from tests.helpers import cli
from tests.merged import make_merged


def _digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def optimum_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An Optimum-like folder: a with-past decoder with ``model.onnx_data``, a merged one, configs."""
    work = tmp_path_factory.mktemp("export")
    export("llama-tiny", work / "with_past.onnx", with_past=True)
    folder = work / "optimum"
    folder.mkdir()
    model = onnx.load(str(work / "with_past.onnx"))
    onnx.save(model, str(folder / "model.onnx"), save_as_external_data=True, location="model.onnx_data")
    make_merged(work / "with_past.onnx", folder / "decoder_model_merged.onnx")
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (folder / "tokenizer.json").write_text("{}")
    (folder / "onnx").mkdir()
    shutil.copyfile(GRAPHS / "rms_div_sqrt.onnx", folder / "onnx" / "part.onnx")
    return folder


def test_folder_is_fused_with_names_and_data_kept(optimum_folder: Path, tmp_path: Path) -> None:
    before = _digests(optimum_folder)
    out = tmp_path / "fused"
    result = cli("fuse", optimum_folder, "-o", out, "--format", "json")
    assert result.code == 0, result.stderr
    data = json.loads(result.stdout)
    assert sorted(data["models"]) == ["decoder_model_merged.onnx", "model.onnx", "onnx/part.onnx"]
    assert data["models"]["model.onnx"]["fused"] == 5 and data["models"]["decoder_model_merged.onnx"]["fused"] == 10
    assert sorted(data["copied"]) == ["config.json", "tokenizer.json"]
    assert sorted(_digests(out)) == sorted(before)  # the same file names, the weights file included
    assert (out / "config.json").read_bytes() == (optimum_folder / "config.json").read_bytes()
    assert _digests(optimum_folder) == before  # the input folder is only read
    assert {f.name for f in (out / "model.onnx_data").parent.iterdir()} >= {"model.onnx_data"}
    for name in data["models"]:
        report = verify(optimum_folder / name, out / name)
        assert report.passed, name


def test_folder_refusals_write_nothing(optimum_folder: Path, tmp_path: Path) -> None:
    inside = cli("fuse", optimum_folder, "-o", optimum_folder / "out")
    assert inside.code == 2 and "must be outside the input folder" in inside.stderr
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    busy = cli("fuse", optimum_folder, "-o", taken)
    assert busy.code == 2 and "not an empty folder" in busy.stderr and (taken / "keep.txt").read_text() == "mine"
    empty = tmp_path / "nothing"
    empty.mkdir()
    none = cli("fuse", empty, "-o", tmp_path / "o")
    assert none.code == 2 and "holds no .onnx model" in none.stderr


def test_a_bad_model_in_the_folder_leaves_no_output(optimum_folder: Path, tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    shutil.copytree(optimum_folder, folder)
    (folder / "zz_broken.onnx").write_bytes(b"not a model")
    out = tmp_path / "out"
    result = cli("fuse", folder, "-o", out)
    assert result.code == 2 and "zz_broken.onnx" in result.stderr
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["mixed"]  # no staging folder left


def test_merged_decoder_benches_prefill_and_decode_without_shapes(optimum_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "fused"
    assert cli("fuse", optimum_folder, "-o", out).code == 0
    merged = "decoder_model_merged.onnx"
    result = cli(
        "bench", optimum_folder / merged, out / merged, "--iters", "12", "--warmup", "1", "--opt-level",
        "disable", "--past", "24", "--format", "json",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    data = json.loads(result.stdout)
    assert [(r["scenario"], r["past"]) for r in data["results"]] == [("prefill", 0)] * 2 + [("decode", 24)] * 2
    flags = [w["shapes"]["use_cache_branch"] for w in data["workloads"]]
    assert flags == [[1], [1]] and [w["shapes"]["attention_mask"] for w in data["workloads"]] == [[2, 16], [2, 25]]
    fused_decode = data["results"][3]
    assert fused_decode["speedup_low"] <= fused_decode["speedup"] <= fused_decode["speedup_high"]
    assert fused_decode["verdict"] in ("faster", "slower", "no significant difference")
