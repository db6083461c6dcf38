"""The Python API's errors name its parameters, not the CLI's flags (issue 24); the CLI's still name flags.

The same checks serve both: ``errors.option`` spells an option as the caller wrote it. The CLI side of every
message below is tested in test_bad_options.py; here the same mistakes are made from Python.
"""

from __future__ import annotations

import ast
import math
import re
from pathlib import Path

import onnx_ir as ir
import pytest

import normopt
from normopt.errors import UsageError, cli_spelling, option
from tests.helpers import cli
from tests.synthetic import layernorm_chain, save

PACKAGE = Path(normopt.__file__).parent
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z-]*[a-z]")

#: Strings that name another program's flags, or say both spellings: not messages built per caller.
OTHER_PROGRAMS = {
    ("latency/environment.py", "--query-gpu=name"),
    ("latency/environment.py", "--format=csv,noheader"),
    ("exporting/spec.py", " --local-dir "),
    (
        "fusion/graph_utils.py",
        "is an initializer that is also a graph input: a caller may override it "
        "(fuse's freeze_initializers, --freeze-initializers on the CLI, asserts that none does)",
    ),
}


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("api")
    graph = layernorm_chain(1, (2, 4, 16), opset=17)
    graph.graph.inputs[0].shape = ir.Shape(["batch", 4, 16])
    return save(graph, folder / "m.onnx")


def _message(call: object) -> str:
    with pytest.raises(UsageError) as caught:
        call()  # type: ignore[operator]
    return str(caught.value)


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda m: normopt.bench([m], warmup=-1), "warmup must be an integer ≥ 0"),
        (lambda m: normopt.bench([m], iters=5, seconds=1.0), "give iters or seconds, not both"),
        (lambda m: normopt.bench([m], seconds=math.nan), "seconds must be a number of seconds"),
        (lambda m: normopt.bench([m], threads=10**6), "threads must be between 1 and"),
        (lambda m: normopt.bench([m], seqs=[4]), "seqs applies to models with token inputs"),
        (lambda m: normopt.bench([m], shapes={"nosuch": [4]}), "shapes nosuch: the model has no input"),
        (lambda m: normopt.bench([m], scenario="decode"), "scenario='decode' needs a decoder"),
        (lambda m: normopt.verify(m, m, atol=-1.0), "atol must be a finite number ≥ 0"),
        (lambda m: normopt.verify(m, m, trials=0), "trials must be an integer ≥ 1"),
        (lambda m: normopt.verify(m, m, seed=-1), "seed must be an integer"),
        (lambda m: normopt.verify(m, m, shapes={"x": [2, 5, 16]}), "shapes x=2x5x16 does not fit"),
        (lambda m: normopt.fuse(m, m), "refusing to overwrite the input"),
        (lambda m: normopt.fuse(m, m.with_name("o.onnx"), target="onnx", skip=True), "target='ort'"),
        (lambda m: normopt.run(str(m), m.parent / "out", with_past=True), "with_past and task apply to exports"),
        (lambda m: normopt.run("tiny-llama", m.parent / "out", dtype="bf16", providers=["cpu"]), "dtype='fp16'"),
        (lambda m: normopt.export("tiny-llama", m.parent / "e.onnx", seq=0), "seq must be an integer ≥ 1"),
    ],
)
def test_an_api_error_names_the_parameter_and_no_flag(call: object, needle: str, model: Path) -> None:
    message = _message(lambda: call(model))  # type: ignore[operator]
    assert needle in message, message
    assert not FLAG.search(message), message


def test_the_cli_names_the_flag_for_the_same_mistake(model: Path) -> None:
    result = cli("bench", model, "--seq", "4")
    assert result.code == 2 and "--seq applies to models with token inputs" in result.stderr, result.stderr
    with cli_spelling():
        assert option("--opt-level") == "--opt-level" and option("--target", "ort") == "--target ort"
    assert option("--opt-level") == "opt_levels" and option("--target", "ort") == "target='ort'"
    assert option("--seq", parameter="seq") == "seq"


def test_every_api_parameter_an_option_names_exists() -> None:
    """The flag→parameter table cannot drift from the API: each name it gives is a real parameter."""
    import inspect

    from normopt.errors import _PARAMETERS

    names = {
        p
        for api in ("export", "fuse", "inspect", "verify", "bench", "run")
        for p in inspect.signature(getattr(normopt, api)).parameters
    }
    assert set(_PARAMETERS.values()) <= names, set(_PARAMETERS.values()) - names


def test_no_message_below_the_cli_spells_a_flag_itself() -> None:
    """Every string literal below ``normopt/cli`` that names a flag goes through ``option`` (or is listed)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative.startswith("cli/") or relative == "errors.py":
            continue
        tree = ast.parse(path.read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        spelled = {  # option("--seq") itself
            id(node.args[0])
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "option" and node.args
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings | spelled:
                if FLAG.search(node.value) and (relative, node.value) not in OTHER_PROGRAMS:
                    found.append(f"{relative}:{node.lineno}: {node.value!r}")
    assert not found, "\n".join(found)
