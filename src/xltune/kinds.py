"""Task kinds as objects: what differs between sentence classification and tagging, in one place each.

A :class:`TaskKind` encodes examples for the model, scores predictions into a language's metrics (the headline
metric first: the task's primary metric, registered in :data:`xltune.metrics.METRICS` with ``higher_is_better``),
and names that headline. Registered by name in :data:`KINDS`; a task spec's ``kind`` picks one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from .data.encode import Encoded, encode_sentences, encode_tokens
from .data.records import SentenceExample, TokenExample
from .metrics import METRICS, accuracy, span_prf
from .registry import Registry
from .store import MetricRow

NO_SUBWORD = -1  # a word the tokenizer produced no sub-word for (e.g. a lone zero-width character)


@dataclass
class LanguageResult:
    lang: str
    split: str
    metrics: dict[str, float]  # the headline metric first
    n: int
    predictions: list[tuple[int, str, str]]  # (example index, gold, pred)

    @property
    def headline(self) -> float:
        return next(iter(self.metrics.values()))

    def rows(self) -> list[MetricRow]:
        return [MetricRow(self.lang, self.split, k, v, self.n) for k, v in self.metrics.items()]


class TaskKind:
    name = ""
    token = False

    def encode(self, examples, tokenizer, max_length: int, label_alignment: str = "first") -> Encoded:
        raise NotImplementedError

    def headline(self, spec) -> str:
        """The task's primary metric (a registered metric)."""
        raise NotImplementedError

    def score(self, spec, examples: Sequence, preds: list, lang: str, split: str, ner_mode: str = "conlleval"
              ) -> LanguageResult:
        raise NotImplementedError


class SequenceKind(TaskKind):
    """One label per example (NLI, paraphrase, topic): accuracy."""

    name = "sequence"

    def encode(self, examples, tokenizer, max_length: int, label_alignment: str = "first") -> Encoded:
        return encode_sentences(examples, tokenizer, max_length)

    def headline(self, spec) -> str:
        return "accuracy"

    def score(self, spec, examples: Sequence[SentenceExample], preds: list, lang: str, split: str,
              ner_mode: str = "conlleval") -> LanguageResult:
        labels = spec.labels
        gold = [e.label for e in examples]
        rows = [(e.index, labels[g], labels[p]) for e, g, p in zip(examples, gold, preds)]
        return LanguageResult(lang, split, {"accuracy": accuracy(gold, preds)}, len(examples), rows)


class TokenKind(TaskKind):
    """One tag per word (NER: span F1; POS: tag accuracy); predictions are word-level (first sub-word)."""

    name = "token"
    token = True

    def encode(self, examples, tokenizer, max_length: int, label_alignment: str = "first") -> Encoded:
        return encode_tokens(examples, tokenizer, max_length, label_alignment)

    def headline(self, spec) -> str:
        return "f1" if spec.metric == "span_f1" else "accuracy"

    def score(self, spec, examples: Sequence[TokenExample], preds: list, lang: str, split: str,
              ner_mode: str = "conlleval") -> LanguageResult:
        labels = spec.labels
        gold_tags = [[labels[t] for t in e.tags] for e in examples]
        pred_tags = [["O" if t == NO_SUBWORD else labels[t] for t in p] for p in preds]
        if spec.metric == "span_f1":
            prf = span_prf(gold_tags, pred_tags, ner_mode)
            metrics = {"f1": prf["f1"], "precision": prf["precision"], "recall": prf["recall"]}
        else:
            flat_g = [t for s in gold_tags for t in s]
            flat_p = [t for s in pred_tags for t in s]
            metrics = {"accuracy": accuracy(flat_g, flat_p)}
        rows = [(e.index, json.dumps(g, ensure_ascii=False), json.dumps(p, ensure_ascii=False))
                for e, g, p in zip(examples, gold_tags, pred_tags)]
        return LanguageResult(lang, split, metrics, len(examples), rows)


KINDS: Registry[TaskKind] = Registry("task kind")
KINDS.add("sequence", SequenceKind())
KINDS.add("token", TokenKind())


def task_kind(spec) -> TaskKind:
    kind = KINDS.get(spec.kind, f"task {spec.name}")
    METRICS.get(kind.headline(spec))  # every headline is a registered metric
    return kind


def score(spec, examples: Sequence, preds: list, lang: str, split: str, ner_mode: str = "conlleval"
          ) -> LanguageResult:
    """The metrics of one language (headline first); span F1 under ``ner_mode`` (xltune.metrics)."""
    return task_kind(spec).score(spec, examples, preds, lang, split, ner_mode)
