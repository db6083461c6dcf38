"""The best ONNX Runtime does alone, for ``--compare-ort``: its transformers optimizer on the original.

(ORT's in-session optimizations are the ``all`` opt-level rows every benchmark already has.) The
transformers optimizer (``onnxruntime.transformers.optimizer.optimize_model``) fuses attention, GELU,
LayerNorm/SkipLayerNorm and more for the model types it knows; normopt runs it with its Python fusions
only (``opt_level=0``, so the session level of each row stays the benchmark's own), gives it the heads and
hidden size read from the model (``model_shape``; its attention fusion needs them), and benchmarks the
result beside the original and the fused model — on the original (``ort-optimized``) and on normopt's
output (``ort-optimized (fused)``: the chain users run). The optimizer's own warnings are kept.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx_ir as ir

from normopt.engines.views import ValueView
from normopt.feeds import roles
from normopt.feeds.spec import InputSpec
from normopt.fusion import graph_utils as gu
from normopt.ops import is_op

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


@dataclass
class Shape:
    """What ORT's transformers optimizer needs to fuse attention: heads and hidden size (0: let it guess)."""

    num_heads: int = 0
    hidden_size: int = 0


def model_shape(model: ir.Model | Path) -> Shape:
    """Heads and hidden size read from the model, or 0s where it does not say them.

    The hidden size is the most common length of its norms' (and scaling Muls') 1-D constant γ; the heads
    come from its 4-D Reshape targets ``[·, ·, heads, head_dim]`` with ``heads · head_dim`` = that size (a
    constant target, or a Concat of pieces; heads computed at run time are that size over ``head_dim``).
    With 0s the optimizer falls back to its own detection (and warns).
    """
    from normopt import modelio

    if not isinstance(model, ir.Model):
        model = modelio.load(model)
    hidden: Counter[int] = Counter()
    splits: Counter[tuple[int, int]] = Counter()
    for node in model.graph:
        if is_op(node, "LayerNormalization", "SimplifiedLayerNormalization", "RMSNormalization") or (
            is_op(node, "Mul") and len(node.inputs) == 2
        ):
            for value in node.inputs:
                tensor = value.const_value if value is not None else None
                length = tensor.shape[0] if tensor is not None and len(tensor.shape) == 1 else None
                if isinstance(length, int) and length >= 8:
                    hidden[length] += 1
        if is_op(node, "Reshape") and len(node.inputs) == 2 and node.inputs[1] is not None:
            dims = _target_dims(node.inputs[1])
            if dims is not None and len(dims) == 4 and dims[3] > 0:
                splits[(dims[2], dims[3])] += 1  # heads may be computed at run time (-1): hidden / head_dim
    size = hidden.most_common(1)[0][0] if hidden else 0
    heads: Counter[int] = Counter()
    for (h, d), n in splits.items():
        if h > 0 and h * d == size:
            heads[h] += n
        elif h <= 0 and size and size % d == 0:
            heads[size // d] += n
    return Shape(heads.most_common(1)[0][0] if heads else 0, size if heads else 0)


def _target_dims(value: ValueView) -> list[int] | None:
    """A Reshape target's dims: a constant, or a Concat of 1-element pieces (-1 for a piece computed at run time)."""
    whole = _constant_of(value)
    if whole is not None:
        return [int(d) for d in whole.reshape(-1).tolist()]
    concat = gu.producer(value, "Concat")
    if concat is None:
        return None
    dims = []
    for piece in concat.inputs:
        constant = _constant_of(piece)
        if constant is None:
            dims.append(-1)
        elif constant.size == 1:
            dims.append(int(constant.reshape(-1)[0]))
        else:
            return None
    return dims


def _constant_of(value: ValueView | None) -> np.ndarray | None:
    """A small constant (``graph_utils.small_constant``), or an Unsqueeze of one; else None."""
    found = gu.small_constant(value)
    if found is not None or value is None:
        return found
    unsqueeze = gu.producer(value, "Unsqueeze")
    return _constant_of(unsqueeze.inputs[0]) if unsqueeze is not None and unsqueeze.inputs else None


def ort_optimized(
    original: Path, output: Path, model_type: str, shape: Shape | None = None
) -> tuple[str | None, list[str]]:
    """Write ORT's transformers-optimized ``original`` to ``output``: (why it could not, or None; its warnings)."""
    from onnxruntime.transformers.optimizer import optimize_model

    shape = shape or Shape()
    chatter = io.StringIO()
    heard: list[str] = []

    class _Warnings(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.WARNING:
                heard.append(record.getMessage().strip().splitlines()[0][:200])

    quiet = logging.getLogger("onnxruntime.transformers")
    level, handler = quiet.level, _Warnings()
    quiet.setLevel(logging.WARNING)
    quiet.addHandler(handler)
    try:
        with (
            contextlib.redirect_stdout(chatter),
            contextlib.redirect_stderr(chatter),
            warnings.catch_warnings(record=True) as caught,
        ):
            warnings.simplefilter("always")
            optimized = optimize_model(
                str(original),
                model_type=model_type,
                num_heads=shape.num_heads,
                hidden_size=shape.hidden_size,
                opt_level=0,
                use_gpu=False,
            )
            optimized.save_model_to_file(str(output), use_external_data_format=False)
        heard += [str(w.message).strip().splitlines()[0][:200] for w in caught]
    except Exception as error:  # the optimizer does not know this graph: say so, bench the rest
        first = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        return f"ONNX Runtime's transformers optimizer ({model_type}) failed: {type(error).__name__}: {first}", heard
    finally:
        quiet.setLevel(level)
        quiet.removeHandler(handler)
        for line in chatter.getvalue().splitlines():
            logger.debug("ort optimizer: %s", line)
    return None, list(dict.fromkeys(heard))
