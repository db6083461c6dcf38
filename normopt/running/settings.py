"""What ``run`` takes, checked before anything is created (exit 2 before any work)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from normopt.choices import DType, Exporter, Target, Task
from normopt.errors import UsageError, option
from normopt.feeds.ortsession import OptLevel

OUTPUTS = (
    "original.onnx",
    "fused.onnx",
    "report.json",
    "report.md",
    "report.html",
    "latency.png",
)  # what run writes into --out


@dataclass(frozen=True)
class Settings:
    """What ``run`` was asked for, apart from the model and the output folder."""

    exporter: Exporter
    opset: int | None
    dtype: DType
    target: Target
    providers: list[str] | None
    warmup: int
    iters: int | None
    threads: int | None
    task: Task | None = None
    with_past: bool | None = None
    batches: list[int] | None = None
    seqs: list[int] | None = None
    pasts: list[int] | None = None
    seconds: float | None = None
    opt_levels: list[OptLevel] | None = None
    profile: bool = False
    compare_ort: bool = False
    calibrate: bool = True
    atol: float | None = None
    rtol: float | None = None
    shapes: dict[str, list[int]] = field(default_factory=dict)
    inputs: Path | None = None

    def with_kv_cache(self, kind: str) -> bool:
        """Whether the export gets a KV cache: asked for, or by default for a preset."""
        return self.with_past if self.with_past is not None else kind == "preset"


def check_run(model: str, out: Path, settings: Settings) -> None:
    """Every input and option ``run`` takes, checked before anything is created."""
    from normopt import modelio, options
    from normopt.fusing import check_fuse_options

    options.timed_runs(settings.iters, settings.warmup, settings.seconds)
    options.threads(settings.threads)
    options.tolerance(option("--atol"), settings.atol)
    options.tolerance(option("--rtol"), settings.rtol)
    if settings.inputs is not None and not settings.inputs.is_file():
        raise UsageError(f"{option('--inputs')} {settings.inputs}: no such file")
    if settings.inputs is not None and (settings.batches or settings.seqs or settings.pasts or settings.shapes):
        raise UsageError(
            f"{option('--inputs')} fixes every input; {option('--batch')}, "
            f"{option('--seq')}, {option('--past')} and {option('--shape')} do not apply"
        )
    check_fuse_options(settings.target, None)
    if settings.providers and set(settings.providers) == {"cuda"}:  # nothing would be benchmarked: say so now
        from normopt.errors import ProviderUnavailable
        from normopt.feeds import ortsession

        problem = ortsession.cuda_problem()
        if problem is not None:
            raise ProviderUnavailable(f"{option('--provider')} cuda: CUDA is not usable here: {problem}")
    if out.exists() and not out.is_dir():
        raise UsageError(f"{option('--out')} {out} is a file; give a directory (it is created if missing)")
    for ancestor in out.parents:
        if ancestor.exists() and not ancestor.is_dir():
            raise UsageError(f"cannot create {option('--out')} {out}: {ancestor} is a file, not a directory")
    modelio.check_writable(out, f"{option('--out')} {out}")
    if model.endswith(".onnx"):
        source = Path(model).resolve()
        proto = modelio.read_proto(Path(model))  # missing, empty, truncated or not a model: exit 2 now
        if source.parent == out.resolve() and source.name in OUTPUTS:
            raise UsageError(f"{option('--out')} {out} would overwrite the input {model}; choose another directory")
        modelio.load(source, proto)  # its external data must be there too
    else:
        from normopt.exporting.exporter import check_export_options
        from normopt.exporting.spec import check_spec

        check_export_options(settings.exporter, settings.dtype, settings.opset, None, None)
        if settings.dtype == "bf16" and set(settings.providers or ["cpu", "cuda"]) != {"cuda"}:
            raise UsageError(
                f"{option('--dtype', 'bf16')}: ONNX Runtime's CPU provider "
                "has no bfloat16 kernel for ops both exporters write "
                "(Where, Mul), so verify and bench could not run here "
                f"after the export; use {option('--dtype', 'fp16')}, "
                f"or {option('--provider')} cuda on a machine with CUDA "
                f"(normopt export {option('--dtype', 'bf16')} writes the model)"
            )
        kind = check_spec(model, settings.task)
        if settings.with_past and (kind == "function" or settings.task not in (None, "causal-lm")):
            raise UsageError(
                f"{option('--with-past')} exports a causal LM with its cache (presets and Hugging Face directories)"
            )
    if out.is_dir() and any(out.iterdir()) and Path(model).exists():
        if Path(model).resolve().is_relative_to(out.resolve()):
            raise UsageError(
                f"{option('--out')} {out} holds the input {model}, and an earlier run's folder is replaced whole: "
                f"choose another {option('--out')}"
            )
    if model.endswith(".onnx") and (settings.with_past is not None or settings.task is not None):
        raise UsageError(
            f"{option('--with-past')} and {option('--task')} apply to exports; an .onnx input is benchmarked as it is"
        )
