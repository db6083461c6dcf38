"""What torch says while exporting: its chatter kept off the user's terminal, its failures told in one line."""

from __future__ import annotations

import contextlib
import io
import logging
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

logger = logging.getLogger("normopt.exporting.exporter")

_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # colour codes in torch's error texts
_CALL = re.compile(r'File "([^"]+)", line (\d+), in \w+\s*\n\s*(.+)')  # a frame of torch.export's report


@contextlib.contextmanager
def chatter_to_debug_log() -> Iterator[None]:
    """Prints, warnings and torch log records of what runs inside: logged at debug level once it ends, not shown."""
    chatter = io.StringIO()
    caught: list[warnings.WarningMessage] = []
    try:
        with (
            contextlib.redirect_stdout(chatter),
            contextlib.redirect_stderr(chatter),
            warnings.catch_warnings(record=True) as caught,
            _torch_logs_to(chatter),
        ):
            warnings.simplefilter("always")
            yield
    finally:
        for line in chatter.getvalue().splitlines():
            if line.strip():
                logger.debug("exporter: %s", line)
        for warning in caught:
            logger.debug("exporter warning: %s: %s", warning.category.__name__, warning.message)


@contextlib.contextmanager
def _torch_logs_to(stream: io.StringIO) -> Any:
    """Route torch's log records (``W... torchvision is not installed``, symbolic-shape warnings) into ``stream``.

    torch's logging handlers hold the real stderr, so redirecting ``sys.stderr`` does not reach them.
    """
    handler = logging.StreamHandler(stream)
    names = {"torch", "torch.onnx"}
    for name, found in list(logging.root.manager.loggerDict.items()):  # torch._logging's own handlers
        if name.startswith("torch") and isinstance(found, logging.Logger) and found.handlers:
            names.add(name)
    loggers = [logging.getLogger(name) for name in sorted(names)]
    saved = [(logger_.propagate, logger_.handlers[:]) for logger_ in loggers]
    for logger_ in loggers:
        logger_.handlers = [handler]
        logger_.propagate = False
    try:
        yield
    finally:
        for logger_, (propagate, handlers) in zip(loggers, saved, strict=True):
            logger_.propagate, logger_.handlers = propagate, handlers


def first_line(error: BaseException) -> str:
    """An error's first line, colour codes stripped ("" when it has no text)."""
    lines = _ANSI.sub("", str(error)).strip().splitlines()
    return lines[0][:300] if lines else ""


def failure_cause(error: Exception) -> str:
    """One line saying why torch could not export: the model's own line for a data-dependent branch."""
    texts = [str(e) for e in (error, error.__cause__, error.__context__) if e is not None]
    for text in texts:
        plain = _ANSI.sub("", text)
        if "data dependent" in plain.lower() or "data-dependent" in plain.lower():
            call = _CALL.search(plain.split("The following call raised this error:")[-1])
            if call:
                where = f"{Path(call.group(1)).name}:{call.group(2)}: {call.group(3).strip()}"
                return f"a branch on tensor values in the model, which torch.export cannot trace ({where})"
            return "a branch on tensor values in the model, which torch.export cannot trace"
    text = first_line(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
