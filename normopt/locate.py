"""Which ONNX model a path names: the file itself, or the model an export folder holds.

A folder that holds ``.onnx`` files is ONNX to every command (``run``, ``inspect``, ``verify``, ``bench``,
and ``fuse``, which fuses all of them): its ``config.json`` is the exporter's, not a recipe for a new
random-weight export. Only a folder without any ``.onnx`` is exported from its config.
"""

from __future__ import annotations

import os
from pathlib import Path

from normopt.errors import UsageError

#: Preferred when a folder holds several models: Optimum's single model, then its merged decoder.
PREFERRED = ("model.onnx", "decoder_model_merged.onnx")


def onnx_files(folder: str | os.PathLike[str]) -> list[Path]:
    """The ``.onnx`` files directly in ``folder`` (sorted; hidden files left out); none when not a folder."""
    path = Path(folder)
    if not path.is_dir():
        return []
    return sorted(p for p in path.iterdir() if p.suffix == ".onnx" and p.is_file() and not p.name.startswith("."))


def model_in(path: str | os.PathLike[str]) -> Path:
    """``path`` when it is a file; for a folder, its one ONNX model (or ``model.onnx``), else a UsageError."""
    found = Path(path)
    if not found.is_dir():
        return found
    files = onnx_files(found)
    if not files:
        raise UsageError(f"{found} is a folder without an .onnx model; give the model file")
    if len(files) == 1:
        return files[0]
    for name in PREFERRED:
        if found / name in files:
            return found / name
    names = ", ".join(p.name for p in files)
    raise UsageError(f"{found} holds {len(files)} ONNX models ({names}); name one, e.g. {files[0]}")
