"""Decoders with a KV cache, laid out as Optimum writes them.

Inputs ``input_ids`` and ``attention_mask`` (and ``position_ids`` where the model takes them), then
``past_key_values.{i}.key`` / ``.value`` for every layer; outputs ``logits`` then ``present.{i}.key`` /
``.value``. Dims: ``batch_size``, ``sequence_length``, ``past_sequence_length``, and
``past_sequence_length + sequence_length`` for the mask and the presents. The example past is what the
model itself caches for a prompt, so its heads and head size are the model's.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

BATCH, SEQ, PAST = "batch_size", "sequence_length", "past_sequence_length"
TOTAL = f"{PAST} + {SEQ}"


def names(layers: int) -> tuple[list[str], list[str]]:
    """Past input names and present output names for ``layers`` layers."""
    past = [f"past_key_values.{i}.{kind}" for i in range(layers) for kind in ("key", "value")]
    present = [f"present.{i}.{kind}" for i in range(layers) for kind in ("key", "value")]
    return past, present


def dynamic_axes(inputs: list[str], layers: int) -> dict[str, dict[int, str]]:
    """Optimum's dim names for every input and output."""
    past, present = names(layers)
    axes: dict[str, dict[int, str]] = {"input_ids": {0: BATCH, 1: SEQ}, "attention_mask": {0: BATCH, 1: TOTAL}}
    if "position_ids" in inputs:
        axes["position_ids"] = {0: BATCH, 1: SEQ}
    axes |= {n: {0: BATCH, 2: PAST} for n in past}
    axes |= {n: {0: BATCH, 2: TOTAL} for n in present}
    axes["logits"] = {0: BATCH, 1: SEQ}
    return axes


def example_sizes(batch: int, seq: int) -> tuple[int, int]:
    """(past, total) for the example: past differs from batch and seq, so no exporter ties their dims."""
    past = seq + 1
    while past == batch:
        past += 1
    return past, past + seq


class PresetWithPast(nn.Module):
    """A preset decoder's ``step`` with flat inputs and outputs (see the module docstring)."""

    def __init__(self, model: nn.Module, positions: bool) -> None:
        super().__init__()
        self.model = model
        self.positions = positions

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, *rest: torch.Tensor) -> tuple[Any, ...]:
        position_ids, flat = (rest[0], rest[1:]) if self.positions else (None, rest)
        past = [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]
        logits, presents = self.model.step(input_ids, attention_mask, position_ids, past)  # type: ignore[operator]
        return (logits, *(t for pair in presents for t in pair))


class HuggingFaceWithPast(nn.Module):
    """A transformers causal LM fed its cache as flat tensors, returning logits and the new cache."""

    def __init__(self, model: nn.Module, layers: int, positions: bool) -> None:
        super().__init__()
        self.model = model
        self.layers = layers
        self.positions = positions

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, *rest: torch.Tensor) -> tuple[Any, ...]:
        from transformers import DynamicCache

        position_ids, flat = (rest[0], rest[1:]) if self.positions else (None, rest)
        cache = DynamicCache(config=self.model.config)
        for layer in range(self.layers):
            cache.update(flat[2 * layer], flat[2 * layer + 1], layer)
        extra = {"position_ids": position_ids} if self.positions else {}
        out = self.model(
            input_ids=input_ids, attention_mask=attention_mask, past_key_values=cache, use_cache=True, **extra
        )
        return (out.logits, *(t for layer in out.past_key_values.layers for t in (layer.keys, layer.values)))


def takes_positions(model: nn.Module) -> bool:
    """True when a transformers model's forward has a ``position_ids`` parameter."""
    return "position_ids" in inspect.signature(model.forward).parameters


def hugging_face_example(
    model: nn.Module, vocab: int, batch: int, seq: int
) -> tuple[HuggingFaceWithPast, dict[str, torch.Tensor]]:
    """The wrapper and example inputs: a past cached by the model itself for a random prompt."""
    past_len, total = example_sizes(batch, seq)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, min(vocab, 1000), (batch, total), generator=generator)
    with torch.no_grad():
        cached = model(input_ids=ids[:, :past_len], use_cache=True).past_key_values
    layers = [(layer.keys, layer.values) for layer in cached.layers]
    positions = takes_positions(model)
    wrapper = HuggingFaceWithPast(model, len(layers), positions)
    return wrapper, _inputs(ids[:, past_len:], total, positions, layers)


def preset_example(
    model: nn.Module, vocab: int, batch: int, seq: int, heads: int, hidden: int, positions: bool
) -> tuple[PresetWithPast, dict[str, torch.Tensor]]:
    """The wrapper and example inputs for a preset decoder (a random past of the model's shape)."""
    past_len, total = example_sizes(batch, seq)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (batch, seq), generator=generator)
    blocks = len(model.blocks)  # type: ignore[arg-type]
    shape = (batch, heads, past_len, hidden // heads)
    layers = [(torch.randn(shape, generator=generator), torch.randn(shape, generator=generator)) for _ in range(blocks)]
    return PresetWithPast(model, positions), _inputs(ids, total, positions, layers)


def _inputs(
    ids: torch.Tensor, total: int, positions: bool, layers: list[tuple[torch.Tensor, torch.Tensor]]
) -> dict[str, torch.Tensor]:
    batch, seq = ids.shape
    inputs = {"input_ids": ids, "attention_mask": torch.ones(batch, total, dtype=torch.int64)}
    if positions:
        inputs["position_ids"] = torch.arange(total - seq, total).expand(batch, seq).contiguous()
    past, _ = names(len(layers))
    inputs |= dict(zip(past, (t for pair in layers for t in pair), strict=True))
    return inputs
