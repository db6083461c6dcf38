"""Built-in model presets: small transformer decoders defined here, with seeded random weights.

No download is ever needed. ``gpt2-*`` are pre-norm LayerNorm decoders shaped like GPT-2; ``llama-*``
are RMSNorm decoders shaped like LLaMA, whose RMSNorm is written out the way Hugging Face writes it
(float32 upcast, mean of squares, ``rsqrt``, cast back, weight), so exporters decompose it.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from normopt.exporting.catalog import DEFAULT_PRESET, PRESETS, Preset, llama_intermediate, parameter_count

__all__ = ["DEFAULT_PRESET", "PRESETS", "Preset", "build", "count_norm_calls", "is_norm", "parameter_count"]


class RMSNorm(nn.Module):
    """RMSNorm as Hugging Face's LlamaRMSNorm writes it."""

    def __init__(self, hidden: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.to(torch.float32)
        variance = x.pow(2).mean(-1, keepdim=True)
        x = x * torch.rsqrt(variance + self.eps)
        return self.weight * x.to(dtype)


class Attention(nn.Module):
    """Causal multi-head self-attention; with ``past`` (keys, values) it attends to cached tokens too."""

    def __init__(self, hidden: int, heads: int, bias: bool) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(hidden, 3 * hidden, bias=bias)
        self.proj = nn.Linear(hidden, hidden, bias=bias)

    def forward(
        self,
        x: torch.Tensor,
        past: tuple[torch.Tensor, torch.Tensor] | None = None,
        key_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Output and the (keys, values) over past and new tokens, ``[batch, heads, tokens, head_dim]``.

        ``key_mask`` ``[batch, past + seq]``: 0 for tokens not to attend to (padding).
        """
        b, s, h = x.shape
        q, k, v = self.qkv(x).split(h, dim=-1)
        shape = (b, s, self.heads, h // self.heads)
        q, k, v = (t.reshape(shape).transpose(1, 2) for t in (q, k, v))
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        scores = q @ k.transpose(-1, -2) / math.sqrt(h // self.heads)
        if past is None:
            mask = torch.ones(s, s, dtype=torch.bool, device=x.device).tril()
        else:  # query i sits at position past + i and sees keys 0 .. past + i
            total = k.shape[2]
            keys = torch.arange(total, device=x.device)
            mask = keys[None, :] <= (keys[total - s :])[:, None]
        if key_mask is not None:
            mask = mask & key_mask[:, None, None, :].to(torch.bool)
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        out = scores.softmax(-1) @ v
        return self.proj(out.transpose(1, 2).reshape(b, s, h)), (k, v)


class Block(nn.Module):
    """Pre-norm decoder block: x + attn(norm(x)); x + mlp(norm(x))."""

    def __init__(self, preset: Preset) -> None:
        super().__init__()
        h = preset.hidden
        llama = preset.family == "llama"
        self.norm1: nn.Module = RMSNorm(h) if llama else nn.LayerNorm(h, eps=1e-5)
        self.norm2: nn.Module = RMSNorm(h) if llama else nn.LayerNorm(h, eps=1e-5)
        self.attn = Attention(h, preset.heads, bias=not llama)
        self.mlp: nn.Module
        if llama:
            self.mlp = SwiGLU(h, llama_intermediate(h))
        else:
            self.mlp = nn.Sequential(nn.Linear(h, 4 * h), nn.GELU(approximate="tanh"), nn.Linear(4 * h, h))

    def forward(
        self,
        x: torch.Tensor,
        past: tuple[torch.Tensor, torch.Tensor] | None = None,
        key_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Output and this layer's keys and values (see ``Attention``)."""
        attended, present = self.attn(self.norm1(x), past, key_mask)
        x = x + attended
        return x + self.mlp(self.norm2(x)), present


class SwiGLU(nn.Module):
    """LLaMA's gated MLP."""

    def __init__(self, hidden: int, inter: int) -> None:
        super().__init__()
        self.gate = nn.Linear(hidden, inter, bias=False)
        self.up = nn.Linear(hidden, inter, bias=False)
        self.down = nn.Linear(inter, hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.down(nn.functional.silu(self.gate(x)) * self.up(x))
        return out


class Decoder(nn.Module):
    """Token embedding (+ learned positions for GPT-2), blocks, final norm, LM head."""

    def __init__(self, preset: Preset) -> None:
        super().__init__()
        self.preset = preset
        h = preset.hidden
        self.embed = nn.Embedding(preset.vocab, h)
        self.positions = nn.Embedding(1024, h) if preset.family == "gpt2" else None
        self.blocks = nn.ModuleList(Block(preset) for _ in range(preset.layers))
        self.norm: nn.Module = RMSNorm(h) if preset.family == "llama" else nn.LayerNorm(h)
        self.head = nn.Linear(h, preset.vocab, bias=False)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(input_ids)
        if self.positions is not None:
            x = x + self.positions(torch.arange(input_ids.shape[1], device=input_ids.device))
        for block in self.blocks:
            x, _ = block(x)
        logits: torch.Tensor = self.head(self.norm(x))
        return logits

    def step(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor | None,
        past: list[tuple[torch.Tensor, torch.Tensor]],
    ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """Logits for new tokens after ``past`` cached ones, and every layer's keys and values."""
        x = self.embed(input_ids)
        if self.positions is not None and position_ids is not None:
            x = x + self.positions(position_ids)
        presents = []
        for block, cached in zip(self.blocks, past, strict=True):
            x, present = block(x, cached, attention_mask)
            presents.append(present)
        return self.head(self.norm(x)), presents


def build(name: str, seed: int = 0) -> tuple[nn.Module, tuple[torch.Tensor, ...], Preset]:
    """The preset's model with seeded random weights (norm weights randomized too) and example inputs."""
    preset = PRESETS[name]
    torch.manual_seed(seed)
    model = Decoder(preset).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (RMSNorm, nn.LayerNorm)):
                module.weight.normal_(1.0, 0.1)
                bias = getattr(module, "bias", None)
                if isinstance(bias, torch.Tensor):
                    bias.normal_(0.0, 0.1)
    ids = torch.randint(0, preset.vocab, (preset.batch, preset.seq))
    return model, (ids,), preset


def count_norm_modules(model: nn.Module) -> int:
    """Norm modules (LayerNorm, RMSNorm and look-alike classes named *Norm) in a torch model."""
    return sum(1 for m in model.modules() if is_norm(m))


def count_norm_calls(module: nn.Module, inputs: dict[str, torch.Tensor]) -> int:
    """Norm calls one forward pass of ``module`` on ``inputs`` (positionally, in order) makes that reach its outputs.

    A norm module shared across layers (ALBERT's) counts once per call: that is how many norms the
    exported graph computes. A call whose result no output depends on (CLIP's post-LayerNorm when only
    the last hidden state is returned) is not counted: the exporters drop it. Reachability is read from
    the autograd graph, so the forward runs with gradients recorded.
    """
    results: list[torch.Tensor] = []

    def record(_: nn.Module, __: object, output: object) -> None:
        if isinstance(output, torch.Tensor):
            results.append(output)

    norms = [m for m in module.modules() if is_norm(m)]
    handles = [m.register_forward_hook(record) for m in norms]
    try:
        with torch.enable_grad():
            outputs = module(*inputs.values())
    finally:
        for handle in handles:
            handle.remove()
    reached = _autograd_nodes(outputs)
    return sum(1 for r in results if r.grad_fn is None or r.grad_fn in reached)


def _autograd_nodes(outputs: object) -> set[object]:
    """Every autograd node the tensors in ``outputs`` (nested tuples, lists, dicts) were computed through."""
    stack: list[object] = [outputs]
    pending: list[object] = []
    while stack:
        item = stack.pop()
        if isinstance(item, torch.Tensor):
            if item.grad_fn is not None:
                pending.append(item.grad_fn)
        elif isinstance(item, (tuple, list)):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
    seen: set[object] = set()
    while pending:
        node = pending.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        pending.extend(next_node for next_node, _ in node.next_functions)  # type: ignore[attr-defined]
    return seen


def is_norm(module: nn.Module) -> bool:
    """LayerNorm, RMSNorm, or a class named ``*LayerNorm`` / ``*RMSNorm`` (transformers' own)."""
    return isinstance(module, (nn.LayerNorm, RMSNorm)) or _is_named_norm(module)


def _is_named_norm(module: nn.Module) -> bool:
    name = type(module).__name__
    return (name.endswith("RMSNorm") or name.endswith("LayerNorm")) and not isinstance(module, (nn.LayerNorm, RMSNorm))
