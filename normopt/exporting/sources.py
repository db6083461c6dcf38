"""Where a model to export comes from: a built-in preset, a local Hugging Face directory, or a function.

Each source resolves to a ``Source``: an eval-mode torch module returning one tensor (the base model's
last hidden state for Hugging Face models, or a task head's logits with ``task``), example inputs with
their names, and which of their axes are batch and sequence. Nothing is downloaded: a Hugging Face
directory without weights is initialized randomly from its config, and that is said on stderr.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from normopt.choices import TASKS
from normopt.errors import UsageError
from normopt.exporting import cache, presets

logger = logging.getLogger(__name__)

# The transformers auto class of each head; hidden-states is the base model (see _model_class).
_TASK_CLASSES = {
    "causal-lm": "AutoModelForCausalLM",
    "masked-lm": "AutoModelForMaskedLM",
    "sequence-classification": "AutoModelForSequenceClassification",
}

_WEIGHT_FILES = (
    "model.safetensors",
    "pytorch_model.bin",
    "model.safetensors.index.json",
    "pytorch_model.bin.index.json",
)


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


class HiddenState(nn.Module):
    """Wraps a Hugging Face model so it returns one named output: ``last_hidden_state`` or ``logits``.

    Subclasses spell out their inputs so that both exporters see a plain positional signature.
    """

    def __init__(self, model: nn.Module, field: str = "last_hidden_state") -> None:
        super().__init__()
        self.model = model
        self.field = field

    def _hidden(self, **inputs: torch.Tensor) -> torch.Tensor:
        out = self.model(**inputs)
        return getattr(out, self.field) if hasattr(out, self.field) else out[0]


class TextHiddenState(HiddenState):
    """Text models: ``input_ids`` and ``attention_mask``."""

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self._hidden(input_ids=input_ids, attention_mask=attention_mask)


class VisionHiddenState(HiddenState):
    """Vision models: ``pixel_values``."""

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self._hidden(pixel_values=pixel_values)


class AudioHiddenState(HiddenState):
    """Speech encoders: ``input_features``."""

    def forward(self, input_features: torch.Tensor) -> torch.Tensor:
        return self._hidden(input_features=input_features)


_WRAPPERS: dict[str, type[HiddenState]] = {
    "input_ids": TextHiddenState,
    "pixel_values": VisionHiddenState,
    "input_features": AudioHiddenState,
}


class PresetModule(nn.Module):
    """A preset decoder with named input ``input_ids``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids)


def check_spec(spec: str, task: str | None = None) -> str:
    """What ``spec`` names (``preset``, ``hf`` or ``function``), checked without building anything.

    Raises:
        UsageError: An unknown name, a directory without config.json, a module that cannot be found,
            or a ``task`` that does not apply.

    """
    if task is not None and task not in TASKS:
        raise UsageError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    if spec in presets.PRESETS:
        if task not in (None, "causal-lm"):
            raise UsageError(
                f"preset {spec} is a causal LM (logits); --task {task} applies to Hugging Face directories"
            )
        return "preset"
    path = Path(spec)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UsageError(f"{path} has no config.json")
        return "hf"
    if ":" in spec and not path.exists():
        if task is not None:
            raise UsageError("--task applies to presets and Hugging Face directories, not module:function")
        module_name, _, attr = spec.partition(":")
        try:
            found = bool(module_name) and bool(attr) and importlib.util.find_spec(module_name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise UsageError(f"cannot import {spec}: no module {module_name!r} (or no function after the colon)")
        return "function"
    if path.exists():
        raise UsageError(f"{spec} is not a directory with config.json, a preset or module:function")
    raise UsageError(
        f"unknown model {spec!r}: not a preset ({', '.join(presets.PRESETS)}), a directory, or module:function"
    )


def resolve(
    spec: str, batch: int | None = None, seq: int | None = None, task: str | None = None, with_past: bool = False
) -> Source:
    """Resolve a preset name, a Hugging Face model directory, or ``package.module:function``.

    ``task`` picks what a Hugging Face model returns (default ``hidden-states``; ``causal-lm`` with
    ``with_past``); presets are causal language models and functions return what they return, so for
    them only the default is accepted. ``with_past``: a decoder with a KV cache (``cache``).
    """
    kind = check_spec(spec, task)
    if with_past and kind == "function":
        raise UsageError("--with-past applies to presets and Hugging Face causal LMs, not module:function")
    if with_past and task not in (None, "causal-lm"):
        raise UsageError(f"--with-past exports a causal LM with its cache; --task {task} has no cache")
    if kind == "preset":
        return _preset(spec, batch, seq, with_past)
    if kind == "hf":
        return _hugging_face(Path(spec), batch, seq, task or ("causal-lm" if with_past else "hidden-states"), with_past)
    return _function(spec)


def _preset(name: str, batch: int | None, seq: int | None, with_past: bool = False) -> Source:
    model, (ids,), preset = presets.build(name)
    b, s = batch or preset.batch, seq or preset.seq
    if with_past:
        positions = preset.family == "gpt2"
        module, inputs = cache.preset_example(model, preset.vocab, b, s, preset.heads, preset.hidden, positions)
        return _with_past(
            module,
            inputs,
            f"preset {name} with a KV cache: {preset.description}",
            presets.count_norm_modules(model),
            max_seq=_table_size(getattr(model, "positions", None)),
        )
    ids = torch.randint(0, preset.vocab, (b, s))
    return Source(
        module=PresetModule(model).eval(),
        inputs={"input_ids": ids},
        dynamic={"input_ids": {0: "batch", 1: "seq"}, "logits": {0: "batch", 1: "seq"}},
        output_names=["logits"],
        description=f"preset {name}: {preset.description}",
        norms=presets.count_norm_modules(model),
        max_seq=_table_size(getattr(model, "positions", None)),
    )


def _with_past(
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


def _table_size(table: Any) -> int | None:
    """Rows of a learned position table (an ``nn.Embedding``), or None when there is none."""
    return int(table.num_embeddings) if isinstance(table, nn.Embedding) else None


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


def _hugging_face(path: Path, batch: int | None, seq: int | None, task: str, with_past: bool = False) -> Source:
    config_path = path / "config.json"
    if not config_path.is_file():
        raise UsageError(f"{path} has no config.json")
    try:
        import transformers
    except ImportError:
        raise UsageError("Hugging Face models need the extra: pip install 'normopt[hf]'") from None
    model_type = json.loads(config_path.read_text()).get("model_type")
    try:
        config = transformers.AutoConfig.from_pretrained(path, local_files_only=True)
    except (ValueError, KeyError, OSError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UsageError(f"{path}: unknown or unsupported architecture {model_type!r} ({first})") from error
    has_weights = any((path / f).exists() for f in _WEIGHT_FILES)
    model_cls = _model_class(transformers, config, task)
    notes = []
    # Eager attention: torch's decomposition of scaled_dot_product_attention breaks the dynamo
    # exporter on several families (pytorch/pytorch#136543, T5 here) and both exporters spell SDPA
    # out into MatMul/Softmax anyway.
    config._attn_implementation = "eager"
    if task == "causal-lm" and not with_past:
        config.use_cache = False  # one output, no key/value cache objects in the traced graph
    try:
        if has_weights:
            model = model_cls.from_pretrained(path, local_files_only=True, attn_implementation="eager")
        else:
            torch.manual_seed(0)
            model = model_cls.from_config(config) if hasattr(model_cls, "from_config") else model_cls(config)
            notes.append(f"{path} has no weights: initialized randomly from config.json")
    except ValueError as error:  # an auto class that has no head for this architecture
        first = str(error).strip().splitlines()[0][:200]
        raise UsageError(f"{path}: {model_type!r} has no {task} head in transformers ({first})") from error
    b, s = batch or 2, seq or 16
    if with_past:
        if _hf_inputs(config, 1, 1)[0].keys() != {"input_ids", "attention_mask"}:
            raise UsageError(f"--with-past applies to text decoders; {config.model_type} takes no input_ids")
        module, example = cache.hugging_face_example(model.eval(), config.vocab_size, b, s)
        return _with_past(
            module,
            example,
            f"Hugging Face {config.model_type} (causal-lm with a KV cache) from {path}",
            presets.count_norm_modules(model),
            max_seq=_positions(config),
            notes=notes,
        )
    inputs, dynamic = _hf_inputs(config, b, s)
    if task == "hidden-states":
        model, output = _base_encoder(model, config), "last_hidden_state"
        axes = {0: "batch", 1: "seq"} if "input_ids" in inputs else {0: "batch"}
    else:
        output = "logits"
        axes = (
            {0: "batch"} if task == "sequence-classification" or "input_ids" not in inputs else {0: "batch", 1: "seq"}
        )
    return Source(
        module=_WRAPPERS[next(iter(inputs))](model.eval(), output).eval(),
        inputs=inputs,
        dynamic=dynamic | {output: axes},
        output_names=[output],
        description=f"Hugging Face {config.model_type} ({task}) from {path}",
        norms=presets.count_norm_modules(model),
        notes=notes,
        max_seq=None if "input_ids" not in inputs else _positions(config),
    )


def _positions(config: Any) -> int | None:
    """The longest sequence a text model's position table holds (None: rotary or relative, no table)."""
    if getattr(config, "position_embedding_type", "absolute") not in ("absolute", None):
        return None
    if getattr(config, "rope_theta", None) is not None or getattr(config, "rope_parameters", None) is not None:
        return None
    for name in ("n_positions", "max_position_embeddings"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _model_class(transformers: Any, config: Any, task: str) -> Any:
    if task != "hidden-states":
        return getattr(transformers, _TASK_CLASSES[task])
    if config.model_type == "t5":
        return transformers.T5EncoderModel
    return transformers.AutoModel


def _base_encoder(model: nn.Module, config: Any) -> nn.Module:
    if config.model_type == "whisper":
        encoder: nn.Module = model.get_encoder()  # type: ignore[operator]
        return encoder
    return model


def _hf_inputs(config: Any, batch: int, seq: int) -> tuple[dict[str, torch.Tensor], dict[str, dict[int, str]]]:
    generator = torch.Generator().manual_seed(0)
    if config.model_type in ("vit", "deit", "beit", "dinov2"):
        size = config.image_size
        pixels = torch.randn(batch, config.num_channels, size, size, generator=generator)
        return {"pixel_values": pixels}, {"pixel_values": {0: "batch"}}
    if config.model_type == "whisper":
        frames = 2 * config.max_source_positions
        features = torch.randn(batch, config.num_mel_bins, frames, generator=generator)
        return {"input_features": features}, {"input_features": {0: "batch"}}
    ids = torch.randint(0, min(config.vocab_size, 1000), (batch, seq), generator=generator)
    mask = torch.ones(batch, seq, dtype=torch.int64)
    axes = {0: "batch", 1: "seq"}
    return {"input_ids": ids, "attention_mask": mask}, {"input_ids": axes, "attention_mask": axes}
