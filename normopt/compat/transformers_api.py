"""transformers private APIs: choosing eager attention and batched-matmul experts on a config."""

from __future__ import annotations

from typing import Any


def use_eager_kernels(config: Any) -> None:
    """Make models built from ``config`` use eager attention and batched-matmul experts.

    ``from_pretrained`` takes ``attn_implementation=`` publicly, but a model built from a config
    (random weights) reads the private ``config._attn_implementation`` / ``_experts_implementation``.
    """
    config._attn_implementation = "eager"
    config._experts_implementation = "batched_mm"
