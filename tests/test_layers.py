"""The package's structure as a contract: layers, no cycles, one place for private APIs, module size."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "normopt"
MAX_LINES = 400
# Private names of outside libraries normopt relies on; each may appear only in normopt/compat.
PRIVATE = {"_c_api_utils", "_constants", "_proto", "_attn_implementation", "_experts_implementation"}


def test_import_contracts_hold() -> None:
    # pyproject.toml's [tool.importlinter]: the layers, acyclic siblings, raw protobuf only in two packages
    assert lint_imports(config_filename=str(ROOT / "pyproject.toml")) == 0


def test_a_back_arrow_breaks_the_contract(tmp_path: Path) -> None:
    # the contract can fail: a copy of the package where modelio imports fusion is refused
    import shutil

    copy = tmp_path / "normopt"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "modelio" / "read.py").write_text((copy / "modelio" / "read.py").read_text() + "\nimport normopt.fusion\n")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports())"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "normopt.modelio.read -> normopt.fusion" in result.stdout


def test_model_io_does_not_load_the_passes() -> None:
    code = "import normopt.modelio, sys; print(sorted(m for m in sys.modules if m.startswith('normopt.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(ast.literal_eval(out))
    assert "normopt.modelio" in loaded
    assert not {m for m in loaded if m.startswith(("normopt.fusion", "normopt.engines"))}


def test_no_module_is_over_the_size_limit() -> None:
    sizes = {p.relative_to(ROOT).as_posix(): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert len(sizes) > 50
    assert {p: n for p, n in sizes.items() if n > MAX_LINES} == {}


def _private_uses(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            names = [*(node.module or "").split("."), *(a.name for a in node.names)]
            found |= PRIVATE & set(names)
        elif isinstance(node, ast.Import):
            found |= PRIVATE & {part for a in node.names for part in a.name.split(".")}
        elif isinstance(node, ast.Attribute) and node.attr in PRIVATE:
            found.add(node.attr)
    return found


def test_private_apis_of_other_libraries_only_in_compat() -> None:
    uses = {p.relative_to(ROOT).as_posix(): _private_uses(p) for p in PACKAGE.rglob("*.py")}
    outside = {p: u for p, u in uses.items() if u and not p.startswith("normopt/compat/")}
    assert outside == {}
    inside = set().union(*(u for p, u in uses.items() if p.startswith("normopt/compat/")))
    assert inside == PRIVATE  # every private name listed is really used there (the scan sees them)


def test_the_api_names_stay_functions_after_every_module_is_imported() -> None:
    # a module named like an API function (normopt/run.py) would replace ``normopt.run`` once imported
    code = (
        "import importlib, pkgutil, normopt\n"
        "for m in pkgutil.walk_packages(normopt.__path__, 'normopt.'):\n"
        "    importlib.import_module(m.name)\n"
        "print(sorted(n for n in normopt.__all__ if n != '__version__' and not callable(getattr(normopt, n))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.slow
def test_mypy_strict_passes_and_callers_see_the_api_types(tmp_path: Path) -> None:
    from mypy import api

    caller = tmp_path / "caller.py"
    caller.write_text("import normopt\nreveal_type(normopt.run)\nreveal_type(normopt.fuse)\n")
    files = [str(ROOT / "normopt"), str(ROOT / "normopt_cli.py"), str(caller)]
    stdout, stderr, status = api.run(["--config-file", str(ROOT / "pyproject.toml"), "--no-incremental", *files])
    assert status == 0, stdout + stderr  # strict everywhere, and the caller's names are exported
    notes = [line.split("Revealed type is ")[1] for line in stdout.splitlines() if "Revealed type" in line]
    assert len(notes) == 2, stdout
    assert notes[0].startswith('"def (model: str | None =') and notes[0].endswith('RunOutcome"'), notes
    assert notes[1].startswith('"def (input: str | os.PathLike[str] | ') and notes[1].endswith('FuseOutcome"'), notes


def test_the_api_is_discoverable() -> None:
    import normopt

    listed = dir(normopt)
    assert {"export", "fuse", "inspect", "verify", "bench", "run", "FuseNorms"} <= set(listed)
    assert (PACKAGE / "py.typed").is_file()
