"""ONNX Runtime sessions the way normopt needs them: explicit provider, no silent CPU fallback.

With onnxruntime-gpu on a machine without CUDA, ``get_available_providers()`` still lists CUDA and a
session asked for it quietly runs on CPU. normopt therefore probes CUDA once with a one-node model,
reads the providers back from every session, and refuses (ProviderUnavailable) when CUDA is not the
session's first provider, so a number is never labelled CUDA when it was not. (ORT refuses
``session.disable_cpu_ep_fallback`` together with an explicit CPU provider, and CPU stays listed so ops
without a CUDA kernel can still run, as ORT intends.)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from normopt import process
from normopt.errors import ProviderUnavailable, UsageError

if TYPE_CHECKING:
    import onnxruntime as ort

Provider = Literal["cpu", "cuda"]
OptLevel = Literal["disable", "basic", "extended", "all"]
PROVIDERS: tuple[Provider, ...] = ("cpu", "cuda")
OPT_LEVELS: tuple[OptLevel, ...] = ("disable", "basic", "extended", "all")
_ORT_NAMES = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


def ort_provider_name(provider: Provider) -> str:
    """ONNX Runtime's name for a provider (``cuda`` → ``CUDAExecutionProvider``)."""
    return _ORT_NAMES[provider]


def _graph_level(level: OptLevel) -> ort.GraphOptimizationLevel:
    import onnxruntime as ort

    return {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[level]


def cuda_problem() -> str | None:
    """Why CUDA cannot be used here (None when a CUDA session can really be created)."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return f"this onnxruntime build ({ort.__version__}) has no CUDAExecutionProvider"
    if not any(Path(p).exists() for p in ("/dev/nvidia0", "/dev/nvidiactl")) and not os.environ.get(
        "NORMOPT_ASSUME_GPU"
    ):
        return "no NVIDIA GPU device is visible (/dev/nvidia0 missing)"
    try:
        import numpy as np
        import onnx_ir as ir

        from normopt import modelio

        x = ir.Value(name="x", type=ir.TensorType(ir.DataType.FLOAT), shape=ir.Shape([1]))
        node = ir.Node("", "Identity", [x], outputs=[ir.Value(name="y", type=x.type, shape=x.shape)])
        graph = ir.Graph([x], node.outputs, nodes=[node], opset_imports={"": 17})
        session = create(modelio.serialize(ir.Model(graph, ir_version=8)), "cuda", "disable")
        session.run(None, {"x": np.zeros([1], np.float32)})
    except ProviderUnavailable as error:
        return str(error)
    return None


def create_pair(
    first: str | os.PathLike[str] | bytes,
    second: str | os.PathLike[str] | bytes,
    provider: Provider = "cpu",
    opt_level: OptLevel = "disable",
) -> tuple[ort.InferenceSession, ort.InferenceSession]:
    """Two sessions (as ``create``), built side by side.

    ONNX Runtime builds a session without holding Python's lock, and on a 10,000-node model building one takes
    half a minute. Daemon threads: Ctrl-C is not held up until a session nobody will use is built.
    """
    import threading

    built: list[ort.InferenceSession | None] = [None, None]
    failed: list[BaseException | None] = [None, None]

    def build(index: int, model: str | os.PathLike[str] | bytes) -> None:
        try:
            built[index] = create(model, provider, opt_level)
        except BaseException as error:  # re-raised in the caller's thread below
            failed[index] = error

    threads = [
        threading.Thread(target=build, args=(i, m), daemon=True, name=f"normopt-session-{i}")
        for i, m in enumerate((first, second))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for error in failed:
        if error is not None:
            raise error
    assert built[0] is not None and built[1] is not None
    return built[0], built[1]


def create(
    model: str | os.PathLike[str] | bytes,
    provider: Provider = "cpu",
    opt_level: OptLevel = "disable",
    threads: int | None = None,
    profile_prefix: str | None = None,
) -> ort.InferenceSession:
    """Create a session on exactly ``provider``; raise ProviderUnavailable if ORT would fall back.

    Args:
        model: Path to an ``.onnx`` file or serialized model bytes.
        provider: ``cpu`` or ``cuda``.
        opt_level: ONNX Runtime graph optimization level (``disable`` keeps ORT's own fusions off).
        threads: Intra-op threads (None: ORT's default).
        profile_prefix: Turn ORT's profiler on, writing files with this prefix.

    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = _graph_level(opt_level)
    options.log_severity_level = 3
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    providers = [ort_provider_name(provider)]
    if provider == "cuda":
        providers.append("CPUExecutionProvider")
    source = model if isinstance(model, bytes) else str(model)
    # ORT logs provider-library failures itself; normopt reports them in one line instead. The session's
    # own level always; the process-wide default logger only where the command line owns the process.
    options.log_severity_level = 4 if provider == "cuda" else 3
    if process.owned():
        ort.set_default_logger_severity(4 if provider == "cuda" else 3)
    try:
        session = ort.InferenceSession(source, sess_options=options, providers=providers)
    except Exception as error:
        text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if provider == "cuda":
            raise ProviderUnavailable(f"CUDA session could not be created: {text}") from error
        raise UsageError(f"ONNX Runtime cannot load the model: {text}") from error
    if session.get_providers()[0] != ort_provider_name(provider):
        raise ProviderUnavailable(f"ONNX Runtime did not use {ort_provider_name(provider)} (fell back to CPU)")
    return session


def actual_provider(session: ort.InferenceSession) -> str:
    """The first provider the session really runs on."""
    return str(session.get_providers()[0])
