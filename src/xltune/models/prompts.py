"""Deep prompts (P-tuning v2: trainable key/value prefixes in every layer) and shallow soft prompts.

Deep prompts reach the attention of any architecture through the transformers ``Cache`` interface: a read-only
:class:`PrefixCache` whose ``update`` returns ``cat([prefix, new])`` and stores nothing. Because nothing is written,
a layer may be recomputed under gradient checkpointing and read the same prefix again, so (unlike peft's prefix
tuning) deep prompts work with gradient checkpointing (see :func:`allow_checkpointing_with_cache`).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.cache_utils import Cache, CacheLayerMixin
from transformers.modeling_layers import GradientCheckpointingLayer


class PrefixLayer(CacheLayerMixin):
    """One layer's prefix keys/values [B, kv_heads, P, head_dim]; ``update`` prepends them and keeps nothing."""

    is_compileable = False
    is_croppable = False
    is_sliding = False

    def __init__(self, keys: torch.Tensor, values: torch.Tensor):
        super().__init__()
        self.keys, self.values = keys, values
        self.is_initialized = True
        self.device = keys.device

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        pass  # already holds its (fixed) prefix

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        keys = torch.cat([self.keys.to(key_states.dtype), key_states], dim=-2)
        values = torch.cat([self.values.to(value_states.dtype), value_states], dim=-2)
        return keys, values

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.get_seq_length() + query_length, 0

    def get_seq_length(self) -> int:
        return self.keys.shape[-2]

    def get_max_length(self) -> int:
        return -1

    def reset(self) -> None:
        pass  # read-only: there is nothing cached to reset

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        raise NotImplementedError("PrefixCache is read-only (classification); it does not support beam search")

    def crop(self, tokens_to_remove: int) -> None:
        raise NotImplementedError("PrefixCache is read-only; it cannot be cropped")


class PrefixCache(Cache):
    """A stateless cache holding per-layer prefixes; ``get_seq_length()`` is the prefix length P."""

    def __init__(self, keys: list[torch.Tensor], values: list[torch.Tensor]):
        super().__init__(layers=[PrefixLayer(k, v) for k, v in zip(keys, values)])

    @property
    def prefix_length(self) -> int:
        return self.layers[0].get_seq_length() if self.layers else 0


def allow_checkpointing_with_cache(model: nn.Module) -> None:
    """Let transformers' checkpointed layers keep our read-only cache (they drop any cache by default)."""
    for module in model.modules():
        if isinstance(module, GradientCheckpointingLayer):
            module._can_checkpoint_with_cache = True


class DeepPrompt(nn.Module):
    """P prefix key/value vectors per layer, stored as P-tuning v2 / peft do: a [P, layers*2*kv_heads*head_dim]
    embedding (layer l's keys are slot 2l, values 2l+1), optionally reparameterised through an MLP
    (``Embedding(P, hidden) -> Linear -> tanh -> Linear``, P-tuning v2's ``prefix_projection``)."""

    def __init__(self, num_layers: int, num_kv_heads: int, head_dim: int, length: int, hidden_size: int,
                 projection: bool = False, projection_hidden: int = 512, dropout: float = 0.0):
        super().__init__()
        self.num_layers, self.num_kv_heads, self.head_dim, self.length = num_layers, num_kv_heads, head_dim, length
        out = num_layers * 2 * num_kv_heads * head_dim
        self.projection = projection
        if projection:
            self.embedding = nn.Embedding(length, hidden_size)
            self.transform = nn.Sequential(nn.Linear(hidden_size, projection_hidden), nn.Tanh(),
                                           nn.Linear(projection_hidden, out))
        else:
            self.embedding = nn.Embedding(length, out)  # N(0, 1) init, as P-tuning v2 and peft
        self.dropout = nn.Dropout(dropout)

    def prefix_matrix(self) -> torch.Tensor:
        """[P, layers*2*kv_heads*head_dim] (peft's prompt-embedding layout)."""
        w = self.embedding.weight
        return self.transform(w) if self.projection else w

    def forward(self, batch_size: int, dtype: torch.dtype | None = None) -> PrefixCache:
        w = self.dropout(self.prefix_matrix())
        if dtype is not None:
            w = w.to(dtype)
        # [2L, kv_heads, P, head_dim], then a batch view with expand (no copy).
        t = w.view(self.length, 2 * self.num_layers, self.num_kv_heads, self.head_dim).permute(1, 2, 0, 3)
        t = t.unsqueeze(1).expand(-1, batch_size, -1, -1, -1)
        return PrefixCache([t[2 * i] for i in range(self.num_layers)], [t[2 * i + 1] for i in range(self.num_layers)])


class StackedPrompt(nn.Module):
    """A frozen language prefix followed by a trained task prefix (``lang_prefix``): one cache holding
    ``[language; task]`` keys and values at every layer. Without a language prefix it is the task prefix alone."""

    def __init__(self, task: DeepPrompt, language: DeepPrompt | None = None):
        super().__init__()
        self.task = task
        self.language = language

    @property
    def length(self) -> int:
        return self.task.length + (self.language.length if self.language is not None else 0)

    def forward(self, batch_size: int, dtype: torch.dtype | None = None) -> PrefixCache:
        task = self.task(batch_size, dtype)
        if self.language is None:
            return task
        lang = self.language(batch_size, dtype)
        keys = [torch.cat([a.keys, b.keys], dim=-2) for a, b in zip(lang.layers, task.layers)]
        values = [torch.cat([a.values, b.values], dim=-2) for a, b in zip(lang.layers, task.layers)]
        return PrefixCache(keys, values)


def prefix_attention_mask(mask: torch.Tensor, prefix_length: int, causal: bool,
                          dtype: torch.dtype | None) -> torch.Tensor:
    """4D mask [B, 1, L, P+L]: prefix columns always visible, padding columns masked, causal over the input for
    decoders. Additive in ``dtype`` (0 = attend, finfo.min = masked), or boolean (True = attend) when dtype is None.
    transformers' mask builders return a 4D mask as-is."""
    b, length = mask.shape
    allowed = mask[:, None, None, :].bool().expand(b, 1, length, length)
    if causal:
        allowed = allowed & torch.ones(length, length, dtype=torch.bool, device=mask.device).tril()
    prefix = torch.ones(b, 1, length, prefix_length, dtype=torch.bool, device=mask.device)
    allowed = torch.cat([prefix, allowed], dim=-1)
    if dtype is None:
        return allowed
    zero = torch.zeros((), dtype=dtype, device=mask.device)
    return torch.where(allowed, zero, torch.finfo(dtype).min)


class SoftPrompt(nn.Module):
    """P trainable input vectors prepended to the input embeddings (shallow prompt tuning, Lester et al. 2021)."""

    def __init__(self, length: int, embeddings: nn.Module, vocab_size: int, init: str = "random",
                 dropout: float = 0.0):
        super().__init__()
        self.length = length
        with torch.no_grad():
            # Embedding modules may scale (XGLM multiplies by sqrt(d)); sample through the module so prompts live
            # on the same scale as real token embeddings.
            weight = embeddings.weight
            ids = torch.randint(0, vocab_size, (length,), device=weight.device)
            vocab = embeddings(ids).float()
            if init == "vocab":
                start = vocab.clone()
            else:
                std = embeddings(torch.randint(0, vocab_size, (256,), device=weight.device)).float().std()
                start = torch.randn_like(vocab) * std
        self.weight = nn.Parameter(start)
        self.dropout = nn.Dropout(dropout)

    def forward(self, embeds: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = embeds.shape[0]
        prompt = self.dropout(self.weight).to(embeds.dtype).unsqueeze(0).expand(b, -1, -1)
        ones = torch.ones(b, self.length, dtype=mask.dtype, device=mask.device)
        return torch.cat([prompt, embeds], dim=1), torch.cat([ones, mask], dim=1)
