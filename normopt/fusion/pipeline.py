"""The fusion pipeline: LayerNorm pass, RMSNorm pass, then (for ``--target ort``) the Skip pass."""

from __future__ import annotations

import logging

import onnx_ir as ir

from normopt.choices import TARGETS, Target
from normopt.fusion import graph_utils as gu
from normopt.fusion.base import FusionContext
from normopt.fusion.layernorm import LayerNormPass
from normopt.fusion.result import FusionResult
from normopt.fusion.rmsnorm import RMSNormPass
from normopt.fusion.skip import SkipNormPass
from normopt.modelio.inference import Annotations, infer_model
from normopt.modelio.protograph import ProtoGraph

logger = logging.getLogger(__name__)


def count_nodes(model: ir.Model | ProtoGraph) -> int:
    """Nodes in every graph, subgraph and function of ``model``."""
    return sum(len(g) for g in gu.graphs_of(model))


def wants_skip(target: Target, skip: bool | None) -> bool:
    """Whether the Skip pass runs: as asked, else only for ``ort`` (its Skip* ops are ORT's)."""
    return bool(skip) or (skip is None and target == "ort")


def option_problem(target: str, skip: bool | None) -> str | None:
    """Why the passes cannot honour this target/skip combination, or None (one rule for API, CLI and pass)."""
    if target not in TARGETS:
        return f"unknown target {target!r}; choose one of {', '.join(TARGETS)}"
    if skip and target == "onnx":
        return "Skip* ops are ONNX Runtime contrib ops; use --target ort or auto for --skip"
    return None


def fuse_model(
    model: ir.Model | ProtoGraph, target: Target = "auto", skip: bool | None = None, infer_shapes: bool = True
) -> FusionResult:
    """Fuse every decomposed LayerNorm and RMSNorm of ``model`` in place.

    Args:
        model: The model, modified in place: an onnx_ir model, or a flat ``ProtoGraph`` (no Skip pass
            there; ``normopt.fuse`` picks it for big flat graphs).
        target: ``auto``, ``onnx`` or ``ort`` (see ``normopt.fusion.emit``).
        skip: Merge residual Adds into Skip* ops; defaults to True for ``ort`` and is refused for ``onnx``.
        infer_shapes: Run ONNX's shape inference first (default True), on the side: the matcher
            proves with what it infers, the output keeps only the model's own declarations. The same
            policy for both engines, so what is fused never depends on the graph's size.

    Returns:
        Counts, per-candidate records and rejection reasons.

    """
    problem = option_problem(target, skip)
    if problem is not None:
        raise ValueError(problem)
    if isinstance(model, ProtoGraph):
        if skip:
            raise ValueError("the protobuf fast path has no Skip pass")
        if infer_shapes:
            model.infer_shapes()
        return _run_passes(model, target, skip=False, annotations=None)
    annotations = infer_model(model) if infer_shapes else None
    try:
        return _run_passes(model, target, skip, annotations)
    finally:
        if annotations is not None:
            annotations.restore()


def _run_passes(
    model: ir.Model | ProtoGraph, target: Target, skip: bool | None, annotations: Annotations | None
) -> FusionResult:
    ctx = FusionContext(model=model, target=target, annotations=annotations or Annotations())
    result = FusionResult(target=target, opset=model.opset_imports.get("", 1), nodes_before=count_nodes(model))
    passes: list[LayerNormPass | RMSNormPass | SkipNormPass] = [LayerNormPass(), RMSNormPass()]
    if wants_skip(target, skip):
        passes.append(SkipNormPass())
    for fusion_pass in passes:
        result.details.extend(fusion_pass.run(ctx))
    result.nodes_after = count_nodes(model)
    return result
