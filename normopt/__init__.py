"""normopt: fuse every LayerNorm / RMSNorm spelling in ONNX transformer models, verify, benchmark.

The Python API mirrors the CLI: ``normopt.export``, ``normopt.fuse``, ``normopt.inspect``,
``normopt.verify``, ``normopt.bench``, ``normopt.run``. They are imported on first use so that
``import normopt`` (and ``normopt --help``) stays fast. The implementing packages are
``normopt.exporting``, ``normopt.fusion``, ``normopt.parity`` and ``normopt.latency``.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time each is imported on first use
    from normopt.exporting.exporter import export as export
    from normopt.fusing import fuse as fuse
    from normopt.fusing import inspect as inspect
    from normopt.fusion.pipeline import fuse_model as fuse_model
    from normopt.latency.runner import bench as bench
    from normopt.parity.check import verify as verify
    from normopt.passes import FuseNorms as FuseNorms
    from normopt.running import run as run

__version__ = "0.1.0"

_API = {
    "export": ("normopt.exporting.exporter", "export"),
    "fuse": ("normopt.fusing", "fuse"),
    "inspect": ("normopt.fusing", "inspect"),
    "verify": ("normopt.parity.check", "verify"),
    "bench": ("normopt.latency.runner", "bench"),
    "run": ("normopt.running", "run"),
    "fuse_model": ("normopt.fusion.pipeline", "fuse_model"),
    "FuseNorms": ("normopt.passes", "FuseNorms"),
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        module, attr = _API[name]
        return getattr(import_module(module), attr)
    raise AttributeError(f"module 'normopt' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
