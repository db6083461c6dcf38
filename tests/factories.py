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


# Hand-written norms as people write them in PyTorch (and look-alikes that are not norms). Each
# factory returns the module and an example [2, 4, 32] input; ``HANDWRITTEN`` says how many norms
# normopt must fuse in each (0: a look-alike that must stay as it is).
H = 32


class _Hand(nn.Module):
    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.weight = nn.Parameter(1.0 + 0.1 * torch.randn(H))
        self.bias = nn.Parameter(0.1 * torch.randn(H))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, b = self.weight, self.bias
        mean = x.mean(-1, keepdim=True)
        if self.kind == "ln_var":
            return (x - mean) / torch.sqrt(x.var(-1, keepdim=True, unbiased=False) + 1e-5) * w + b
        if self.kind == "ln_var_mean":
            var, mu = torch.var_mean(x, -1, keepdim=True, unbiased=False)
            return (x - mu) * torch.rsqrt(var + 1e-5) * w + b
        if self.kind == "ln_pow_mean":
            d = x - mean
            return d * torch.rsqrt(d.pow(2).mean(-1, keepdim=True) + 1e-5) * w + b
        if self.kind == "rms_rsqrt":
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * w
        if self.kind == "rms_sum_div_n":
            return x * torch.rsqrt(x.square().sum(-1, keepdim=True) / H + 1e-6) * w
        if self.kind == "neg_ln_unbiased_var":
            return (x - mean) / torch.sqrt(x.var(-1, keepdim=True) + 1e-5) * w + b
        if self.kind == "neg_ln_std_plus_eps":
            return (x - mean) / (x.std(-1, keepdim=True, unbiased=False) + 1e-5) * w + b
        if self.kind == "neg_rms_norm_plus_eps":
            return x / (x.norm(2, dim=-1, keepdim=True) * H**-0.5 + 1e-6) * w
        raise ValueError(self.kind)


HANDWRITTEN = {
    "ln_var": 1,
    "ln_var_mean": 1,
    "ln_pow_mean": 1,
    "rms_rsqrt": 1,
    "rms_sum_div_n": 1,
    "neg_ln_unbiased_var": 0,
    "neg_ln_std_plus_eps": 0,
    "neg_rms_norm_plus_eps": 0,
}


def handwritten(kind: str) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """The hand-written norm ``kind`` (a key of ``HANDWRITTEN``) and an example input."""
    torch.manual_seed(0)
    return _Hand(kind), (torch.randn(2, 4, H),)


def _factory(kind: str) -> object:
    def make() -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
        return handwritten(kind)

    make.__doc__ = f"Hand-written {kind}."
    return make


for _kind in HANDWRITTEN:
    globals()[f"hand_{_kind}"] = _factory(_kind)
