"""Tiny configurations of the Hugging Face families normopt exports (random weights, seconds to export).

Used by the export test matrix and ``benchmarks/bench_export.py``; ``write(family, folder)`` saves one
as a model directory ``normopt export`` takes. Every family keeps its own norm placement and spelling:
only sizes shrink (hidden 32, 2 layers, 2 heads, vocabulary 128, images 32×32).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

_TEXT = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "vocab_size": 128,
}
_DECODER = _TEXT | {"num_key_value_heads": 2, "max_position_embeddings": 64}
_ENCODER = _TEXT | {"max_position_embeddings": 64}
_SEQ2SEQ = {
    "d_model": 32,
    "encoder_layers": 2,
    "decoder_layers": 2,
    "encoder_attention_heads": 2,
    "decoder_attention_heads": 2,
    "encoder_ffn_dim": 64,
    "decoder_ffn_dim": 64,
    "vocab_size": 128,
    "max_position_embeddings": 64,
    "pad_token_id": 0,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "decoder_start_token_id": 1,
}
_T5 = {"d_model": 32, "d_kv": 16, "d_ff": 64, "num_layers": 2, "num_heads": 2, "vocab_size": 128}
_VIT = _TEXT | {"image_size": 32, "patch_size": 8}
_VIT.pop("vocab_size")
_MOE = {"num_experts_per_tok": 2}
_TOKENS = {"bos_token_id": 1, "eos_token_id": 2}  # inside the tiny vocabulary (the defaults are not)

#: model_type → the keyword arguments of its config class.
CONFIGS: dict[str, dict[str, Any]] = {
    "gpt2": {"n_embd": 32, "n_layer": 2, "n_head": 2, "vocab_size": 128, "n_positions": 64} | _TOKENS,
    "gpt_neox": _DECODER,
    "gptj": {"n_embd": 32, "n_layer": 2, "n_head": 2, "rotary_dim": 8, "vocab_size": 128, "n_positions": 64} | _TOKENS,
    "bloom": {"hidden_size": 32, "n_layer": 2, "n_head": 2, "vocab_size": 128},
    "falcon": _DECODER,
    "mpt": {"d_model": 32, "n_heads": 2, "n_layers": 2, "expansion_ratio": 2, "max_seq_len": 64, "vocab_size": 128},
    "opt": {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "ffn_dim": 64,
        "vocab_size": 128,
        "max_position_embeddings": 64,
        "word_embed_proj_dim": 32,
    },
    "gpt_bigcode": {"n_embd": 32, "n_layer": 2, "n_head": 2, "vocab_size": 128, "n_positions": 64},
    "phi": _DECODER,
    "phi3": _DECODER | _TOKENS | {"pad_token_id": 0},
    "stablelm": _DECODER,
    "starcoder2": _DECODER,
    "nemotron": _DECODER | {"head_dim": 16},
    "olmo": _DECODER | _TOKENS,
    "olmo2": _DECODER | _TOKENS,
    "llama": _DECODER,
    "mistral": _DECODER,
    "mixtral": _DECODER | _MOE | {"num_local_experts": 4},
    "qwen2": _DECODER,
    "qwen2_moe": _DECODER
    | _MOE
    | {"num_experts": 4, "moe_intermediate_size": 32, "shared_expert_intermediate_size": 32},
    "qwen3": _DECODER | {"head_dim": 16},
    "qwen3_moe": _DECODER | _MOE | {"head_dim": 16, "num_experts": 4, "moe_intermediate_size": 32},
    "gemma": _DECODER | {"head_dim": 16},
    "gemma2": _DECODER | {"head_dim": 16},
    "gemma3_text": _DECODER | {"head_dim": 16},
    "granite": _DECODER,
    "cohere": _DECODER | _TOKENS,
    "deepseek_v3": _DECODER
    | _MOE
    | {
        "moe_intermediate_size": 32,
        "n_routed_experts": 4,
        "n_shared_experts": 1,
        "n_group": 1,
        "topk_group": 1,
        "first_k_dense_replace": 1,
        "kv_lora_rank": 16,
        "q_lora_rank": 16,
        "qk_rope_head_dim": 8,
        "qk_nope_head_dim": 8,
        "v_head_dim": 16,
    },
    "mamba": {"hidden_size": 32, "num_hidden_layers": 2, "vocab_size": 128, "state_size": 8, "expand": 2},
    "bert": _ENCODER,
    "roberta": _ENCODER,
    "xlm-roberta": _ENCODER,
    "deberta-v2": _ENCODER,
    "distilbert": {"dim": 32, "n_layers": 2, "n_heads": 2, "hidden_dim": 64, "vocab_size": 128},
    "albert": _ENCODER | {"embedding_size": 16},
    "electra": _ENCODER | {"embedding_size": 32},
    "modernbert": _ENCODER
    | _TOKENS
    | {"global_attn_every_n_layers": 2, "local_attention": 16, "pad_token_id": 0, "cls_token_id": 1, "sep_token_id": 2},
    "t5": _T5,
    "mt5": _T5,
    "bart": _SEQ2SEQ,
    "marian": _SEQ2SEQ,
    "whisper": {key: value for key, value in _SEQ2SEQ.items() if key != "max_position_embeddings"}
    | {"num_mel_bins": 16, "max_source_positions": 32, "max_target_positions": 64},
    "vit": _VIT,
    "deit": _VIT,
    "dinov2": _VIT,
    "swin": {
        "image_size": 32,
        "patch_size": 4,
        "embed_dim": 16,
        "depths": [1, 1],
        "num_heads": [1, 2],
        "window_size": 4,
    },
    "convnext": {"image_size": 32, "num_stages": 2, "hidden_sizes": [16, 32], "depths": [1, 1]},
    "clip_vision_model": _VIT,
    "siglip_vision_model": _VIT,
}

FAMILIES = list(CONFIGS)
_LAYER_KEYS = ("num_hidden_layers", "n_layer", "n_layers", "num_layers", "encoder_layers", "decoder_layers")


def config(family: str) -> Any:
    """The tiny transformers config of ``family`` (a ``model_type``)."""
    from transformers import AutoConfig

    return AutoConfig.for_model(family, **CONFIGS[family])


def write(family: str, folder: str | Path, layers: int | None = None, weights: bool = False) -> Path:
    """Save ``family``'s tiny config (with ``layers`` layers, if given) in ``folder``; return the folder.

    With ``weights``, random weights are saved too, every norm's scale and shift drawn apart from its
    neighbours' (freshly initialized norms are all ones and zeros: two norms of the same tensor are then
    the same computation, and an exporter's common-subexpression pass rightly merges them).
    """
    from transformers import AutoConfig

    settings = CONFIGS[family]
    if layers is not None:
        keys = [key for key in _LAYER_KEYS if key in settings]
        if not keys:
            raise ValueError(f"{family} sets its depth per stage; layers= applies to families with a layer count")
        settings = settings | dict.fromkeys(keys, layers)
    made = AutoConfig.for_model(family, **settings)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    made.save_pretrained(folder)
    if weights:
        import torch
        import transformers

        from normopt.exporting.presets import is_norm

        torch.manual_seed(0)
        auto: Any = transformers.AutoModel  # from_config carries no annotations
        model = auto.from_config(made)
        with torch.no_grad():
            for module in model.modules():
                if is_norm(module):
                    for name, parameter in module.named_parameters(recurse=False):
                        center = 1.0 if name == "weight" and parameter.abs().max() > 0.5 else 0.0
                        parameter.copy_(center + 0.1 * torch.randn_like(parameter))
        model.save_pretrained(folder)
    return folder
