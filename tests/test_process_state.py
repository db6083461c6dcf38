"""A library call leaves its caller's process as it found it; the command line may tune its own."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

import onnxruntime as ort
import pytest

import normopt
from tests.conftest import GRAPHS


def test_api_calls_leave_the_collector_and_ort_logger_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(gc, "disable", lambda: calls.append("gc.disable"))
    monkeypatch.setattr(ort, "set_default_logger_severity", lambda level: calls.append(f"ort severity {level}"))
    source = GRAPHS / "ln_canonical.onnx"
    outcome = normopt.fuse(source, tmp_path / "fused.onnx")
    assert outcome.result.fused == 1
    assert normopt.verify(source, tmp_path / "fused.onnx").passed
    assert calls == []


def test_the_command_line_owns_its_process(tmp_path: Path) -> None:
    # the same calls, made through the CLI's entry point, do tune the process (the hook is live, not dead code)
    source, fused = str(GRAPHS / "ln_canonical.onnx"), str(tmp_path / "fused.onnx")
    code = (
        "import gc, sys, onnxruntime as ort\n"
        "calls = []\n"
        "gc.disable = lambda: calls.append('gc')\n"
        "ort.set_default_logger_severity = lambda level: calls.append('ort')\n"
        "from normopt.cli import app\n"
        "codes = []\n"
        f"for argv in (['fuse', {source!r}, '-o', {fused!r}], ['verify', {source!r}, {fused!r}, '--trials', '1']):\n"
        "    sys.argv = ['normopt', *argv]\n"
        "    try:\n"
        "        app.main()\n"
        "    except SystemExit as end:\n"
        "        codes.append(end.code)\n"
        "print(codes, sorted(set(calls)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[0, 0] ['gc', 'ort']", out


def test_the_api_takes_in_memory_models_as_well_as_paths(tmp_path: Path) -> None:
    """fuse, inspect, verify and bench take an ``onnx.ModelProto`` or an ``onnx_ir.Model`` where a path goes."""
    import onnx
    import onnx_ir as ir

    source = GRAPHS / "ln_canonical.onnx"
    proto, model = onnx.load(source), ir.load(source)
    assert normopt.inspect(proto).result.candidates == 1 and normopt.inspect(model).result.candidates == 1
    outcome = normopt.fuse(model, tmp_path / "fused.onnx")
    assert outcome.result.fused == 1 and outcome.output.is_file()
    assert normopt.verify(proto, outcome.output).passed
    report = normopt.bench([proto, outcome.output], iters=2, warmup=0, opt_levels=["disable"])
    assert [r.model for r in report.results] == ["model1", "fused"]
    import pytest

    with pytest.raises(ValueError, match="give output"):
        normopt.fuse(proto)
    with pytest.raises(ValueError, match="not a model: int"):
        normopt.inspect(3)  # type: ignore[arg-type]
