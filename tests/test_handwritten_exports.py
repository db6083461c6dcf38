"""Hand-written norms exported by torch: every real one fused, every look-alike left alone.

People write LayerNorm as ``(x - x.mean()) / sqrt(x.var(unbiased=False) + eps)`` or with
``torch.var_mean``, and RMSNorm with ``x.square().sum() / H``. The exporters turn these into
spellings no hand-made graph has: the legacy exporter takes the mean twice, the dynamo exporter
drops the reduced axis and puts it back with Reshape/Expand, fp16 exports compute the statistics
in float32 on a Cast of x. Each must be fused, with parity on ONNX Runtime; ``x.var()`` (N-1),
``std + eps`` and ``norm + eps`` must not be.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from normopt import export, fuse, verify
from normopt.ops import PLAIN_NORM_OPS as NORM_OPS
from tests.conftest import op_counts
from tests.factories import HANDWRITTEN

# What inspect/fuse must say about each look-alike, whatever the exporter wrote.
REASONS = {
    "neg_ln_unbiased_var": "N/(N-1)",
    "neg_ln_std_plus_eps": "outside the square root",
}

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("dtype", ["fp32", "fp16"])
@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
@pytest.mark.parametrize("kind", sorted(HANDWRITTEN))
def test_handwritten_norm(kind: str, exporter: str, dtype: str, tmp_path: Path) -> None:
    source = tmp_path / "m.onnx"
    opset = 17 if exporter == "legacy" else None
    export(f"tests.factories:hand_{kind}", source, exporter=exporter, dtype=dtype, opset=opset)
    before = op_counts(source)
    outcome = fuse(source, tmp_path / "fused.onnx")
    want = HANDWRITTEN[kind]
    assert outcome.result.fused == want, outcome.result.to_dict()
    after = op_counts(outcome.output)
    if want == 0:
        assert after == before, "a look-alike was rewritten"
        assert outcome.result.candidates <= 1, "one look-alike reported more than once"
        if kind in REASONS:
            reasons = [c.reason or "" for c in outcome.result.details]
            assert len(reasons) == 1 and REASONS[kind] in reasons[0], reasons
    else:
        assert sum(after[op] for op in NORM_OPS) == want
        assert sum(after.values()) < sum(before.values())
        for leftover in ("ReduceMean", "ReduceSum", "Sqrt", "Reshape", "Expand", "Shape"):
            assert after[leftover] == 0, f"{leftover} left behind: {dict(after)}"
    parity = verify(source, outcome.output)
    assert parity.passed, parity.to_dict()
