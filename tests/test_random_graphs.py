"""Property test: random norm-like graphs (spellings, look-alike traps, If branches) fuse without harm."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import onnx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.engines import assert_engines_agree
from tests.property_check import check
from tests.randomgraphs import Spec, build

SPECS = st.builds(
    Spec,
    kind=st.sampled_from(["layernorm", "rmsnorm"]),
    square=st.sampled_from(["pow", "mul"]),
    inverse=st.sampled_from(["div_sqrt", "mul_reciprocal", "pow_neg_half"]),
    mean=st.sampled_from(["reduce_mean", "sum_div_n", "sum_keepdims0_unsqueeze"]),
    eps=st.sampled_from([1e-5, 1e-6, 1e-12, 0.1]),
    eps_shape=st.sampled_from([(), (1,), (1, 1, 1), (1, 1, 1, 1)]),
    eps_overridable=st.booleans(),
    eps_left=st.booleans(),
    gamma=st.sampled_from(["none", "const", "overridable"]),
    sandwich=st.booleans(),
    in_if=st.booleans(),
    symbolic_batch=st.booleans(),
    opset=st.sampled_from([17, 18]),
    residual=st.sampled_from(["none", "same", "broadcast", "unknown", "row"]),
    custom=st.booleans(),
    as_inputs=st.booleans(),
    qdq=st.booleans(),
    symbolic_hidden=st.booleans(),
    variance=st.sampled_from(["centred", "moments", "clamped"]),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(spec=SPECS, target=st.sampled_from(["auto", "ort"]), freeze=st.booleans())
def test_random_norm_graph_fuses_without_harm(spec: Spec, target: str, freeze: bool) -> None:
    """Every output passes the postcondition (``fuse`` checks it), loads, matches the original on stress inputs
    (unknown dims at different sizes), and fused again with every target still does; a genuine norm is fused."""
    with tempfile.TemporaryDirectory() as folder:
        fused = check(spec, Path(folder), target, freeze=freeze)
    if spec.genuine(freeze) and not spec.in_if:
        assert fused == 1, spec


def test_plain_spellings_are_fused() -> None:
    """The property is not vacuous: a plain spelling of each family is fused, not merely left alone."""
    with tempfile.TemporaryDirectory() as folder:
        for kind in ("layernorm", "rmsnorm"):
            spec = Spec(kind, "pow", "div_sqrt", "reduce_mean", 1e-5, (), False, False, "const", False, False, True, 18)
            assert check(spec, Path(folder), "auto") == 1
            every = dataclasses.replace(spec, as_inputs=True)
            assert check(every, Path(folder), "auto") == 0  # every initializer overridable: nothing provable
            assert check(every, Path(folder), "auto", freeze=True) == 1
        layernorm = Spec(
            "layernorm", "mul", "div_sqrt", "reduce_mean", 1e-5, (), False, False, "const", False, False, True, 18
        )
        for variance in ("moments", "clamped"):  # E[x²] − E[x]², with and without Flax's clamp at 0
            assert check(dataclasses.replace(layernorm, variance=variance), Path(folder), "auto") == 1


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(spec=SPECS.filter(lambda s: not s.in_if and not s.custom), target=st.sampled_from(["auto", "ort", "onnx"]))
def test_random_graph_same_on_both_engines(spec: Spec, target: str) -> None:
    """Coverage does not depend on graph size: the big-graph (protobuf) engine, forced on a small random
    graph, fuses exactly what the onnx_ir engine fuses, node for node (If graphs never take that road)."""
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "random.onnx"
        onnx.save(build(spec), source)
        assert_engines_agree(source, target, Path(folder))
