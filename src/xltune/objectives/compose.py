"""Compose the extra training objectives of a run (translation contrast, label contrast, projected-tag
cross-entropy) into the one ``extra_loss(out, batch, part)`` callable that :func:`xltune.train.train` adds to the
task loss of every micro-batch.

What is contrasted with what (see docs/objectives.md for the formulas):

* **TCL** (``objective.translation_contrast``): each shot's sequence representation (``out.pooled``) against the
  pooled representation of one of its translations; the micro-batch's other translations are the negatives
  (symmetric InfoNCE). Sentence-level for tagging too.
* **LCL** (``objective.label_contrast``): supervised contrast over the micro-batch. Sentence tasks: the shots'
  pooled representations *and their translations'* (which share the shot's label: the "dual" part), so
  same-label sentences across languages are pulled together. Tagging: first-sub-word token representations
  (every position whose label is not -100; 'O' left out when ``objective.exclude_o``), from the shots and, with
  translations, from the translations labelled by tag projection.
* **Projected cross-entropy** (tagging with translations, ``objective.projected_ce``): the translations, labelled
  by projecting the shot's tags through a SimAlign-style argmax word alignment computed with the run's own
  backbone, are extra labelled training sentences (translate-train), trained in the same micro-batch as their
  source sentence.

Translations come from line-aligned splits of other languages (``objective.translation_languages``; XNLI dev/test
are aligned by line) and/or a parallel TSV keyed by the shot's text (``objective.parallel_file``). A shot with
several translations uses **one per step**, drawn by a generator seeded from the run's seed: every translation is
seen over the epochs while each step costs one extra forward pass of the micro-batch, not one per language.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from ..alignment import argmax_align, embed_words, project_tags
from ..data.encode import IGNORE, Encoded, collate
from ..data.parallel import aligned_translations, read_parallel_tsv
from ..data.records import Example, SentenceExample, TokenExample
from ..errors import XLTuneError, where
from .cross_entropy import cross_entropy
from .label_contrast import label_contrast
from .translation_contrast import translation_contrast

PAIR_SEP = " ||| "  # joins the segments of a sentence pair in a parallel TSV (fast_align's separator)
ALIGN_LAYER = 8  # SimAlign's best layer for 12-layer encoders; embed_words clamps it for smaller models

ExtraLoss = Callable[[object, dict, list[int]], torch.Tensor]


@dataclass
class Translations:
    """Translated copies of the shots, encoded once."""

    examples: list[Example] = field(default_factory=list)
    owner: list[int] = field(default_factory=list)  # shot position of each translation
    source: list[str] = field(default_factory=list)  # language (or parallel-file column) of each translation

    def add(self, ex: Example, owner: int, source: str) -> None:
        self.examples.append(ex)
        self.owner.append(owner)
        self.source.append(source)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.source:
            out[s] = out.get(s, 0) + 1
        return out


def build_extra_loss(
    cfg,
    spec,
    shots: Sequence[Example],
    encode: Callable[[Sequence[Example]], Encoded],
    load_examples_fn: Callable[..., list[Example]],
    model,
    *,
    tokenizer=None,
    pad_id: int | None = None,
    padding_side: str = "right",
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> tuple[ExtraLoss | None, dict]:
    """The run's extra loss (or None when no extra objective is on) and facts about it for the run's ``extra``.

    ``encode`` must be the run's own encoder of training examples (the same features as the training set: ``part``
    positions index ``encode(shots).features``); ``load_examples_fn(split, lang, labelled=False)`` reads a split of
    the task (the translations of the shots are read from ``cfg.train.split``). ``tokenizer`` is needed for tag
    projection (word alignment with the backbone); ``pad_id``/``padding_side`` as for training.
    """
    obj = cfg.objective
    token_task = spec.kind == "token"
    w_tcl, w_lcl, temp = obj.translation_contrast, obj.label_contrast, obj.temperature
    has_sources = bool(obj.translation_languages or obj.parallel_file)
    info: dict = {"tag": obj.tag(), "translation_contrast": w_tcl, "label_contrast": w_lcl, "temperature": temp}
    if w_tcl > 0 and not has_sources:
        raise XLTuneError("objective.translation_contrast > 0 needs translations of the shots: set "
                          "objective.translation_languages (line-aligned splits) or objective.parallel_file")
    w_proj = obj.projected_ce if token_task else 0.0
    use_translations = has_sources and (w_tcl > 0 or w_lcl > 0 or w_proj > 0)
    if not (w_tcl > 0 or w_lcl > 0 or (use_translations and w_proj > 0)):
        return None, info

    train_enc = encode(shots)
    feat_example = [f.example for f in train_enc.features]
    trans = Translations()
    if use_translations:
        trans = collect_translations(cfg, spec, shots, load_examples_fn)
        if token_task:
            if tokenizer is None:
                raise XLTuneError("tag projection needs the run's tokenizer (build_extra_loss(..., tokenizer=...))")
            trans, info["projection"] = project_translations(spec, shots, trans, model, tokenizer)
        info["translation_sources"] = sorted(set(trans.source))
        info["pairs"] = trans.counts()
        info["shots_with_translation"] = len(set(trans.owner))
        info["sampling"] = "one translation per example per step (seeded)"
        log(f"   translations: {info['pairs']} for {info['shots_with_translation']} of {len(shots)} shots")
        if token_task and w_proj > 0:
            info["projected_ce"] = w_proj
    trans_enc = encode(trans.examples) if trans.examples else Encoded([], 0)
    # One feature per translation: the first window (a translated sentence longer than max_length is cut there).
    first_feature: dict[int, int] = {}
    for k, f in enumerate(trans_enc.features):
        first_feature.setdefault(f.example, k)
    options: list[list[int]] = [[] for _ in shots]
    for t, owner in enumerate(trans.owner):
        if t in first_feature:
            options[owner].append(first_feature[t])

    o_index = spec.labels.index("O") if (token_task and obj.exclude_o and "O" in spec.labels) else None
    gen = torch.Generator().manual_seed(seed * 1_000_003 + 17)  # own stream: does not shift the data order
    pad = pad_id if pad_id is not None else 0

    def extra_loss(out, batch: dict, part: list[int]) -> torch.Tensor:
        device = out.logits.device
        rows, tfeats = [], []
        for r, pos in enumerate(part):
            opts = options[feat_example[pos]]
            if opts:
                pick = int(torch.randint(len(opts), (1,), generator=gen)) if len(opts) > 1 else 0
                rows.append(r)
                tfeats.append(opts[pick])
        total = out.pooled.float().sum() * 0.0  # on the graph even when every term is skipped
        tout = tbatch = None
        if tfeats:
            tbatch = collate([trans_enc.features[k] for k in tfeats], pad, padding_side, token_task)
            tbatch = {k: v.to(device) for k, v in tbatch.items()}
            tout = model(input_ids=tbatch["input_ids"], attention_mask=tbatch["attention_mask"])
            if w_tcl > 0:
                total = total + w_tcl * translation_contrast(out.pooled[rows], tout.pooled, temp)
            if w_proj > 0:
                total = total + w_proj * cross_entropy(tout.logits, tbatch["labels"], IGNORE)
        if w_lcl > 0:
            if token_task:
                reps = [out.hidden.reshape(-1, out.hidden.shape[-1])]
                labels = [batch["labels"].reshape(-1)]
                if tout is not None:
                    reps.append(tout.hidden.reshape(-1, tout.hidden.shape[-1]))
                    labels.append(tbatch["labels"].reshape(-1))
                y = torch.cat(labels)
                if o_index is not None:
                    y = y.masked_fill(y == o_index, IGNORE)
                total = total + w_lcl * label_contrast(torch.cat(reps), y, temp, IGNORE)
            else:
                reps, y = [out.pooled], [batch["labels"]]
                if tout is not None:  # translations share their source's label: cross-lingual positives
                    reps.append(tout.pooled)
                    y.append(batch["labels"][rows])
                total = total + w_lcl * label_contrast(torch.cat(reps), torch.cat(y), temp, IGNORE)
        return total

    extra_loss.generator = gen  # train() keeps its state in the resume checkpoint, so a resumed run samples alike
    return extra_loss, info


# ---------------------------------------------------------------- translation sources


def shot_key(ex: Example) -> str:
    """The text a parallel TSV's source column must equal for ``ex``."""
    return " ".join(ex.words) if isinstance(ex, TokenExample) else PAIR_SEP.join(ex.texts)


def collect_translations(cfg, spec, shots: Sequence[Example], load_examples_fn) -> Translations:
    """Translations of every shot from the line-aligned splits and the parallel TSV of ``cfg.objective``."""
    obj = cfg.objective
    out = Translations()
    split = cfg.train.split
    by_lang: dict[str, list[int]] = {}
    for i, ex in enumerate(shots):
        by_lang.setdefault(ex.lang, []).append(i)
    for src_lang, idx in by_lang.items():
        size = None
        for tgt in obj.translation_languages:
            if tgt == src_lang:
                continue
            if size is None:
                size = len(load_examples_fn(split, src_lang, labelled=False))
            loaded = load_examples_fn(split, tgt, labelled=False)
            trs = aligned_translations([shots[i] for i in idx], lambda: loaded, source_size=size,
                                       context=f"{spec.name} {split} {src_lang} -> {tgt}")
            for i, tr in zip(idx, trs):
                out.add(_with_label(tr, shots[i]), i, tgt)
    if obj.parallel_file:
        pairs = read_parallel_tsv(obj.parallel_file)
        index = {}
        for p in pairs:
            index.setdefault(p.source.strip(), p)
        for i, ex in enumerate(shots):
            p = index.get(shot_key(ex).strip())
            if p is None:
                continue
            for k, text in enumerate(p.translations, start=1):
                out.add(_from_text(ex, text, where(obj.parallel_file, p.line), k), i, f"tsv{k}")
    return out


def _with_label(tr: Example, shot: Example) -> Example:
    """A sentence translation carries its source's label (tagging labels come from projection instead)."""
    if isinstance(tr, SentenceExample):
        return dataclasses.replace(tr, label=shot.label)
    return tr


def _from_text(shot: Example, text: str, location: str, column: int) -> Example:
    ident = f"{shot.id}#tsv{column}"
    if isinstance(shot, TokenExample):
        return TokenExample(ident, shot.lang, shot.index, tuple(text.split()), None)
    segments = tuple(s.strip() for s in text.split(PAIR_SEP)) if len(shot.texts) > 1 else (text,)
    if len(segments) != len(shot.texts):
        raise XLTuneError(f"{location}: column {column + 1} has {len(segments)} segment(s) but the task has "
                          f"{len(shot.texts)}; separate the segments of a pair with {PAIR_SEP.strip()!r}")
    return SentenceExample(ident, shot.lang, shot.index, segments, shot.label)


# ---------------------------------------------------------------- tag projection


@torch.no_grad()
def project_translations(spec, shots: Sequence[Example], trans: Translations, model, tokenizer
                         ) -> tuple[Translations, dict]:
    """Label each translated sentence by projecting its shot's tags through an argmax word alignment.

    Words are embedded with the run's own backbone (no prompt, no head; SimAlign-style mean of sub-words at layer
    ``ALIGN_LAYER``, clamped). Span tag sets use :func:`xltune.alignment.project_tags` (IOB2-repaired, gaps inside
    an entity filled); plain tag sets (POS) copy the tag of the aligned word and leave unaligned words unscored.
    Translations with no word are dropped.
    """
    backbone = model.backbone
    was_training = backbone.training
    backbone.eval()  # no dropout: the alignment is a fixed function of the backbone
    spans = spec.metric == "span_f1"
    out = Translations()
    entity_words = aligned_words = 0
    try:
        for ex, owner, source in zip(trans.examples, trans.owner, trans.source):
            shot = shots[owner]
            if not ex.words or shot.tags is None:
                continue
            src_vec = embed_words(shot.words, backbone, tokenizer, ALIGN_LAYER)
            tgt_vec = embed_words(ex.words, backbone, tokenizer, ALIGN_LAYER)
            alignment = argmax_align(src_vec, tgt_vec)
            aligned_words += len(alignment)
            src_tags = [spec.labels[t] for t in shot.tags]
            if spans:
                tags = project_tags(shot.words, src_tags, ex.words, alignment, fill_gaps=True,
                                    location=f"projection {shot.id} -> {ex.id}")
                ids = tuple(spec.labels.index(t) for t in tags)
                entity_words += sum(t != "O" for t in tags)
            else:
                ids_list = [IGNORE] * len(ex.words)
                for i, j in alignment:
                    ids_list[j] = shot.tags[i]
                ids = tuple(ids_list)
                entity_words += sum(t != IGNORE for t in ids)
            out.add(dataclasses.replace(ex, tags=ids), owner, source)
    finally:
        backbone.train(was_training)
    info = {"sentences": len(out.examples), "aligned_links": aligned_words,
            ("entity_words" if spans else "labelled_words"): entity_words, "align_layer": ALIGN_LAYER}
    return out, info
