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
