"""``normopt.fuse_folder``: every ``.onnx`` of an export folder (Optimum, onnxruntime-genai) fused at once.

The output folder gets the same file names: each model fused (its external data written under the
name the input used, e.g. ``model.onnx_data``), every other file (config, tokenizer, generation and
genai configs) copied. The folder is built in a private staging folder beside the destination and
renamed into place at the end, so a failure or Ctrl-C leaves nothing behind and the input folder is
only read.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from normopt.choices import Target
from normopt.errors import UsageError
from normopt.fusing import FuseOutcome, fuse


@dataclass
class FolderOutcome:
    """What ``fuse_folder`` wrote: one ``FuseOutcome`` per model, and the files copied as they were."""

    input: Path
    output: Path
    models: dict[str, FuseOutcome]
    copied: list[str]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``input``, ``output``, ``models`` ({relative path: fuse result}), ``copied``."""
        return {
            "schema_version": 1,
            "command": "fuse",
            "input": str(self.input),
            "output": str(self.output),
            "models": {name: outcome.to_dict() for name, outcome in self.models.items()},
            "copied": self.copied,
            "fused": sum(o.result.fused for o in self.models.values()),
            "candidates": sum(o.result.candidates for o in self.models.values()),
            "seconds": round(self.seconds, 3),
        }


def check_folders(source: Path, destination: Path) -> None:
    """UsageError unless ``source`` is a folder and ``destination`` a new or empty folder apart from it."""
    if not source.is_dir():
        raise UsageError(f"{source} is not a folder")
    src, dst = source.resolve(), destination.resolve()
    if dst == src or src in dst.parents or dst in src.parents:
        raise UsageError(f"output folder {destination} must be outside the input folder {source}, and not contain it")
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise UsageError(f"output {destination} exists and is not an empty folder; normopt does not merge into one")
    if not destination.parent.is_dir():
        raise UsageError(f"output directory does not exist: {destination.parent}")


def default_folder(source: Path) -> Path:
    """``export/`` → ``export.fused/`` beside it."""
    return source.with_name(f"{source.name}.fused")


def fuse_folder(
    input: str | os.PathLike[str],
    output: str | os.PathLike[str] | None = None,
    *,
    target: Target = "auto",
    skip: bool | None = None,
    verify: bool = False,
    atol: float | None = None,
    rtol: float | None = None,
    progress: Callable[[str], None] | None = None,
    freeze_initializers: bool = False,
) -> FolderOutcome:
    """Fuse every ``.onnx`` under the folder ``input`` into ``output`` (default ``<input>.fused``).

    Args:
        input: The export folder; only read.
        output: A new or empty folder outside ``input``.
        target: As for ``fuse``.
        skip: As for ``fuse``.
        verify: Check each model's parity before it is written (a failure writes nothing at all).
        atol: Tolerance for ``verify``.
        rtol: Tolerance for ``verify``.
        progress: Called with each model's relative path before it is fused.
        freeze_initializers: As for ``fuse``.

    Raises:
        UsageError: Bad folders, no model in the folder, or a model ``fuse`` refuses.
        CheckFailed: A model's checker or parity check fails (nothing is written).

    """
    start = time.perf_counter()
    source = Path(input)
    destination = Path(output) if output is not None else default_folder(source)
    check_folders(source, destination)
    files = sorted(p for p in source.rglob("*") if p.is_file() and not _hidden(p.relative_to(source)))
    models = [p for p in files if p.suffix == ".onnx"]
    if not models:
        raise UsageError(f"{source} holds no .onnx model")
    weights: set[Path] = set()
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", suffix=".staging", dir=destination.parent))
    outcomes: dict[str, FuseOutcome] = {}
    try:
        for path in models:
            name = path.relative_to(source).as_posix()
            if progress is not None:
                progress(name)
            target_path = staging / name
            target_path.parent.mkdir(parents=True, exist_ok=True)
            try:  # external "auto": new data beside the output when the input has some (another folder), else inline
                outcomes[name] = fuse(
                    path,
                    target_path,
                    target=target,
                    skip=skip,
                    verify=verify,
                    atol=atol,
                    rtol=rtol,
                    keep_data_name=True,
                    freeze_initializers=freeze_initializers,
                )
            except UsageError as error:
                raise UsageError(f"{name}: {error}") from error
            weights |= set(outcomes[name].input_data_files)
        copied = []
        for path in files:
            if path.suffix == ".onnx" or path.resolve() in weights:
                continue
            name = path.relative_to(source).as_posix()
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, staging / name)  # a new file: the umask decides its mode
            copied.append(name)
        for outcome in outcomes.values():
            outcome.output = destination / outcome.output.relative_to(staging)
            outcome.data_files = [destination / p.relative_to(staging) for p in outcome.data_files]
        _chmod_new_folder(staging)
        os.replace(staging, destination)  # an empty folder there is replaced, atomically
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return FolderOutcome(source, destination, outcomes, copied, time.perf_counter() - start)


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def _chmod_new_folder(folder: Path) -> None:
    """The staging folder was made private (0700); the result gets a new folder's mode under the umask."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(folder, 0o777 & ~umask)
