"""Running the real CLI in tests."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from typer.testing import CliRunner

from normopt.cli.app import app


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def cli(*args: str) -> Result:
    """Invoke the Typer app in-process (stdout and stderr kept apart)."""
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    return Result(result.exit_code, result.stdout, result.stderr)


def cli_process(*args: str) -> Result:
    """Invoke ``python -m normopt_cli`` in a subprocess, as a user would."""
    proc = subprocess.run(
        [sys.executable, "-m", "normopt_cli", *map(str, args)], capture_output=True, text=True, timeout=600
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)
