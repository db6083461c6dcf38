"""Inputs for running a model: loaded from an .npz, or generated per input from its name and type.

Generated inputs are seeded and sensible for transformer graphs: ids are drawn below the vocabulary
size found by data flow (the first dimension of the embedding table they index), attention masks are
ones, position ids count up (from the past length), token type ids are zeros, a merged decoder's
``use_cache_branch`` is true when there is a past, and floats are standard normal. Dynamic dimensions
are bound by ``--shape NAME=DIMS``, else by input role from batch, seq and past (``roles``), else by
name: batch-like dims 2, all others 16.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx_ir as ir

from normopt.errors import UsageError, option
from normopt.feeds import roles
from normopt.feeds.spec import InputSpec
from normopt.ops import is_op

DEFAULT_BATCH = roles.DEFAULT_BATCH
DEFAULT_DIM = roles.DEFAULT_SEQ
_NP_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
}


def parse_shape(text: str) -> tuple[str, list[int]]:
    """Parse ``NAME=2x16x768`` (or ``NAME=2,16``) into a name and dims."""
    match = re.fullmatch(r"\s*([^=]+?)\s*=\s*(\d+(?:\s*[x,]\s*\d+)*)?\s*", text)
    if not match:
        raise UsageError(f"bad {option('--shape')} {text!r}; expected NAME=DIMS such as input_ids=2x16")
    dims = [int(d) for d in re.split(r"\s*[x,]\s*", match.group(2))] if match.group(2) else []
    if any(d < 1 for d in dims):
        raise UsageError(
            f"bad {option('--shape')} {text!r}: every dim must be at least 1 (a zero-size input checks nothing)"
        )
    return match.group(1), dims


def parse_shapes(texts: list[str] | None) -> dict[str, list[int]]:
    """Parse several ``--shape`` options; a dim name (``seq=32``) binds every input dim of that name."""
    return dict(parse_shape(t) for t in texts or [])


def bind_shape(spec: InputSpec, shapes: Mapping[str, list[int]], named: dict[str, int] | None = None) -> list[int]:
    """Concrete dims for ``spec``: its own ``--shape``, else named-dim bindings, else defaults.

    ``named`` holds the size of each dim name (``roles.bindings`` fills it from batch/seq/past) and
    remembers the defaults given here, so a name used twice (in one input or across inputs) is one
    size, as ONNX means it. A dim written as an expression of other names is evaluated.
    """
    if spec.name in shapes:
        dims = shapes[spec.name]
        if spec.shape is not None and len(dims) != len(spec.shape):
            raise UsageError(
                f"{option('--shape')} {spec.name} has {len(dims)} dims; the model input has {len(spec.shape)}"
            )
        return dims
    if spec.shape is None:
        raise UsageError(
            f"input {spec.name} has no shape (unknown rank); pass "
            f"{option('--inputs')} or {option('--shape')} {spec.name}=DIMS"
        )
    named = {} if named is None else named
    bound = []
    for index, dim in enumerate(spec.shape):
        if isinstance(dim, int) and dim > 0:
            bound.append(dim)
        elif isinstance(dim, str) and dim in shapes and len(shapes[dim]) == 1:
            bound.append(shapes[dim][0])
        elif isinstance(dim, str) and dim in named:
            bound.append(named[dim])
        elif isinstance(dim, str) and (size := roles.dim_size(dim, named)) is not None:
            bound.append(size)
        else:
            value = DEFAULT_BATCH if index == 0 or (isinstance(dim, str) and "batch" in dim.lower()) else DEFAULT_DIM
            if isinstance(dim, str) and dim:
                named[dim] = value
            bound.append(value)
    return bound


def check_shapes(shapes: Mapping[str, list[int]], specs: list[InputSpec]) -> dict[str, list[int]]:
    """``shapes`` when every name is an input or a symbolic dim name, and static dims agree; else UsageError."""
    inputs = {s.name: s for s in specs}
    dim_names = sorted({d for s in specs for d in s.shape or () if isinstance(d, str) and d})
    for name, dims in shapes.items():
        spec = inputs.get(name)
        if spec is None and name not in dim_names:
            raise UsageError(
                f"{option('--shape')} {name}: the model has no input or dim of that name; inputs: "
                f"{'; '.join(s.describe() for s in specs)}; dim names: {', '.join(dim_names) or 'none'}"
            )
        if spec is None:
            if len(dims) != 1:
                raise UsageError(f"{option('--shape')} {name}={'x'.join(map(str, dims))}: a dim name takes one size")
            continue
        if spec.shape is not None and len(dims) != len(spec.shape):
            raise UsageError(f"{option('--shape')} {name} has {len(dims)} dims; the model expects {spec.describe()}")
        if not spec.fits(dims):
            raise UsageError(f"{option('--shape')} {name}={'x'.join(map(str, dims))} does not fit {spec.describe()}")
    return dict(shapes)


def vocab_limits(model: ir.Model) -> dict[str, int]:
    """For each integer graph input that indexes a Gather table, the table's first dimension."""
    limits: dict[str, int] = {}
    for value in model.graph.inputs:
        for user, index in value.uses():
            if is_op(user, "Gather") and index == 1 and user.inputs[0] is not None:
                table = user.inputs[0]
                shape = table.const_value.shape if table.const_value is not None else table.shape
                if shape is not None and len(shape) and isinstance(shape[0], int):
                    limits[value.name or ""] = min(limits.get(value.name or "", shape[0]), shape[0])
    return limits


def generate(
    specs: list[InputSpec],
    shapes: Mapping[str, list[int]],
    seed: int,
    limits: Mapping[str, int] | None = None,
    float_dtype: type | None = None,
    sizes: roles.Sizes | None = None,
) -> dict[str, np.ndarray]:
    """Seeded inputs for ``specs``; ``float_dtype`` overrides float types (e.g. float32 for a reference).

    ``sizes`` (batch, seq, past) bind dims by input role (see ``roles``); ``shapes`` win over them.
    """
    sizes = sizes or roles.Sizes()
    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    named = roles.bindings(specs, shapes, sizes)
    past = sizes.resolved(roles.has_past(specs))[2]
    for spec in specs:
        dtype = _NP_TYPES.get(spec.type)
        if dtype is None:
            raise UsageError(f"input {spec.name} has type {spec.type}, which normopt cannot generate")
        dims = bind_shape(spec, shapes, named)
        lowered = spec.name.lower()
        role = roles.role_of(spec)
        if np.issubdtype(dtype, np.floating):
            feeds[spec.name] = rng.standard_normal(dims).astype(float_dtype or dtype)
        elif role == "cache_flag":
            feeds[spec.name] = np.full(dims, past > 0, dtype=np.bool_)
        elif dtype is np.bool_:
            feeds[spec.name] = np.ones(dims, dtype=np.bool_)
        elif "mask" in lowered:
            feeds[spec.name] = np.ones(dims, dtype=dtype)
        elif "position" in lowered:
            start = past if role == "positions" else 0
            feeds[spec.name] = (
                np.broadcast_to(np.arange(start, start + dims[-1], dtype=dtype), dims).copy()
                if dims
                else np.zeros(dims, dtype)
            )
        elif "token_type" in lowered:
            feeds[spec.name] = np.zeros(dims, dtype=dtype)
        else:
            high = (limits or {}).get(spec.name, 100)
            feeds[spec.name] = rng.integers(0, max(1, high), size=dims).astype(dtype)
    return feeds


def load_npz(path: str | os.PathLike[str], specs: list[InputSpec]) -> dict[str, np.ndarray]:
    """Inputs from an ``.npz``; every model input must be present (extra arrays are an error too)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"no such inputs file: {path}")
    try:
        with np.load(path) as data:
            feeds = {k: data[k] for k in data.files}
    except Exception as error:
        raise UsageError(
            f"{path} is not a readable .npz ({type(error).__name__}; write one with numpy.savez)"
        ) from error
    names = {s.name for s in specs}
    if set(feeds) != names:
        raise UsageError(f"{path} holds {sorted(feeds)}, but the model's inputs are {sorted(names)}")
    return {s.name: _checked_array(feeds[s.name], s) for s in specs}


def _checked_array(array: np.ndarray, spec: InputSpec) -> np.ndarray:
    """``array`` as ``spec``'s type when its kind, rank and static dims fit (ints widened safely)."""
    want = _NP_TYPES.get(spec.type)
    got = f"got {array.dtype} [{', '.join(map(str, array.shape))}]"
    problem = None
    if want is None:
        problem = f"normopt cannot feed type {spec.type}"
    elif array.size == 0:
        problem = f"{got}: an empty array checks nothing"
    elif np.issubdtype(want, np.floating):
        problem = None if np.issubdtype(array.dtype, np.floating) else got
    elif array.dtype != want and not np.can_cast(array.dtype, want, "safe"):
        problem = got
    if problem is None and not spec.fits(array.shape):
        problem = got
    if problem is not None:
        raise UsageError(f"{spec.name}: {problem}; the model expects {spec.describe()}")
    if want is not None and not np.issubdtype(want, np.floating):
        array = array.astype(want, copy=False)
    return array


def cast_for(feeds: Mapping[str, np.ndarray], specs: list[InputSpec]) -> dict[str, np.ndarray]:
    """Cast float arrays to each input's own float type (a float32 reference vs an fp16 candidate)."""
    out = {}
    for spec in specs:
        array = feeds[spec.name]
        dtype = _NP_TYPES.get(spec.type)
        if dtype is not None and np.issubdtype(dtype, np.floating) and array.dtype != dtype:
            array = array.astype(dtype)
        out[spec.name] = array
    return out
