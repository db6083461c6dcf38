"""The run's output folder: new, or an earlier run's folder that is replaced whole, and only on success.

An earlier run's folder is moved aside (one rename) before anything is written; the new run is built in
a fresh ``--out``. On success the earlier run's outputs are deleted and any other file the user kept in
the folder is moved into the new one; on a failure or Ctrl-C the new folder is removed and the earlier
one renamed back, as it was. The renames run with signals held (``modelio.signals_held``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from normopt import modelio
from normopt.running.settings import OUTPUTS


def is_run_output(name: str) -> bool:
    """True for a file a run writes into ``--out`` (its reports, its two models and their external data)."""
    return name in OUTPUTS or name.startswith(("original.onnx", "fused.onnx"))


class OutputFolder:
    """``--out`` for one run (see the module docstring)."""

    def __init__(self, out: Path) -> None:
        self.out = out
        missing = [p for p in (out, *out.parents) if not p.exists()]
        self.top = missing[-1] if missing else None  # the outermost folder this run creates
        self.aside: Path | None = None  # the earlier run's folder while this run builds

    def open(self) -> None:
        """Make ``out`` empty and ready: create it, or move an earlier run's folder aside."""
        with modelio.signals_held():
            if self.out.is_dir() and any(self.out.iterdir()):
                holder = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.", suffix=".previous", dir=self.out.parent))
                os.rename(self.out, holder / "run")
                self.aside = holder
            self.out.mkdir(parents=True, exist_ok=True)

    def commit(self) -> None:
        """Keep the new run: the earlier run's outputs go, the user's other files move into the new folder."""
        if self.aside is None:
            return
        previous = self.aside / "run"
        with modelio.signals_held():
            for entry in os.listdir(previous):
                if not is_run_output(entry) and not (self.out / entry).exists():
                    os.rename(previous / entry, self.out / entry)
            shutil.rmtree(self.aside, ignore_errors=True)
            self.aside = None

    def rollback(self) -> None:
        """Undo the run: remove what it made and put the earlier folder back as it was."""
        with modelio.signals_held():
            if self.top is not None:
                shutil.rmtree(self.top, ignore_errors=True)
            elif self.out.is_dir():
                shutil.rmtree(self.out, ignore_errors=True)
            if self.aside is not None:
                os.rename(self.aside / "run", self.out)
                shutil.rmtree(self.aside, ignore_errors=True)
                self.aside = None
