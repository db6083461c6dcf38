"""Hugging Face models from a local directory: the head or base model, its example inputs, its wrappers.

Nothing is downloaded: a directory without weights is initialized randomly from its config (the source
says so). Models return one tensor: the base model's last hidden state (``HiddenState`` wrappers per
input kind), a task head's logits, or, with a KV cache, logits and the new cache (``cache``).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from normopt.compat.transformers_api import use_eager_kernels
from normopt.errors import UsageError, option
from normopt.exporting import cache, presets
from normopt.exporting.source import Source, cached_source

logger = logging.getLogger("normopt.exporting.sources")

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


def has_weights(path: Path) -> bool:
    """True when a Hugging Face directory holds a weights file (else it is initialized randomly)."""
    return any((path / f).exists() for f in _WEIGHT_FILES)


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
        hidden: torch.Tensor = getattr(out, self.field) if hasattr(out, self.field) else out[0]
        return hidden


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


def hugging_face(
    path: Path, batch: int | None, seq: int | None, task: str | None, with_past: bool = False, part: str | None = None
) -> Source:
    """The model in Hugging Face directory ``path`` as a ``Source`` (see ``sources.resolve`` for the options)."""
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
        raise UsageError(f"{option('--part')} applies to encoder-decoders; {config.model_type} is not one")
    if seq2seq and task != "hidden-states":
        raise UsageError(
            f"{config.model_type} is an encoder-decoder: normopt exports its encoder (default) or, with "
            f"{option('--part', 'decoder')}, its decoder, as hidden states (not {option('--task', task)})"
        )
    weights = has_weights(path)
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
            if weights:
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
            raise UsageError(
                f"{option('--with-past')} applies to text decoders; {config.model_type} takes no input_ids"
            )
        module, example = cache.hugging_face_example(model.eval(), config.vocab_size, b, s)
        return cached_source(
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

    hf_logging: Any = transformers.logging  # its setters carry no annotations
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    chatter = io.StringIO()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        with contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
            yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
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
