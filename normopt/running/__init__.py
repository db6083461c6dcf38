"""``normopt.run``, the whole pipeline: export → fuse → verify → bench both → report (JSON, Markdown, HTML, PNG).

``report.json`` schema (schema_version 1):

- ``model``: what was run; ``export``: the export summary (null when MODEL was an .onnx file);
- ``fusion``: ``candidates``, ``fused``, ``by_kind``, ``by_rule``, ``rejected`` ([{kind, node, reason}]),
  ``nodes_before``, ``nodes_after``, ``target``;
- ``parity``: ``passed`` and ``outputs`` ([{name, max_abs, max_rel, mean_abs, p99_abs, cosine, ...}]);
- ``latency``: rows {``model`` (original/fused), ``provider`` (what ONNX Runtime actually used),
  ``opt_level``, ``p50_ms``, ``p90_ms``, ``p95_ms``, ``p99_ms``, ``mean_ms``, ``std_ms``, ``throughput``,
  ``speedup``, ...};
- ``versions``: torch, onnx, onnxruntime, ...; ``machine``: CPU, cores, GPU, platform; ``skipped``.
"""

from normopt.running.pipeline import RunOutcome, run

__all__ = ["RunOutcome", "run"]
