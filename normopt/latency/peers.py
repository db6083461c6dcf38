"""The best ONNX Runtime does alone, for ``--compare-ort``: its transformers optimizer on the original.

(ORT's in-session optimizations are the ``all`` opt-level rows every benchmark already has.) The
transformers optimizer (``onnxruntime.transformers.optimizer.optimize_model``) fuses attention, GELU,
LayerNorm/SkipLayerNorm and more for the model types it knows; normopt runs it with its Python fusions
only (``opt_level=0``, so the session level of each row stays the benchmark's own) and benchmarks the
result beside the original and the fused model.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

from normopt.feeds import roles
from normopt.feeds.spec import InputSpec

logger = logging.getLogger(__name__)


def model_types() -> list[str]:
    """The model types ORT's transformers optimizer knows."""
    from onnxruntime.transformers.optimizer import MODEL_TYPES

    return list(MODEL_TYPES)


def guess_model_type(specs: Sequence[InputSpec], outputs: Sequence[str], family: str | None = None) -> str | None:
    """``family`` when ORT knows it; else ``gpt2`` for decoders (logits or a cache), ``bert`` for text encoders."""
    known = model_types()
    if family is not None:
        return family if family in known else None
    names = {roles.role_of(s) for s in specs}
    if "ids" not in names:
        return None
    if roles.has_past(specs) or "logits" in outputs:
        return "gpt2"
    return "bert"


def ort_optimized(original: Path, output: Path, model_type: str) -> str | None:
    """Write ORT's transformers-optimized ``original`` to ``output``; None, or why it could not."""
    from onnxruntime.transformers.optimizer import optimize_model

    chatter = io.StringIO()
    quiet = logging.getLogger("onnxruntime.transformers")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with (
            contextlib.redirect_stdout(chatter),
            contextlib.redirect_stderr(chatter),
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore")
            optimized = optimize_model(str(original), model_type=model_type, opt_level=0, use_gpu=False)
            optimized.save_model_to_file(str(output), use_external_data_format=False)
    except Exception as error:  # the optimizer does not know this graph: say so, bench the rest
        first = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        return f"ONNX Runtime's transformers optimizer ({model_type}) failed: {type(error).__name__}: {first}"
    finally:
        quiet.setLevel(level)
        for line in chatter.getvalue().splitlines():
            logger.debug("ort optimizer: %s", line)
    return None
