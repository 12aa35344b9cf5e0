"""The model a method trains: backbone + optional deep/soft prompt + task head. Never computes the LM head.

Positions and masks (why they are built here rather than left to the model):

* Decoders: position ids come from the mask, ``P + cumsum(mask) - 1`` for real tokens (P = deep-prompt length),
  so a sequence gets the same logits alone, right-padded or left-padded; with a deep prompt this equals peft's
  prefix tuning (which shifts positions by the prefix length). A soft prompt's vectors take positions 0..P-1.
* Encoders: the positions the model itself computes for a right-padded input (RoBERTa/XLM-R: ``padding_idx + 1 +
  i`` and ``padding_idx`` for pads; BERT-style: ``i``), shifted by the deep-prompt length as the model does for a
  cache (P-tuning v2's behaviour), but computed from the mask so that left padding and ``inputs_embeds`` (soft
  prompts) agree too. With a deep prompt, ``max_length + P`` must fit in the model's position table.
* ``method.prefix_positions: keep`` starts the input's positions at 0 (as in pretraining) instead of after the
  prefix: a model that learned position-dependent patterns from rows starting at 0 can be hurt by the shift
  (measured on the synthetic world, docs/synthetic.md).
* With a deep prompt we pass a 4D mask [B, 1, L, P+L] (prefix always visible, pads masked, causal for decoders):
  transformers' mask builders return a 4D mask as-is. Without one, the 2D mask goes to transformers unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import XLTuneError, unknown_name
from .backbone import Backbone
from .heads import SequenceHead, TokenHead, pool
from .prompts import DeepPrompt, SoftPrompt, allow_checkpointing_with_cache, prefix_attention_mask

TASK_KINDS = ("sequence", "token")


@dataclass
class TransferOutput:
    logits: torch.Tensor  # [B, num_labels] (sequence) or [B, L, num_labels] (token)
    pooled: torch.Tensor  # [B, H] sequence representation
    hidden: torch.Tensor  # [B, L, H] last hidden states of the input tokens (prompt positions removed)


def decoder_position_ids(mask: torch.Tensor, offset: int = 0) -> torch.Tensor:
    """``offset + cumsum(mask) - 1`` for real tokens, ``offset`` for pads (masked out anyway)."""
    pos = mask.long().cumsum(-1) - 1 + offset
    return pos.masked_fill(mask == 0, offset)


def encoder_position_ids(model: nn.Module, mask: torch.Tensor, offset: int = 0) -> torch.Tensor:
    """The positions the encoder computes itself for right-padded input_ids, from the mask (see module doc)."""
    emb = getattr(model, "embeddings", None)
    padding_idx = getattr(emb, "padding_idx", None)
    if padding_idx is not None and hasattr(emb, "create_position_ids_from_input_ids"):
        start, pad_value = padding_idx + 1, padding_idx  # RoBERTa family (fairseq make_positions)
    else:
        start, pad_value = 0, 0
    m = mask.long()
    return torch.where(m.bool(), m.cumsum(-1) - 1 + offset + start, pad_value)


class TrainableParams:
    """Trainable-parameter bookkeeping shared by the models methods build: counts, and checkpoints that hold only
    what trains. ``_own()`` names the parameters that belong to the model (a wrapper can leave some out)."""

    def _own(self) -> list[tuple[str, nn.Parameter]]:
        return list(self.named_parameters())

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for _, p in self._own() if p.requires_grad]

    def count_parameters(self) -> tuple[int, int]:
        """(trainable, total)."""
        own = self._own()
        return sum(p.numel() for _, p in own if p.requires_grad), sum(p.numel() for _, p in own)

    def state_dict_trainable(self) -> dict[str, torch.Tensor]:
        """Only the parameters that train (prompt / adapter / head, or everything for fine-tuning)."""
        return {n: p.detach().cpu().clone() for n, p in self._own() if p.requires_grad}

    def load_trainable(self, state: dict[str, torch.Tensor]) -> None:
        expected = {n for n, p in self._own() if p.requires_grad}
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        if missing or unexpected:
            raise XLTuneError(f"checkpoint does not match the model's trainable parameters "
                              f"(missing: {missing[:5]}, unexpected: {unexpected[:5]})")
        self.load_state_dict(state, strict=False)


class TransferModel(TrainableParams, nn.Module):
    def __init__(self, backbone: Backbone, num_labels: int, task_kind: str = "sequence", pooling: str = "auto",
                 head_dropout: float = 0.1, deep_prompt: DeepPrompt | None = None,
                 soft_prompt: SoftPrompt | None = None, shift_positions: bool = True):
        super().__init__()
        if task_kind not in TASK_KINDS:
            raise unknown_name("task kind", task_kind, TASK_KINDS)
        if num_labels <= 0:
            raise XLTuneError(f"num_labels must be > 0, got {num_labels}")
        self.backbone = backbone.model
        self.is_decoder = backbone.is_decoder
        self.name = backbone.name
        self.max_positions = backbone.max_positions
        self.task_kind = task_kind
        self.pooling = pooling if pooling != "auto" else ("last" if backbone.is_decoder else "mean")
        # segment ids reach encoders that learned more than one segment embedding (BERT-style, e.g. mBERT)
        self.uses_segments = not backbone.is_decoder and getattr(backbone.model.config, "type_vocab_size", 1) > 1
        self.deep_prompt = deep_prompt
        self.soft_prompt = soft_prompt
        # deep prompts: input positions start after the prefix (peft / P-tuning v2), or at 0 as in pretraining
        self.shift_positions = shift_positions
        head_cls = SequenceHead if task_kind == "sequence" else TokenHead
        self.head = head_cls(backbone.hidden_size, num_labels, head_dropout)
        if deep_prompt is not None:
            allow_checkpointing_with_cache(self.backbone)
        device = next(self.backbone.parameters()).device
        if device.type != "meta":
            self.head.to(device)
            for p in (deep_prompt, soft_prompt):
                if p is not None:
                    p.to(device)

    # -- forward ---------------------------------------------------------------------------------------------------
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None) -> TransferOutput:
        device = self.head.linear.weight.device
        input_ids = input_ids.to(device)
        mask = (torch.ones_like(input_ids) if attention_mask is None else attention_mask.to(device)).long()
        kwargs: dict = {"use_cache": False}
        if token_type_ids is not None and self.uses_segments:
            types = token_type_ids.to(device)
            if self.soft_prompt is not None:  # the soft tokens take segment 0
                types = torch.cat([types.new_zeros(types.shape[0], self.soft_prompt.length), types], dim=1)
            kwargs["token_type_ids"] = types
        query_mask, soft = mask, 0
        if self.soft_prompt is not None:
            embeds = self.backbone.get_input_embeddings()(input_ids)
            embeds, query_mask = self.soft_prompt(embeds, mask)
            kwargs["inputs_embeds"], soft = embeds, self.soft_prompt.length
        else:
            kwargs["input_ids"] = input_ids
        prefix = offset = 0
        if self.deep_prompt is not None:
            prefix = self.deep_prompt.length
            offset = prefix if self.shift_positions else 0
            dtype = self._compute_dtype()
            kwargs["cache"] = self.deep_prompt(input_ids.shape[0], dtype)
            kwargs["attention_mask"] = self._prefix_mask(query_mask, prefix, dtype)
        else:
            kwargs["attention_mask"] = query_mask
        if self.is_decoder:
            kwargs["position_ids"] = decoder_position_ids(query_mask, offset)
        else:
            kwargs["position_ids"] = encoder_position_ids(self.backbone, query_mask, offset)
        self._check_length(kwargs["position_ids"])
        hidden = self.backbone(**kwargs).last_hidden_state[:, soft:]
        pooled = pool(hidden, mask, self.pooling)
        logits = self.head(pooled if self.task_kind == "sequence" else hidden)
        return TransferOutput(logits=logits, pooled=pooled, hidden=hidden)

    def _compute_dtype(self) -> torch.dtype:
        if torch.is_autocast_enabled(self.head.linear.weight.device.type):
            return torch.get_autocast_dtype(self.head.linear.weight.device.type)
        return next(self.backbone.parameters()).dtype

    def _prefix_mask(self, query_mask: torch.Tensor, prefix: int, dtype: torch.dtype) -> torch.Tensor:
        impl = getattr(self.backbone.config, "_attn_implementation", "eager")
        if impl == "flash_attention_2":
            # flash attention takes no 4D mask; transformers builds the causal+prefix mask from a 2D one and the cache.
            ones = torch.ones(query_mask.shape[0], prefix, dtype=query_mask.dtype, device=query_mask.device)
            return torch.cat([ones, query_mask], dim=1)
        # sdpa: boolean (no dtype mismatch under autocast; the prefix keeps every row non-empty). eager: additive.
        return prefix_attention_mask(query_mask, prefix, self.is_decoder, None if impl == "sdpa" else dtype)

    def _check_length(self, positions: torch.Tensor) -> None:
        if self.max_positions and not self.is_decoder and int(positions.max()) >= self.max_positions:
            raise XLTuneError(
                f"input of {positions.shape[1]} tokens (+ prompt) exceeds the {self.max_positions} positions of "
                f"{self.name}; lower model.max_length or method.prefix_length")

