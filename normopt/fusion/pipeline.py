"""The fusion pipeline: LayerNorm pass, RMSNorm pass, then (for ``--target ort``) the Skip pass."""

from __future__ import annotations

import logging
from collections.abc import Callable

import onnx_ir as ir

from normopt.choices import TARGETS, Target
from normopt.engines.ir_engine import engine_for, ir_engine
from normopt.engines.postcondition import Snapshot
from normopt.engines.views import Engine
from normopt.errors import UsageError, option
from normopt.fusion.base import FusionContext
from normopt.fusion.layernorm import LayerNormPass
from normopt.fusion.result import FusionResult
from normopt.fusion.rmsnorm import RMSNormPass
from normopt.fusion.skip import SkipNormPass
from normopt.ops import is_norm_op

logger = logging.getLogger(__name__)


def count_nodes(model: ir.Model | Engine) -> int:
    """Nodes in every graph, subgraph and function of ``model``."""
    return engine_for(model).count_nodes()


def wants_skip(target: Target, skip: bool | None) -> bool:
    """Whether the Skip pass runs: as asked, else only for ``ort`` (its Skip* ops are ORT's)."""
    return bool(skip) or (skip is None and target == "ort")


def option_problem(target: str, skip: bool | None) -> str | None:
    """Why the passes cannot honour this target/skip combination, or None (one rule for API, CLI and pass)."""
    if target not in TARGETS:
        return f"unknown target {target!r}; choose one of {', '.join(TARGETS)}"
    if skip and target == "onnx":
        return f"Skip* ops are ONNX Runtime contrib ops; use {option('--target', 'ort')} or auto for {option('--skip')}"
    return None


def norm_ops(engine: Engine) -> dict[str, int]:
    """The fused norm operators already in the model, by op type (what there is nothing left to fuse in)."""
    found: dict[str, int] = {}
    for scope in engine.scopes():
        for node in scope.graph:
            if is_norm_op(node):
                found[node.op_type] = found.get(node.op_type, 0) + 1
    return found


def fuse_model(
    model: ir.Model | Engine,
    target: Target = "auto",
    skip: bool | None = None,
    infer_shapes: bool = True,
    check: bool = True,
    progress: Callable[[str, int, int], None] | None = None,
) -> FusionResult:
    """Fuse every decomposed LayerNorm and RMSNorm of ``model`` in place.

    Args:
        model: The model, modified in place: an onnx_ir model, or another ``views.Engine`` such as a
            flat ``ProtoGraph`` (no Skip pass there; ``normopt.fuse`` picks it for big flat graphs).
        target: ``auto``, ``onnx`` or ``ort`` (see ``normopt.fusion.emit``).
        skip: Merge residual Adds into Skip* ops; defaults to True for ``ort`` and is refused for ``onnx``.
        infer_shapes: Run ONNX's shape inference first (default True), on the side: the matcher
            proves with what it infers, the output keeps only the model's own declarations. The same
            policy for both engines, so what is fused never depends on the graph's size.
        check: Check the postcondition (``postcondition``) on the result (default True; ``FuseNorms``
            checks it in its own ``requires``/``ensures``).
        progress: Called as ``progress(phase, done, total)`` while each pass walks its candidates' anchors.

    Returns:
        Counts, per-candidate records and rejection reasons.

    Raises:
        PostconditionFailed: The rewritten model breaks a structural fact the input kept (a normopt bug).

    """
    problem = option_problem(target, skip)
    if problem is not None:
        raise UsageError(problem)
    engine = engine_for(model)
    skipping = wants_skip(target, skip)
    skip_engine = ir_engine(engine) if skipping else None
    if skipping and skip_engine is None:
        raise UsageError("the Skip pass needs an onnx_ir model (the protobuf fast path has none)")
    before = Snapshot.of(engine.facts()) if check else None
    undo = engine.infer_shapes() if infer_shapes else None
    try:
        ctx = FusionContext(engine=engine, target=target, progress=progress)
        result = FusionResult(target=target, opset=engine.opset_imports.get("", 1), nodes_before=engine.count_nodes())
        result.existing_norm_ops = norm_ops(engine)
        result.details.extend(LayerNormPass().run(ctx))
        result.details.extend(RMSNormPass().run(ctx))
        if skip_engine is not None:
            result.details.extend(SkipNormPass().run(ctx, skip_engine))
        result.nodes_after = engine.count_nodes()
    finally:
        if undo is not None:
            undo()
    if before is not None:
        before.ensure(engine.facts())
    return result
