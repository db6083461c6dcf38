"""Checked runs: a session's input specs, and runs whose failure names the feeds it was given."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx_ir as ir

from normopt.errors import UsageError, option
from normopt.feeds import inputs as inp
from normopt.feeds.spec import InputSpec


def specs_of(session: Any, model: ir.Model | None = None) -> list[InputSpec]:
    """Input specs of an ONNX Runtime session; with ``model``, an input of unknown rank has shape None.

    (ONNX Runtime reports both an unknown rank and a scalar as ``[]``; the model says which.)
    """
    unranked = {v.name for v in model.graph.inputs if v.shape is None} if model is not None else set()
    return [InputSpec(i.name, i.type, None if i.name in unranked else tuple(i.shape)) for i in session.get_inputs()]


def run_pair(
    reference: Any, candidate: Any, feeds: dict[str, np.ndarray], names: list[str] | None = None
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Run both sessions on ``feeds`` (each cast to its own float types); outputs by name."""
    return run_one(reference, feeds, "reference", names), run_one(candidate, feeds, "candidate", names)


def run_one(
    session: Any, feeds: dict[str, np.ndarray], which: str, names: list[str] | None = None
) -> dict[str, np.ndarray]:
    """Run one session on ``feeds`` cast to its own float types; outputs by name (all when ``names`` is None)."""
    wanted = names or [o.name for o in session.get_outputs()]
    values = run_checked(session, wanted, inp.cast_for(feeds, specs_of(session)), which)
    return dict(zip(wanted, values, strict=True))


class RunFailed(UsageError):
    """ONNX Runtime could not run a model on the given inputs; ``cause`` says which, on what, and why."""

    def __init__(self, cause: str) -> None:
        super().__init__(
            f"{cause}; set sizes with {option('--batch')}/{option('--seq')}/{option('--past')} "
            f"or {option('--shape')} NAME=DIMS, or pass {option('--inputs')}"
        )
        self.cause = cause


def run_checked(session: Any, names: list[str] | None, feeds: dict[str, np.ndarray], which: str) -> list[Any]:
    """``session.run``; a failure is a ``RunFailed`` (a UsageError) that names the input shapes it was given.

    ONNX Runtime's own error log line is silenced: the error says it once.
    """
    import onnxruntime as ort

    quiet = ort.RunOptions()
    quiet.log_severity_level = 4
    try:
        return list(session.run(names, feeds, quiet))
    except Exception as error:
        shapes = ", ".join(f"{k}[{'x'.join(map(str, v.shape))}]" for k, v in feeds.items())
        first = str(error).strip().splitlines()[0][:300] if str(error).strip() else type(error).__name__
        raise RunFailed(f"ONNX Runtime cannot run the {which} on inputs {shapes}: {first}") from error
