"""What each input of a transformer graph is for, and the dim sizes that follow from batch, seq and past.

Decoders with a KV cache (normopt's ``--with-past`` exports, Optimum's ``model.onnx`` and merged decoders,
onnxruntime-genai folders) take token ids ``[B, S]``, an attention mask over past and new tokens
``[B, P + S]``, positions ``[B, S]`` counting on from ``P``, past keys and values ``[B, heads, P, head_dim]``
and, in merged decoders, a ``use_cache_branch`` flag. Each exporter names the dims its own way
(``sequence_length``, ``s0``, ``total_sequence_length``, ``past_sequence_length + sequence_length``), so
sizes are bound by role: the ids' dims are batch and seq, the past tensors' second-to-last dim is past
(not for a seq2seq decoder's ``past_key_values.{i}.encoder.*``, which hold encoder tokens),
the mask's last dim is past + seq, and a dim written as an expression is evaluated from the others.
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from normopt.errors import UsageError, option

if TYPE_CHECKING:
    from normopt.feeds.spec import InputSpec

Role = Literal["ids", "mask", "positions", "token_type", "past", "cache_flag", "other"]

DEFAULT_BATCH = 2
DEFAULT_SEQ = 16
DEFAULT_PAST = 16
_FLOATS = ("tensor(float)", "tensor(float16)", "tensor(double)", "tensor(bfloat16)")
_CROSS = re.compile(r"encoder|cross", re.IGNORECASE)
_PAST = re.compile(r"^(past|cache)(_|\.|\d|$)|[._](past|cache)[._]", re.IGNORECASE)


@dataclass(frozen=True)
class Sizes:
    """Batch, new tokens and cached tokens for one run (None: the default)."""

    batch: int | None = None
    seq: int | None = None
    past: int | None = None

    def resolved(self, has_past: bool) -> tuple[int, int, int]:
        """(B, S, P) with defaults filled in; P is 0 for a model without past inputs."""
        batch = DEFAULT_BATCH if self.batch is None else self.batch
        seq = DEFAULT_SEQ if self.seq is None else self.seq
        past = (DEFAULT_PAST if self.past is None else self.past) if has_past else 0
        return batch, seq, past

    def describe(self, has_past: bool) -> str:
        """``batch 2, seq 16, past 16`` (past only for a model with past inputs)."""
        batch, seq, past = self.resolved(has_past)
        return f"batch {batch}, seq {seq}" + (f", past {past}" if has_past else "")


def role_of(spec: InputSpec) -> Role:
    """The role of one input, from its name and type."""
    name = spec.name.lower()
    if spec.type == "tensor(bool)" and "use_cache" in name:
        return "cache_flag"
    if spec.type in _FLOATS:
        return "past" if _PAST.search(name) else "other"
    if name in ("input_ids", "decoder_input_ids"):
        return "ids"
    if name in ("attention_mask", "decoder_attention_mask"):
        return "mask"
    if name in ("position_ids", "decoder_position_ids"):
        return "positions"
    if name == "token_type_ids":
        return "token_type"
    return "other"


def has_past(specs: Sequence[InputSpec]) -> bool:
    """True when the model takes past key/value inputs."""
    return any(role_of(s) == "past" for s in specs)


def has_cache_flag(specs: Sequence[InputSpec]) -> bool:
    """True for a merged decoder (a ``use_cache_branch`` input selects the with-past branch)."""
    return any(role_of(s) == "cache_flag" for s in specs)


def check_sizes(sizes: Sizes, specs: Sequence[InputSpec]) -> None:
    """UsageError when a size is below its minimum or names something the model does not take."""
    from normopt import options

    for flag, value, low in (
        (option("--batch"), sizes.batch, 1),
        (option("--seq"), sizes.seq, 1),
        (option("--past"), sizes.past, 0),
    ):
        if value is not None:
            options.at_least(flag, value, low)
    roles = {role_of(s) for s in specs}
    if sizes.past is not None and "past" not in roles:
        raise UsageError(f"{option('--past')} applies to decoders with past key/value inputs; this model has none")
    if sizes.seq is not None and not roles & {"ids", "positions", "mask", "token_type"}:
        raise UsageError(
            f"{option('--seq')} applies to models with token inputs (input_ids, attention_mask, position_ids)"
        )


def bindings(specs: Sequence[InputSpec], shapes: Mapping[str, list[int]], sizes: Sizes) -> dict[str, int]:
    """The size of every symbolic dim name that a role or ``--shape`` fixes.

    ``--shape`` wins: its dim names, then the dims of inputs it sets whole. Then by role: the ids',
    positions' and token types' dims are batch and seq, the past tensors' first dim is batch and their
    second-to-last is past, the mask's last dim is past + seq (unless written as an expression, which
    ``dim_size`` evaluates).
    """
    batch, seq, past = sizes.resolved(has_past(specs))
    named: dict[str, int] = {k: v[0] for k, v in shapes.items() if len(v) == 1 and k not in {s.name for s in specs}}

    def bind(dim: int | str | None, size: int) -> None:
        if _is_name(dim):
            named.setdefault(str(dim), size)

    for spec in specs:
        if spec.name in shapes and spec.shape is not None:
            for dim, size in zip(spec.shape, shapes[spec.name], strict=False):
                bind(dim, size)

    for spec in specs:
        role, shape = role_of(spec), spec.shape
        if spec.name in shapes or shape is None or not shape:
            continue
        if role in ("ids", "positions", "token_type") and len(shape) == 2:
            bind(shape[0], batch)
            bind(shape[1], seq)
        elif role == "past" and len(shape) >= 3:
            bind(shape[0] if len(shape) <= 4 else shape[-4], batch)
            if not _CROSS.search(spec.name):  # cross-attention caches hold encoder tokens, not past ones
                bind(shape[-2], past)
    for spec in specs:  # after ids and past: a mask dim named like theirs keeps their size
        if role_of(spec) == "mask" and spec.name not in shapes and spec.shape is not None and len(spec.shape) == 2:
            bind(spec.shape[0], batch)
            bind(spec.shape[1], past + seq)
    return named


def dim_size(dim: str, named: Mapping[str, int]) -> int | None:
    """The value of a dim written as an expression (``past_sequence_length + sequence_length``), or None.

    Names, integers, ``+ - * //`` and parentheses; None when a name is unbound or it is not an expression.
    """
    try:
        tree = ast.parse(dim, mode="eval").body
    except SyntaxError:
        return None
    if isinstance(tree, ast.Name):
        return None
    try:
        value = _evaluate(tree, named)
    except (KeyError, ValueError, ZeroDivisionError):
        return None
    return value if value >= 0 else None


_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.FloorDiv: operator.floordiv}


def _evaluate(node: ast.expr, named: Mapping[str, int]) -> int:
    if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.Name):
        return named[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return int(_OPS[type(node.op)](_evaluate(node.left, named), _evaluate(node.right, named)))
    raise ValueError("not a dim expression")


def _is_name(dim: int | str | None) -> bool:
    return isinstance(dim, str) and bool(dim) and dim.isidentifier()


def cases(specs: Sequence[InputSpec], sizes: Sizes) -> list[tuple[str, Sizes]]:
    """The size sets a check must cover: one, or for a merged decoder one per If branch.

    A merged decoder's ``use_cache_branch`` is false for the first step (no past) and true after it;
    the two branches are different subgraphs, so both are run: past 0, then past ``P`` (default 16).
    """
    if not has_cache_flag(specs):
        return [(sizes.describe(has_past(specs)), sizes)]
    batch, seq, past = sizes.resolved(True)
    first = Sizes(batch, seq, 0)
    later = Sizes(batch, seq, past or DEFAULT_PAST)
    return [
        (f"use_cache_branch false: {first.describe(True)}", first),
        (f"use_cache_branch true: {later.describe(True)}", later),
    ]


def shapes_line(shapes: dict[str, list[int]]) -> str:
    """``input_ids=1x1, past_key_values.*=1x12x128x64 (24 inputs)``: a cache's tensors of one shape once."""
    groups: dict[tuple[str, tuple[int, ...]], list[str]] = {}
    for name, dims in shapes.items():
        match = re.fullmatch(r"(past_key_values|past|present)\.\d+\..+", name)
        groups.setdefault((f"{match.group(1)}.*" if match else name, tuple(dims)), []).append(name)
    parts = []
    for (label, sizes), names in groups.items():
        count = f" ({len(names)} inputs)" if len(names) > 1 else ""
        parts.append(f"{label}={'x'.join(map(str, sizes))}{count}")
    return ", ".join(parts)
