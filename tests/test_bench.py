"""Benchmark statistics on synthetic timings, report rendering, profiling and the chart (no timing asserts)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from normopt.latency.results import BenchReport, BenchRow
from normopt.latency.runner import _speedups
from normopt.latency.stats import MARGIN, MIN_ROUNDS, speedup_ci, summarize
from normopt.reports.bench import to_csv, to_json, to_markdown
from normopt.reports.chart import latency_chart
from tests.helpers import cli


def test_summary_of_known_samples() -> None:
    stats = summarize(np.arange(1, 101) * 1_000_000, batch=4)  # 1..100 ms
    assert stats.iters == 100
    assert stats.p50_ms == pytest.approx(50.5)
    assert stats.p90_ms == pytest.approx(90.1)
    assert stats.p99_ms == pytest.approx(99.01)
    assert (stats.min_ms, stats.max_ms) == (1.0, 100.0)
    assert stats.mean_ms == pytest.approx(50.5)
    assert stats.std_ms == pytest.approx(np.std(np.arange(1, 101), ddof=1))
    assert stats.throughput == pytest.approx(4 * 1000 / 50.5)


def test_summary_of_one_sample_has_zero_spread() -> None:
    stats = summarize([2_000_000])
    assert stats.p50_ms == stats.p99_ms == 2.0 and stats.std_ms == 0.0


def test_summary_refuses_empty_input() -> None:
    with pytest.raises(ValueError):
        summarize([])


def _row(model: str, level: str, p50: float, provider: str = "CPUExecutionProvider") -> BenchRow:
    samples = [p50 * 0.9, p50, p50 * 1.1]
    return BenchRow(
        model,
        f"{model}.onnx",
        provider,
        level,
        2,
        3,
        p50,
        p50,
        p50,
        p50,
        p50,
        0.1,
        p50 * 0.9,
        p50 * 1.1,
        1000 / p50,
        5.0,
        7.0,
        1.0,
        False,
        samples_ms=samples,
    )


def _report() -> BenchReport:
    rows = [
        _row("original", "disable", 20.0),
        _row("fused", "disable", 10.0),
        _row("original", "all", 12.0),
        _row("fused", "all", 12.0),
    ]
    _speedups(rows, [[int(v * 1e6) for v in r.samples_ms] for r in rows])
    env = {"onnxruntime": "1", "onnx": "1", "torch": "2", "python": "3", "cpu": "cpu", "cpu_count": 2, "gpu": None}
    settings = {"warmup": 1, "iters": 3, "seconds": None, "threads": 2}
    return BenchReport(rows, {"x": [8, 512, 768]}, env, [{"provider": "cuda", "reason": "no GPU"}], settings)


def test_speedup_is_against_the_first_model_under_the_same_settings() -> None:
    report = _report()
    assert [r.speedup for r in report.results] == [1.0, 2.0, 1.0, 1.0]


def test_reports_render_from_one_object() -> None:
    report = _report()
    data = json.loads(to_json(report))
    assert data["schema_version"] == 1 and len(data["results"]) == 4
    assert "samples_ms" not in data["results"][0]
    rows = list(csv.DictReader(io.StringIO(to_csv(report))))
    assert [r["model"] for r in rows] == ["original", "fused", "original", "fused"]
    assert float(rows[1]["speedup"]) == 2.0
    markdown = to_markdown(report)
    assert "| fused | CPU | disable | prefill | 10.000 |" in markdown and "Skipped cuda: no GPU." in markdown


def test_chart_is_a_png(tmp_path: Path) -> None:
    path = latency_chart(_report(), tmp_path / "chart.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_profile_attributes_time_to_norm_ops(tmp_path: Path) -> None:
    from normopt import bench, fuse
    from tests.conftest import GRAPHS

    fused = fuse(GRAPHS / "ln_canonical.onnx", tmp_path / "fused.onnx").output
    report = bench([GRAPHS / "ln_canonical.onnx", fused], opt_levels=["disable"], iters=3, warmup=1, profile=True)
    original, after = (r.profile for r in report.results)
    assert original is not None and after is not None
    assert original["norm_decomposed_ms"] > 0 and original["norm_fused_ms"] == 0
    assert after["norm_fused_ms"] > 0 and after["norm_decomposed_ms"] == 0
    assert {o["op"] for o in after["by_op"]} == {"LayerNormalization"}


def test_speedup_interval_and_verdict_on_known_timings() -> None:
    """Paired rounds: a 10% faster row is "faster", the same series is "no significant difference", a
    10% slower one "slower", and too few rounds give no verdict at all."""
    rng = np.random.default_rng(0)
    drift = 1e6 * (1 + 0.3 * np.sin(np.arange(200) / 7))  # a slow drift both rows share, round by round
    base = drift * (1 + 0.05 * rng.standard_normal(200))
    same = drift * (1 + 0.05 * rng.standard_normal(200))
    faster = speedup_ci(base, base / 1.1)
    assert faster.verdict == "faster" and faster.low > 1.02 and abs(faster.speedup - 1.1) < 1e-9
    assert "faster (95% CI" in faster.sentence("fused")
    assert speedup_ci(base, same).verdict == "no significant difference"
    assert speedup_ci(base, base * 1.1).verdict == "slower"
    few = speedup_ci(base[: MIN_ROUNDS - 1], base[: MIN_ROUNDS - 1] / 2)
    assert few.verdict == "too few runs for a verdict" and few.low <= few.speedup <= few.high


def test_a_model_benched_against_its_copy_gets_a_verdict_row_from_its_own_interval(tmp_path: Path) -> None:
    """The row's verdict is the one its own interval gives (no timing is asserted here: whether an A/A
    comparison stays "no significant difference" on a loaded machine is ``benchmarks/bench_aa.py``'s job,
    and the statistics on known timings are tested above and below)."""
    from tests.conftest import GRAPHS

    source = GRAPHS / "ln_canonical.onnx"
    copy = tmp_path / "copy.onnx"
    copy.write_bytes(source.read_bytes())
    result = cli("bench", source, copy, "--iters", "60", "--warmup", "5", "--opt-level", "disable", "--format", "json")
    assert result.code == 0, result.stderr
    rows = json.loads(result.stdout)["results"]
    assert rows[0]["verdict"] == "baseline" and rows[0]["speedup"] == 1.0
    low, high = rows[1]["speedup_low"], rows[1]["speedup_high"]
    assert low <= rows[1]["speedup"] <= high and low < high
    expected = "faster" if low > 1 + MARGIN else "slower" if high < 1 - MARGIN else "no significant difference"
    assert rows[1]["verdict"] == expected, rows[1]


def test_drifting_noise_is_not_called_a_difference() -> None:
    """Rounds whose load drifts and bursts (both rows of a round alike, plus bursts hitting one row for a few
    rounds) give no verdict for a row that is the same model; the same noise over a 10% gain is "faster"."""
    rng = np.random.default_rng(3)
    rounds = 200
    drift = 1e6 * np.exp(np.cumsum(0.05 * rng.standard_normal(rounds)))  # a random walk both rows share
    bursts = np.ones(rounds)
    for start in rng.integers(0, rounds - 5, size=6):  # load bursts of 5 rounds on one row only
        bursts[start : start + 5] *= 1.3
    base = drift * (1 + 0.03 * rng.standard_normal(rounds))
    same = drift * bursts * (1 + 0.03 * rng.standard_normal(rounds))
    assert speedup_ci(base, same).verdict == "no significant difference"
    assert speedup_ci(base, same / 1.1).verdict == "faster"


def test_a_noise_floor_widens_the_band_a_difference_must_clear() -> None:
    rng = np.random.default_rng(0)
    base = 1e6 * (1 + 0.01 * rng.standard_normal(200))
    row = base / 1.04  # 4% faster, cleanly
    assert speedup_ci(base, row).verdict == "faster"
    held = speedup_ci(base, row, floor=0.06)
    assert held.verdict == "no significant difference" and held.margin == 0.06
    assert "beyond this run's A/A noise floor ±6.0%" in held.sentence("fused")


def test_calibrate_adds_an_a_a_row_that_sets_the_floor(tmp_path: Path) -> None:
    from tests.conftest import GRAPHS

    source = GRAPHS / "ln_canonical.onnx"
    copy = tmp_path / "copy.onnx"
    copy.write_bytes(source.read_bytes())
    result = cli(
        "bench", source, copy, "--iters", "30", "--warmup", "2", "--opt-level", "disable", "--calibrate",
        "--format", "json",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    doc = json.loads(result.stdout)
    rows = doc["results"]
    assert [r["model"] for r in rows] == ["ln_canonical", "copy", "ln_canonical (A/A)"]
    floor = rows[2]["verdict"]
    assert floor.startswith("A/A noise floor ±"), floor
    assert rows[1]["speedup_margin"] >= 0.02 and doc["settings"]["calibrate"] is True


def test_a_seconds_budget_too_short_for_a_verdict_is_said_before_the_timing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--seconds`` bounds the whole step; a share that cannot give a verdict's rounds is a note, in the report too.

    The clock is slowed (every reading 50 ms after the last), so the budget is spent before the timing starts on
    any machine: how many rounds a fast machine fits in 10 ms is not what this test is about.
    """
    import time

    from tests.conftest import GRAPHS

    real = time.perf_counter
    readings = iter(range(1, 10**9))
    monkeypatch.setattr(time, "perf_counter", lambda: real() + 0.05 * next(readings))

    source = GRAPHS / "ln_canonical.onnx"
    copy = tmp_path / "copy.onnx"
    copy.write_bytes(source.read_bytes())
    result = cli(
        "bench", source, copy, "--seconds", "0.01", "--warmup", "1", "--opt-level", "disable", "--format", "json"
    )
    assert result.code == 0, result.stderr
    doc = result.json()
    assert len(doc["notes"]) == 1 and doc["notes"][0].startswith("--seconds 0.01 leaves ")
    assert "fewer than the 10 a verdict needs" in doc["notes"][0]
    assert "note: --seconds 0.01 leaves" in result.stderr
    assert {r["iters"] for r in doc["results"]} == {3}  # the floor of rounds, whatever the budget
    assert {r["verdict"] for r in doc["results"][1:]} == {"too few runs for a verdict"}


@pytest.mark.slow
def test_compare_ort_gives_ort_the_model_s_heads_and_hidden_size_and_adds_ort_after_normopt(tmp_path: Path) -> None:
    """ORT's optimizer, given the heads and hidden size read from the model, fuses attention on a BERT (without
    them it does not); the bench has ORT(M) and ORT(normopt(M)) rows and says what ORT was given."""
    from collections import Counter

    import onnx

    from normopt.exporting import tiny
    from normopt.latency import peers

    folder = tiny.write("bert", tmp_path / "bert", weights=True)
    source, fused = tmp_path / "bert.onnx", tmp_path / "bert.fused.onnx"
    assert cli("export", folder, "-o", source, "--fuse").code == 0
    shape = peers.model_shape(source)
    config = tiny.CONFIGS["bert"]  # the config the model was built from, not what normopt read
    assert (shape.num_heads, shape.hidden_size) == (config["num_attention_heads"], config["hidden_size"])
    counts = {}
    for given in (peers.Shape(), shape):
        problem, _ = peers.ort_optimized(source, tmp_path / "ort.onnx", "bert", given)
        assert problem is None
        counts[given.num_heads] = Counter(n.op_type for n in onnx.load(tmp_path / "ort.onnx").graph.node)
    assert counts[0]["Attention"] == 0 and counts[shape.num_heads]["Attention"] > 0
    result = cli(
        "bench", source, fused, "--compare-ort", "--iters", "3", "--warmup", "0", "--opt-level", "disable",
        "--format", "json",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    doc = result.json()
    assert [r["model"] for r in doc["results"]] == ["bert", "bert.fused", "ort-optimized", "ort-optimized (bert.fused)"]
    assert any(f"num_heads {shape.num_heads}, hidden_size {shape.hidden_size}" in n for n in doc["notes"])


def test_bench_and_run_share_one_provider_default_every_provider_with_what_cannot_run_said(tmp_path: Path) -> None:
    """No --provider: cpu and cuda, as in run; each either has rows or a skip with its reason (never silence)."""
    from tests.conftest import GRAPHS

    result = cli("bench", GRAPHS / "ln_canonical.onnx", "--iters", "3", "--warmup", "0", "--format", "json")
    assert result.code == 0, result.stderr
    doc = result.json()
    assert doc["settings"]["providers"] == ["cpu", "cuda"]
    names = {"CPUExecutionProvider": "cpu", "CUDAExecutionProvider": "cuda"}  # rows say what ONNX Runtime ran
    ran = {names[row["provider"]] for row in doc["results"]}
    skipped = {skip["provider"]: skip["reason"] for skip in doc["skipped"]}
    assert "cpu" in ran and ran | set(skipped) == {"cpu", "cuda"} and all(skipped.values()), doc["skipped"]
    for provider in skipped:
        assert f"skipped {provider}: " in result.stderr
