"""Per-language evaluation: predictions from a trained model on encoded data, then the task's metric (scored by the
task's kind, :mod:`xltune.kinds`).

Batch-size invariant by construction: each sequence's logits do not depend on what it is batched with (positions
come from the attention mask, padding is masked), and the metric is computed on the gathered per-example
predictions. Reads only a model and encoded data; knows nothing of training.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext

import numpy as np
import torch

from .data.encode import Encoded, collate, eval_batches, labelled_positions, model_inputs
from .kinds import NO_SUBWORD, LanguageResult, score

__all__ = ["LanguageResult", "NO_SUBWORD", "format_table", "predict", "predict_sharded", "score",
           "words_from_subwords"]


@torch.no_grad()
def predict(model, encoded: Encoded, *, batch_size: int, pad_id: int, padding_side: str, token_task: bool,
            device: torch.device, autocast_dtype: torch.dtype | None = None, progress=None,
            max_tokens: int | None = None, logits: bool = False) -> list:
    """Predicted label ids: one int per example (sequence tasks) or one list of word-level ids per example; with
    ``logits``, the float32 logits instead: ``[C]`` per example, or ``[W, C]`` per word (read where its label sits).

    Batches are sized by tokens (length-sorted, see :func:`eval_batches`): ``max_tokens`` padded tokens per batch,
    by default ``batch_size x`` the longest input, so no batch is bigger than the first fixed-size one would be
    while short inputs go in larger batches. ``max_tokens=0``: fixed ``batch_size`` examples per batch."""
    model.eval()
    feats = encoded.features
    if not feats:
        return []
    ctx = torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype else nullcontext()
    feat_out: list = [None] * len(feats)
    lengths = encoded.lengths()
    if max_tokens is None:
        max_tokens = batch_size * int(lengths.max())
    for batch_idx in eval_batches(lengths, batch_size, max_tokens):
        batch = collate([feats[i] for i in batch_idx], pad_id, padding_side, token_task)
        with ctx:
            out = model(**model_inputs(batch, device))
        scores = out.logits.float().cpu()
        pred = scores.argmax(-1)
        for r, i in enumerate(batch_idx):
            if token_task:
                m = batch["attention_mask"][r].bool()
                feat_out[i] = scores[r][m] if logits else pred[r][m].tolist()  # real positions, in order
            else:
                feat_out[i] = scores[r] if logits else int(pred[r])
        if progress is not None:
            progress.update(len(batch_idx))
    if not token_task:
        out_preds = [None] * encoded.n_examples
        for f, p in zip(feats, feat_out):
            out_preds[f.example] = p
        return out_preds
    if logits:
        return words_from_subwords(feats, feat_out, encoded.n_words, encoded.read_at, stack=True)
    return words_from_subwords(feats, feat_out, encoded.n_words, encoded.read_at)





def predict_sharded(model: torch.nn.Module, enc: Encoded, state, **kw) -> list:
    """:func:`predict` over the processes of ``state`` (an accelerate ``PartialState``/``Accelerator``): each
    predicts its share of the examples and the shares are gathered, so every example is counted once (no
    duplicated tail, unlike a padded distributed sampler). Every process returns the full list."""
    if state.num_processes == 1:
        return predict(model, enc, **kw)
    from accelerate.utils import gather_object

    n, rank = state.num_processes, state.process_index
    mine = Encoded([f for f in enc.features if f.example % n == rank], enc.n_examples, n_words=enc.n_words,
                   read_at=enc.read_at)
    preds = predict(model, mine, **kw)
    merged: list = [None] * enc.n_examples
    for i, p in gather_object([(i, p) for i, p in enumerate(preds) if i % n == rank]):
        merged[i] = p
    return merged


def words_from_subwords(features, subword_preds: list, n_words: Sequence[int], read_at: str = "first",
                        stack: bool = False) -> list:
    """Word-level predictions from per-sub-word ones: a word's prediction is read at its first (or last) sub-word,
    the one that carried its label in training, and the windows of a long sentence are stitched back by word index.
    ``subword_preds[i]`` covers the unpadded positions of ``features[i]`` (special tokens included); ``n_words[e]``
    is example e's word count. Words without any sub-word get NO_SUBWORD (scored as 'O'). ``stack``: the
    per-position values are logit vectors and each example becomes a ``[W, C]`` tensor (a word without any sub-word
    gets zeros: no evidence for any label)."""
    words: list = [[NO_SUBWORD] * n for n in n_words]
    for f, p in zip(features, subword_preds):
        if p is None:
            continue
        for pos in sorted(labelled_positions(f.word_ids, read_at)):
            words[f.example][f.word_ids[pos]] = p[pos]
    if stack:
        width = next((p.shape[-1] for p in subword_preds if p is not None and len(p)), 0)
        return [torch.stack([w if isinstance(w, torch.Tensor) else torch.zeros(width) for w in ws])
                if ws else torch.zeros(0, width) for ws in words]
    return words


def format_table(results: Sequence[LanguageResult], title: str = "", notes: dict[str, dict] | None = None) -> str:
    """language | n | metric table with the average last; ``notes``: per-language facts (e.g. the language
    module a method used) shown after the language's score."""
    if not results:
        return "(no results)"
    name = next(iter(results[0].metrics))
    lines = [title] if title else []
    lines.append(f"{'lang':<8}{'n':>7}  {name:>9}")
    for r in results:
        note = "  " + "; ".join(f"{k}: {v}" for k, v in notes[r.lang].items()) if notes and notes.get(r.lang) else ""
        lines.append(f"{r.lang:<8}{r.n:>7}  {100 * r.headline:>8.2f}%{note}")
    avg = float(np.mean([r.headline for r in results]))
    lines.append(f"{'avg':<8}{sum(r.n for r in results):>7}  {100 * avg:>8.2f}%")
    return "\n".join(lines)
