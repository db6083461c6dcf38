"""``normopt.fuse`` and ``normopt.inspect``: the file-level API over the fusion passes."""

from __future__ import annotations

import contextlib
import gc
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx_ir as ir

from normopt import modelio, process
from normopt.choices import ExternalLayout
from normopt.engines import protograph
from normopt.engines.ir_engine import engine_for
from normopt.engines.postcondition import ort_only_ops
from normopt.engines.protograph import ProtoGraph
from normopt.errors import CheckFailed, UsageError
from normopt.fusion import FusionResult, Target, fuse_model
from normopt.fusion.pipeline import count_nodes, option_problem, wants_skip
from normopt.locate import model_in
from normopt.parity import ParityReport


@dataclass
class FuseOutcome:
    """What ``fuse`` did: the fusion result, where it wrote, the checker's verdict, parity if asked."""

    result: FusionResult
    output: Path
    data_files: list[Path]
    checker: str
    seconds: float
    parity: ParityReport | None = None
    input_data_files: list[Path] = field(default_factory=list)  # the external data the input read
    frozen: list[str] = field(default_factory=list)  # initializers no longer graph inputs (freeze_initializers)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: the fusion result plus ``output``, ``checker``, ``seconds``, ``parity``."""
        return (
            {"schema_version": self.result.SCHEMA_VERSION, "command": "fuse"}
            | self.result.to_dict()
            | {
                "output": str(self.output),
                "data_files": [str(p) for p in self.data_files],
                "checker": self.checker,
                "seconds": round(self.seconds, 4),
                "parity": self.parity.to_dict() if self.parity else None,
                "frozen_initializers": self.frozen,
            }
        )


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Keep Python's cyclic garbage collector off while a graph is built, rewritten and written.

    onnx_ir creates a few objects per node; with the collector on, its full passes over a 30k-node
    graph cost about a third of loading and half of saving. Reference counting still frees what it can.
    Only where the command line owns the process (``normopt.process``): a library call leaves it alone.
    """
    if not process.owned():
        yield
        return
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def check_fuse_options(target: str, skip: bool | None) -> None:
    """Raise UsageError for a target/skip combination the passes cannot honour."""
    problem = option_problem(target, skip)
    if problem is not None:
        raise UsageError(problem)


def default_output(path: Path) -> Path:
    """``model.onnx`` → ``model.fused.onnx`` beside it."""
    return path.with_name(f"{path.stem}.fused{path.suffix or '.onnx'}")


def fuse(
    input: modelio.ModelLike,
    output: str | os.PathLike[str] | None = None,
    *,
    target: Target = "auto",
    skip: bool | None = None,
    external: ExternalLayout = "auto",
    in_place: bool = False,
    verify: bool = False,
    atol: float | None = None,
    rtol: float | None = None,
    data_name: str | None = None,
    keep_data_name: bool = False,
    freeze_initializers: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
) -> FuseOutcome:
    """Fuse every norm in the model at ``input`` and write the result atomically.

    Args:
        input: Source model (a path; or an in-memory ``onnx.ModelProto`` / ``onnx_ir.Model``, which then
            needs ``output``); never modified unless ``in_place``.
        output: Destination (default ``<input stem>.fused.onnx``).
        target: ``auto``, ``onnx`` or ``ort`` (see ``normopt.fusion.emit``).
        skip: Merge residual Adds into Skip* ops (default: only for ``ort``).
        external: External data layout of the output (see ``modelio.save``).
        in_place: Allow ``output`` to be ``input``.
        verify: Check parity against ``input`` before the output is moved into place; a failure
            raises CheckFailed and leaves no output.
        atol: Tolerance for ``verify`` (None: per-dtype default).
        rtol: Tolerance for ``verify`` (None: per-dtype default).
        data_name: File name for new external data (default ``<output name>.data``).
        keep_data_name: Name new external data like the input's data file when it has exactly one
            (``model.onnx_data`` stays ``model.onnx_data``), instead of the default.
        freeze_initializers: Assert that no caller overrides an initializer that is also a graph input:
            the output no longer lists them as inputs (``FuseOutcome.frozen`` names them), and norms whose
            ε, axes, exponent or divisor are such initializers can be proved and fused.
        progress: Called as ``progress(phase, done, total)``: reading, each pass over its anchors, writing,
            onnx.checker and (with ``verify``) parity; the CLI shows a row per phase with its ETA.

    Raises:
        UsageError: Bad paths or options.
        CheckFailed: ``onnx.checker`` rejects a ``--target onnx`` output, or parity fails.

    """
    if not isinstance(input, (str, os.PathLike)):
        if output is None or in_place:
            raise UsageError("an in-memory model is fused into a file: give output (and no in_place)")
        with modelio.as_path(input) as file:
            return fuse(
                file, output, target=target, skip=skip, external=external, verify=verify, atol=atol, rtol=rtol,
                data_name=data_name, keep_data_name=keep_data_name, freeze_initializers=freeze_initializers,
                progress=progress,
            )  # fmt: skip
    start = time.perf_counter()
    phase = _phases(progress)
    source = Path(input)
    destination = Path(output) if output is not None else default_output(source)
    check_fuse_options(target, skip)
    if not source.exists():
        modelio.read_proto(source)  # the input's own error first (no folder is made for a missing input)
    made = modelio.make_parents(destination)  # -o out/model.onnx makes out/; taken back on failure
    created: list[Path] = []  # staging paths, recorded the moment they exist (a signal may land anywhere)
    try:
        modelio.check_destination(destination, source, in_place=in_place)
        with gc_paused():
            phase("reading")
            model, frozen = _load_for_fusing(source, destination, target, skip, external, freeze_initializers)
            protected = {p.resolve() for p in modelio.external_files(model)}
            kept = next(iter(protected)).name if keep_data_name and len(protected) == 1 else None
            data_name = data_name or kept or f"{destination.name}.data"
            writes_data = modelio.layout(model, destination, external) == "new"
            modelio.check_destination(
                destination,
                source,
                in_place=in_place,
                protected=protected,
                data_name=data_name if writes_data else None,
            )
            phase(None)  # the passes report their own rows
            result = fuse_model(model, target=target, skip=skip, progress=progress)
            phase("writing")
            staged = modelio.stage(model, destination, external=external, data_name=data_name, created=created)
        staging = staged.model_path
        ort_only = ort_only_ops(engine_for(model).facts())
        phase("onnx.checker")
        problem = None if ort_only else modelio.check(staging, full=True)
        checker = "passed" if problem is None else f"failed: {problem}"
        if ort_only:
            checker = f"skipped: output uses ONNX Runtime ops ({', '.join(ort_only)})"
        if problem is not None:
            source_problem = modelio.check(source, full=True)
            if source_problem is None:
                raise CheckFailed(
                    f"onnx.checker rejects the fused model but passes the input: {problem}; nothing written"
                )
            checker = f"failed, as the input does: {problem}"
        parity = None
        if verify:
            from normopt.parity import verify as run_verify

            phase("parity")
            parity = run_verify(source, staging, atol=atol, rtol=rtol)
            if not parity.passed:
                raise CheckFailed(_parity_line(parity))
        phase(None)
        in_place_write = destination.resolve() == source.resolve()
        info = staged.commit(mode_like=source if in_place_write else None)
    except BaseException:
        modelio.discard_created(created)
        modelio.remove_made(made)
        raise
    return FuseOutcome(
        result, destination, info.data_files, checker, time.perf_counter() - start, parity, sorted(protected), frozen
    )


def _phases(progress: Callable[[str, int, int], None] | None) -> Callable[[str | None], None]:
    """``phase(name)``: the phase before it is done (1/1) and ``name`` begins (0/1); ``phase(None)`` ends."""
    current: list[str] = []

    def phase(name: str | None) -> None:
        if progress is None:
            return
        if current:
            progress(current.pop(), 1, 1)
        if name is not None:
            current.append(name)
            progress(name, 0, 1)

    return phase


# From this size on, flat graphs take the protobuf engine (~3x faster end to end than building onnx_ir
# objects); both engines infer shapes the same way, so the choice changes speed, never the result.
FLAT_PATH_MIN_NODES = 10_000


def _load_for_fusing(
    source: Path, destination: Path, target: Target, skip: bool | None, external: ExternalLayout, freeze: bool
) -> tuple[ir.Model | ProtoGraph, list[str]]:
    """The model as a ``ProtoGraph`` where the protobuf fast path gives the same result, else onnx_ir.

    With ``freeze``, initializers stop being graph inputs first (their names are returned).
    """
    proto = modelio.read_proto(source)  # parsed (and repaired) once, whichever engine takes it
    frozen = modelio.freeze_initializers(proto) if freeze else []
    if not wants_skip(target, skip) and external in ("auto", "same", "inline"):
        flat = protograph.load_flat(source, FLAT_PATH_MIN_NODES, proto)
        if flat is not None:
            files = modelio.external_files(flat)
            in_place_data = all(f.parent == destination.resolve().parent for f in files)
            if not files or (external in ("auto", "same") and in_place_data):
                return flat, frozen
    return modelio.load(source, proto), frozen


def _parity_line(parity: ParityReport) -> str:
    worst = max(parity.outputs, key=lambda o: o.max_abs)
    where = ""
    if parity.first_divergence and parity.first_divergence.get("node"):
        where = f"; first diverging fused node: {parity.first_divergence['node']}"
    return f"parity failed: output {worst.name} max_abs={worst.max_abs:.3g}{where}; nothing written"


@dataclass
class InspectReport:
    """Norm candidates of a model, as the passes see them, without writing anything."""

    path: Path
    opset: int
    nodes: int
    existing_norm_ops: dict[str, int]
    result: FusionResult

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``path``, ``opset``, ``nodes``, ``existing_norm_ops`` and the candidates."""
        return {
            "schema_version": 1,
            "command": "inspect",
            "path": str(self.path),
            "opset": self.opset,
            "nodes": self.nodes,
            "existing_norm_ops": self.existing_norm_ops,
            "candidates": self.result.candidates,
            "fusable": self.result.fused,
            "details": [_as_inspected(c.to_dict()) for c in self.result.details],
        }


def _as_inspected(record: dict[str, Any]) -> dict[str, Any]:
    """A candidate as ``inspect`` reports it: it changed nothing, so a fusable one is ``fusable``, not ``fused``."""
    if record["status"] == "fused":
        record = record | {"status": "fusable", "fused_node": None}
    return record


def inspect(path: modelio.ModelLike, target: Target = "auto") -> InspectReport:
    """Every norm candidate in a model: kind, eps, axes, dtype, and why it is not fusable.

    ``path``: a file, an export folder's model (``locate.model_in``), or an in-memory ``onnx.ModelProto`` /
    ``onnx_ir.Model``.
    """
    if not isinstance(path, (str, os.PathLike)):
        with modelio.as_path(path) as file:
            return inspect(file, target)
    path = model_in(path)
    with gc_paused():
        proto = modelio.read_proto(path)
        flat = None if wants_skip(target, None) else protograph.load_flat(path, FLAT_PATH_MIN_NODES, proto)  # no Skip
        model: ir.Model | ProtoGraph = flat if flat is not None else modelio.load(path, proto)
        nodes = count_nodes(model)
        check_fuse_options(target, None)
        result = fuse_model(model, target=target)
    return InspectReport(Path(path), model.opset_imports.get("", 1), nodes, result.existing_norm_ops, result)
