"""``package.module:function`` sources for export tests."""

from __future__ import annotations

import torch
from torch import nn

from normopt.exporting.presets import RMSNorm


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm = RMSNorm(16)
        self.proj = nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.norm(x))


def tiny_rmsnorm_mlp() -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """A Linear after a hand-written RMSNorm, with an example [2, 4, 16] input."""
    torch.manual_seed(0)
    return _Net(), (torch.randn(2, 4, 16),)
