"""What a library call may change in its caller's process: nothing, unless the command line owns it.

The ``normopt`` command owns its process and says so (``normopt.cli.startup.own_process``): then Python's
cyclic collector is paused while a big graph is built and written (``fusing.gc_paused``), and ONNX
Runtime's process-wide default logger is quietened (normopt reports a provider failure in one line).
Called from Python, normopt leaves both as its caller set them.
"""

from __future__ import annotations

_owned = False


def own() -> None:
    """Say that the process is normopt's own (the command line), so process-wide settings may change."""
    global _owned
    _owned = True


def owned() -> bool:
    """True when the command line owns the process."""
    return _owned
