"""Localization: which fused node makes the candidate diverge.

A fused node keeps the names of the tensors it reads and of the tensor it replaces, so those tensors
exist in both graphs. They are exposed as extra outputs of both models, both run on the failing inputs,
and the fused nodes are walked in graph order: the first one whose output is out of tolerance is
named, together with whether its inputs still matched (if they did, that node is responsible).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import onnx_ir as ir

from normopt import modelio
from normopt.feeds import ortsession
from normopt.feeds.runs import run_pair
from normopt.ops import is_norm_op
from normopt.parity.compare import compare_outputs, narrowest_float


def fused_nodes(model: ir.Model) -> list[ir.Node]:
    """Norm nodes of the main graph, in graph order (the nodes normopt or another fuser emitted)."""
    return [n for n in model.graph if is_norm_op(n) or (n.name or "").startswith("normopt/")]


def _tensor_names(values: Any) -> list[str]:
    """Computed tensors among ``values``: graph inputs (the same feeds on both sides) and weights are not."""
    return [v.name for v in values if v is not None and v.name and not v.is_initializer() and not v.is_graph_input()]


def shared_tensors(nodes: list[ir.Node], reference: ir.Model) -> list[str]:
    """The computed tensors ``nodes`` read or write that ``reference`` has too (same names), in node order."""
    ref_values = ir.convenience.create_value_mapping(reference.graph)
    wanted: list[str] = []
    for node in nodes:
        for name in _tensor_names([*node.inputs, *node.outputs]):
            if name in ref_values and name not in wanted:
                wanted.append(name)
    return wanted


@contextmanager
def with_outputs(path: Path, names: list[str]) -> Iterator[Path]:
    """A temporary copy of the model at ``path`` exposing ``names`` as outputs, beside the original."""
    model = modelio.load(path)
    modelio.add_outputs(model, names)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.localize.", suffix=".onnx", dir=path.parent)
    except OSError:
        fd, tmp = tempfile.mkstemp(suffix=".onnx")
        ir.external_data.load_to_model(model)
    os.close(fd)
    try:
        modelio.save(model, tmp, external="same" if modelio.external_files(model) else "inline")
        yield Path(tmp)
    finally:
        os.unlink(tmp)


def first_divergence(
    reference: Path,
    candidate: Path,
    feeds: dict[str, np.ndarray],
    provider: ortsession.Provider,
    atol: float | None,
    rtol: float | None,
) -> dict[str, Any]:
    """Name the first fused node whose output diverges, with the stats of that tensor.

    Returns:
        ``{"node", "op_type", "tensor", "inputs_matched", "stats"}``; ``node`` is None (with a ``note``)
        when every fused node's output still matches and the difference starts elsewhere.

    """
    cand_model = modelio.load(candidate)
    ref_model = modelio.load(reference)
    nodes = fused_nodes(cand_model)
    wanted = shared_tensors(nodes, ref_model)
    if not wanted:
        return {"node": None, "note": "the graphs share no tensor at any fused node", "stats": None}
    with with_outputs(reference, wanted) as ref_path, with_outputs(candidate, wanted) as cand_path:
        ref_sess, cand_sess = ortsession.create_pair(ref_path, cand_path, provider, "disable")
        ref_out, cand_out = run_pair(ref_sess, cand_sess, feeds, wanted)
    stats = {s.name: s for s in compare_outputs(ref_out, cand_out, atol, rtol, narrowest_float(ref_model))}
    for node in nodes:
        outs = [stats[n] for n in _tensor_names(node.outputs) if n in stats]
        bad = next((s for s in outs if not s.passed), None)
        if bad is None:
            continue
        ins = [stats[n] for n in _tensor_names(node.inputs) if n in stats]
        first = next((v.name for v in node.outputs if v.name), "?")
        if bad.below_resolution and all(s.passed for s in ins):
            note = (
                f"the first fused node whose output differs ({node.name or first}) differs by at most two "
                "float16 rounding steps at its own scale, and the tolerance is finer than one: rounding"
            )
            return {"node": None, "note": note, "stats": bad.to_dict(), "below_resolution": True}
        return {
            "node": node.name or f"the unnamed {node.op_type} writing {first}",
            "op_type": node.op_type,
            "tensor": bad.name,
            "inputs_matched": all(s.passed for s in ins),
            "stats": bad.to_dict(),
        }
    return {"node": None, "note": "every fused node's output matches; the difference starts elsewhere", "stats": None}
