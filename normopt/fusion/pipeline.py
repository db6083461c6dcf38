"""The fusion pipeline: LayerNorm pass, RMSNorm pass, then (for ``--target ort``) the Skip pass."""

from __future__ import annotations

import logging

import onnx_ir as ir

from normopt.fusion import graph_utils as gu
from normopt.fusion.base import FusionContext
from normopt.fusion.emit import TARGETS, Target
from normopt.fusion.layernorm import LayerNormPass
from normopt.fusion.result import FusionResult
from normopt.fusion.rmsnorm import RMSNormPass
from normopt.fusion.skip import SkipNormPass
from normopt.modelio.protograph import ProtoGraph

logger = logging.getLogger(__name__)

# Shape inference costs seconds on very large graphs; the passes do without it (negative axes,
# static gamma shapes), so it only runs below this size, where it lets more candidates be proven.
SHAPE_INFERENCE_MAX_NODES = 10_000


def count_nodes(model: ir.Model | ProtoGraph) -> int:
    """Nodes in every graph, subgraph and function of ``model``."""
    return sum(len(g) for g in gu.graphs_of(model))


def _infer_shapes(model: ir.Model) -> None:
    from onnx_ir.passes.common import ShapeInferencePass

    try:
        ShapeInferencePass(strict_mode=False, check_type=False)(model)
    except Exception as error:
        logger.warning("shape inference skipped: %s", error)


def wants_skip(target: Target, skip: bool | None) -> bool:
    """Whether the Skip pass runs: as asked, else only for ``ort`` (its Skip* ops are ORT's)."""
    return bool(skip) or (skip is None and target == "ort")


def fuse_model(
    model: ir.Model | ProtoGraph, target: Target = "auto", skip: bool | None = None, infer_shapes: bool | None = None
) -> FusionResult:
    """Fuse every decomposed LayerNorm and RMSNorm of ``model`` in place.

    Args:
        model: The model, modified in place: an onnx_ir model, or a flat ``ProtoGraph`` (no Skip pass
            there; ``normopt.fuse`` picks it for big flat graphs).
        target: ``auto``, ``onnx`` or ``ort`` (see ``normopt.fusion.emit``).
        skip: Merge residual Adds into Skip* ops; defaults to True for ``ort`` and is refused for ``onnx``.
        infer_shapes: Run ONNX shape inference first. By default: below 10,000 nodes for onnx_ir models
            (onnx_ir's pass costs seconds on big graphs); for a ``ProtoGraph``, ONNX's C++ inference
            (~8 µs a node) runs when a first attempt without it leaves candidates unfused while some
            ReduceMean reads a value with no declared type or shape, and the graph is fused again
            from scratch with the inferred types.

    Returns:
        Counts, per-candidate records and rejection reasons.

    """
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
    if skip and target == "onnx":
        raise ValueError("Skip* ops are ONNX Runtime contrib ops; use --target ort or auto for --skip")
    if isinstance(model, ProtoGraph):
        if skip:
            raise ValueError("the protobuf fast path has no Skip pass")
        if infer_shapes is not None:
            if infer_shapes:
                model.infer_shapes()
            return _run_passes(model, target, skip=False)
        untyped = model.untyped_reductions()
        pristine = model.snapshot() if untyped else None
        result = _run_passes(model, target, skip=False)
        if pristine is not None and result.fused < result.candidates:
            model.restore(pristine)
            model.infer_shapes()
            result = _run_passes(model, target, skip=False)
        return result
    if infer_shapes or (infer_shapes is None and count_nodes(model) < SHAPE_INFERENCE_MAX_NODES):
        _infer_shapes(model)
    return _run_passes(model, target, skip)


def _run_passes(model: ir.Model | ProtoGraph, target: Target, skip: bool | None) -> FusionResult:
    ctx = FusionContext(model=model, target=target)
    result = FusionResult(target=target, opset=model.opset_imports.get("", 1), nodes_before=count_nodes(model))
    passes: list[LayerNormPass | RMSNormPass | SkipNormPass] = [LayerNormPass(), RMSNormPass()]
    if wants_skip(target, skip):
        passes.append(SkipNormPass())
    for fusion_pass in passes:
        result.details.extend(fusion_pass.run(ctx))
    result.nodes_after = count_nodes(model)
    return result
