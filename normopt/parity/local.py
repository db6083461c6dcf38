"""Noise or harm: each fused node on the original's own activations, and the original's own sensitivity.

An end-to-end difference can come from a fused node that computes something else, or from a model that
amplifies any tiny change (quantization after the norms, chaotic decoders): a fused node exact to 1e-7
can still move such a model's output by a lot. This module tells the two apart with two measurements:

- **local error** of every fused node: the node alone, fed the original model's own values at its inputs
  (the fused node keeps the names of what it reads and of the tensor it replaces), against the original's
  value of that tensor — no upstream difference reaches it;
- **sensitivity** of the original: the relative change of its outputs when its float inputs are nudged by
  the size of the worst local error (seeded noise, relative to each value).

``local_check`` returns both with a conclusion; ``verify(local=True)`` lets the per-node check decide.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx_ir as ir

from normopt import modelio
from normopt.feeds import ortsession
from normopt.feeds.runs import run_one
from normopt.parity.compare import TensorStats, compare, default_tolerance
from normopt.parity.localize import fused_nodes, shared_tensors, with_outputs

WITHIN = 10.0  # an end-to-end difference up to this multiple of the sensitivity is "within" it


@dataclass
class NodeError:
    """One fused node against the original's value of the tensor it replaces."""

    node: str
    op_type: str
    tensor: str
    max_abs: float
    relative: float  # max_abs / max |original value|
    passed: bool  # within the tolerance (given, else the dtype's default)


@dataclass
class LocalCheck:
    """Per-node local errors, the original's sensitivity, and what they say together."""

    nodes: list[NodeError]
    worst_relative: float
    end_to_end: float  # relative L2 difference of the outputs, original vs fused, on the same feeds
    perturbation: float | None  # the relative nudge given to the original's float inputs
    sensitivity: float | None  # the relative L2 change of the original's outputs under that nudge
    passed: bool  # every fused node within tolerance on its own
    conclusion: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {**asdict(self), "nodes": [asdict(n) for n in self.nodes]}


def _relative_l2(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    worst = 0.0
    for name, x in a.items():
        ref, other = np.asarray(x, dtype=np.float64), np.asarray(b[name], dtype=np.float64)
        finite = np.isfinite(ref) & np.isfinite(other)
        norm = float(np.linalg.norm(ref[finite]))
        diff = float(np.linalg.norm((other - ref)[finite]))
        worst = max(worst, diff / norm if norm > 0 else (0.0 if diff == 0 else float("inf")))
    return worst


def _alone(node: ir.Node, values: dict[str, np.ndarray], model: ir.Model) -> ir.Model | None:
    """``node`` as a one-node model reading ``values`` (its weights copied), or None when a value is missing."""
    inputs: list[ir.Value | None] = []
    graph_inputs: list[ir.Value] = []
    initializers: list[ir.Value] = []
    for value in node.inputs:
        if value is None:
            inputs.append(None)
            continue
        if value.const_value is not None:
            copy = ir.Value(name=value.name, type=value.type, shape=value.shape, const_value=value.const_value)
            initializers.append(copy)
        elif value.name in values:
            array = values[value.name]
            dtype = ir.DataType.from_numpy(array.dtype)
            copy = ir.Value(name=value.name, type=ir.TensorType(dtype), shape=ir.Shape(array.shape))
            graph_inputs.append(copy)
        else:
            return None
        inputs.append(copy)
    outputs = [ir.Value(name=o.name) for o in node.outputs]
    attributes = [ir.Attr(a.name, a.type, a.value) for a in node.attributes.values()]
    alone = ir.Node(node.domain, node.op_type, inputs, attributes=attributes, outputs=outputs)
    graph = ir.Graph(graph_inputs, outputs[:1], nodes=[alone], initializers=initializers,
                     opset_imports=dict(model.opset_imports))  # fmt: skip
    return ir.Model(graph, ir_version=model.ir_version)


def _node_errors(
    reference: Path, candidate: Path, feeds: dict[str, np.ndarray], atol: float | None, rtol: float | None
) -> list[NodeError]:
    model = modelio.load(candidate)
    nodes = fused_nodes(model)
    wanted = shared_tensors(nodes, modelio.load(reference))
    if not nodes or not wanted:
        return []
    with with_outputs(reference, wanted) as path:
        session = ortsession.create(path, "cpu", "disable")
        values = {**feeds, **run_one(session, feeds, "reference", wanted)}
    errors = []
    for node in nodes:
        y = node.outputs[0].name or ""
        alone = _alone(node, values, model) if y in values else None
        if alone is None:
            continue
        session = ortsession.create(modelio.serialize(alone), "cpu", "disable")
        given = {name: values[name] for name in (v.name or "" for v in alone.graph.inputs)}
        got = run_one(session, given, "fused node", [y])[y]
        want = values[y]
        d_atol, d_rtol = default_tolerance(str(got.dtype))
        stats: TensorStats = compare(y, want, got, d_atol if atol is None else atol, d_rtol if rtol is None else rtol)
        scale = float(np.max(np.abs(want[np.isfinite(want)]))) if np.isfinite(want).any() else 0.0
        relative = stats.max_abs / scale if scale > 0 else (0.0 if stats.max_abs == 0 else float("inf"))
        name = node.name or f"the unnamed {node.op_type} writing {y}"
        errors.append(NodeError(name, node.op_type, y, stats.max_abs, relative, stats.passed))
    return errors


def local_check(
    reference: str | Path,
    candidate: str | Path,
    feeds: dict[str, np.ndarray],
    atol: float | None = None,
    rtol: float | None = None,
    seed: int = 0,
) -> LocalCheck:
    """Each fused node's local error, the original's sensitivity to a nudge that size, and the conclusion."""
    reference, candidate = Path(reference), Path(candidate)
    errors = _node_errors(reference, candidate, feeds, atol, rtol)
    ref_session, cand_session = ortsession.create_pair(reference, candidate, "cpu", "disable")
    original = run_one(ref_session, feeds, "reference")
    fused = run_one(cand_session, feeds, "candidate")
    end_to_end = _relative_l2(original, fused)
    worst = max((e.relative for e in errors), default=0.0)
    floats = {k: v for k, v in feeds.items() if np.issubdtype(v.dtype, np.floating)}
    perturbation = sensitivity = None
    if floats:
        perturbation = max(worst, float(np.finfo(np.float32).eps))
        rng = np.random.default_rng(seed)
        nudged = dict(feeds)
        for name, array in floats.items():
            noise = rng.uniform(-1.0, 1.0, array.shape)
            nudged[name] = (array * (1.0 + perturbation * noise)).astype(array.dtype)
        sensitivity = _relative_l2(original, run_one(ref_session, nudged, "reference"))
    failed = [e for e in errors if not e.passed]
    if failed:
        first = failed[0]
        conclusion = (
            f"fused node {first.node} ({first.op_type}) changes its output by {first.max_abs:.3g} "
            f"({first.relative:.2e} of its largest value) on the original's own activations: that fusion "
            "is where the difference comes from"
        )
    elif not errors:
        conclusion = "no fused node could be checked on its own (none, or its tensors are not in the original)"
    elif sensitivity is None:
        conclusion = (
            f"the {len(errors)} fused nodes are exact to {worst:.2e} (relative) on the original's own activations; "
            "the original's sensitivity is not measured (it has no float input to nudge)"
        )
    elif end_to_end <= WITHIN * max(sensitivity, float(np.finfo(np.float64).tiny)):
        conclusion = (
            f"the {len(errors)} fused nodes are exact to {worst:.2e} (relative) on the original's own activations; "
            f"the end-to-end difference ({end_to_end:.2e}, relative L2) is within the model's own sensitivity "
            f"(nudging its float inputs by {perturbation:.2e} moves the original itself by {sensitivity:.2e})"
        )
    else:
        conclusion = (
            f"the {len(errors)} fused nodes are exact to {worst:.2e} (relative) on the original's own activations, "
            f"but the end-to-end difference ({end_to_end:.2e}, relative L2) is more than {WITHIN:g}x what a nudge "
            f"that size does to the original ({sensitivity:.2e}): look for the cause outside the fused nodes"
        )
    return LocalCheck(errors, worst, end_to_end, perturbation, sensitivity, not failed, conclusion)
