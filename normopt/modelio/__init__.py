"""Loading, checking and saving models: the one package of normopt that touches raw ONNX protobuf.

Models are held as onnx_ir models. External weights stay memory-mapped and are never read unless a pass
needs a small tensor; outputs are written to a temporary file beside the destination and moved into
place, so a failed save leaves nothing half-written and an input is never overwritten by accident.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import onnx
import onnx_ir as ir

from normopt.errors import UsageError
from normopt.modelio.protograph import ProtoGraph, flat_graph_problem
from normopt.modelio.repair import needs_repair, repair

logger = logging.getLogger(__name__)

# ONNX Runtime 1.31 loads IR version <= 13 (see shared notes); never write anything newer.
MAX_IR_VERSION = 10

ExternalLayout = Literal["auto", "same", "new", "inline"]


def load(path: str | os.PathLike[str]) -> ir.Model:
    """Load ``path`` without reading external weights; raise UsageError for a missing or bad file.

    Every external data file the model references must exist (weights are checked, not read). A model
    in the looser form ONNX Runtime accepts (duplicate Constant outputs, unsorted nodes) is read in the
    strict form with the same meaning (``normopt.modelio.repair``).
    """
    path = Path(path)
    proto = read_proto(path)
    try:
        model = ir.serde.deserialize_model(proto)
    except Exception as error:
        raise UsageError(f"{path} is not a readable ONNX model ({type(error).__name__}: {error})") from None
    ir.external_data.set_base_dir(model.graph, os.fspath(path.parent))
    _require_data(path, model)
    return model


def load_flat(path: str | os.PathLike[str], min_nodes: int) -> ProtoGraph | None:
    """The model at ``path`` as a ``ProtoGraph`` (protobuf fast path), or None where it does not apply.

    It applies to flat graphs (no functions, no subgraphs) of at least ``min_nodes`` nodes; errors
    are those of ``load``.
    """
    path = Path(path)
    proto = read_proto(path)
    if len(proto.graph.node) < min_nodes or flat_graph_problem(proto) is not None:
        return None
    try:
        graph = ProtoGraph(proto, path.resolve().parent)
    except ValueError as error:
        raise UsageError(f"{path} is not a valid ONNX model ({error})") from None
    _require_data(path, graph)
    return graph


def read_proto(path: str | os.PathLike[str]) -> onnx.ModelProto:
    """The ``ModelProto`` at ``path`` (external data not loaded), checked to be a model and repaired.

    Raises:
        UsageError: A missing file, a file that does not parse, or a protobuf that is not an ONNX model
            (an empty file, a bare GraphProto or TensorProto, a ModelProto without graph or opset).

    """
    path = Path(path)
    if not path.exists():
        raise UsageError(f"no such model file: {path}")
    if not path.is_file():
        raise UsageError(f"not a model file: {path} (a directory or special file)")
    if path.stat().st_size == 0:
        raise UsageError(f"not an ONNX model: {path} is empty")
    try:
        proto = onnx.load(os.fspath(path), load_external_data=False)
    except Exception as error:
        raise UsageError(f"not an ONNX model: {path} does not parse ({type(error).__name__}: {error})") from None
    problem = _model_problem(proto)
    if problem:
        raise UsageError(f"not an ONNX model: {path} {problem}")
    for change in repair(proto.graph) if needs_repair(proto.graph) or flat_graph_problem(proto) else []:
        logger.warning("%s: %s", path.name, change)
    return proto


def _model_problem(proto: onnx.ModelProto) -> str | None:
    """Why a parsed protobuf is not an ONNX model, or None."""
    if proto.ir_version <= 0:
        return "has no IR version (is it a bare GraphProto or TensorProto?)"
    if not proto.HasField("graph") or (not proto.graph.node and not proto.graph.output):
        return "has no graph"
    if not proto.opset_import:
        return "declares no opset"
    if not proto.graph.output:
        return "has no graph outputs"
    return None


def _require_data(path: Path, model: ir.Model | ProtoGraph) -> None:
    missing = sorted({str(f) for f in external_files(model) if not f.is_file()})
    if missing:
        raise UsageError(f"{path} references missing external data: {', '.join(missing)}")


def external_files(model: ir.Model | ProtoGraph) -> set[Path]:
    """Absolute paths of the external data files the model's initializers point to."""
    if isinstance(model, ProtoGraph):
        return model.external_files()
    pairs: set[tuple[str, str]] = set()  # Path objects only per distinct file: 30k initializers stay cheap
    for graph in model.graphs():
        for value in graph.initializers.values():
            tensor = value.const_value
            if isinstance(tensor, ir.ExternalTensor):
                pairs.add((str(tensor.base_dir), str(tensor.location)))
    return {Path(base) / location for base, location in pairs}


@dataclass
class SaveInfo:
    """Where a model went and where its weights are."""

    path: Path
    data_files: list[Path]


def save(
    model: ir.Model | ProtoGraph,
    path: str | os.PathLike[str],
    *,
    source: str | os.PathLike[str] | None = None,
    external: ExternalLayout = "auto",
    in_place: bool = False,
    data_name: str | None = None,
) -> SaveInfo:
    """Write ``model`` atomically.

    Args:
        model: The model to write.
        path: Destination ``.onnx`` file.
        source: The file the model was loaded from; writing onto it needs ``in_place``.
        external: ``same`` keeps references to the existing data files (output must sit in the same
            directory), ``new`` writes ``<name>.data`` beside the output, ``inline`` embeds every weight,
            ``auto`` picks ``same`` when possible, else ``new`` when the model has external weights.
        in_place: Allow ``path`` to be ``source``.
        data_name: File name for ``new`` external data (default ``<output name>.data``).

    Returns:
        The output path and the data files it references.

    """
    path = Path(path)
    if source is not None and path.resolve() == Path(source).resolve() and not in_place:
        raise UsageError(f"refusing to overwrite the input {path}; pass --in-place to allow it")
    if not path.parent.is_dir():
        raise UsageError(f"output directory does not exist: {path.parent}")
    existing = external_files(model)
    same_dir = all(f.parent.resolve() == path.parent.resolve() for f in existing)
    if external == "auto":
        external = "inline" if not existing else ("same" if same_dir else "new")
    if external == "same" and not same_dir:
        raise UsageError("external data can keep its layout only when the output is in the input's directory")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        if isinstance(model, ProtoGraph):
            if external not in ("same", "inline") or (external == "inline" and existing):
                raise UsageError("a protobuf-path model keeps its external data where it is (use external='same')")
            proto = model.finish()
            proto.ir_version = min(proto.ir_version or MAX_IR_VERSION, MAX_IR_VERSION)
            with open(tmp, "wb") as handle:
                handle.write(proto.SerializeToString())
            data_files = sorted(existing)
        elif external == "new":
            _cap_ir_version(model)
            data_name = data_name or f"{path.name}.data"
            ir.save(model, tmp, external_data=data_name, size_threshold_bytes=1024)
            data_files = [path.parent / data_name]
        else:
            _cap_ir_version(model)
            if external == "inline":
                ir.external_data.load_to_model(model)
            ir.save(model, tmp)
            data_files = sorted(existing) if external == "same" else []
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return SaveInfo(path=path, data_files=data_files)


def _cap_ir_version(model: ir.Model) -> None:
    model.ir_version = min(model.ir_version or MAX_IR_VERSION, MAX_IR_VERSION)


def to_proto(model: ir.Model) -> onnx.ModelProto:
    """Serialize to a ModelProto (weights that are external stay external)."""
    _cap_ir_version(model)
    return ir.serde.serialize_model(model)


def check(path: str | os.PathLike[str], full: bool = True) -> str | None:
    """Run ``onnx.checker`` on a saved model (shape inference too when ``full``); return the error or None.

    The path form lets the checker handle external data and models over 2 GiB.
    """
    try:
        onnx.checker.check_model(str(path), full_check=full)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as error:
        return str(error).strip().splitlines()[0]
    return None


def serialize(model: ir.Model) -> bytes:
    """The model as bytes for an in-memory ONNX Runtime session (weights included)."""
    return to_proto(model).SerializeToString()


def add_outputs(model: ir.Model, names: list[str]) -> list[str]:
    """Expose the named intermediate values of the main graph as extra outputs; return those added."""
    values = ir.convenience.create_value_mapping(model.graph)
    present = {o.name for o in model.graph.outputs}
    added = []
    for name in names:
        value = values.get(name)
        if value is None or name in present or value.is_graph_input() or value.is_initializer():
            continue
        model.graph.outputs.append(value)
        added.append(name)
    return added
