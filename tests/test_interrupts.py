"""SIGINT / SIGTERM while ``fuse`` writes a model with external data: the ``.onnx`` and its ``.data`` appear
together or not at all, nothing staged is left behind, and the input is untouched.

The signal is sent at spread-out moments of a real ``normopt fuse`` process (start-up, fusing, staging the
weights, committing); whichever moment it lands in, the folder must be in one of the two allowed states.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import onnx
import pytest

from tests.stress import session
from tests.synthetic import layernorm_chain, save


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


INTERPRETER_UP = 0.15  # seconds: interpreter start-up is ~30 ms here; normopt's imports take ~0.3 s more


def _default_sigint() -> None:
    """In the child: SIGINT as a terminal delivers it (a background job, e.g. CI, inherits it ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_for_start(proc: subprocess.Popen[bytes], seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end and proc.poll() is None:
        time.sleep(0.01)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_during_fuse_leaves_both_files_or_neither(signum: int, tmp_path: Path) -> None:
    source_dir = tmp_path / "in"
    source_dir.mkdir()
    source = save(layernorm_chain(8, (2, 8, 1024), opset=17, matmul=True), source_dir / "m.onnx", external=True)
    before = _files(source_dir)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    command = [sys.executable, "-m", "normopt_cli", "fuse", str(source), "-o", str(out_dir / "f.onnx")]
    command += ["--external", "new"]
    runs = []
    for _ in range(2):  # the faster of two uninterrupted runs: a cold first run would push every signal late
        start = time.monotonic()
        subprocess.run(command, check=True, capture_output=True)
        runs.append(time.monotonic() - start)
        for p in out_dir.iterdir():
            p.unlink()
    whole = min(runs)  # the signals land at fractions of an uninterrupted run
    outcomes = set()
    for fraction in (0.1, 0.2, 0.35, 0.5, 0.6, 0.7, 0.8, 0.88, 0.95):
        # Not before the interpreter is up: CPython itself dies on a signal while importing ``site``
        # ("Fatal Python error: init_import_site"), before any normopt code exists to handle it.
        delay = max(whole * fraction, INTERPRETER_UP)
        for p in out_dir.iterdir():
            p.unlink()
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_default_sigint)
        _wait_for_start(proc, delay)
        if proc.poll() is None:
            proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=120)
        names = sorted(p.name for p in out_dir.iterdir())
        assert names in ([], ["f.onnx", "f.onnx.data"]), (delay, names, stderr.decode()[-500:])
        if names:
            model = onnx.load(out_dir / "f.onnx")  # loads its data: the pair is complete
            assert sum(n.op_type == "LayerNormalization" for n in model.graph.node) == 8
            session(out_dir / "f.onnx")
        else:  # -signum: SIGTERM before the handler is installed (still importing; nothing written)
            assert proc.returncode in (130, 128 + signum, -signum), (delay, proc.returncode, stderr.decode()[-500:])
            assert b"Traceback" not in stderr
        outcomes.add(bool(names))
        assert _files(source_dir) == before
    assert False in outcomes, "no signal landed before the commit: the test did not test anything"


def test_a_signal_inside_the_commit_section_is_delivered_after_it() -> None:
    """``signals_held``: the handler's exception comes after the whole section (both renames), not inside."""
    from normopt import modelio

    steps: list[str] = []

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, interrupt)
    try:
        with pytest.raises(KeyboardInterrupt), modelio.signals_held():
            signal.raise_signal(signal.SIGTERM)
            steps.append("data renamed")
            steps.append("model renamed")
        assert steps == ["data renamed", "model renamed"]
        assert signal.getsignal(signal.SIGTERM) is interrupt  # the handler is back
    finally:
        signal.signal(signal.SIGTERM, old)


def test_a_signal_wrapped_by_python_is_still_an_interruption() -> None:
    """A SIGTERM raised inside ``__set_name__`` during an import reaches normopt as a RuntimeError."""
    import typer

    from normopt.cli.common import Terminated, handle_errors

    class Field:
        def __set_name__(self, owner: type, name: str) -> None:
            raise Terminated(signal.SIGTERM)

    @handle_errors
    def command(debug: bool = False) -> None:
        type("Model", (), {"field": Field()})

    with pytest.raises(typer.Exit) as stop:
        command()
    assert stop.value.exit_code == 128 + signal.SIGTERM
