"""One JSON dialect: every command's document validates against normopt/schemas/normopt.schema.json.

The documents come from the real CLI (``--format json``, and ``run``'s report.json); the schema is strict
(no undocumented key, every documented one present), so a renamed or added field fails here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from tests.conftest import GRAPHS
from tests.helpers import cli

SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "normopt" / "schemas" / "normopt.schema.json").read_text())


def _validator(name: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": f"#/$defs/{name}", "$defs": SCHEMA["$defs"]})


def _document(*args: Any) -> dict[str, Any]:
    result = cli(*args, "--format", "json")
    assert result.code == 0, result.stderr
    doc = result.json()
    assert isinstance(doc, dict)
    return doc


def test_the_schema_is_a_valid_json_schema() -> None:
    Draft202012Validator.check_schema(SCHEMA)
    assert {"export", "export_list", "fuse", "fuse_folder", "inspect", "verify", "bench", "run"} <= set(SCHEMA["$defs"])


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    work = tmp_path_factory.mktemp("docs")
    source = GRAPHS / "ln_canonical.onnx"
    folder = work / "folder"
    folder.mkdir()
    shutil.copy(source, folder / "model.onnx")
    (folder / "config.json").write_text("{}")
    docs = {
        "export": _document("export", "gpt2-tiny", "-o", work / "e.onnx"),
        "export+fuse": _document("export", "gpt2-tiny", "-o", work / "f.onnx", "--fuse"),
        "export_list": _document("export", "--list"),
        "fuse": _document("fuse", source, "-o", work / "fused.onnx"),
        "fuse+verify": _document("fuse", source, "-o", work / "fused2.onnx", "--verify"),
        "fuse_folder": _document("fuse", folder, "-o", work / "folder-out"),
        "inspect": _document("inspect", work / "e.onnx"),
        "verify": _document("verify", work / "e.onnx", work / "f.fused.onnx"),
        "bench": _document("bench", source, work / "fused.onnx", "--iters", "3", "--warmup", "0"),
        "run": _document("run", source, "-o", work / "run", "--iters", "3", "--warmup", "0", "--no-calibrate"),
    }
    docs["report.json"] = json.loads((work / "run" / "report.json").read_text())
    return docs


@pytest.mark.parametrize(
    ("document", "schema"),
    [
        ("export", "export"),
        ("export+fuse", "export"),
        ("export_list", "export_list"),
        ("fuse", "fuse"),
        ("fuse+verify", "fuse"),
        ("fuse_folder", "fuse_folder"),
        ("inspect", "inspect"),
        ("verify", "verify"),
        ("bench", "bench"),
        ("run", "run"),
        ("report.json", "run"),
    ],
)
def test_every_command_document_follows_the_schema(
    documents: dict[str, dict[str, Any]], document: str, schema: str
) -> None:
    doc = documents[document]
    _validator(schema).validate(doc)
    assert list(doc)[:2] == ["schema_version", "command"]  # every document says what it is, first


def test_the_same_thing_has_the_same_name_in_every_command(documents: dict[str, dict[str, Any]]) -> None:
    export, fused, inspected, run = documents["export+fuse"], documents["fuse"], documents["inspect"], documents["run"]
    assert export["candidates"] == export["fusion"]["candidates"] == export["fusion"]["fused"] == 5
    assert isinstance(fused["rejected"], int) and isinstance(run["fusion"]["rejected"], int)
    assert inspected["candidates"] == 5 and inspected["fusable"] == 5
    bench = documents["bench"]
    assert set(run["bench"]) == set(bench)  # run embeds bench's document: results, settings, environment
    assert run["parity"].keys() == documents["verify"].keys()


def test_the_schema_refuses_what_it_does_not_document(documents: dict[str, dict[str, Any]]) -> None:
    renamed = dict(documents["fuse"])
    renamed["norm_candidates"] = renamed.pop("candidates")
    with pytest.raises(ValidationError):
        _validator("fuse").validate(renamed)
    wrong = dict(documents["verify"]) | {"passed": "yes"}
    with pytest.raises(ValidationError):
        _validator("verify").validate(wrong)
