"""Errors normopt raises on purpose; the CLI maps them to exit codes (2 usage/input, 1 failed check)."""

from __future__ import annotations


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
