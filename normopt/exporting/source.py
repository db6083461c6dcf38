"""``Source``: a torch model ready to export, and the KV-cache form of a causal LM's source."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from normopt.exporting import cache


@dataclass
class Source:
    """A torch model ready to export."""

    module: nn.Module
    inputs: dict[str, torch.Tensor]
    dynamic: dict[str, dict[int, str]]
    output_names: list[str]
    description: str
    norms: int
    notes: list[str] = field(default_factory=list)
    max_seq: int | None = None  # positions the model has (learned position tables), when it has a limit
    varargs: int | None = None  # forward(a, b, *rest): where the rest starts (the dynamo exporter nests it)
    past: int = 0  # cached tokens in the example (with a KV cache: a position limit covers past + seq)
    random_weights: bool = False  # weights drawn at random (a preset, a config without weights): outputs mean nothing


def cached_source(
    module: nn.Module,
    inputs: dict[str, torch.Tensor],
    description: str,
    norms: int,
    max_seq: int | None,
    notes: list[str] | None = None,
) -> Source:
    """A ``Source`` for a decoder with a KV cache (``cache``'s names and dims)."""
    layers = sum(1 for name in inputs if name.startswith("past_key_values.")) // 2  # a key and a value each
    past_names, present_names = cache.names(layers)
    return Source(
        module=module.eval(),
        inputs=inputs,
        dynamic=cache.dynamic_axes(list(inputs), layers),
        output_names=["logits", *present_names],
        description=description,
        norms=norms,
        notes=notes or [],
        max_seq=max_seq,
        varargs=2,
        past=int(inputs[past_names[0]].shape[2]),
    )


def table_size(table: Any) -> int | None:
    """Rows of a learned position table (an ``nn.Embedding``), or None when there is none."""
    return int(table.num_embeddings) if isinstance(table, nn.Embedding) else None
