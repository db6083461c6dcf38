"""A deep export takes the big-graph road, and fuses every norm there, as the shallow one does.

A 64-layer tiny Qwen3 (q/k norms: four RMSNorms per layer plus the final one), exported with the legacy
exporter in float16, has more than ``FLAT_PATH_MIN_NODES`` nodes, so ``fuse`` reads it with the protobuf
engine. Before inference ran on the side for both engines, that engine fused 130 of its 257 norms.
"""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

transformers = pytest.importorskip("transformers")

from normopt import export, fuse, fusing, modelio, verify  # noqa: E402
from normopt.engines import protograph  # noqa: E402
from normopt.engines.ir_engine import graphs_of  # noqa: E402
from normopt.exporting import tiny  # noqa: E402
from normopt.ops import PLAIN_NORM_OPS as NORM_OPS  # noqa: E402
from tests.engines import assert_engines_agree  # noqa: E402


@pytest.mark.slow
def test_deep_legacy_fp16_export_fuses_every_norm_on_the_big_graph_road(tmp_path: Path) -> None:
    tiny.write("qwen3", tmp_path / "qwen3", layers=64)  # hidden 32, 2 heads of 16, no weights
    exported = export(str(tmp_path / "qwen3"), tmp_path / "model.onnx", exporter="legacy", dtype="fp16")
    assert exported.norm_modules == 4 * 64 + 1
    proto = onnx.load(exported.output, load_external_data=False)
    assert len(proto.graph.node) >= fusing.FLAT_PATH_MIN_NODES  # the big-graph road, not the onnx_ir one
    assert protograph.load_flat(exported.output, fusing.FLAT_PATH_MIN_NODES) is not None

    fused = fuse(exported.output, tmp_path / "fused.onnx")
    model = modelio.load(fused.output)
    assert sum(1 for g in graphs_of(model) for n in g if n.op_type in NORM_OPS) == exported.norm_modules
    assert fused.result.fused == fused.result.candidates == exported.norm_modules
    assert verify(exported.output, fused.output).passed
    assert assert_engines_agree(exported.output, "auto", tmp_path / "engines") == exported.norm_modules
