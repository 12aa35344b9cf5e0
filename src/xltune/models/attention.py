"""Fused scaled-dot-product attention for families whose transformers code has no ``sdpa`` path.

Why hand-written: transformers 5.24's ``XGLMAttention`` computes ``softmax(QK^T + mask) V`` with two ``bmm`` calls
and materialises the [B*H, L, S] weights, and XGLM does not declare sdpa support, so ``attn_implementation="sdpa"``
falls back to eager. ``torch.nn.functional.scaled_dot_product_attention`` does the same math in fused kernels
(memory-efficient / cuDNN on CUDA, a flash-style kernel on CPU) without keeping the weights for backward.

The model's config stays on ``"eager"``: the masks transformers builds (and TransferModel's deep-prompt mask) stay
additive 4D float masks, which this forward hands to SDPA unchanged (cast to the query dtype). Eager clamps
``scores + mask`` at ``finfo.min``; SDPA adds the same finite ``finfo.min`` (never ``-inf``), so a fully masked row
(a pad query under left padding) is a uniform average in both, never NaN. The swap changes the class of each
attention module to a subclass (``isinstance`` checks, hooks, peft's LoRA layers inside it all keep working).
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)


def additive_mask(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """A 4D mask as SDPA's additive float mask in ``dtype``: booleans (True = attend) -> 0 / finfo.min; floats are
    clamped to ``dtype``'s finite range first (fp32's min would round to -inf in bf16)."""
    if mask is None:
        return None
    low = torch.finfo(dtype).min
    if mask.dtype == torch.bool:
        return torch.where(mask, torch.zeros((), dtype=dtype, device=mask.device), low)
    if mask.dtype == dtype:
        return mask
    return mask.clamp(min=low).to(dtype)


def _xglm_attention_class() -> type[nn.Module]:
    from transformers.cache_utils import EncoderDecoderCache
    from transformers.models.xglm.modeling_xglm import XGLMAttention

    class XGLMSdpaAttention(XGLMAttention):
        """XGLMAttention with the two bmm's and the softmax replaced by one SDPA call (same inputs, same cache
        protocol: ``cache.update`` returns the keys/values to attend over, e.g. a deep prompt's prefix + the input)."""

        def forward(self, hidden_states: torch.Tensor, key_value_states: torch.Tensor | None = None,
                    cache=None, attention_mask: torch.Tensor | None = None, past_key_values=None, **kwargs):
            cache = cache if cache is not None else past_key_values
            is_cross = key_value_states is not None
            bsz, tgt_len, _ = hidden_states.size()
            query = self.q_proj(hidden_states).view(bsz, tgt_len, self.num_heads, self.head_dim).transpose(1, 2)
            curr = cache
            if isinstance(cache, EncoderDecoderCache):
                curr = cache.cross_attention_cache if is_cross else cache.self_attention_cache
            if is_cross and isinstance(cache, EncoderDecoderCache) and cache.is_updated.get(self.layer_idx):
                key, value = curr.layers[self.layer_idx].keys, curr.layers[self.layer_idx].values
            else:
                states = key_value_states if is_cross else hidden_states
                src_len = states.shape[1]
                key = self.k_proj(states).view(bsz, src_len, -1, self.head_dim).transpose(1, 2)
                value = self.v_proj(states).view(bsz, src_len, -1, self.head_dim).transpose(1, 2)
                if curr is not None:
                    key, value = curr.update(key, value, self.layer_idx, kwargs=kwargs)
                    if is_cross and isinstance(cache, EncoderDecoderCache):
                        cache.is_updated[self.layer_idx] = True
            mask = additive_mask(attention_mask, query.dtype)
            # eager scales q before the product; SDPA's `scale` does the same (equal up to rounding)
            out = F.scaled_dot_product_attention(query, key.to(query.dtype), value.to(query.dtype), attn_mask=mask,
                                                 dropout_p=self.dropout if self.training else 0.0,
                                                 scale=self.scaling)
            out = out.transpose(1, 2).reshape(bsz, tgt_len, self.embed_dim)
            return self.out_proj(out), None  # no attention weights: SDPA never materialises them

    return XGLMSdpaAttention


# model_type -> (the attention class transformers uses, a factory of its SDPA subclass)
def _registry() -> dict[str, tuple[type[nn.Module], type[nn.Module]]]:
    from transformers.models.xglm.modeling_xglm import XGLMAttention

    return {"xglm": (XGLMAttention, _xglm_attention_class())}


SDPA_FAMILIES = ("xglm",)
_CLASSES: dict[str, tuple[type[nn.Module], type[nn.Module]]] = {}


def enable_sdpa(model: nn.Module) -> int:
    """Swap every attention module of a supported family (:data:`SDPA_FAMILIES`) to its SDPA subclass, in place.
    Returns how many modules were swapped (0: family not supported, nothing changed)."""
    model_type = getattr(getattr(model, "config", None), "model_type", "")
    if model_type not in SDPA_FAMILIES:
        return 0
    if not _CLASSES:
        _CLASSES.update(_registry())
    base, fast = _CLASSES[model_type]
    swapped = 0
    for module in model.modules():
        if type(module) is base:
            module.__class__ = fast
            swapped += 1
    model._xltune_attention = "sdpa"  # what load_backbone reports; the config stays "eager" (mask format)
    return swapped


def disable_sdpa(model: nn.Module) -> int:
    """Undo :func:`enable_sdpa` (back to the family's eager class); returns how many modules changed."""
    changed = 0
    for base, fast in _CLASSES.values():
        for module in model.modules():
            if type(module) is fast:
                module.__class__ = base
                changed += 1
    if hasattr(model, "_xltune_attention"):
        model._xltune_attention = "eager"
    return changed


def attention_kind(model: nn.Module) -> str:
    """'sdpa' when :func:`enable_sdpa` swapped this model's attention, else the config's implementation."""
    return getattr(model, "_xltune_attention", None) or getattr(model.config, "_attn_implementation", "eager")
