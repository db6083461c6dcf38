"""The ONNX standard's own function bodies, as onnx's node-test generator writes them, fused and checked
against the outputs onnx ships with each test.

RMSNormalization-23: its reduction axes are computed, ``Range(axis (+ rank), Size(Shape(X)), 1)`` — constant once
X's rank is known, so normopt proves them and fuses all 19 expanded models; with X of unknown rank the same
spelling proves nothing and is refused with the reason. LayerNormalization-17 (38 models) and
GroupNormalization-21 (2) write the variance as E[x²] − E[x]²: the same function, fused as LayerNormalization.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h

from normopt import fusing
from tests.conftest import op_counts, run_ort


def _cases() -> list[Any]:
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the generator's own numpy casts warn
        return [
            c for c in collect_testcases(None) if c.name.startswith("test_rms_normalization") and "expanded" in c.name
        ]


CASES = _cases()


def test_onnx_ships_the_19_expanded_rms_bodies() -> None:
    assert len(CASES) == 19


@pytest.mark.parametrize("case", CASES, ids=[c.name.removeprefix("test_rms_normalization_") for c in CASES])
def test_expanded_rms_body_is_fused_and_matches_the_shipped_outputs(case: Any, tmp_path: Path) -> None:
    source = tmp_path / "body.onnx"
    onnx.save(case.model, source)
    outcome = fusing.fuse(source, tmp_path / "fused.onnx")
    assert (outcome.result.fused, outcome.result.candidates) == (1, 1), outcome.result.to_dict()
    counts = op_counts(outcome.output)
    assert counts["RMSNormalization"] == 1  # opset 23: the standard op
    assert not {"Range", "Size", "Shape", "ReduceMean", "Sqrt"} & set(counts)  # the axes computation went too
    inputs, outputs = case.data_sets[0]
    names = [i.name for i in case.model.graph.input]
    got = run_ort(outcome.output, dict(zip(names, inputs, strict=True)))
    for have, want in zip(got, outputs, strict=True):
        np.testing.assert_allclose(have, want, atol=1e-5, rtol=1e-4)  # onnx's own reference output


def test_axes_from_the_rank_of_an_unknown_rank_input_are_refused(tmp_path: Path) -> None:
    x = h.make_tensor_value_info("x", T.FLOAT, None)  # no shape: its rank is not known
    nodes = [
        h.make_node("Shape", ["x"], ["shape"]),
        h.make_node("Size", ["shape"], ["rank"]),
        h.make_node("Constant", [], ["minus_one"], value=onnx.numpy_helper.from_array(np.array(-1, np.int64))),
        h.make_node("Add", ["rank", "minus_one"], ["start"]),
        h.make_node("Constant", [], ["one"], value=onnx.numpy_helper.from_array(np.array(1, np.int64))),
        h.make_node("Range", ["start", "rank", "one"], ["axes"]),
        h.make_node("Mul", ["x", "x"], ["sq"]),
        h.make_node("ReduceMean", ["sq", "axes"], ["ms"]),
        h.make_node("Constant", [], ["eps"], value=onnx.numpy_helper.from_array(np.array(1e-6, np.float32))),
        h.make_node("Add", ["ms", "eps"], ["ve"]),
        h.make_node("Sqrt", ["ve"], ["rms"]),
        h.make_node("Div", ["x", "rms"], ["y"]),
    ]
    graph = h.make_graph(nodes, "unknown_rank", [x], [h.make_tensor_value_info("y", T.FLOAT, None)])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 18)], ir_version=10)
    source = tmp_path / "unknown_rank.onnx"
    onnx.save(model, source)  # (onnx.checker would refuse the shapeless input; ONNX Runtime runs it)
    outcome = fusing.fuse(source, tmp_path / "fused.onnx")
    assert (outcome.result.fused, outcome.result.candidates) == (0, 1)
    assert outcome.result.details[0].reason == "reduction axes are not a constant"
    assert op_counts(outcome.output) == op_counts(source)
    feeds = {"x": np.random.default_rng(0).standard_normal((2, 3, 8)).astype(np.float32)}
    np.testing.assert_array_equal(run_ort(outcome.output, feeds)[0], run_ort(source, feeds)[0])


def _bodies(prefix: str) -> list[Any]:
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = collect_testcases(None)
    return [c for c in cases if c.name.startswith(prefix) and "expanded" in c.name]


LAYER_NORM_BODIES = _bodies("test_layer_normalization")
GROUP_NORM_BODIES = _bodies("test_group_normalization")


def test_onnx_ships_38_layer_norm_and_2_group_norm_bodies() -> None:
    assert (len(LAYER_NORM_BODIES), len(GROUP_NORM_BODIES)) == (38, 2)


def _matches_shipped_outputs(case: Any, fused: Path) -> None:
    inputs, outputs = case.data_sets[0]
    names = [i.name for i in case.model.graph.input]
    got = run_ort(fused, dict(zip(names, inputs, strict=True)))
    for have, want in zip(got, outputs, strict=True):
        np.testing.assert_allclose(have, want, atol=1e-5, rtol=1e-4)  # onnx's own reference output


@pytest.mark.parametrize(
    "case", LAYER_NORM_BODIES, ids=[c.name.removeprefix("test_layer_normalization_") for c in LAYER_NORM_BODIES]
)
def test_expanded_layer_norm_body_is_fused_and_matches_the_shipped_outputs(case: Any, tmp_path: Path) -> None:
    """The LayerNormalization-17 body writes the variance as E[x²] − E[x]²: the same function, fused.

    The body also outputs the mean and 1/σ: the nodes computing them stay (``kept_nodes``), the normalization
    itself becomes one node; what is left of the E[x²] is named for what it is, not taken for an RMSNorm."""
    source = tmp_path / "body.onnx"
    onnx.save(case.model, source)
    outcome = fusing.fuse(source, tmp_path / "fused.onnx")
    fused = [c for c in outcome.result.details if c.status == "fused"]
    assert len(fused) == 1 and fused[0].rule is not None and fused[0].rule.startswith("layernorm/moments+"), fused
    assert op_counts(outcome.output)["LayerNormalization"] == 1
    for record in outcome.result.details:
        if record.status != "fused":
            assert record.kind == "RMSNorm" and "E[x²] of a variance written as E[x²] − E[x]²" in (record.reason or "")
    _matches_shipped_outputs(case, outcome.output)


@pytest.mark.parametrize("case", GROUP_NORM_BODIES, ids=[c.name for c in GROUP_NORM_BODIES])
def test_expanded_group_norm_body_is_a_layer_norm_over_the_groups(case: Any, tmp_path: Path) -> None:
    """GroupNormalization-21's body normalizes Reshape(x, [N, G, -1]) over its last axis, then applies γ and β per
    channel: the norm is a LayerNormalization over the reshaped tensor (γ and β, per channel, stay outside), and
    the output matches what onnx ships."""
    source = tmp_path / "body.onnx"
    onnx.save(case.model, source)
    before = op_counts(source)
    outcome = fusing.fuse(source, tmp_path / "fused.onnx")
    assert (outcome.result.fused, outcome.result.candidates) == (1, 1), outcome.result.to_dict()
    after = op_counts(outcome.output)
    assert after["LayerNormalization"] == 1 and not {"ReduceMean", "Sqrt"} & set(after), after
    assert after["Mul"] == after["Add"] == 1 and after["Reshape"] == before["Reshape"]  # γ, β; the reshapes stay
    _matches_shipped_outputs(case, outcome.output)
