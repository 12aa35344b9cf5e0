"""Verbalizer head for decoders: a label's score is the log-likelihood of its label word(s) under the model's own LM
head, so classification needs no new head (``model.head: verbalizer``) and works without training (in-context).

Scoring (per example, per label ``l``): the input is ``context + continuation_l`` (see :mod:`xltune.templates`),
tokenized as the lm-evaluation-harness does (the whole text and the context are tokenized, the continuation is the
whole text's tokens after the context's). ``score_l = Σ_t log p(c_t | context, c_<t)`` over the continuation
tokens (``whole`` scoring, the harness's loglikelihood) or its mean (``slot`` scoring, length-normalised).
The context's own log-likelihood is the same for every label, so it is left out (the full-sentence log-likelihood
differs from ``score_l`` by that label-independent constant: same argmax, same softmax, same loss).

Only the hidden states that predict continuation tokens are projected through the LM head weight (the tied input
embeddings, or the checkpoint's ``lm_head.weight`` read alone from its safetensors file); the rest of the sequence
never is. One forward per label: the ``B x num_labels`` sequences go through :class:`TransferModel` (so deep/soft
prompts, LoRA and the mask-derived positions apply unchanged), in one padded batch.

Packing (why): :func:`xltune.evaluate.predict` and :func:`xltune.train.train` feed a model one padded
``input_ids`` row per example. A verbalized example is several sequences, so :func:`encode_verbalized` packs them
into one row ``[n, len(ctx), len(c_1)..len(c_n), ctx..., c_1..., ..., c_n...]`` and :meth:`VerbalizerModel.forward`
unpacks the real (unmasked) part of each row. Row contents never depend on the batch, so predictions are
batch-size and padding-side invariant (tested).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..data.encode import Encoded, Feature
from ..data.records import SentenceExample
from ..errors import XLTuneError
from ..templates import TemplateSet
from .backbone import Backbone
from .transfer import TrainableParams, TransferModel, TransferOutput

log = logging.getLogger(__name__)

# Positions projected through the LM head at once: bounds the [chunk, vocab] float32 logits (256k vocab: 256 MB).
PROJECTION_CHUNK = 256


# -- the LM head weight ----------------------------------------------------------------------------------------------
def is_tied(backbone: Backbone) -> bool:
    config = backbone.config if backbone.config is not None else backbone.model.config
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    return bool(getattr(text, "tie_word_embeddings", getattr(config, "tie_word_embeddings", True)))


def load_untied_lm_head(name: str) -> torch.Tensor:
    """``lm_head.weight`` (or another ``*lm_head.weight`` / ``embed_out.weight``) read alone from the checkpoint's
    safetensors files (local directory or hub cache), without building the LM-head model."""
    import json

    from safetensors import safe_open

    def resolve(filename: str) -> str | None:
        local = Path(name).expanduser() / filename
        if local.is_file():
            return str(local)
        if Path(name).expanduser().is_dir():
            return None
        from transformers.utils import cached_file

        try:
            return cached_file(name, filename, _raise_exceptions_for_missing_entries=False)
        except OSError:
            return None

    files = []
    index = resolve("model.safetensors.index.json")
    if index:
        weight_map = json.loads(Path(index).read_text())["weight_map"]
        files = [(k, resolve(f)) for k, f in weight_map.items()]
    else:
        single = resolve("model.safetensors")
        if single:
            with safe_open(single, "pt") as f:
                files = [(k, single) for k in f.keys()]
    for key, file in files:
        if file and (key.endswith("lm_head.weight") or key == "embed_out.weight"):
            with safe_open(file, "pt") as f:
                return f.get_tensor(key)
    raise XLTuneError(f"model.head verbalizer: {name} does not tie its LM head to the input embeddings and no "
                      f"lm_head.weight was found in its safetensors files")


# -- encoding ------------------------------------------------------------------------------------------------------
def prefix_token_id(tokenizer) -> int:
    """The token a context-less continuation is scored after (the harness's prefix_token_id: BOS, else EOS)."""
    tid = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if tid is None:
        raise XLTuneError("verbalizer: the tokenizer has neither a BOS nor an EOS token to start an empty context")
    return int(tid)


def encode_verbalized(examples: Sequence[SentenceExample], tokenizer, templates: TemplateSet, limit: int, *,
                      prefix: Callable[[SentenceExample], str] | None = None, what: str = "model.max_length",
                      fix: str = "raise model.max_length") -> Encoded:
    """Pack each example's context and per-label continuations into one feature (see module doc).

    ``prefix(example)`` is text put before the context (in-context demonstrations). An example whose longest
    sequence would exceed ``limit`` tokens is an error that counts them all (never silent truncation).
    """
    if not examples:
        return Encoded([], 0)
    filled = [templates.fill(e) for e in examples]
    contexts = [(prefix(e) if prefix else "") + f.context for e, f in zip(examples, filled)]
    n_labels = len(filled[0].continuations)
    ctx_ids = tokenizer(contexts, add_special_tokens=False)["input_ids"]
    wholes = [c + k for c, f in zip(contexts, filled) for k in f.continuations]
    whole_ids = tokenizer(wholes, add_special_tokens=False)["input_ids"]
    start = prefix_token_id(tokenizer)
    feats, too_long, tied, longest = [], [], [], 0
    for i, (e, ctx) in enumerate(zip(examples, ctx_ids)):
        ctx = list(ctx) or [start]
        conts = []
        for j, k in enumerate(filled[i].continuations):
            whole = list(whole_ids[i * n_labels + j])
            # The harness takes the whole text's tokens after the context's; if the tokenizer merged across the
            # boundary (rare), the continuation is tokenized alone instead.
            cont = whole[len(ctx):] if whole[: len(ctx)] == ctx and contexts[i] else (
                tokenizer(k, add_special_tokens=False)["input_ids"])
            if not cont:
                raise XLTuneError(f"{e.id}: the continuation {k!r} of label {j} tokenizes to nothing")
            conts.append(list(cont))
        if len({tuple(c) for c in conts}) < len(conts):
            if tokenizer.unk_token_id is None or not any(tokenizer.unk_token_id in c for c in conts):
                raise XLTuneError(f"{e.id}: two labels give the same tokens after the slot; use distinct label words")
            tied.append(e.id)  # the tokenizer cannot spell this language's label words: their scores tie
        need = len(ctx) + max(len(c) for c in conts) - 1  # the last token is only predicted, never fed
        longest = max(longest, need)
        if need > limit:
            too_long.append(e.id)
        packed = [n_labels, len(ctx), *(len(c) for c in conts), *ctx, *(t for c in conts for t in c)]
        feats.append(Feature(packed, -1 if e.label is None else e.label, i))
    if too_long:
        raise XLTuneError(f"{len(too_long)} of {len(examples)} examples (first: {too_long[0]}) need more than "
                          f"{limit} tokens ({what}; longest {longest}); {fix}")
    if tied:
        log.warning("%d of %d examples (first: %s): label words become the same unknown tokens for this tokenizer; "
                    "their scores tie (the first label wins)", len(tied), len(examples), tied[0])
    return Encoded(feats, len(examples))


def unpack(row: list[int]) -> tuple[list[int], list[list[int]]]:
    n, n_ctx = row[0], row[1]
    lens = row[2 : 2 + n]
    body = row[2 + n :]
    ctx, pos, conts = body[:n_ctx], n_ctx, []
    for length in lens:
        conts.append(body[pos : pos + length])
        pos += length
    return ctx, conts


# -- the model -----------------------------------------------------------------------------------------------------
class VerbalizerModel(TrainableParams, nn.Module):
    """Label scores from the LM head at the continuation positions; the TransferModel's own head is unused."""

    def __init__(self, transfer: TransferModel, backbone: Backbone, scoring: str, padding_side: str = "right",
                 lm_head: torch.Tensor | None = None):
        super().__init__()
        if not backbone.is_decoder:
            raise XLTuneError(f"model.head verbalizer needs a decoder (causal LM); {backbone.name} is an encoder")
        if transfer.task_kind != "sequence":
            raise XLTuneError("model.head verbalizer is for sentence tasks")
        self.transfer = transfer
        self.scoring = scoring
        self.padding_side = padding_side
        self.pad_id = backbone.pad_token_id if backbone.pad_token_id is not None else 0
        config = backbone.config if backbone.config is not None else backbone.model.config
        text = config.get_text_config() if hasattr(config, "get_text_config") else config
        self.softcap = getattr(text, "final_logit_softcapping", None)
        for p in transfer.head.parameters():  # the classifier head is not used: keep it out of training
            p.requires_grad_(False)
        if lm_head is None:
            self.lm_head = None  # tied: the input embeddings are the LM head (they train only under finetune)
        else:
            trains = any(p.requires_grad for p in transfer.backbone.get_input_embeddings().parameters())
            device = transfer.backbone.get_input_embeddings().weight.device
            self.lm_head = nn.Parameter(lm_head.to(device), requires_grad=trains)

    def lm_weight(self) -> torch.Tensor:
        if self.lm_head is not None:
            return self.lm_head
        return self.transfer.backbone.get_input_embeddings().weight

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> TransferOutput:
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        rows = [ids[m.bool()].tolist() for ids, m in zip(input_ids.cpu(), mask.cpu())]
        unpacked = [unpack(r) for r in rows]
        n_labels = len(unpacked[0][1])
        seqs, targets, firsts = [], [], []
        for ctx, conts in unpacked:
            for cont in conts:
                full = ctx + cont
                seqs.append(full[:-1])
                targets.append(cont)
                firsts.append(len(ctx) - 1)  # the hidden state at position t predicts token t + 1
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        att = torch.zeros((len(seqs), width), dtype=torch.long)
        offsets = []
        for r, s in enumerate(seqs):
            off = width - len(s) if self.padding_side == "left" else 0
            ids[r, off : off + len(s)] = torch.tensor(s)
            att[r, off : off + len(s)] = 1
            offsets.append(off)
        out = self.transfer(input_ids=ids, attention_mask=att)
        hidden = out.hidden
        device = hidden.device
        # the positions to project: for sequence r, first_r .. first_r + len(cont_r) - 1 (shifted by left padding)
        row_idx = torch.tensor([r for r, t in enumerate(targets) for _ in t], device=device)
        col_idx = torch.tensor([offsets[r] + firsts[r] + k for r, t in enumerate(targets) for k in range(len(t))],
                               device=device)
        tgt = torch.tensor([x for t in targets for x in t], device=device)
        logp = self._token_logprobs(hidden[row_idx, col_idx], tgt)
        sums = torch.zeros(len(seqs), dtype=logp.dtype, device=device).index_add(0, row_idx, logp)
        if self.scoring == "slot":
            counts = torch.tensor([len(t) for t in targets], dtype=logp.dtype, device=device)
            sums = sums / counts
        scores = sums.view(len(unpacked), n_labels)
        # the state at the last context token (same for every label): the sequence representation for objectives
        slot_rows = torch.arange(0, len(seqs), n_labels, device=device)
        slot_cols = torch.tensor([offsets[r] + firsts[r] for r in range(0, len(seqs), n_labels)], device=device)
        pooled = hidden[slot_rows, slot_cols]
        return TransferOutput(logits=scores, pooled=pooled, hidden=pooled.unsqueeze(1))

    def _token_logprobs(self, h: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        """log p(tgt | h) through the LM head, in chunks of positions (float32 log-softmax)."""
        weight = self.lm_weight()
        out = []
        for s in range(0, h.shape[0], PROJECTION_CHUNK):
            logits = F.linear(h[s : s + PROJECTION_CHUNK].to(weight.dtype), weight).float()
            if self.softcap:
                logits = torch.tanh(logits / self.softcap) * self.softcap
            t = tgt[s : s + PROJECTION_CHUNK]
            out.append(logits.gather(1, t[:, None]).squeeze(1) - torch.logsumexp(logits, dim=-1))
        return torch.cat(out)

    # -- the TransferModel interface the trainer and the store use --------------------------------------------------
    def _own(self):  # the TransferModel's own classifier head is unused here
        return [(n, p) for n, p in self.named_parameters() if not n.startswith("transfer.head.")]


def verbalizer_model(transfer: TransferModel, backbone: Backbone, templates: TemplateSet,
                     padding_side: str = "right") -> VerbalizerModel:
    """Wrap a built TransferModel (any method) with the verbalizer head of ``templates``."""
    lm_head = None if is_tied(backbone) else load_untied_lm_head(backbone.name)
    return VerbalizerModel(transfer, backbone, templates.scoring, padding_side, lm_head)
