"""Do no harm: fused models load where the input did, compute the same thing, and stay in their scopes.

Each test builds a model that once made normopt write a broken or different model (issue: do no harm),
fuses it through the real API, loads the output in ONNX Runtime and compares it with the original under
stress inputs. The single-norm traps (overridable ε, ε of rank 4, float64 ε underflow, fp16 Cast sandwich,
keepdims=0 sum with a [1]-shaped 1/N) are reference graphs in graphs/ (test_graphs.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h

from normopt import fusing, modelio
from normopt.engines import protograph
from tests.stress import MODES, assert_same_computation, feeds, session

IR = 10


def _ln_nodes(x: str, prefix: str, eps: str, gamma: str) -> list[onnx.NodeProto]:
    """A decomposed LayerNorm of ``x`` whose value names are ``prefix``-based (so branches can reuse them)."""
    p = prefix
    return [
        h.make_node("ReduceMean", [x], [f"{p}mean"], axes=[-1]),
        h.make_node("Sub", [x, f"{p}mean"], [f"{p}d"]),
        h.make_node("Mul", [f"{p}d", f"{p}d"], [f"{p}sq"]),
        h.make_node("ReduceMean", [f"{p}sq"], [f"{p}var"], axes=[-1]),
        h.make_node("Add", [f"{p}var", eps], [f"{p}ve"]),
        h.make_node("Sqrt", [f"{p}ve"], [f"{p}std"]),
        h.make_node("Div", [f"{p}d", f"{p}std"], [f"{p}n"]),
        h.make_node("Mul", [f"{p}n", gamma], [f"{p}y"]),
    ]


def _merged_decoder(path: Path) -> Path:
    """An Optimum-style merged decoder: If(use_cache_branch) whose branches reuse value names with other shapes."""
    eps = h.make_tensor("eps", T.FLOAT, [], [1e-5])
    gamma = h.make_tensor("gamma", T.FLOAT, [8], np.linspace(0.5, 1.5, 8).tolist())
    shape = h.make_tensor("shape", T.INT64, [2], [-1, 8])
    # with cache: x [2, 3, 8] flattened to [6, 8] first; without: x as it is. Both name the tensor "t".
    with_cache = h.make_graph(
        [
            h.make_node("Reshape", ["x", "shape"], ["t"]),
            *_ln_nodes("t", "", "eps", "gamma"),
            h.make_node("Identity", ["y"], ["out_then"]),
        ],
        "with_cache",
        [],
        [h.make_tensor_value_info("out_then", T.FLOAT, None)],
    )
    without = h.make_graph(
        [
            h.make_node("Identity", ["x"], ["t"]),
            *_ln_nodes("t", "", "eps", "gamma"),
            h.make_node("Identity", ["y"], ["out_else"]),
        ],
        "without_cache",
        [],
        [h.make_tensor_value_info("out_else", T.FLOAT, None)],
    )
    graph = h.make_graph(
        [h.make_node("If", ["use_cache_branch"], ["logits"], then_branch=with_cache, else_branch=without)],
        "merged",
        [h.make_tensor_value_info("x", T.FLOAT, [2, 3, 8]), h.make_tensor_value_info("use_cache_branch", T.BOOL, [1])],
        [h.make_tensor_value_info("logits", T.FLOAT, None)],
        [eps, gamma, shape],
    )
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)], ir_version=IR)
    onnx.save(model, path)
    return path


@pytest.mark.parametrize("target", ["auto", "ort"])
def test_merged_decoder_loads_and_matches_on_both_branches(target: str, tmp_path: Path) -> None:
    source = _merged_decoder(tmp_path / "decoder_model_merged.onnx")
    outcome = fusing.fuse(source, tmp_path / "fused.onnx", target=target)
    assert outcome.result.fused == 2
    original, fused = session(source), session(outcome.output)
    for flag in (True, False):
        for mode in MODES:
            inputs = feeds(original, mode, fixed={"use_cache_branch": np.array([flag])})
            assert_same_computation(source, fused, original, inputs, mode)
    written = onnx.load(outcome.output)
    for branch in written.graph.node[0].attribute:
        assert not [v for v in branch.g.value_info if v.name == "t"], "inferred annotations were written"


def test_fuse_writes_no_inferred_annotations(tmp_path: Path) -> None:
    source = _merged_decoder(tmp_path / "m.onnx")
    before = {v.name for v in onnx.load(source).graph.value_info}
    outcome = fusing.fuse(source, tmp_path / "fused.onnx")
    written = onnx.load(outcome.output)
    initializers = {t.name for t in written.graph.initializer}  # onnx_ir declares their (true) types
    assert {v.name for v in written.graph.value_info} - initializers <= before


def _norm_in_branch_of_outer_add(path: Path) -> Path:
    """A residual Add in the main graph whose sum a LayerNorm inside an If branch normalizes."""
    gamma = h.make_tensor("gamma", T.FLOAT, [8], [1.0] * 8)
    beta = h.make_tensor("beta", T.FLOAT, [8], [0.0] * 8)
    branch = h.make_graph(
        [h.make_node("LayerNormalization", ["s", "gamma", "beta"], ["y"], axis=-1, epsilon=1e-5)],
        "then",
        [],
        [h.make_tensor_value_info("y", T.FLOAT, [2, 3, 8])],
    )
    other = h.make_graph(
        [h.make_node("Identity", ["s"], ["z"])], "else", [], [h.make_tensor_value_info("z", T.FLOAT, [2, 3, 8])]
    )
    graph = h.make_graph(
        [
            h.make_node("Add", ["a", "b"], ["s"]),
            h.make_node("If", ["cond"], ["out"], then_branch=branch, else_branch=other),
        ],
        "outer_add",
        [
            h.make_tensor_value_info("a", T.FLOAT, [2, 3, 8]),
            h.make_tensor_value_info("b", T.FLOAT, [2, 3, 8]),
            h.make_tensor_value_info("cond", T.BOOL, []),
        ],
        [h.make_tensor_value_info("out", T.FLOAT, [2, 3, 8])],
        [gamma, beta],
    )
    onnx.save(h.make_model(graph, opset_imports=[h.make_opsetid("", 17)], ir_version=IR), path)
    return path


def test_skip_pass_never_merges_across_graph_scopes(tmp_path: Path) -> None:
    source = _norm_in_branch_of_outer_add(tmp_path / "m.onnx")
    outcome = fusing.fuse(source, tmp_path / "fused.onnx", target="ort")
    skips = [c for c in outcome.result.details if c.kind == "SkipNorm"]
    assert skips and all(c.status == "rejected" and "scope" in (c.reason or "") for c in skips)
    original, fused = session(source), session(outcome.output)
    for flag in (True, False):
        inputs = feeds(original, "normal", fixed={"cond": np.array(flag)})
        assert_same_computation(source, fused, original, inputs, "normal")


def test_layernorm_twins_are_looked_for_in_one_scope_only(tmp_path: Path) -> None:
    """x.mean() in the main graph and a second mean of x inside a branch: no twin, no crash."""
    eps = h.make_tensor("eps", T.FLOAT, [], [1e-5])
    gamma = h.make_tensor("gamma", T.FLOAT, [8], [1.0] * 8)
    branch = h.make_graph(
        [
            h.make_node("ReduceMean", ["x"], ["m2"], axes=[-1]),
            h.make_node("Sub", ["x", "m2"], ["d2"]),
            h.make_node("Identity", ["d2"], ["bo"]),
        ],
        "then",
        [],
        [h.make_tensor_value_info("bo", T.FLOAT, [2, 3, 8])],
    )
    other = h.make_graph(
        [h.make_node("Identity", ["x"], ["eo"])], "else", [], [h.make_tensor_value_info("eo", T.FLOAT, [2, 3, 8])]
    )
    nodes = [
        *_ln_nodes("x", "", "eps", "gamma"),
        h.make_node("If", ["cond"], ["side"], then_branch=branch, else_branch=other),
    ]
    graph = h.make_graph(
        nodes,
        "twins",
        [h.make_tensor_value_info("x", T.FLOAT, [2, 3, 8]), h.make_tensor_value_info("cond", T.BOOL, [])],
        [h.make_tensor_value_info("y", T.FLOAT, [2, 3, 8]), h.make_tensor_value_info("side", T.FLOAT, [2, 3, 8])],
        [eps, gamma],
    )
    source = tmp_path / "m.onnx"
    onnx.save(h.make_model(graph, opset_imports=[h.make_opsetid("", 17)], ir_version=IR), source)
    outcome = fusing.fuse(source, tmp_path / "fused.onnx")
    assert outcome.result.fused == 1
    original, fused = session(source), session(outcome.output)
    for flag in (True, False):
        for mode in MODES:
            inputs = feeds(original, mode, fixed={"cond": np.array(flag)})
            assert_same_computation(source, fused, original, inputs, mode)


def _rms_sum_chain(layers: int, path: Path) -> Path:
    """``layers`` RMSNorms spelled ReduceSum(x²)/N over an input with no declared value_info in between."""
    nodes: list[onnx.NodeProto] = []
    inits = [
        h.make_tensor("axes", T.INT64, [1], [-1]),
        h.make_tensor("n", T.FLOAT, [], [16.0]),
        h.make_tensor("eps", T.FLOAT, [], [1e-6]),
        h.make_tensor("gamma", T.FLOAT, [16], [1.5] * 16),
    ]
    x = "x"
    for i in range(layers):
        nodes += [
            h.make_node("Mul", [x, x], [f"sq{i}"]),
            h.make_node("ReduceSum", [f"sq{i}", "axes"], [f"s{i}"]),
            h.make_node("Div", [f"s{i}", "n"], [f"ms{i}"]),
            h.make_node("Add", [f"ms{i}", "eps"], [f"ve{i}"]),
            h.make_node("Sqrt", [f"ve{i}"], [f"r{i}"]),
            h.make_node("Div", [x, f"r{i}"], [f"n{i}"]),
            h.make_node("Mul", [f"n{i}", "gamma"], [f"y{i}"]),
        ]
        x = f"y{i}"
    graph = h.make_graph(
        nodes,
        "chain",
        [h.make_tensor_value_info("x", T.FLOAT, ["batch", 4, 16])],
        [h.make_tensor_value_info(x, T.FLOAT, ["batch", 4, 16])],
        inits,
    )
    onnx.save(h.make_model(graph, opset_imports=[h.make_opsetid("", 18)], ir_version=IR), path)
    return path


@pytest.mark.slow
def test_coverage_does_not_depend_on_graph_size(tmp_path: Path) -> None:
    """The same norm chain fuses fully at 10 layers (onnx_ir engine) and at 1,500 (10,500 nodes: protobuf engine)."""
    small = fusing.fuse(_rms_sum_chain(10, tmp_path / "small.onnx"), tmp_path / "small.fused.onnx")
    big_source = _rms_sum_chain(1500, tmp_path / "big.onnx")
    assert protograph.load_flat(big_source, fusing.FLAT_PATH_MIN_NODES) is not None, "not on the big-graph engine"
    big = fusing.fuse(big_source, tmp_path / "big.fused.onnx")
    assert (small.result.fused, small.result.candidates) == (10, 10)
    assert (big.result.fused, big.result.candidates) == (1500, 1500)
    original, fused = session(big_source), session(big.output)
    assert_same_computation(big_source, fused, original, feeds(original, "normal"), "normal")


def test_output_that_fails_the_checker_where_the_input_passed_is_not_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from normopt.errors import CheckFailed

    source = _merged_decoder(tmp_path / "m.onnx")  # LayerNormalization at opset 17: the checker runs
    monkeypatch.setattr(modelio, "check", lambda path, full=True: None if Path(path) == source else "broken")
    with pytest.raises(CheckFailed, match="checker"):
        fusing.fuse(source, tmp_path / "out.onnx", target="auto")
    assert not (tmp_path / "out.onnx").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


@pytest.mark.parametrize("target", ["auto", "onnx"])
def test_output_that_fails_the_checker_as_the_input_does_is_written(target: str, tmp_path: Path) -> None:
    """An input the checker already rejects (here: an output declared without a shape at IR 9) is not
    normopt's harm: the fused model is written, and its checker line says the input fails the same way."""
    nodes = [
        h.make_node("ReduceMean", ["x"], ["mu"], axes=[-1]),
        h.make_node("Sub", ["x", "mu"], ["d"]),
        h.make_node("Mul", ["d", "d"], ["sq"]),
        h.make_node("ReduceMean", ["sq"], ["v"], axes=[-1]),
        h.make_node("Add", ["v", "eps"], ["ve"]),
        h.make_node("Div", ["d", "r"], ["y"]),
        h.make_node("Sqrt", ["ve"], ["r"]),
    ]
    nodes[5], nodes[6] = nodes[6], nodes[5]
    graph = h.make_graph(
        nodes,
        "g",
        [h.make_tensor_value_info("x", T.FLOAT, [2, 4, 16])],
        [h.make_tensor_value_info("y", T.FLOAT, None)],
        [onnx.numpy_helper.from_array(np.array(1e-5, np.float32), "eps")],
    )
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)], ir_version=9)
    source = tmp_path / "m.onnx"
    onnx.save(model, source)
    assert modelio.check(source, full=True) is not None
    outcome = fusing.fuse(source, tmp_path / "out.onnx", target=target)
    assert outcome.result.fused == 1
    assert outcome.checker.startswith("failed, as the input does")
    original, fused = session(source), session(outcome.output)
    for mode in MODES:
        assert_same_computation(source, fused, original, feeds(original, mode), mode)
