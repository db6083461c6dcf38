"""``normopt.passes.FuseNorms`` inside an onnx_ir ``PassManager``: fuses, reports, and the model still computes
what it did."""

from __future__ import annotations

from pathlib import Path

import onnx_ir as ir
import onnx_ir.passes.common
import pytest

from normopt import modelio
from normopt.ops import NORM_OPS
from normopt.passes import FuseNorms
from tests.conftest import ROOT
from tests.stress import MODES, assert_same_computation, feeds, session

GRAPHS = ROOT / "graphs"


@pytest.mark.parametrize(
    ("name", "target", "op"),
    [
        ("ln_canonical.onnx", "onnx", "LayerNormalization"),
        ("rms_opset23.onnx", "onnx", "RMSNormalization"),
        ("rms_dynamo.onnx", "auto", "SimplifiedLayerNormalization"),
    ],
)
def test_fuse_norms_runs_in_a_pass_manager(name: str, target: str, op: str, tmp_path: Path) -> None:
    model = modelio.load(GRAPHS / name)
    fuse = FuseNorms(target=target)  # type: ignore[arg-type]
    manager = ir.passes.PassManager([fuse, ir.passes.common.RemoveUnusedNodesPass()])
    outcome = manager(model)
    assert outcome.modified and fuse.result is not None and fuse.result.fused == 1
    ops = [n.op_type for n in outcome.model.graph]
    assert ops.count(op) == 1 and sum(o in NORM_OPS for o in ops) == 1
    out = tmp_path / name
    modelio.save(outcome.model, out)
    original, fused = session(GRAPHS / name), session(out)
    for mode in MODES:
        assert_same_computation(GRAPHS / name, fused, original, feeds(original, mode), mode)


def test_fuse_norms_leaves_a_look_alike_unmodified() -> None:
    model = modelio.load(GRAPHS / "neg_ln_unbiased_std.onnx")
    before = [n.op_type for n in model.graph]
    fuse = FuseNorms()
    outcome = ir.passes.PassManager([fuse])(model)
    assert not outcome.modified and [n.op_type for n in outcome.model.graph] == before
    assert fuse.result is not None and fuse.result.fused == 0 and "N-1" in (fuse.result.details[0].reason or "")


def test_fuse_norms_rejects_an_unknown_target() -> None:
    with pytest.raises(ValueError, match="unknown target"):
        FuseNorms(target="nope")  # type: ignore[arg-type]
