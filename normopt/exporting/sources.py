"""Where a model to export comes from: a built-in preset, a local Hugging Face directory, or a function.

Each source resolves to a ``Source``: an eval-mode torch module returning one tensor (the base model's
last hidden state for Hugging Face models, or a task head's logits with ``task``), example inputs with
their names, and which of their axes are batch and sequence. Nothing is downloaded: a Hugging Face
directory without weights is initialized randomly from its config, and that is said on stderr.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import logging
from pathlib import Path

import torch
from torch import nn

from normopt.choices import PARTS
from normopt.errors import UsageError, option
from normopt.exporting import cache, hf, presets
from normopt.exporting.source import Source, cached_source, table_size
from normopt.exporting.spec import check_spec

logger = logging.getLogger(__name__)


class PresetModule(nn.Module):
    """A preset decoder with named input ``input_ids``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.model(input_ids)
        return logits


def resolve(
    spec: str,
    batch: int | None = None,
    seq: int | None = None,
    task: str | None = None,
    with_past: bool = False,
    part: str | None = None,
) -> Source:
    """Resolve a preset name, a Hugging Face model directory, or ``package.module:function``.

    ``task`` picks what a Hugging Face model returns (default: from the config's ``architectures``, a
    ``...ForCausalLM`` checkpoint gives ``causal-lm``, else ``hidden-states``; ``causal-lm`` with
    ``with_past``); presets are causal language models and functions return what they return, so for
    them only the default is accepted. ``with_past``: a decoder with a KV cache (``cache``).
    ``part``: ``encoder`` (the default for encoder-decoders) or ``decoder`` of an encoder-decoder.
    """
    kind = check_spec(spec, task)
    if part is not None and part not in PARTS:
        raise UsageError(f"unknown part {part!r}; choose {' or '.join(PARTS)}")
    if part is not None and kind != "hf":
        raise UsageError(f"{option('--part')} applies to Hugging Face encoder-decoder directories")
    if part is not None and (with_past or task not in (None, "hidden-states")):
        raise UsageError(
            f"{option('--part')} exports an encoder-decoder's hidden states; it "
            f"does not combine with {option('--task')} or {option('--with-past')}"
        )
    if with_past and kind == "function":
        raise UsageError(f"{option('--with-past')} applies to presets and Hugging Face causal LMs, not module:function")
    if with_past and task not in (None, "causal-lm"):
        raise UsageError(
            f"{option('--with-past')} exports a causal LM with its cache; {option('--task', task)} has no cache"
        )
    if kind == "preset":
        return dataclasses.replace(_preset(spec, batch, seq, with_past), random_weights=True)
    if kind == "hf":
        source = hf.hugging_face(Path(spec), batch, seq, task, with_past, part)
        return dataclasses.replace(source, random_weights=not hf.has_weights(Path(spec)))
    return _function(spec)


def _preset(name: str, batch: int | None, seq: int | None, with_past: bool = False) -> Source:
    model, (ids,), preset = presets.build(name)
    b, s = batch or preset.batch, seq or preset.seq
    if with_past:
        positions = preset.family == "gpt2"
        module, inputs = cache.preset_example(model, preset.vocab, b, s, preset.heads, preset.hidden, positions)
        return cached_source(
            module,
            inputs,
            f"preset {name} with a KV cache: {preset.description}",
            presets.count_norm_modules(model),
            max_seq=table_size(getattr(model, "positions", None)),
        )
    ids = torch.randint(0, preset.vocab, (b, s))
    return Source(
        module=PresetModule(model).eval(),
        inputs={"input_ids": ids},
        dynamic={"input_ids": {0: "batch", 1: "seq"}, "logits": {0: "batch", 1: "seq"}},
        output_names=["logits"],
        description=f"preset {name}: {preset.description}",
        norms=presets.count_norm_modules(model),
        max_seq=table_size(getattr(model, "positions", None)),
    )


def _function(spec: str) -> Source:
    module_name, _, attr = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as error:
        raise UsageError(f"cannot import {spec}: {error}") from error
    result = factory()
    if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], nn.Module)):
        raise UsageError(f"{spec} must return (torch module, example inputs)")
    module, example = result
    if isinstance(example, torch.Tensor):
        example = (example,)
    inputs = example if isinstance(example, dict) else {f"input_{i}": t for i, t in enumerate(example)}
    dynamic = {n: {0: "batch"} | ({1: "seq"} if t.dim() >= 2 else {}) for n, t in inputs.items()}
    return Source(
        module.eval(), dict(inputs), dynamic, ["output"], f"function {spec}", presets.count_norm_modules(module)
    )
