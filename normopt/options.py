"""Option ranges, checked in one place: the CLI and the Python API call these and raise the same errors.

Each check raises ``UsageError`` (exit 2) with the option's CLI name and its valid range. The API
functions (``bench``, ``verify``, ``export``, ``run``) call them before doing any work, so a bad value
never gets as far as a session, an export or a directory.
"""

from __future__ import annotations

import math
import os

from normopt.errors import UsageError, option

MAX_SECONDS = 24 * 3600.0
MAX_SEED = 2**63 - 1
DEFAULT_ITERS = 100


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def at_least(name: str, value: int, low: int) -> int:
    """``value`` when it is an integer ≥ ``low``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise UsageError(f"{name} must be an integer ≥ {low}, got {value!r}")
    return value


def timed_runs(iters: int | None, warmup: int, seconds: float | None) -> int:
    """The number of timed runs to aim for; ``--iters`` and ``--seconds`` are two ways to say it.

    Rule: give ``--iters`` (default 100) or ``--seconds`` (run until that much time is spent), not both.
    """
    at_least(option("--warmup"), warmup, 0)
    if seconds is not None:
        if iters is not None:
            raise UsageError(
                f"give {option('--iters')} or {option('--seconds')}, not "
                f"both ({option('--seconds')} runs until the time is spent)"
            )
        if not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or not 0 < seconds <= MAX_SECONDS:
            raise UsageError(
                f"{option('--seconds')} must be a number of seconds in (0, {MAX_SECONDS:g}], got {seconds!r}"
            )
        return 0
    return at_least(option("--iters"), DEFAULT_ITERS if iters is None else iters, 1)


def threads(value: int | None) -> int | None:
    """Intra-op threads: None (ONNX Runtime's default) or 1 to the CPUs this process may use."""
    if value is None:
        return None
    cpus = _cpus()
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= cpus:
        raise UsageError(f"{option('--threads')} must be between 1 and {cpus} (the CPUs available here), got {value!r}")
    return value


def tolerance(name: str, value: float | None) -> float | None:
    """``--atol`` / ``--rtol``: None (per-dtype default) or a finite number ≥ 0."""
    if value is None:
        return None
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise UsageError(f"{name} must be a finite number ≥ 0, got {value!r}")
    return float(value)


def seed(value: int) -> int:
    """``--seed``: an integer in [0, 2**63 - 1]."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED:
        raise UsageError(f"{option('--seed')} must be an integer in [0, 2**63 - 1], got {value!r}")
    return value


def int_list(name: str, texts: list[str] | None, low: int) -> list[int] | None:
    """A repeatable, comma-separated list of integers ≥ ``low`` (``--past 128,512 --past 1024``)."""
    if not texts:
        return None
    values = []
    for text in texts:
        for part in str(text).split(","):
            try:
                value = int(part.strip())
            except ValueError:
                raise UsageError(f"{name} takes integers (a list: 128,512), got {part.strip()!r}") from None
            values.append(at_least(name, value, low))
    return list(dict.fromkeys(values))


OPT_LEVELS = ("disable", "basic", "extended", "all")


def word_list(name: str, texts: list[str] | None, choices: tuple[str, ...]) -> list[str] | None:
    """A repeatable, comma-separated list of words from ``choices`` (``--opt-level all,disable``), in order."""
    if not texts:
        return None
    words = [part.strip() for text in texts for part in str(text).split(",") if part.strip()]
    for word in words:
        if word not in choices:
            raise UsageError(
                f"unknown {name} {word!r}; choose from {', '.join(choices)} (a list: {choices[0]},{choices[-1]})"
            )
    return list(dict.fromkeys(words))


def size_lists(
    batch: list[str] | None, seq: list[str] | None, past: list[str] | None
) -> tuple[list[int] | None, list[int] | None, list[int] | None]:
    """``--batch``, ``--seq`` and ``--past`` lists as ints (batch and seq ≥ 1, past ≥ 0)."""
    return (
        int_list(option("--batch"), batch, 1),
        int_list(option("--seq"), seq, 1),
        int_list(option("--past"), past, 0),
    )
