"""Every reference graph in graphs/ meets its manifest: node counts, checker, and parity on ORT CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from normopt import fusing
from normopt.feeds.inputs import InputSpec, generate
from tests.conftest import GRAPHS, float32_io, manifest, op_counts, reference, run_ort

CASES = [(e, t) for e in manifest() for t in e["expect"]]
TOLERANCE = {
    onnx.TensorProto.DOUBLE: 1e-9,
    onnx.TensorProto.FLOAT: 1e-5,
    onnx.TensorProto.FLOAT16: 2e-2,
    onnx.TensorProto.BFLOAT16: 1e-1,
}


def _feeds(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    specs = []
    for value in model.graph.input:
        elem = value.type.tensor_type.elem_type
        kind = {onnx.TensorProto.BOOL: "tensor(bool)", onnx.TensorProto.DOUBLE: "tensor(double)"}.get(
            elem, "tensor(float)"
        )
        dims = tuple(d.dim_value or d.dim_param for d in value.type.tensor_type.shape.dim)
        specs.append(InputSpec(value.name, kind, dims))
    return generate(specs, {}, seed=7)


@pytest.mark.parametrize(("entry", "target"), CASES, ids=[f"{e['file'][:-5]}-{t}" for e, t in CASES])
def test_graph_meets_manifest(entry: dict[str, Any], target: str, tmp_out: Path) -> None:
    source = GRAPHS / entry["file"]
    expect = entry["expect"][target]
    before = source.read_bytes()
    outcome = fusing.fuse(source, tmp_out / entry["file"], target=target)
    result = outcome.result
    assert source.read_bytes() == before, "the input file was modified"
    assert (result.fused, result.candidates) == (expect["fused"], expect["candidates"]), result.to_dict()
    counts = op_counts(outcome.output)
    for op, count in expect.get("ops", {}).items():
        assert counts[op] == count, (op, counts)
    for op in expect.get("absent", []):
        assert counts[op] == 0, (op, counts)
    if expect.get("unchanged"):
        assert counts == op_counts(source)
    if "reason" in expect:
        reasons = " | ".join(c.reason or "" for c in result.details)
        assert expect["reason"].lower() in reasons.lower(), reasons
    skips = [c for c in result.details if c.kind == "SkipNorm"]
    if "skips" in expect:
        assert sum(c.status == "fused" for c in skips) == expect["skips"]
    if "skip_reason" in expect:
        assert any(expect["skip_reason"] in (c.reason or "") for c in skips)
    if target == "onnx":
        assert outcome.checker == "passed"
    if counts["Pow"] and entry["file"].startswith("rms_bf16"):
        return  # the decomposed bf16 graph has no ORT CPU kernels (Pow); there is nothing to run
    _check_parity(source, outcome.output, entry, tmp_out)


def _check_parity(source: Path, fused: Path, entry: dict[str, Any], tmp_out: Path) -> None:
    model = onnx.load(source)
    feeds = _feeds(model)
    out_type = model.graph.output[0].type.tensor_type.elem_type
    tol = entry.get("tolerance", TOLERANCE[out_type])  # a graph computing in fp16 with fp32 output says so
    runnable = fused if out_type != onnx.TensorProto.BFLOAT16 else float32_io(fused, tmp_out / "io.onnx")
    got = run_ort(runnable, feeds)
    if out_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE):
        want = run_ort(source, feeds)
        for a, b in zip(got, want, strict=True):
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    outputs = [o.name for o in model.graph.output]
    values: dict[str, np.ndarray] = dict(feeds)
    for semantics in entry["semantics"]:
        ref = values[semantics["output"]] = reference(model, semantics, values)
        if semantics["output"] in outputs:
            actual = got[outputs.index(semantics["output"])].astype(np.float64)
            if semantics.get("lookalike"):
                assert not np.allclose(actual, ref, rtol=tol, atol=tol), "look-alike computes the real norm"
            else:
                np.testing.assert_allclose(actual, ref, rtol=tol, atol=tol)


def test_every_graph_file_is_in_the_manifest() -> None:
    listed = {e["file"] for e in manifest()}
    assert listed == {p.name for p in GRAPHS.glob("*.onnx")}


def test_lookalikes_cover_the_known_peer_mistakes() -> None:
    names = {e["file"] for e in manifest() if e["file"].startswith("neg_")}
    for required in (
        "neg_ln_eps_outside_sqrt",
        "neg_ln_unbiased_std",
        "neg_ln_pow4",
        "neg_ln_keepdims0",
        "neg_ln_non_trailing_axis",
        "neg_rms_eps_outside_sqrt",
    ):
        assert f"{required}.onnx" in names
