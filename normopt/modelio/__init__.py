"""Model files: read (parse, check, load without weights) and write (staged, atomic, never over an input).

This is the bottom of normopt's layers (above only the leaves ``choices``, ``errors``, ``options``, ``ops``):
it knows files, ``ModelProto`` as a whole and onnx_ir models, not graph engines or passes. Graph-level
protobuf work (the flat-graph engine, shape inference) is ``normopt.engines``.
"""

from normopt.modelio.read import (
    MAX_IR_VERSION,
    ProtoModel,
    add_outputs,
    cap_ir_version,
    check,
    external_files,
    freeze_initializers,
    load,
    read_proto,
    require_data,
    serialize,
    to_proto,
)
from normopt.modelio.stage import (
    ModelLike,
    SaveInfo,
    Staged,
    as_path,
    check_destination,
    check_writable,
    discard_created,
    layout,
    make_parents,
    remove_made,
    save,
    signals_held,
    stage,
)

__all__ = [
    "MAX_IR_VERSION",
    "ModelLike",
    "ProtoModel",
    "SaveInfo",
    "Staged",
    "add_outputs",
    "as_path",
    "cap_ir_version",
    "check",
    "check_destination",
    "check_writable",
    "discard_created",
    "external_files",
    "freeze_initializers",
    "layout",
    "load",
    "make_parents",
    "read_proto",
    "remove_made",
    "require_data",
    "save",
    "serialize",
    "signals_held",
    "stage",
    "to_proto",
]
