"""Process-level start-up and shut-down tweaks for the ``normopt`` command (never applied on import).

* ``sympy`` is imported by ``onnx_ir`` at module level but only used for symbolic shape arithmetic,
  which ``fuse`` and ``inspect`` never do; deferring it saves about 0.3 s of their start-up.
* A 30,000-node graph leaves a few hundred thousand objects (many in reference cycles) that a
  later full collection walks: ~0.15 s when the summary table is printed, ~0.4 s at interpreter
  exit, to free memory the OS reclaims anyway. ``freeze_heap`` moves what is alive out of the
  collector's reach once the heavy work is done (outputs are already closed and in place).
"""

from __future__ import annotations

import gc
import importlib
import importlib.util
import sys
import types
from typing import Any


class _Deferred(types.ModuleType):
    """Stands in ``sys.modules`` for a module until one of its attributes is first read.

    Python 3.11's ``importlib.util.LazyLoader`` loads on ``import name`` itself (the import statement
    reads ``__spec__``), so it cannot defer a module imported at the top of another one.
    """

    def __getattr__(self, attr: str) -> Any:  # called only for names not yet in this namespace
        name = self.__name__
        if sys.modules.get(name) is self:
            del sys.modules[name]
        real = importlib.import_module(name)
        self.__dict__.update(real.__dict__)  # later reads through old references are direct
        return getattr(real, attr)


def defer_import(name: str) -> None:
    """Let ``import name`` succeed at once and load the real module on first attribute access."""
    if name in sys.modules:
        return
    if "." not in name and importlib.util.find_spec(name) is None:  # (a dotted find_spec imports the parent)
        return
    sys.modules[name] = _Deferred(name)


def defer_symbolic_shapes() -> None:
    """Defer sympy and the onnx_ir module that builds sympy tables at import (symbolic dims only)."""
    defer_import("sympy")
    defer_import("onnx_ir._symbolic_shapes")


def freeze_heap() -> None:
    """Move every object alive now out of the collector's reach (later collections, exit included, skip them)."""
    gc.freeze()
