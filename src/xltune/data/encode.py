"""Tokenization, label alignment to sub-words, and length-bucketed batching.

Sentence tasks: one feature per example (one or two segments through the tokenizer's own pair template).
Inputs longer than ``max_length`` are truncated (longest segment first) and *counted*: the count is printed and
stored with the run, never silent.

Token tasks: words -> sub-words through the fast tokenizer's ``word_ids``; the label goes on one sub-word of each
word and predictions are read there (the others get -100 and are ignored by the loss and the metrics): the first
(``alignment='first'``, encoders' default: they see the whole word from its first piece) or the last (``'last'``,
decoders' default: with causal attention only the last piece has seen the whole word -- with XLM-R's vocabulary the
first piece of 85-88 % of PAN-X zh/ja entity words is a bare "▁", which tells a decoder nothing), or every
sub-word (``'all'``; predictions are read from the first). A sentence longer than ``max_length``
sub-words is cut into consecutive windows of whole words, each word in exactly one window, so no gold label is
ever dropped; windows are predicted separately and stitched back (the number of windowed sentences is reported).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import XLTuneError
from .records import SentenceExample, TokenExample

IGNORE = -100


@dataclass
class Feature:
    input_ids: list[int]
    label: int | list[int]  # sequence label, or per-sub-word labels (IGNORE where not scored)
    example: int  # position of the source example in the encoded list
    window: int = 0  # token tasks: window number within the example
    word_ids: list[int | None] = field(default_factory=list)  # token tasks: word index of each sub-word (global)
    token_type_ids: list[int] | None = None  # segment ids, where the tokenizer produces them (BERT-style pairs)


@dataclass
class Encoded:
    features: list[Feature]
    n_examples: int
    truncated: int = 0  # sentence tasks: examples cut to max_length
    windowed: int = 0  # token tasks: sentences split into several windows
    n_words: list[int] = field(default_factory=list)  # token tasks: words per example
    read_at: str = "first"  # token tasks: the sub-word of each word that carries its label (first | last)

    def lengths(self) -> np.ndarray:
        return np.array([len(f.input_ids) for f in self.features])


def encode_sentences(examples: Sequence[SentenceExample], tokenizer, max_length: int) -> Encoded:
    if not examples:
        return Encoded([], 0)
    segs = list(zip(*[e.texts for e in examples]))
    if len(segs) > 2:
        raise XLTuneError(f"sentence tasks take one or two text segments, got {len(segs)}")
    ids_all = tokenizer(*[list(s) for s in segs], truncation=False)["input_ids"]
    # only the (rare) inputs over the limit are tokenized again, with truncation, and counted
    long = [i for i, ids in enumerate(ids_all) if len(ids) > max_length]
    if long:
        cut = tokenizer(*[[s[i] for i in long] for s in segs], truncation="longest_first",
                        max_length=max_length)["input_ids"]
        for i, ids in zip(long, cut):
            ids_all[i] = ids
    enc, truncated = ids_all, len(long)
    types = _segment_ids(tokenizer, segs, ids_all, long)
    feats = [Feature(list(ids), -1 if ex.label is None else ex.label, i,
                     token_type_ids=None if types is None else list(types[i]))
             for i, (ids, ex) in enumerate(zip(enc, examples))]
    return Encoded(feats, len(examples), truncated=truncated)


def _segment_ids(tokenizer, segs, ids_all, long) -> list | None:
    """Segment ids (0 for the first segment, 1 for the second) when the tokenizer produces them, as BERT-style
    tokenizers do and XTREME passes them for mBERT; None otherwise (XLM-R, XGLM: one embedding for all tokens)."""
    if "token_type_ids" not in getattr(tokenizer, "model_input_names", ()):
        return None
    types = tokenizer(*[list(s) for s in segs], truncation=False, return_token_type_ids=True)["token_type_ids"]
    if long:
        cut = tokenizer(*[[s[i] for i in long] for s in segs], truncation="longest_first", return_token_type_ids=True,
                        max_length=max(len(ids_all[i]) for i in long))["token_type_ids"]
        for i, t in zip(long, cut):
            types[i] = t
    return types


def encode_tokens(
    examples: Sequence[TokenExample], tokenizer, max_length: int, alignment: str = "first"
) -> Encoded:
    if not getattr(tokenizer, "is_fast", False):
        raise XLTuneError("token tasks need a fast tokenizer (word_ids); this model's tokenizer is a slow one")
    if alignment not in ("first", "last", "all"):
        raise XLTuneError(f"task.label_alignment must be first, last or all (or auto), got {alignment!r}")
    n_special = tokenizer.num_special_tokens_to_add(pair=False)
    budget = max_length - n_special
    if budget < 1:
        raise XLTuneError(f"model.max_length {max_length} leaves no room for tokens after special tokens")
    feats: list[Feature] = []
    windowed = 0
    for i, ex in enumerate(examples):
        # sub-words per word (no special tokens) to cut windows on word boundaries
        wids = tokenizer(list(ex.words), is_split_into_words=True, add_special_tokens=False).word_ids()
        per_word = np.bincount([w for w in wids if w is not None], minlength=len(ex.words))
        windows = _windows(per_word, budget)
        windowed += len(windows) > 1
        for w, (start, stop) in enumerate(windows):
            sub = tokenizer(list(ex.words[start:stop]), is_split_into_words=True, add_special_tokens=True,
                            truncation=True, max_length=max_length)
            word_ids = [None if x is None else x + start for x in sub.word_ids()]
            at = labelled_positions(word_ids, "last" if alignment == "last" else "first")
            labels = []
            for pos, x in enumerate(word_ids):
                scored = ex.tags is not None and x is not None and (pos in at or alignment == "all")
                labels.append(ex.tags[x] if scored else IGNORE)
            feats.append(Feature(list(sub["input_ids"]), labels, i, w, word_ids))
    return Encoded(feats, len(examples), windowed=windowed, n_words=[len(ex.words) for ex in examples],
                   read_at="last" if alignment == "last" else "first")


def resolve_alignment(alignment: str, is_decoder: bool) -> str:
    """task.label_alignment ``auto``: the last sub-word for decoders, the first for encoders."""
    if alignment == "auto":
        return "last" if is_decoder else "first"
    return alignment


def labelled_positions(word_ids: Sequence[int | None], read_at: str) -> set[int]:
    """Positions of the first (or last) sub-word of each word in a feature's ``word_ids``."""
    out, prev = set(), None
    for pos, w in enumerate(word_ids):
        if w is not None and w != prev:
            out.add(pos)
        prev = w
    if read_at == "last":  # the position before each word's next start
        out, nxt = set(), None
        for pos in range(len(word_ids) - 1, -1, -1):
            w = word_ids[pos]
            if w is not None and w != nxt:
                out.add(pos)
            nxt = w
    return out


def _windows(per_word: np.ndarray, budget: int) -> list[tuple[int, int]]:
    """Consecutive runs of whole words whose sub-word count fits ``budget`` (a word longer than the budget alone
    gets a window of its own and is cut by the tokenizer; its first sub-word, which carries the label, survives)."""
    out, start, used = [], 0, 0
    for j, n in enumerate(per_word):
        if used and used + n > budget:
            out.append((start, j))
            start, used = j, 0
        used += int(n)
    out.append((start, len(per_word)))
    return out


# -- batching ------------------------------------------------------------------------------------------------------
def train_batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[list[int]]:
    """Shuffled batches of feature positions (one epoch), reproducible from the generator's state."""
    order = torch.randperm(n, generator=generator).tolist()
    for s in range(0, n, batch_size):
        yield order[s : s + batch_size]


def eval_batches(lengths: np.ndarray, batch_size: int, max_tokens: int | None = None) -> list[list[int]]:
    """Length-sorted batches: similar lengths together, so little padding. Results do not depend on the order
    (each sequence's logits are the same alone or padded in a batch; tested).

    ``max_tokens``: a token budget instead of a fixed count: each batch takes as many length-sorted sequences as
    fit ``rows x longest <= max_tokens`` (at least one), so short sequences go in big batches. With the budget
    ``batch_size x longest sequence`` no batch is larger (in padded tokens) than the first fixed-count batch."""
    order = np.argsort(-lengths, kind="stable")
    if not max_tokens:
        return [order[s : s + batch_size].tolist() for s in range(0, len(order), batch_size)]
    batches, start = [], 0
    while start < len(order):
        width = max(int(lengths[order[start]]), 1)  # sorted longest first: the first row sets the padded width
        rows = max(1, max_tokens // width)
        batches.append(order[start : start + rows].tolist())
        start += rows
    return batches


def collate(features: Sequence[Feature], pad_id: int, padding_side: str, token_task: bool) -> dict[str, torch.Tensor]:
    width = max(len(f.input_ids) for f in features)
    ids = torch.full((len(features), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(features), width), dtype=torch.long)
    labels = torch.full((len(features), width), IGNORE, dtype=torch.long) if token_task else None
    for r, f in enumerate(features):
        n = len(f.input_ids)
        sl = slice(width - n, width) if padding_side == "left" else slice(0, n)
        ids[r, sl] = torch.tensor(f.input_ids)
        mask[r, sl] = 1
        if token_task:
            labels[r, sl] = torch.tensor(f.label)
    if not token_task:
        labels = torch.tensor([f.label for f in features], dtype=torch.long)
    out = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    if features[0].token_type_ids is not None:  # padded with segment 0 (masked anyway)
        types = torch.zeros((len(features), width), dtype=torch.long)
        for r, f in enumerate(features):
            n = len(f.token_type_ids)
            types[r, slice(width - n, width) if padding_side == "left" else slice(0, n)] = torch.tensor(f.token_type_ids)
        out["token_type_ids"] = types
    return out


def model_inputs(batch: dict, device=None) -> dict:
    """What a model's forward takes from a collated batch (input ids, mask, and segment ids when there are)."""
    keys = ("input_ids", "attention_mask", "token_type_ids")
    return {k: (batch[k] if device is None else batch[k].to(device)) for k in keys if k in batch}
