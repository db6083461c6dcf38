"""Errors normopt raises on purpose; the CLI maps them to exit codes (2 usage/input, 1 failed check)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar


class NormoptError(Exception):
    """Base of the errors the CLI reports as one line without a traceback."""

    exit_code = 2


class UsageError(NormoptError, ValueError):
    """Bad input or usage: a missing file, a model that is not ONNX, an unknown name (exit 2).

    Also a ``ValueError``: every bad argument of the Python API raises this one class, and a caller that
    catches ``ValueError`` catches it.
    """


class CheckFailed(NormoptError):
    """A check that ran and failed, such as numerical parity (exit 1)."""

    exit_code = 1


class ProviderUnavailable(UsageError):
    """An execution provider was asked for but cannot run here (exit 2)."""


# How a message names an option. The same checks serve the CLI and the Python API, so a message says ``--seq``
# to a CLI user and ``seqs`` to a Python caller: the CLI sets this for the duration of a command.
_CLI_SPELLING: ContextVar[bool] = ContextVar("normopt_cli_spelling", default=False)

# Python API parameters whose name is not the flag's (the CLI's singular, repeatable options take lists).
_PARAMETERS = {
    "--shape": "shapes",
    "--opt-level": "opt_levels",
    "--provider": "providers",
    "--out": "out_dir",
    "--batch": "batches",
    "--seq": "seqs",
    "--past": "pasts",
}


def option(flag: str, value: object = None, *, parameter: str | None = None) -> str:
    """``flag`` (with ``value``) as the caller spells it: ``--target ort`` on the CLI, ``target='ort'`` in Python.

    ``parameter`` names the Python parameter where it is not the usual one for ``flag`` (``export(seq=)`` where
    ``bench`` says ``seqs``).
    """
    if _CLI_SPELLING.get():
        return flag if value is None else f"{flag} {value}"
    name = parameter or _PARAMETERS.get(flag) or flag.lstrip("-").replace("-", "_")
    return name if value is None else f"{name}={value!r}"


@contextmanager
def cli_spelling() -> Iterator[None]:
    """Within this block, messages name options by their CLI flags."""
    token = _CLI_SPELLING.set(True)
    try:
        yield
    finally:
        _CLI_SPELLING.reset(token)
