"""Progress a person sees on long work (issue 24): fuse reports every phase and each pass's anchors."""

from __future__ import annotations

from pathlib import Path

import onnx

from normopt import fusing
from tests.conftest import GRAPHS


def test_fuse_reports_each_phase_once_finished_and_each_pass_over_all_its_anchors(tmp_path: Path) -> None:
    source = GRAPHS / "ln_canonical.onnx"
    anchors = {  # counted here from the graph, not by the pass: LayerNorm anchors on ReduceMean, RMSNorm too
        op: sum(1 for n in onnx.load(source).graph.node if n.op_type == op and n.domain in ("", "ai.onnx"))
        for op in ("ReduceMean",)
    }
    calls: list[tuple[str, int, int]] = []
    fusing.fuse(source, tmp_path / "f.onnx", verify=True, progress=lambda *call: calls.append(call))
    phases = list(dict.fromkeys(phase for phase, _, _ in calls))
    assert phases == ["reading", "LayerNorm pass", "RMSNorm pass", "writing", "onnx.checker", "parity"], phases
    for phase in phases:
        mine = [(done, total) for p, done, total in calls if p == phase]
        assert mine[-1][0] == mine[-1][1], (phase, mine)  # each ends done
        assert [done for done, _ in mine] == sorted(done for done, _ in mine), (phase, mine)  # never goes back
    assert calls[-1][0] == "parity"  # the last phase is closed before fuse returns
    assert ("LayerNorm pass", anchors["ReduceMean"], anchors["ReduceMean"]) in calls
