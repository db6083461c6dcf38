"""Comparing two tensors: error statistics and the tolerance rule.

Tolerance rule (the one ``numpy.allclose`` uses): an element fails when
``|candidate − reference| > atol + rtol · |reference|``. A tensor passes when no element fails and its
NaN/Inf positions match the reference's. Statistics are computed in float64.

Default tolerances by the candidate's element type (each overridable with ``--atol``/``--rtol``):

=========  =======  =======
dtype      atol     rtol
=========  =======  =======
float64    1e-7     1e-7
float32    1e-5     1e-4
float16    2e-2     2e-2
bfloat16   1e-1     5e-2
=========  =======  =======

fp16/bf16 candidates are meant to be compared against a float32 reference: the defaults absorb their
rounding, not a changed computation. A model that computes in a narrower type than its outputs (an fp16
model that casts its result to float32) gets the narrower type's defaults: ``verify`` passes the
narrowest float type the reference model computes in as ``floor``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import onnx_ir as ir

from normopt.engines.ir_engine import graphs_of
from normopt.ops import is_op

RULE = "fail where |candidate - reference| > atol + rtol * |reference|"

DEFAULT_TOLERANCES: dict[str, tuple[float, float]] = {
    "float64": (1e-7, 1e-7),
    "float32": (1e-5, 1e-4),
    "float16": (2e-2, 2e-2),
    "bfloat16": (1e-1, 5e-2),
}


def default_tolerance(dtype_name: str, floor: str | None = None) -> tuple[float, float]:
    """(atol, rtol) for a candidate whose element type is named ``dtype_name`` (``float16``...).

    ``floor`` names the narrowest type the computation passed through; the looser of the two applies.
    """
    base = DEFAULT_TOLERANCES.get(dtype_name, DEFAULT_TOLERANCES["float32"])
    if floor is None or floor not in DEFAULT_TOLERANCES:
        return base
    low = DEFAULT_TOLERANCES[floor]
    return max(base[0], low[0]), max(base[1], low[1])


@dataclass
class TensorStats:
    """How one candidate tensor differs from its reference."""

    name: str
    shape: list[int]
    dtype: str
    max_abs: float
    max_rel: float
    mean_abs: float
    p99_abs: float
    cosine: float
    over_tolerance: int
    nan_reference: int
    nan_candidate: int
    inf_reference: int
    inf_candidate: int
    atol: float
    rtol: float
    passed: bool
    below_resolution: bool = False  # failed, but by no more than float16 holds (see ``finer_than_float16``)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def compare(name: str, reference: np.ndarray, candidate: np.ndarray, atol: float, rtol: float) -> TensorStats:
    """Statistics of ``candidate`` against ``reference`` under the tolerance rule above."""
    if reference.shape != candidate.shape:
        return TensorStats(
            name,
            list(candidate.shape),
            str(candidate.dtype),
            float("inf"),
            float("inf"),
            float("inf"),
            float("inf"),
            0.0,
            int(candidate.size),
            0,
            0,
            0,
            0,
            atol,
            rtol,
            False,
        )
    ref = np.asarray(reference, dtype=np.float64)
    cand = np.asarray(candidate, dtype=np.float64)
    finite = np.isfinite(ref) & np.isfinite(cand)
    with np.errstate(invalid="ignore"):
        diff = np.abs(cand - ref)
    diff_f = np.where(finite, diff, 0.0)
    rel = diff_f / np.maximum(np.abs(ref), np.finfo(np.float64).tiny)
    over = finite & (diff_f > atol + rtol * np.abs(ref))
    same_special = np.array_equal(np.isnan(ref), np.isnan(cand)) and np.array_equal(
        np.where(np.isinf(ref), ref, 0), np.where(np.isinf(cand), cand, 0)
    )
    ref_f, cand_f = ref[finite], cand[finite]
    norm = float(np.linalg.norm(ref_f) * np.linalg.norm(cand_f))
    cosine = float(ref_f @ cand_f / norm) if norm > 0 else float(np.array_equal(ref_f, cand_f))
    count = int(over.sum())
    max_abs = float(diff_f.max()) if diff_f.size else 0.0
    below = count > 0 and same_special and finer_than_float16(reference, candidate, max_abs, atol)
    return TensorStats(
        name=name,
        shape=list(candidate.shape),
        dtype=str(candidate.dtype),
        max_abs=float(diff_f.max()) if diff_f.size else 0.0,
        max_rel=float(rel.max()) if rel.size else 0.0,
        mean_abs=float(diff_f.mean()) if diff_f.size else 0.0,
        p99_abs=float(np.percentile(diff_f, 99)) if diff_f.size else 0.0,
        cosine=cosine,
        over_tolerance=count,
        nan_reference=int(np.isnan(ref).sum()),
        nan_candidate=int(np.isnan(cand).sum()),
        inf_reference=int(np.isinf(ref).sum()),
        inf_candidate=int(np.isinf(cand).sum()),
        atol=atol,
        rtol=rtol,
        passed=count == 0 and same_special,
        below_resolution=below,
    )


RESOLUTION_STEPS = 2  # float16 rounding steps, at a tensor's own scale, that count as its resolution


def float16_step(magnitude: float) -> float:
    """One float16 rounding step (the spacing of float16 numbers) at ``magnitude``."""
    return float(np.spacing(np.float16(min(abs(magnitude), 65504.0))))


def finer_than_float16(reference: np.ndarray, candidate: np.ndarray, max_abs: float, atol: float) -> bool:
    """True when a float16 ``candidate`` differs by no more than float16 holds at its own scale.

    The scale is the largest finite |reference|; every difference is within ``RESOLUTION_STEPS`` float16
    rounding steps there, and ``atol`` is finer than one step: the tolerance asks for more than the
    output's dtype can say, so the failure is the tolerance's, not a node's.
    """
    if candidate.dtype != np.float16:
        return False
    ref = np.asarray(reference, dtype=np.float64)
    finite = ref[np.isfinite(ref)]
    if not finite.size:
        return False
    step = float16_step(float(np.abs(finite).max()))
    return atol < step and max_abs <= RESOLUTION_STEPS * step


def merge(a: TensorStats, b: TensorStats) -> TensorStats:
    """Worst case of two trials of the same output (counts add up, maxima win, cosine takes the min)."""
    return TensorStats(
        name=a.name,
        shape=a.shape,
        dtype=a.dtype,
        max_abs=max(a.max_abs, b.max_abs),
        max_rel=max(a.max_rel, b.max_rel),
        mean_abs=max(a.mean_abs, b.mean_abs),
        p99_abs=max(a.p99_abs, b.p99_abs),
        cosine=min(a.cosine, b.cosine),
        over_tolerance=a.over_tolerance + b.over_tolerance,
        nan_reference=a.nan_reference + b.nan_reference,
        nan_candidate=a.nan_candidate + b.nan_candidate,
        inf_reference=a.inf_reference + b.inf_reference,
        inf_candidate=a.inf_candidate + b.inf_candidate,
        atol=a.atol,
        rtol=a.rtol,
        passed=a.passed and b.passed,
        below_resolution=not (a.passed and b.passed)
        and (a.passed or a.below_resolution)
        and (b.passed or b.below_resolution),
    )


_NARROW_FLOATS = {ir.DataType.FLOAT16: "float16", ir.DataType.BFLOAT16: "bfloat16"}


def narrowest_float(model: ir.Model) -> str | None:
    """``float16``/``bfloat16`` when the model computes in that type anywhere (weights, inputs, Casts)."""
    found: set[str] = set()
    for graph in graphs_of(model):
        initializers = graph.initializers.values() if isinstance(graph, ir.Graph) else ()
        for value in (*graph.inputs, *initializers):
            if value.dtype in _NARROW_FLOATS:
                found.add(_NARROW_FLOATS[value.dtype])
        for node in graph:
            if is_op(node, "Cast"):
                to = node.attributes.get("to")
                if to is not None and ir.DataType(to.as_int()) in _NARROW_FLOATS:
                    found.add(_NARROW_FLOATS[ir.DataType(to.as_int())])
            for out in node.outputs:
                if out.dtype in _NARROW_FLOATS:
                    found.add(_NARROW_FLOATS[out.dtype])
    for name in ("bfloat16", "float16"):
        if name in found:
            return name
    return None


def compare_outputs(
    ref_out: dict[str, np.ndarray],
    cand_out: dict[str, np.ndarray],
    atol: float | None,
    rtol: float | None,
    floor: str | None = None,
) -> list[TensorStats]:
    """Stats for every output, with per-dtype default tolerances where none are given.

    ``floor``: the narrowest float type the reference computes in (see ``narrowest_float``).
    """
    stats = []
    for name, ref in ref_out.items():
        cand = cand_out[name]
        d_atol, d_rtol = default_tolerance(str(cand.dtype), floor)
        stats.append(compare(name, ref, cand, d_atol if atol is None else atol, d_rtol if rtol is None else rtol))
    return stats
