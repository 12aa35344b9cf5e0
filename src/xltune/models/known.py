"""Configs of published checkpoints known by short name (xglm-564M, xlm-roberta-base, ...), for parameter counts on
the meta device without a download. A module of its own, without torch, so `xltune params --help` lists the names
without loading torch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _xglm(d_model: int, layers: int, heads: int, ffn: int) -> Callable[[], Any]:
    def make():
        from transformers import XGLMConfig

        return XGLMConfig(vocab_size=256008, d_model=d_model, num_layers=layers, attention_heads=heads, ffn_dim=ffn,
                          max_position_embeddings=2048, architectures=["XGLMForCausalLM"])
    return make


def _xlmr(hidden: int, layers: int, heads: int, ffn: int) -> Callable[[], Any]:
    def make():
        from transformers import XLMRobertaConfig

        return XLMRobertaConfig(vocab_size=250002, hidden_size=hidden, num_hidden_layers=layers,
                                num_attention_heads=heads, intermediate_size=ffn, max_position_embeddings=514,
                                type_vocab_size=1, layer_norm_eps=1e-5, bos_token_id=0, pad_token_id=1,
                                eos_token_id=2, architectures=["XLMRobertaForMaskedLM"])
    return make


# Configs of the published checkpoints (from their config.json on the hub), for offline parameter reports.
KNOWN_CONFIGS: dict[str, Callable[[], Any]] = {
    "xglm-564M": _xglm(1024, 24, 16, 4096),
    "xglm-1.7B": _xglm(2048, 24, 16, 8192),
    "xglm-2.9B": _xglm(2048, 48, 16, 8192),
    "xglm-7.5B": _xglm(4096, 32, 32, 16384),
    "xlm-roberta-base": _xlmr(768, 12, 12, 3072),
    "xlm-roberta-large": _xlmr(1024, 24, 16, 4096),
}
