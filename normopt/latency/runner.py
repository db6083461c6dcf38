"""``normopt.bench``: latency of one or more models on ONNX Runtime, measured side by side.

Every (model, provider, opt level) gets its own session. Sessions are timed interleaved: each round
runs every session once, in an order rotated round by round, so machine noise lands on all of them
alike. Each run is timed with ``perf_counter_ns`` around ``run`` (CPU) or ``run_with_iobinding`` with
device-resident inputs and outputs (CUDA), so the harness adds one call and no copies.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from normopt.choices import Scenario
from normopt.errors import ProviderUnavailable, UsageError, option
from normopt.feeds import inputs as inp
from normopt.feeds import ortsession
from normopt.feeds.roles import Sizes
from normopt.feeds.runs import specs_of
from normopt.feeds.spec import InputSpec
from normopt.latency.environment import environment
from normopt.latency.results import BenchReport, BenchRow
from normopt.latency.scenarios import Workload, plan, workload_label
from normopt.latency.stats import MIN_ROUNDS, noise_floor, speedup_ci
from normopt.latency.timing import PROFILE_RUNS, Runner, end_profiles, row_of, timed_rounds
from normopt.locate import model_in

if TYPE_CHECKING:
    import onnx_ir as ir

    from normopt.modelio import ModelLike

logger = logging.getLogger(__name__)


def bench(
    models: Sequence[ModelLike],
    *,
    providers: Sequence[str] | None = None,
    opt_levels: list[ortsession.OptLevel] | None = None,
    warmup: int = 10,
    iters: int | None = None,
    seconds: float | None = None,
    threads: int | None = None,
    shapes: dict[str, list[int]] | None = None,
    inputs: str | os.PathLike[str] | None = None,
    profile: bool = False,
    labels: list[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    skip_unavailable: bool = False,
    scenario: Scenario | None = None,
    batches: Sequence[int] | None = None,
    seqs: Sequence[int] | None = None,
    pasts: Sequence[int] | None = None,
    compare_ort: bool = False,
    ort_model_type: str | None = None,
    calibrate: bool = False,
    note: Callable[[str], None] | None = None,
) -> BenchReport:
    """Benchmark ``models`` side by side.

    Args:
        models: ``.onnx`` paths, export folders (``locate.model_in``) or in-memory ``onnx.ModelProto`` /
            ``onnx_ir.Model`` (labelled ``model1``, ``model2``... unless ``labels``); all take the same inputs.
        providers: ``cpu`` and/or ``cuda``. Default, as in ``run``: both, with what cannot run here skipped and said
            (``skipped`` in the report); a provider named here that cannot run raises instead.
        opt_levels: ORT graph optimization levels (default ``disable`` and ``all``).
        warmup: Untimed runs per session and workload before timing.
        iters: Timed runs per session and workload (default 100; not together with ``seconds``).
        seconds: Time budget for the whole step instead of a fixed count of rounds: sessions, warm-up and
            the timed rounds of every workload end within it (each workload's rounds get an equal share of
            what is left when they start; at least 3 rounds each). When a share cannot give the rounds a
            verdict needs (``stats.MIN_ROUNDS``), ``note`` says so before those rounds are timed.
        threads: Intra-op threads (None: ORT's default).
        shapes: Dims for dynamic inputs (they win over batch/seq/past).
        inputs: An .npz of inputs instead of generated ones (one workload; no scenario or sizes).
        profile: Also run ORT's profiler per session and summarize time per op type.
        labels: Display names for the models (default: file names).
        progress: Called with (done, total) timed rounds, over all workloads.
        skip_unavailable: Skip a provider that cannot run here instead of raising (``--provider all``).
        scenario: ``prefill``, ``decode`` or ``both`` (default: both for decoders with past inputs).
        batches: Batch sizes to sweep (see ``normopt.latency.scenarios``).
        seqs: Prefill lengths to sweep.
        pasts: Cached tokens to sweep for decode steps.
        compare_ort: Also bench the first model as ONNX Runtime's transformers optimizer leaves it
            (``normopt.latency.peers``), labelled ``ort-optimized``.
        ort_model_type: The optimizer's model type (default: guessed from the inputs and outputs).
        note: Called with a line a person should read before the timing (default: the log).
        calibrate: Also time the first model against a second session of itself in the same rounds
            (``<label> (A/A)``): its interval is the noise floor of this run, and a difference is called
            only beyond it (``stats.speedup_ci``'s ``floor``).

    Raises:
        ProviderUnavailable: CUDA asked for and not usable (unless ``skip_unavailable``).
        UsageError: Missing models, models with different inputs, sizes the model cannot take.

    """
    if any(not isinstance(m, (str, os.PathLike)) for m in models):
        from normopt import modelio

        with contextlib.ExitStack() as stack:
            files = [stack.enter_context(modelio.as_path(m, f"model{n}")) for n, m in enumerate(models, 1)]
            return bench(
                files, providers=providers, opt_levels=opt_levels, warmup=warmup, iters=iters, seconds=seconds,
                threads=threads, shapes=shapes, inputs=inputs, profile=profile, labels=labels, progress=progress,
                skip_unavailable=skip_unavailable, scenario=scenario, batches=batches, seqs=seqs, pasts=pasts,
                compare_ort=compare_ort, ort_model_type=ort_model_type, calibrate=calibrate, note=note,
            )  # fmt: skip
    from normopt import modelio, options

    if not models:
        raise UsageError("no model to benchmark")
    iters = options.timed_runs(iters, warmup, seconds) or None
    options.threads(threads)
    started = time.perf_counter()  # --seconds bounds everything from here on
    notes: list[str] = []
    say = note or logger.warning
    paths = [model_in(m) for m in models if isinstance(m, (str, os.PathLike))]  # every one, by the dispatch above
    first = modelio.load(paths[0])  # kept: its input shapes and vocabulary limits are read below
    for path in paths[1:]:
        modelio.load(path)
    labels = list(labels or _labels(paths))
    if not providers:  # the default, as in run: every provider normopt knows, what cannot run here skipped
        providers, skip_unavailable = ["cpu", "cuda"], True
    opt_levels = opt_levels or ["disable", "all"]
    skipped: list[dict[str, str]] = []
    usable: list[ortsession.Provider] = []
    for provider in providers:
        if provider not in ortsession.PROVIDERS:
            raise UsageError(f"unknown provider {provider!r}; choose cpu or cuda")
        problem = ortsession.cuda_problem() if provider == "cuda" else None
        if problem is None:
            usable.append(provider)
        elif skip_unavailable:
            skipped.append({"provider": provider, "reason": problem})
        else:
            raise ProviderUnavailable(f"CUDA is not usable here: {problem}")
    probe = ortsession.create(paths[0], "cpu", "disable")
    specs = specs_of(probe, first)
    shapes = inp.check_shapes(shapes or {}, specs)
    for path in paths[1:]:
        if {s.name for s in specs_of(ortsession.create(path, "cpu", "disable"))} != {s.name for s in specs}:
            raise UsageError(f"{path} takes different inputs than {paths[0]}")
    if inputs is not None:
        if scenario is not None or batches or seqs or pasts:
            raise UsageError(
                f"{option('--inputs')} fixes every input; {option('--scenario')}, "
                f"{option('--batch')}, {option('--seq')} and {option('--past')} do not apply"
            )
        workloads = [Workload("inputs", Sizes())]
    else:
        workloads = plan(specs, scenario, batches, seqs, pasts)
    limits = inp.vocab_limits(first)
    peer_dir = None
    if compare_ort:
        peer_dir, peer_problems = _add_ort_peers(paths, labels, first, specs, probe, ort_model_type, notes)
        skipped += [{"provider": label, "reason": problem} for label, problem in peer_problems]
    if calibrate:
        paths.append(paths[0])
        labels.append(f"{labels[0]} (A/A)")
    profile_dir = None
    if profile:
        import tempfile

        profile_dir = tempfile.mkdtemp(prefix="normopt-profile-")
    runners: list[Runner] = []
    profilers: list[Runner] = []
    rows: list[BenchRow] = []
    described: list[dict[str, Any]] = []
    total = (iters or 0) * len(workloads)
    try:
        for provider in usable:
            for level in opt_levels:
                for label, path in zip(labels, paths, strict=True):
                    runners.append(Runner(label, path, provider, level, threads, None))
        for number, workload in enumerate(workloads):
            if inputs is not None:
                feeds = inp.load_npz(inputs, specs)
            else:
                feeds = inp.generate(specs, shapes, 0, limits, float_dtype=np.float32, sizes=workload.sizes)
            described.append(_workload_dict(workload, feeds))
            warm = time.perf_counter()
            for runner in runners:
                runner.use(feeds)
                for _ in range(warmup):
                    runner.run()
                runner.sample_rss()
            share = None
            if seconds is not None:
                share = max(0.0, seconds - (time.perf_counter() - started)) / (len(workloads) - number)
                round_s = (time.perf_counter() - warm) / max(warmup, 1)  # one round: every session once
                expected = int(share / round_s) if round_s > 0 else 0
                if expected < MIN_ROUNDS:
                    sizes = workload.sizes
                    name = workload_label(workload.scenario, sizes.batch, sizes.seq, sizes.past)
                    name = "the given inputs" if workload.scenario == "inputs" else name
                    line = (
                        f"{option('--seconds')} {seconds:g} leaves {share:.2f} s for {name}: about "
                        f"{expected} rounds of {round_s * 1000:.0f} ms, fewer than the {MIN_ROUNDS} a verdict "
                        f"needs (give more seconds, or {option('--iters')})"
                    )
                    notes.append(line)
                    say(line)
            timed_rounds(runners, iters, share, _offset(progress, number * (iters or 0), total))
            group = [row_of(r, threads, workload, feeds) for r in runners]
            if profile_dir is not None:  # extra sessions and runs after the timed ones: profiling never slows them
                from normopt.latency.profile import summarize_profile

                for runner, row in zip(runners, group, strict=True):
                    profiler = Runner(runner.label, runner.path, runner.provider, runner.level, threads, profile_dir)
                    profilers.append(profiler)
                    profiler.use(feeds)
                    for _ in range(PROFILE_RUNS):
                        profiler.run()
                    row.profile = summarize_profile(profiler.session.end_profiling(), runner.path)
            _speedups(group, [r.samples for r in runners], labels[-1] if calibrate else None)
            rows += group
    finally:
        if profile_dir is not None:  # nothing left behind, also on an error or Ctrl-C
            end_profiles(profilers)
            shutil.rmtree(profile_dir, ignore_errors=True)
        if peer_dir is not None:
            shutil.rmtree(peer_dir, ignore_errors=True)
    return BenchReport(
        results=rows,
        shapes=described[0]["shapes"] if described else {},
        environment=environment(),
        skipped=skipped,
        settings={
            "warmup": warmup,
            "iters": iters if seconds is None else None,
            "seconds": seconds,
            "opt_levels": list(opt_levels),
            "threads": threads,
            "providers": list(providers),
            "calibrate": calibrate,
        },
        workloads=described,
        notes=notes,
    )


def _add_ort_peers(
    paths: list[Path],
    labels: list[str],
    first: ir.Model,
    specs: list[InputSpec],
    probe: Any,
    model_type: str | None,
    notes: list[str],
) -> tuple[str | None, list[tuple[str, str]]]:
    """Append ORT's transformers optimizer applied to the first model, and to the second (normopt's output).

    Returns the temp folder and, per row that could not be made, (label, why). The optimizer's warnings go
    to ``notes``, with the heads and hidden size it was given.
    """
    import tempfile

    from normopt.latency import peers

    outputs = [o.name for o in probe.get_outputs()]
    chosen = model_type or peers.guess_model_type(specs, outputs)
    if chosen is None:
        return None, [
            (
                "ort-optimized",
                f"no ONNX Runtime transformers-optimizer model type fits (pass {option('--ort-model-type')})",
            )
        ]
    if chosen not in peers.model_types():
        known = ", ".join(peers.model_types())
        raise UsageError(f"unknown {option('--ort-model-type')} {chosen!r}; ONNX Runtime knows {known}")
    shape = peers.model_shape(first)  # the first model, as bench loaded it
    heads, size = shape.num_heads or "not found", shape.hidden_size or "not found"
    given = f"model type {chosen}, num_heads {heads}, hidden_size {size}"
    notes.append(f"ONNX Runtime's transformers optimizer ran with {given} (read from the model)")
    folder = tempfile.mkdtemp(prefix="normopt-ort-")
    problems = []
    targets = [(paths[0], "ort-optimized")]
    if len(paths) > 1:
        targets.append((paths[1], f"ort-optimized ({labels[1]})"))
    for number, (source, label) in enumerate(targets):
        output = Path(folder) / f"ort-optimized-{number}.onnx"
        problem, heard = peers.ort_optimized(source, output, chosen, shape)
        notes += [f"ONNX Runtime's optimizer on {source.name}: {line}" for line in heard]
        if problem is not None:
            problems.append((label, problem))
            continue
        paths.append(output)
        labels.append(label)
    return folder, problems


def _offset(progress: Callable[[int, int], None] | None, done: int, total: int) -> Callable[[int, int], None] | None:
    """``progress`` for one workload's rounds, counted on from the rounds of the workloads before it."""
    if progress is None:
        return None
    report = progress
    return lambda rounds, _: report(done + rounds, total)


def _workload_dict(workload: Workload, feeds: dict[str, np.ndarray]) -> dict[str, Any]:
    sizes = workload.sizes
    return {
        "scenario": workload.scenario,
        "batch": sizes.batch,
        "seq": sizes.seq,
        "past": sizes.past,
        "shapes": {k: list(v.shape) for k, v in feeds.items()},
    }


def _labels(paths: list[Path]) -> list[str]:
    names = [p.stem for p in paths]
    if len(set(names)) == len(names):
        return names
    return [str(p) for p in paths]


def _speedups(rows: list[BenchRow], samples: list[list[int]], calibration: str | None = None) -> None:
    """Speedup of every row against the first model's row under the same provider and opt level.

    Each comes with its 95% interval and verdict (``stats.speedup_ci``); ``samples`` are each row's
    timings in ns, by round. The row labelled ``calibration`` (the baseline's A/A twin) sets the noise
    floor of its provider and level: the other rows' differences must clear it.
    """
    first: dict[tuple[str, str], int] = {}
    floors: dict[tuple[str, str], float] = {}
    for index, row in enumerate(rows):
        key = (row.provider, row.opt_level)
        base = first.setdefault(key, index)
        if row.model == calibration and base != index:
            ci = speedup_ci(samples[base], samples[index])
            floors[key] = noise_floor(ci)
            row.speedup, row.speedup_low, row.speedup_high = ci.speedup, ci.low, ci.high
            row.verdict = f"A/A noise floor ±{100 * floors[key]:.1f}%"
    for index, row in enumerate(rows):
        key = (row.provider, row.opt_level)
        base = first[key]
        if base == index:
            row.speedup, row.verdict = 1.0, "baseline"
            continue
        if row.model == calibration:
            continue
        ci = speedup_ci(samples[base], samples[index], floor=floors.get(key, 0.0))
        row.speedup, row.speedup_low, row.speedup_high, row.verdict = ci.speedup, ci.low, ci.high, ci.verdict
        row.speedup_margin = ci.margin
