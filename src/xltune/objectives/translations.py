"""Translations of the shots, shared by the objectives that read them (translation contrast, label contrast,
projected cross-entropy): collected once per run, encoded once, and sampled one per shot per step.

Translations come from line-aligned splits of other languages (``train.translations.languages``; XNLI dev/test are
aligned by line) and/or a parallel TSV keyed by the shot's text (``train.translations.parallel_file``). A shot with
several translations uses **one per step**, drawn by a generator seeded from the run's seed: every translation is
seen over the epochs while each step costs one extra forward pass of the micro-batch, not one per language.
Tagging: the translations are labelled by projecting the shot's tags through a SimAlign-style argmax word
alignment computed with the run's own backbone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from ..alignment import argmax_align, embed_words, project_tags
from ..data.encode import IGNORE, Encoded, collate, model_inputs
from ..data.parallel import aligned_translations, read_parallel_tsv
from ..data.records import Example, SentenceExample, TokenExample
from ..errors import XLTuneError, where

PAIR_SEP = " ||| "  # joins the segments of a sentence pair in a parallel TSV (fast_align's separator)
ALIGN_LAYER = 8  # SimAlign's best layer for 12-layer encoders; embed_words clamps it for smaller models


@dataclass
class TranslationSet:
    """Translated copies of the shots."""

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


class Translations:
    """The run's translations, encoded, with their sampling stream (part of the resume checkpoint)."""

    def __init__(self, trans: TranslationSet, encoded: Encoded, options: list[list[int]], feature_shot: list[int],
                 token_task: bool, pad_id: int, padding_side: str, seed: int, info: dict):
        self.set = trans
        self.encoded = encoded
        self.options = options  # shot position -> features of its translations (first window of each)
        self.feature_shot = feature_shot  # training feature position -> shot position (or -1)
        self.token_task = token_task
        self.pad_id = pad_id
        self.padding_side = padding_side
        self.generator = torch.Generator().manual_seed(seed * 1_000_003 + 17)  # own stream: data order unchanged
        self.info = info
        self._drawn: tuple[int, dict[int, int]] | None = None  # (step, its draws)

    @classmethod
    def prepare(cls, run, shots: Sequence[Example]) -> Translations:
        """Collect (and, for tagging, project) the translations of ``shots`` and encode them with the run's encoder.
        ``run``: the run context (cfg, spec, model, tokenizer, encode_train, load_split, pad_id, padding_side, log)."""
        cfg, spec = run.cfg, run.spec
        token_task = spec.kind == "token"
        trans = collect_translations(cfg, spec, shots, run.load_split)
        info: dict = {}
        if token_task:
            trans, info["projection"] = project_translations(spec, shots, trans, run.model, run.tokenizer)
        info["translation_sources"] = sorted(set(trans.source))
        info["pairs"] = trans.counts()
        info["shots_with_translation"] = len(set(trans.owner))
        info["sampling"] = "one translation per example per step (seeded)"
        run.log(f"   translations: {info['pairs']} for {info['shots_with_translation']} of {len(shots)} shots")
        encoded = run.encode_train(trans.examples) if trans.examples else Encoded([], 0)
        # One feature per translation: the first window (a translated sentence longer than max_length is cut there).
        first_feature: dict[int, int] = {}
        for k, f in enumerate(encoded.features):
            first_feature.setdefault(f.example, k)
        options: list[list[int]] = [[] for _ in shots]
        for t, owner in enumerate(trans.owner):
            if t in first_feature:
                options[owner].append(first_feature[t])
        shot_features = run.encode_train(list(shots)).features
        feature_shot = [f.example for f in shot_features]
        return cls(trans, encoded, options, feature_shot, token_task, run.pad_id, run.padding_side, run.seed, info)

    def _options(self, pos: int) -> list[int]:
        return self.options[self.feature_shot[pos]] if pos < len(self.feature_shot) else []

    def draw(self, batch_positions: list[int], step: int | None = None) -> dict[int, int]:
        """One translation per position of the step that has one, drawn in the step's order from the run's stream
        once per step (``step``: the optimizer step's number): every process draws the whole step alike (and so
        as one process would), then uses its own rows."""
        key = step if step is not None else id(batch_positions)
        if self._drawn is None or self._drawn[0] != key:
            picks = {}
            for pos in batch_positions:
                opts = self._options(pos)
                if opts:
                    picks[pos] = opts[int(torch.randint(len(opts), (1,), generator=self.generator))
                                      if len(opts) > 1 else 0]
            self._drawn = (key, picks)
        return self._drawn[1]

    def step(self, model, part: list[int], device, batch_positions: list[int] | None = None, step: int | None = None):
        """The drawn translation of each row of ``part`` that has one, forwarded once. (rows, out, batch) | None"""
        picks = self.draw(batch_positions if batch_positions is not None else part, step)
        rows, tfeats = [], []
        for r, pos in enumerate(part):
            if pos in picks:
                rows.append(r)
                tfeats.append(picks[pos])
        if not tfeats:
            return None
        tbatch = collate([self.encoded.features[k] for k in tfeats], self.pad_id, self.padding_side, self.token_task)
        tbatch = {k: v.to(device) for k, v in tbatch.items()}
        tout = model(**model_inputs(tbatch))
        return rows, tout, tbatch

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}  # saved between epochs: no step is half-drawn

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self._drawn = None


# ---------------------------------------------------------------- translation sources


def shot_key(ex: Example) -> str:
    """The text a parallel TSV's source column must equal for ``ex``."""
    return " ".join(ex.words) if isinstance(ex, TokenExample) else PAIR_SEP.join(ex.texts)


def collect_translations(cfg, spec, shots: Sequence[Example], load_split) -> TranslationSet:
    """Translations of every shot from the line-aligned splits and the parallel TSV of ``cfg.train.translations``.
    ``load_split(split, lang, labelled=False)`` reads a split of the task."""
    tr = cfg.train.translations
    out = TranslationSet()
    split = cfg.train.split
    if tr.languages and split not in spec.parallel_splits:
        declared = f"declares {', '.join(spec.parallel_splits)} parallel" if spec.parallel_splits else \
            "declares no parallel split"
        raise XLTuneError(
            f"train.translations.languages reads line i of another language's {split!r} file as the translation of "
            f"line i, but task {spec.name} {declared}: its {split} files are not translations of each other (PAN-X "
            f"train lines, e.g., are unrelated sentences). Give train.translations.parallel_file (a parallel TSV, "
            f"e.g. from `xltune translate --tsv`), or set task.parallel_splits if your files are line-aligned")
    by_lang: dict[str, list[int]] = {}
    for i, ex in enumerate(shots):
        by_lang.setdefault(ex.lang, []).append(i)
    for src_lang, idx in by_lang.items():
        size = None
        for tgt in tr.languages:
            if tgt == src_lang:
                continue
            if size is None:
                size = len(load_split(split, src_lang, labelled=False))
            loaded = load_split(split, tgt, labelled=False)
            trs = aligned_translations([shots[i] for i in idx], lambda: loaded, source_size=size,
                                       context=f"{spec.name} {split} {src_lang} -> {tgt}")
            for i, t in zip(idx, trs):
                out.add(_with_label(t, shots[i]), i, tgt)
    if tr.parallel_file:
        pairs = read_parallel_tsv(tr.parallel_file)
        index = {}
        for p in pairs:
            index.setdefault(p.source.strip(), p)
        for i, ex in enumerate(shots):
            p = index.get(shot_key(ex).strip())
            if p is None:
                continue
            for k, text in enumerate(p.translations, start=1):
                out.add(_from_text(ex, text, where(tr.parallel_file, p.line), k), i, f"tsv{k}")
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
def project_translations(spec, shots: Sequence[Example], trans: TranslationSet, model, tokenizer
                         ) -> tuple[TranslationSet, dict]:
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
    out = TranslationSet()
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
