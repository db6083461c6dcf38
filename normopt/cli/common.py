"""What every command shares: option aliases, JSON/stdout discipline, and error → exit code mapping."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from enum import Enum
from typing import Annotated, Any, TypeVar

import typer

F = TypeVar("F", bound=Callable[..., Any])


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


def progress_bar() -> Any:
    """A transient rich progress bar on stderr (description, bar, done/total, elapsed)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=True,
        console=Console(stderr=True),
    )


def emit_json(document: Any) -> None:
    """Print one JSON document on stdout."""
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")
    sys.stdout.flush()


def info(message: str) -> None:
    """A log line on stderr."""
    sys.stderr.write(message + "\n")


def handle_errors(command: F) -> F:
    """Map normopt's errors to exit codes with one line on stderr (a traceback only with --debug)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from normopt.errors import NormoptError

        debug = bool(kwargs.get("debug")) or os.environ.get("NORMOPT_DEBUG") == "1"
        try:
            return command(*args, **kwargs)
        except typer.Exit:
            raise
        except NormoptError as error:
            if debug:
                raise
            info("normopt: error: " + " ".join(str(error).split()))
            raise typer.Exit(error.exit_code) from None
        except KeyboardInterrupt:
            info("normopt: interrupted")
            raise typer.Exit(130) from None
        except Exception as error:
            if debug:
                raise
            text = str(error).strip().splitlines()[0] if str(error).strip() else ""
            info(f"normopt: error: unexpected {type(error).__name__}: {text} (rerun with --debug for the traceback)")
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]
