"""Summaries of ONNX Runtime profiles: time per op type and the share spent in norms.

For a fused model the norm share is the time in norm ops (LayerNormalization, Simplified/RMS/Skip*).
For a decomposed model it is the time in the nodes the fusion passes would replace, found by running
the passes on an in-memory copy — the number that explains what fusion buys.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any


def _pattern_nodes(model_path: Path) -> set[str]:
    from normopt import modelio
    from normopt.fusion import fuse_model

    model = modelio.load(model_path)
    result = fuse_model(model, target="ort", skip=False)
    return {name for c in result.details if c.status == "fused" for name in c.pattern_nodes}


def summarize_profile(profile_file: str, model_path: Path) -> dict[str, Any]:
    """Per-op-type time (ms, share) from an ORT profile JSON; the file is removed afterwards."""
    from normopt.ops import NORM_OPS

    events = json.loads(Path(profile_file).read_text())
    os.unlink(profile_file)
    per_op: dict[str, float] = defaultdict(float)
    per_node: dict[str, float] = defaultdict(float)
    for event in events:
        if event.get("cat") != "Node" or not str(event.get("name", "")).endswith("_kernel_time"):
            continue
        op = event.get("args", {}).get("op_name", "?")
        micros = float(event.get("dur", 0))
        per_op[op] += micros
        per_node[event["name"][: -len("_kernel_time")]] += micros
    total = sum(per_op.values()) or 1.0
    fused_norm = sum(v for k, v in per_op.items() if k in NORM_OPS)
    decomposed = _pattern_nodes(model_path)
    decomposed_norm = sum(v for k, v in per_node.items() if k in decomposed)
    ops = sorted(per_op.items(), key=lambda kv: -kv[1])
    return {
        "total_ms": total / 1000,
        "by_op": [{"op": k, "ms": v / 1000, "share": v / total} for k, v in ops],
        "norm_ms": (fused_norm + decomposed_norm) / 1000,
        "norm_share": (fused_norm + decomposed_norm) / total,
        "norm_fused_ms": fused_norm / 1000,
        "norm_decomposed_ms": decomposed_norm / 1000,
    }
