"""Where a model to export comes from: a built-in preset, a local Hugging Face directory, or a function.

Each source resolves to a ``Source``: an eval-mode torch module returning one tensor (the base model's
last hidden state for Hugging Face models, or a task head's logits with ``task``), example inputs with
their names, and which of their axes are batch and sequence. Nothing is downloaded: a Hugging Face
directory without weights is initialized randomly from its config, and that is said on stderr.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import importlib.util
import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from normopt.choices import PARTS, TASKS
from normopt.compat.transformers_api import use_eager_kernels
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


def _has_weights(path: Path) -> bool:
    """True when a Hugging Face directory holds a weights file (else it is initialized randomly)."""
    return any((path / f).exists() for f in _WEIGHT_FILES)


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


class HiddenState(nn.Module):
    """Wraps a Hugging Face model so it returns one named output: ``last_hidden_state`` or ``logits``.

    Subclasses spell out their inputs so that both exporters see a plain positional signature.
    """

    def __init__(self, model: nn.Module, field: str = "last_hidden_state") -> None:
        super().__init__()
        self.model = model
        self.field = field

    def _hidden(self, **inputs: torch.Tensor | bool) -> torch.Tensor:
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


class DecoderHiddenState(HiddenState):
    """The decoder of an encoder-decoder: ``input_ids`` and the encoder's ``encoder_hidden_states``."""

    def forward(self, input_ids: torch.Tensor, encoder_hidden_states: torch.Tensor) -> torch.Tensor:
        return self._hidden(input_ids=input_ids, encoder_hidden_states=encoder_hidden_states, use_cache=False)


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
        raise UsageError("--part applies to Hugging Face encoder-decoder directories")
    if part is not None and (with_past or task not in (None, "hidden-states")):
        raise UsageError(
            "--part exports an encoder-decoder's hidden states; it does not combine with --task or --with-past"
        )
    if with_past and kind == "function":
        raise UsageError("--with-past applies to presets and Hugging Face causal LMs, not module:function")
    if with_past and task not in (None, "causal-lm"):
        raise UsageError(f"--with-past exports a causal LM with its cache; --task {task} has no cache")
    if kind == "preset":
        return dataclasses.replace(_preset(spec, batch, seq, with_past), random_weights=True)
    if kind == "hf":
        source = _hugging_face(Path(spec), batch, seq, task, with_past, part)
        return dataclasses.replace(source, random_weights=not _has_weights(Path(spec)))
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


def _hugging_face(
    path: Path, batch: int | None, seq: int | None, task: str | None, with_past: bool = False, part: str | None = None
) -> Source:
    config_path = path / "config.json"
    if not config_path.is_file():
        raise UsageError(f"{path} has no config.json")
    try:
        import transformers
    except ImportError:
        raise UsageError("Hugging Face models need the extra: pip install 'normopt[hf]'") from None
    model_type = json.loads(config_path.read_text()).get("model_type")
    try:
        with _quiet_transformers():
            config = transformers.AutoConfig.from_pretrained(path, local_files_only=True)
    except (ValueError, KeyError, OSError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UsageError(f"{path}: unknown or unsupported architecture {model_type!r} ({first})") from error
    task = task or ("causal-lm" if with_past else default_task(config))
    seq2seq = bool(getattr(config, "is_encoder_decoder", False))
    if part is not None and not seq2seq:
        raise UsageError(f"--part applies to encoder-decoders; {config.model_type} is not one")
    if seq2seq and task != "hidden-states":
        raise UsageError(
            f"{config.model_type} is an encoder-decoder: normopt exports its encoder (default) or, with "
            f"--part decoder, its decoder, as hidden states (not --task {task})"
        )
    has_weights = _has_weights(path)
    model_cls = _model_class(transformers, config, task)
    notes = []
    # Eager attention: torch's decomposition of scaled_dot_product_attention breaks the dynamo
    # exporter on several families (pytorch/pytorch#136543, T5 here) and both exporters spell SDPA
    # out into MatMul/Softmax anyway. Mixture-of-experts layers run each expert as a batched matmul:
    # transformers' default grouped_mm has no ONNX export in either exporter.
    use_eager_kernels(config)
    if task == "causal-lm" and not with_past:
        config.use_cache = False  # one output, no key/value cache objects in the traced graph
    try:
        with _quiet_transformers():
            if has_weights:
                model = model_cls.from_pretrained(
                    path, local_files_only=True, attn_implementation="eager", experts_implementation="batched_mm"
                )
            else:
                torch.manual_seed(0)
                model = model_cls.from_config(config) if hasattr(model_cls, "from_config") else model_cls(config)
                notes.append(f"{path} has no weights: initialized randomly from config.json")
    except ValueError as error:  # an auto class that has no head for this architecture
        first = str(error).strip().splitlines()[0][:200]
        raise UsageError(f"{path}: {model_type!r} has no {task} head in transformers ({first})") from error
    b, s = batch or 2, seq or 16
    if with_past:
        if input_kind(config) != "input_ids":
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
    if part == "decoder":
        return _decoder(model, config, path, b, s, notes)
    inputs, dynamic = _hf_inputs(config, b, s)
    if task == "hidden-states":
        model, output = _base_encoder(model, config), "last_hidden_state"
        axes = {0: "batch", 1: "seq"} if "input_ids" in inputs else {0: "batch"}
    else:
        output = "logits"
        axes = (
            {0: "batch"} if task == "sequence-classification" or "input_ids" not in inputs else {0: "batch", 1: "seq"}
        )
    what = f"{task}, encoder" if seq2seq else task
    return Source(
        module=_WRAPPERS[next(iter(inputs))](model.eval(), output).eval(),
        inputs=inputs,
        dynamic=dynamic | {output: axes},
        output_names=[output],
        description=f"Hugging Face {config.model_type} ({what}) from {path}",
        norms=presets.count_norm_modules(model),
        notes=notes,
        max_seq=None if "input_ids" not in inputs else _positions(config),
    )


def _decoder(model: nn.Module, config: Any, path: Path, batch: int, seq: int, notes: list[str]) -> Source:
    """An encoder-decoder's decoder: token ids and the encoder's hidden states in, hidden states out."""
    decoder: nn.Module = model.get_decoder()  # type: ignore[operator]
    generator = torch.Generator().manual_seed(0)
    width = getattr(config, "d_model", None) or config.hidden_size
    encoded = 2 * seq if input_kind(config) == "input_ids" else getattr(config, "max_source_positions", 2 * seq)
    ids = torch.randint(0, min(config.vocab_size, 1000), (batch, seq), generator=generator)
    states = torch.randn(batch, encoded, width, generator=generator)
    return Source(
        module=DecoderHiddenState(decoder.eval()).eval(),
        inputs={"input_ids": ids, "encoder_hidden_states": states},
        dynamic={
            "input_ids": {0: "batch", 1: "seq"},
            "encoder_hidden_states": {0: "batch", 1: "encoder_sequence_length"},
            "last_hidden_state": {0: "batch", 1: "seq"},
        },
        output_names=["last_hidden_state"],
        description=f"Hugging Face {config.model_type} (hidden-states, decoder) from {path}",
        norms=presets.count_norm_modules(decoder),
        notes=notes,
        max_seq=_positions(config),
    )


_TASK_SUFFIXES = (
    ("ForCausalLM", "causal-lm"),
    ("LMHeadModel", "causal-lm"),
    ("ForMaskedLM", "masked-lm"),
    ("ForSequenceClassification", "sequence-classification"),
)


def default_task(config: Any) -> str:
    """The task a checkpoint was saved for, from its config's ``architectures`` (``hidden-states`` if none)."""
    if getattr(config, "is_encoder_decoder", False):
        return "hidden-states"
    for architecture in getattr(config, "architectures", None) or []:
        for suffix, task in _TASK_SUFFIXES:
            if str(architecture).endswith(suffix):
                return task
    return "hidden-states"


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Transformers' load report, warnings and progress bars into the debug log, never the terminal."""
    import transformers

    verbosity, bars = transformers.logging.get_verbosity(), transformers.logging.is_progress_bar_enabled()
    chatter = io.StringIO()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    try:
        with contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
            yield
    finally:
        transformers.logging.set_verbosity(verbosity)
        if bars:
            transformers.logging.enable_progress_bar()
        for line in chatter.getvalue().splitlines():
            if line.strip():
                logger.debug("transformers: %s", line)


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
    return transformers.AutoModel


def _base_encoder(model: nn.Module, config: Any) -> nn.Module:
    """The encoder of an encoder-decoder (what its hidden states come from), else the model itself."""
    if getattr(config, "is_encoder_decoder", False):
        encoder: nn.Module = model.get_encoder()  # type: ignore[operator]
        return encoder
    return model


def input_kind(config: Any) -> str:
    """What a model of ``config`` reads: ``pixel_values``, ``input_features`` or ``input_ids``.

    Pixels where the config has an image size and channels, mel features where it has mel bins (speech),
    token ids otherwise.
    """
    if getattr(config, "num_mel_bins", None):
        return "input_features"
    if getattr(config, "image_size", None) is not None and getattr(config, "num_channels", None) is not None:
        return "pixel_values"
    return "input_ids"


def _hf_inputs(config: Any, batch: int, seq: int) -> tuple[dict[str, torch.Tensor], dict[str, dict[int, str]]]:
    generator = torch.Generator().manual_seed(0)
    kind = input_kind(config)
    if kind == "pixel_values":
        size = config.image_size
        height, width = (size, size) if isinstance(size, int) else tuple(size)[:2]
        pixels = torch.randn(batch, config.num_channels, height, width, generator=generator)
        return {"pixel_values": pixels}, {"pixel_values": {0: "batch"}}
    if kind == "input_features":
        frames = 2 * config.max_source_positions
        features = torch.randn(batch, config.num_mel_bins, frames, generator=generator)
        return {"input_features": features}, {"input_features": {0: "batch"}}
    ids = torch.randint(0, min(config.vocab_size, 1000), (batch, seq), generator=generator)
    mask = torch.ones(batch, seq, dtype=torch.int64)
    axes = {0: "batch", 1: "seq"}
    return {"input_ids": ids, "attention_mask": mask}, {"input_ids": axes, "attention_mask": axes}
