"""Reading models and what only a saved file can tell: parse, check it is a model, load without weights.

Models are held as onnx_ir models. External weights stay memory-mapped and are never read unless a pass
needs a small tensor. ``normopt.modelio.stage`` writes them back.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Protocol

import onnx
import onnx_ir as ir

from normopt.errors import UsageError
from normopt.modelio.repair import flat_graph_problem, needs_repair, repair

logger = logging.getLogger("normopt.modelio")

# Written models carry IR version 10 at most (what onnx 1.16 writes, and what exporters of torch 2.x write).
# ONNX Runtime 1.31 refuses newer files outright ("Unsupported model IR version: 14, max supported IR version: 13"),
# and older runtimes stop lower; 10 keeps outputs loadable wherever the exported input was.
MAX_IR_VERSION = 10


class ProtoModel(Protocol):
    """A model held as its protobuf by a graph engine (``normopt.engines.protograph.ProtoGraph``)."""

    def finish(self) -> onnx.ModelProto:
        """The edited ``ModelProto``, ready to serialize."""
        ...

    def external_files(self) -> set[Path]:
        """Absolute paths of the external data files its initializers point to."""
        ...


def load(path: str | os.PathLike[str], proto: onnx.ModelProto | None = None) -> ir.Model:
    """Load ``path`` without reading external weights; raise UsageError for a missing or bad file.

    Every external data file the model references must exist (weights are checked, not read). A model
    in the looser form ONNX Runtime accepts (duplicate Constant outputs, unsorted nodes) is read in the
    strict form with the same meaning (``normopt.modelio.repair``). ``proto``: the file's ``read_proto``
    result when the caller already has it (the file is then not parsed again).
    """
    path = Path(path)
    proto = read_proto(path) if proto is None else proto
    try:
        model = ir.serde.deserialize_model(proto)
    except Exception as error:
        raise UsageError(f"{path} is not a readable ONNX model ({type(error).__name__}: {error})") from error
    ir.external_data.set_base_dir(model.graph, os.fspath(path.parent))
    require_data(path, model)
    return model


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
        raise UsageError(f"not an ONNX model: {path} does not parse ({type(error).__name__}: {error})") from error
    problem = _model_problem(proto)
    if problem:
        raise UsageError(f"not an ONNX model: {path} {problem}")
    for change in repair(proto.graph) if needs_repair(proto.graph) or flat_graph_problem(proto) else []:
        logger.warning("%s: %s", path.name, change)
    return proto


def freeze_initializers(proto: onnx.ModelProto) -> list[str]:
    """Drop the main graph's inputs that are also initializers (overridable defaults); return their names.

    The caller asserts that no one feeds them: each becomes a constant the passes may prove with
    (torch's ``keep_initializers_as_inputs=True``, every IR < 4 model lists all weights as inputs).
    """
    graph = proto.graph
    initializers = {t.name for t in graph.initializer}
    frozen = [i.name for i in graph.input if i.name in initializers]
    if frozen:
        kept = [i for i in graph.input if i.name not in initializers]
        del graph.input[:]
        graph.input.extend(kept)
    return frozen


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


def require_data(path: Path, model: ir.Model | ProtoModel) -> None:
    """Raise UsageError when an external data file the model references is missing."""
    missing = sorted({str(f) for f in external_files(model) if not f.is_file()})
    if missing:
        raise UsageError(f"{path} references missing external data: {', '.join(missing)}")


def external_files(model: ir.Model | ProtoModel) -> set[Path]:
    """Absolute paths of the external data files the model's initializers point to."""
    if not isinstance(model, ir.Model):
        return model.external_files()
    pairs: set[tuple[str, str]] = set()  # Path objects only per distinct file: 30k initializers stay cheap
    for graph in model.graphs():
        for value in graph.initializers.values():
            tensor = value.const_value
            if isinstance(tensor, ir.ExternalTensor):
                pairs.add((str(tensor.base_dir), str(tensor.location)))
    return {Path(base) / location for base, location in pairs}


def cap_ir_version(model: ir.Model) -> None:
    """Lower the model's IR version to ``MAX_IR_VERSION`` (what every supported runtime reads)."""
    model.ir_version = min(model.ir_version or MAX_IR_VERSION, MAX_IR_VERSION)


def to_proto(model: ir.Model) -> onnx.ModelProto:
    """Serialize to a ModelProto (weights that are external stay external)."""
    cap_ir_version(model)
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
    data: bytes = to_proto(model).SerializeToString()
    return data


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
