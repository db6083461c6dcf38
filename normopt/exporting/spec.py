"""What a model argument names (a preset, a Hugging Face folder, ``module:function``), checked without torch.

The command line checks a model argument with this before importing torch or building anything, so a
typo or a Hub id is a one-line answer at once.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from normopt.choices import TASKS
from normopt.errors import UsageError, option
from normopt.exporting.catalog import PRESETS

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")  # organization/name, as the Hub spells model ids


def check_spec(spec: str, task: str | None = None) -> str:
    """What ``spec`` names (``preset``, ``hf`` or ``function``), checked without building anything.

    Raises:
        UsageError: An unknown name, a directory without config.json, a module that cannot be found,
            or a ``task`` that does not apply.

    """
    if task is not None and task not in TASKS:
        raise UsageError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    if spec in PRESETS:
        if task not in (None, "causal-lm"):
            raise UsageError(
                f"preset {spec} is a causal LM (logits); {option('--task', task)} applies to Hugging Face directories"
            )
        return "preset"
    path = Path(spec)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UsageError(f"{path} has no config.json")
        return "hf"
    if ":" in spec and not path.exists():
        if task is not None:
            raise UsageError(f"{option('--task')} applies to presets and Hugging Face directories, not module:function")
        module_name, _, attr = spec.partition(":")
        try:
            found = bool(module_name) and bool(attr) and importlib.util.find_spec(module_name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise UsageError(f"cannot import {spec}: no module {module_name!r} (or no function after the colon)")
        return "function"
    if path.exists():
        raise UsageError(f"{spec} is not a directory with config.json, a preset or module:function")
    if _HUB_ID.fullmatch(spec):
        raise UsageError(
            f"{spec} looks like a Hugging Face Hub id, and normopt downloads nothing: fetch it to a folder first "
            f"(huggingface-cli download {spec} --local-dir {spec.rsplit('/', 1)[-1]}) and pass that folder"
        )
    raise UsageError(f"unknown model {spec!r}: not a preset ({', '.join(PRESETS)}), a directory, or module:function")
