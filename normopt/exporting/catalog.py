"""The built-in presets as data: names, shapes, sizes (no torch import: the CLI checks names with it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Preset:
    """A built-in model: family, size and the input shape used for export and benchmarks."""

    name: str
    family: str
    layers: int
    hidden: int
    heads: int
    vocab: int
    batch: int
    seq: int
    description: str

    @property
    def norms(self) -> int:
        """Norm modules in the model: two per layer plus the final one."""
        return 2 * self.layers + 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, with the parameter count."""
        return {
            "name": self.name,
            "family": self.family,
            "layers": self.layers,
            "hidden": self.hidden,
            "heads": self.heads,
            "vocab": self.vocab,
            "batch": self.batch,
            "seq": self.seq,
            "norms": self.norms,
            "parameters": parameter_count(self),
            "description": self.description,
        }


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("gpt2-tiny", "gpt2", 2, 64, 4, 256, 2, 16, "GPT-2-style LayerNorm decoder for tests"),
        Preset("gpt2-small", "gpt2", 12, 768, 12, 50257, 1, 128, "GPT-2-small-sized LayerNorm decoder"),
        Preset("llama-tiny", "llama", 2, 64, 4, 256, 2, 16, "LLaMA-style RMSNorm decoder for tests"),
        Preset("llama-small", "llama", 12, 768, 12, 32000, 1, 128, "LLaMA-style RMSNorm decoder, 12 x 768"),
    )
}
DEFAULT_PRESET = "gpt2-small"


def parameter_count(preset: Preset) -> int:
    """Parameters of the preset's model, computed from its shape (no model is built)."""
    h, layers, v = preset.hidden, preset.layers, preset.vocab
    if preset.family == "gpt2":
        per_layer = 4 * h + (3 * h * h + 3 * h) + (h * h + h) + (4 * h * h + 4 * h) + (4 * h * h + h)
        return v * h + 1024 * h + layers * per_layer + 2 * h
    inter = llama_intermediate(h)
    per_layer = 2 * h + 4 * h * h + 3 * h * inter
    return 2 * v * h + layers * per_layer + h


def llama_intermediate(hidden: int) -> int:
    """The SwiGLU width of a LLaMA-style preset of width ``hidden`` (a multiple of 64)."""
    return int(8 * hidden / 3 + 63) // 64 * 64
