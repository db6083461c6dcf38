"""What every command shares: option aliases, JSON/stdout discipline, and error → exit code mapping."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator
from enum import Enum
from typing import Annotated, Any, TypeVar

import typer

F = TypeVar("F", bound=Callable[..., Any])
INTERNAL_ERROR = 3  # a bug in normopt (0 success, 1 a check failed, 2 bad input or usage)


class Format(str, Enum):
    """Output formats of commands that report something."""

    table = "table"
    json = "json"


FormatOption = Annotated[
    Format, typer.Option("--format", "-f", help="table (for people) or json (one document on stdout).")
]
DebugOption = Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")]
ShapeOption = Annotated[
    list[str] | None,
    typer.Option("--shape", help="Bind a dynamic input: NAME=DIMS (e.g. input_ids=1x128) or a dim name: seq=128."),
]


BatchOption = Annotated[int | None, typer.Option("--batch", help="Batch size for generated inputs (default 2).")]
SeqOption = Annotated[
    int | None, typer.Option("--seq", help="New tokens per sequence for generated inputs (default 16).")
]
PastOption = Annotated[
    int | None,
    typer.Option("--past", help="Cached tokens for decoders with past key/value inputs (default 16; 0: first step)."),
]

# Lists for bench and run (sweeps); in ``run`` on a preset the defaults are the preset's own batch and seq.
BatchesOption = Annotated[
    list[str] | None,
    typer.Option("--batch", help="Batch size(s), e.g. 1,4 (repeatable; default 2, run: the preset's)."),
]
SeqsOption = Annotated[
    list[str] | None, typer.Option("--seq", help="Prefill length(s), e.g. 16,128 (default 16, run: the preset's).")
]
PastsOption = Annotated[
    list[str] | None,
    typer.Option("--past", help="Cached tokens for decode steps, e.g. 128,512 (default 16, run: the preset's seq)."),
]


def progress_bar(spinner: bool = False) -> Any:
    """A transient rich progress bar on stderr (description, bar, done/total, elapsed, time left).

    ``spinner``: a spinner, the description and the elapsed time only, for work with no measure of its own.
    Off when stderr is not a terminal: logs and pipes get the step lines only, and an error stays one line.
    """
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns: tuple[Any, ...] = (
        (SpinnerColumn(), "[progress.description]{task.description}", TimeElapsedColumn())
        if spinner
        else (
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            "ETA",
            TimeRemainingColumn(),
        )
    )
    return Progress(*columns, transient=True, console=Console(stderr=True), disable=not sys.stderr.isatty())


@contextlib.contextmanager
def phases(first: str) -> Iterator[Callable[[str], None]]:
    """A transient spinner on stderr naming the phase under way, with the time spent so far.

    For work that has phases but no measure of its own progress (a torch export): a phase is announced, an
    ETA is not invented. Off when stderr is not a terminal, like ``progress_bar``.
    """
    with progress_bar(spinner=True) as bar:
        task = bar.add_task(first, total=None)
        yield lambda text: bar.update(task, description=text)


class PhaseBars:
    """A ``progress(phase, done, total)`` callback: one row per phase, with done/total, elapsed and ETA."""

    def __init__(self, bar: Any) -> None:
        self.bar = bar
        self.tasks: dict[str, Any] = {}

    def __call__(self, phase: str, done: int, total: int) -> None:
        """Show ``done`` of ``total`` for ``phase`` (a new row the first time it is named)."""
        if total == 0:  # nothing to walk (no anchors left for a pass): done, not "unknown"
            done = total = 1
        task = self.tasks.get(phase)
        if task is None:
            task = self.tasks[phase] = self.bar.add_task(phase, total=total)
        self.bar.update(task, completed=done, total=total)


def emit_json(document: Any) -> None:
    """Print one JSON document on stdout."""
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")
    sys.stdout.flush()


def info(message: str) -> None:
    """A log line on stderr."""
    sys.stderr.write(message + "\n")


class Terminated(KeyboardInterrupt):
    """SIGTERM (or SIGHUP), raised where the process is: staged files are cleaned up on the way out."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_terminated(signum: int, _frame: Any) -> None:
    raise Terminated(signum)


def _interrupted(stop: KeyboardInterrupt) -> typer.Exit:
    """Say how the process was stopped; exit 128 + the signal (130 for Ctrl-C)."""
    if isinstance(stop, Terminated):
        info(f"normopt: terminated by signal {stop.signum}; nothing half-written was left")
        return typer.Exit(128 + stop.signum)
    info("normopt: interrupted; nothing half-written was left")
    return typer.Exit(130)


def _interrupt_behind(error: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C / SIGTERM that caused ``error``, if any (Python wraps some, e.g. in ``__set_name__``)."""
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


def handle_errors(command: F) -> F:
    """Map normopt's errors to exit codes with one line on stderr (a traceback only with --debug).

    NormoptError: its exit code (2 bad input, 1 a failed check). Ctrl-C / SIGTERM: 130 / 143, after
    the writer removed what it staged. Anything else is a bug in normopt, not in the input: exit 3.
    """

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from normopt.errors import NormoptError, cli_spelling

        debug = bool(kwargs.get("debug")) or os.environ.get("NORMOPT_DEBUG") == "1"
        if debug:
            logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="normopt: %(name)s: %(message)s")
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, _raise_terminated)
        try:
            with cli_spelling():  # messages name options by their flags here, by parameter names in Python
                return command(*args, **kwargs)
        except typer.Exit:
            raise
        except NormoptError as error:
            if debug:
                raise
            info("normopt: error: " + " ".join(str(error).split()))
            raise typer.Exit(error.exit_code) from None
        except KeyboardInterrupt as stop:
            raise _interrupted(stop) from None
        except Exception as error:
            wrapped = _interrupt_behind(error)
            if wrapped is not None:  # e.g. a signal during an import, wrapped by Python in a RuntimeError
                raise _interrupted(wrapped) from None
            if debug:
                raise
            text = " ".join(str(error).split())[:300]
            info(
                f"normopt: internal error ({type(error).__name__}: {text}): a bug in normopt, not in the input; "
                "rerun with --debug for the traceback and report it"
            )
            raise typer.Exit(INTERNAL_ERROR) from None

    return wrapper  # type: ignore[return-value]
