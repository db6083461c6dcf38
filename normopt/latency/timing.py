"""The timing engine: a session and the one call that runs it, rounds timed interleaved, rows from samples.

Each run is timed with ``perf_counter_ns`` around ``run`` (CPU) or ``run_with_iobinding`` with
device-resident inputs and outputs (CUDA), so the harness adds one call and no copies.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np

from normopt.feeds import inputs as inp
from normopt.feeds import ortsession
from normopt.feeds.runs import specs_of
from normopt.latency.results import BenchRow
from normopt.latency.scenarios import Workload
from normopt.latency.stats import summarize


def _rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class Runner:
    """A session plus the call that runs it once (plain run on CPU, IO binding on CUDA) on its feeds."""

    def __init__(
        self,
        label: str,
        path: Path,
        provider: ortsession.Provider,
        level: ortsession.OptLevel,
        threads: int | None,
        profile_dir: str | None,
    ) -> None:
        self.label, self.path, self.provider, self.level = label, path, provider, level
        self.base_rss = _rss_mb()
        start = time.perf_counter_ns()
        prefix = os.path.join(profile_dir, f"{label}-{provider}-{level}") if profile_dir else None
        self.session = ortsession.create(path, provider, level, threads, profile_prefix=prefix)
        self.session_ms = (time.perf_counter_ns() - start) / 1e6
        self.actual = ortsession.actual_provider(self.session)
        self.specs = specs_of(self.session)
        self.first_run_ms: float | None = None
        self.peak_rss = 0.0
        self.samples: list[int] = []
        self.run: Callable[[], None] = self._plain

    def use(self, feeds: dict[str, np.ndarray]) -> None:
        """Run on ``feeds`` from now on (timings restart); the first run ever is timed on its own."""
        from normopt.feeds.runs import run_checked

        self.feeds = inp.cast_for(feeds, self.specs)
        self.samples = []
        start = time.perf_counter_ns()
        run_checked(self.session, None, self.feeds, self.label)  # a failure names the input shapes
        if self.first_run_ms is None:
            self.first_run_ms = (time.perf_counter_ns() - start) / 1e6
        self.run = self._bind() if self.provider == "cuda" else self._plain
        self.sample_rss()

    def _plain(self) -> None:
        self.session.run(None, self.feeds)

    def _bind(self) -> Callable[[], None]:
        import onnxruntime as ort

        binding = self.session.io_binding()
        self._device_inputs = [ort.OrtValue.ortvalue_from_numpy(v, "cuda", 0) for v in self.feeds.values()]
        for name, value in zip(self.feeds, self._device_inputs, strict=True):
            binding.bind_ortvalue_input(name, value)
        for output in self.session.get_outputs():
            binding.bind_output(output.name, "cuda", 0)

        def run() -> None:
            self.session.run_with_iobinding(binding)
            binding.synchronize_outputs()

        return run

    def sample_rss(self) -> None:
        """Rise of the process's resident memory since just before this session was created."""
        self.peak_rss = max(self.peak_rss, _rss_mb() - self.base_rss)


PROFILE_RUNS = 10  # runs per profiled session (after the timed rounds, in sessions of their own)


def end_profiles(runners: list[Runner]) -> None:
    """Stop every session's profiler, so none writes its file after the folder is gone."""
    for runner in runners:
        try:
            runner.session.end_profiling()
        except Exception:
            pass


def timed_rounds(
    runners: list[Runner], iters: int | None, seconds: float | None, progress: Callable[[int, int], None] | None
) -> None:
    """Time ``iters`` rounds (or rounds for ``seconds``, at least 3), each running every session once.

    The order rotates round by round, so drift and noise land on every session alike.
    """
    deadline = time.perf_counter() + seconds if seconds is not None else None
    rounds = iters if deadline is None else None
    total = rounds or 0
    done = 0
    clock = time.perf_counter_ns
    while (rounds is not None and done < rounds) or (
        deadline is not None and (time.perf_counter() < deadline or done < 3)
    ):
        offset = done % len(runners)
        for runner in runners[offset:] + runners[:offset]:
            start = clock()
            runner.run()
            runner.samples.append(clock() - start)
        done += 1
        if progress is not None:
            progress(done, total)


def row_of(runner: Runner, threads: int | None, workload: Workload, feeds: dict[str, np.ndarray]) -> BenchRow:
    """The row for ``runner``'s timings on ``workload``."""
    first = next(iter(feeds.values()), None)
    batch = int(first.shape[0]) if first is not None and first.ndim else 1
    stats = summarize(runner.samples, batch)
    tokens = workload.tokens
    sizes = workload.sizes
    return BenchRow(
        model=runner.label,
        path=str(runner.path),
        provider=runner.actual,
        opt_level=runner.level,
        threads=threads,
        session_ms=runner.session_ms,
        first_run_ms=runner.first_run_ms or 0.0,
        peak_rss_mb=runner.peak_rss,
        io_binding=runner.provider == "cuda",
        scenario=workload.scenario,
        batch=sizes.batch if workload.scenario != "inputs" else batch,
        seq=sizes.seq,
        past=sizes.past,
        tokens_per_s=None if tokens is None else tokens * 1000.0 / stats.p50_ms,
        ms_per_token=None if tokens is None else stats.p50_ms / tokens,
        samples_ms=[s / 1e6 for s in runner.samples],
        **asdict(stats),
    )
