"""Metrics: accuracy (sentence tasks, POS) and span precision/recall/F1 (NER), with a registry of metrics.

Span scores come from seqeval, in one of two modes (``eval.ner_mode``), used by *every* consumer -- the headline,
dev selection, tables, the bootstrap and the claims -- through :func:`span_counts`:

* ``conlleval`` (default): seqeval's default mode, which counts chunks as the CoNLL shared tasks' ``conlleval.pl``
  does (an I- after O or after another type opens a chunk). It is what XTREME (``run_tag.py``) and P-tuning v2
  report. Gold and predictions are read by the same rule; the readers' IOB2 repair of gold (a lone I- read as B-)
  changes nothing under it.
* ``strict``: seqeval's strict IOB2 mode (an entity is a B- followed by its I-s; a lone I- is no entity). Gold is
  scored as read (after the readers' repair, which each file's warning reports), predictions as produced.

``conlleval_counts`` is an independent reimplementation of ``conlleval.pl``'s chunk counting, kept to check the
default mode against the reference script's numbers (they agree, tested on real and random ill-formed tags).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from seqeval.metrics import f1_score, precision_score, recall_score
from seqeval.metrics.sequence_labeling import get_entities
from seqeval.scheme import IOB2, Entities

from .registry import Registry


@dataclass(frozen=True)
class Metric:
    """A metric the store may hold (as lm-evaluation-harness registers them): what it is and which way is better."""

    name: str
    higher_is_better: bool
    description: str


METRICS: Registry[Metric] = Registry("metric")
METRICS.add("accuracy", Metric("accuracy", True, "share of correct predictions (examples; tags for tagging)"))
METRICS.add("f1", Metric("f1", True, "micro span F1 (NER)"))
METRICS.add("precision", Metric("precision", True, "micro span precision (NER)"))
METRICS.add("recall", Metric("recall", True, "micro span recall (NER)"))


def accuracy(gold: Sequence, pred: Sequence) -> float:
    """Share of positions where ``pred`` equals ``gold``."""
    _same_length(gold, pred)
    if not gold:
        return 0.0
    return sum(g == p for g, p in zip(gold, pred)) / len(gold)


def token_accuracy(gold_seqs: Sequence[Sequence], pred_seqs: Sequence[Sequence]) -> float:
    """Accuracy over all tokens of all sentences (POS tagging)."""
    _same_length(gold_seqs, pred_seqs)
    for g, p in zip(gold_seqs, pred_seqs):
        _same_length(g, p)
    return accuracy([t for s in gold_seqs for t in s], [t for s in pred_seqs for t in s])


NER_MODES = ("conlleval", "strict")


def sentence_entities(tags: Sequence[str], mode: str = "conlleval") -> set[tuple]:
    """The entities of one sentence as (type, start, end) under ``mode`` (seqeval's own chunkers)."""
    if mode == "conlleval":
        return set(get_entities(list(tags)))
    if mode == "strict":
        return {(e.tag, e.start, e.end) for e in Entities([list(tags)], IOB2).entities[0]}
    raise ValueError(f"ner mode must be one of {NER_MODES}, got {mode!r}")


def span_counts(gold_seqs: Sequence[Sequence[str]], pred_seqs: Sequence[Sequence[str]], mode: str = "conlleval"
                ) -> list[tuple[int, int, int]]:
    """(tp, fp, fn) per sentence: the sufficient statistics every span score is computed from (the corpus micro
    F1 is the F1 of their sums; the bootstrap resamples them)."""
    gold, pred = _lists(gold_seqs, pred_seqs)
    out = []
    for g, p in zip(gold, pred):
        ge, pe = sentence_entities(g, mode), sentence_entities(p, mode)
        tp = len(ge & pe)
        out.append((tp, len(pe) - tp, len(ge) - tp))
    return out


def prf_from_counts(tp: int, fp: int, fn: int) -> dict[str, float | int]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    return {"precision": p, "recall": r, "f1": f, "tp": tp, "fp": fp, "fn": fn}


def span_prf(gold_seqs: Sequence[Sequence[str]], pred_seqs: Sequence[Sequence[str]], mode: str = "conlleval"
             ) -> dict[str, float | int]:
    """Micro span precision/recall/F1 and the tp/fp/fn counts behind them (``mode``: conlleval | strict)."""
    counts = span_counts(gold_seqs, pred_seqs, mode)
    return prf_from_counts(*(sum(c[i] for c in counts) for i in range(3)))


def seqeval_prf(gold_seqs: Sequence[Sequence[str]], pred_seqs: Sequence[Sequence[str]], mode: str = "conlleval"
                ) -> dict[str, float]:
    """seqeval's own corpus-level scores (for checking :func:`span_prf`)."""
    gold, pred = _lists(gold_seqs, pred_seqs)
    kw = dict(average="micro", zero_division=0) | ({"mode": "strict", "scheme": IOB2} if mode == "strict" else {})
    return {"precision": float(precision_score(gold, pred, **kw)), "recall": float(recall_score(gold, pred, **kw)),
            "f1": float(f1_score(gold, pred, **kw))}


# -- conlleval.pl ------------------------------------------------------------------------------------------------
def _split(tag: str) -> tuple[str, str]:
    # conlleval: /^([^-]*)-(.*)$/ -> (prefix, type); otherwise the whole tag with an empty type.
    prefix, sep, typ = tag.partition("-")
    return (prefix, typ) if sep else (tag, "")


def _end_of_chunk(prev_tag: str, tag: str, prev_type: str, typ: str) -> bool:
    return (
        (prev_tag, tag) in {("B", "B"), ("B", "O"), ("I", "B"), ("I", "O"), ("E", "E"), ("E", "I"), ("E", "O")}
        or (prev_tag not in ("O", ".") and prev_type != typ)
        or prev_tag in ("]", "[")
    )


def _start_of_chunk(prev_tag: str, tag: str, prev_type: str, typ: str) -> bool:
    return (
        (prev_tag, tag) in {("B", "B"), ("I", "B"), ("O", "B"), ("O", "I"), ("E", "E"), ("E", "I"), ("O", "E")}
        or (tag not in ("O", ".") and prev_type != typ)
        or tag in ("[", "]")
    )


def conlleval_counts(gold_seqs: Sequence[Sequence[str]], pred_seqs: Sequence[Sequence[str]]) -> dict[str, float | int]:
    """Chunk counts and micro P/R/F1 exactly as ``conlleval.pl`` computes them (fractions, not percent).

    Sentences are separated by a boundary that acts as an 'O' token, as in the script.
    """
    gold, pred = _lists(gold_seqs, pred_seqs)
    correct_chunk = found_correct = found_guessed = 0
    in_correct = False
    last_c, last_g, last_ct, last_gt = "O", "O", "", ""
    for g_seq, p_seq in zip(gold, pred):
        for g_tag, p_tag in list(zip(g_seq, p_seq)) + [("O", "O")]:  # trailing boundary
            c, ct = _split(g_tag)
            g, gt = _split(p_tag)
            if in_correct:
                c_end = _end_of_chunk(last_c, c, last_ct, ct)
                g_end = _end_of_chunk(last_g, g, last_gt, gt)
                if c_end and g_end and last_gt == last_ct:
                    in_correct = False
                    correct_chunk += 1
                elif c_end != g_end or gt != ct:
                    in_correct = False
            c_start = _start_of_chunk(last_c, c, last_ct, ct)
            g_start = _start_of_chunk(last_g, g, last_gt, gt)
            if c_start and g_start and gt == ct:
                in_correct = True
            found_correct += c_start
            found_guessed += g_start
            last_c, last_g, last_ct, last_gt = c, g, ct, gt
    if in_correct:
        correct_chunk += 1
    precision = correct_chunk / found_guessed if found_guessed else 0.0
    recall = correct_chunk / found_correct if found_correct else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": correct_chunk,
            "fp": found_guessed - correct_chunk, "fn": found_correct - correct_chunk}


def _lists(gold_seqs: Sequence[Sequence[str]], pred_seqs: Sequence[Sequence[str]]) -> tuple[list, list]:
    _same_length(gold_seqs, pred_seqs)
    for i, (g, p) in enumerate(zip(gold_seqs, pred_seqs)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: {len(g)} gold tags but {len(p)} predicted")
    return [list(s) for s in gold_seqs], [list(s) for s in pred_seqs]


def _same_length(a: Sequence, b: Sequence) -> None:
    if len(a) != len(b):
        raise ValueError(f"gold and predictions differ in length: {len(a)} vs {len(b)}")
