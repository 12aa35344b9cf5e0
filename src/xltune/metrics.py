"""Metrics: accuracy (sentence tasks, POS) and span precision/recall/F1 (NER).

Span scores come from seqeval in strict IOB2 mode (an entity is a B- followed by its I-s; a lone I- is no entity).
``conlleval_counts`` is an independent reimplementation of the CoNLL shared tasks' ``conlleval.pl`` chunk counting,
kept to check seqeval against the reference script's numbers. The two agree on well-formed IOB2 sequences; on
ill-formed predictions (an I- with no opening B-) conlleval counts a chunk and strict seqeval does not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from seqeval.metrics import f1_score, precision_score, recall_score
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


def span_prf(gold_seqs: Sequence[Sequence[str]], pred_seqs: Sequence[Sequence[str]]) -> dict[str, float | int]:
    """Micro span precision/recall/F1 (seqeval, strict IOB2) and the tp/fp/fn counts behind them."""
    gold, pred = _lists(gold_seqs, pred_seqs)
    kw = dict(average="micro", mode="strict", scheme=IOB2, zero_division=0)
    p, r, f = precision_score(gold, pred, **kw), recall_score(gold, pred, **kw), f1_score(gold, pred, **kw)
    true_ents = Entities(gold, IOB2).entities
    pred_ents = Entities(pred, IOB2).entities
    tp = sum(len(set(t) & set(q)) for t, q in zip(true_ents, pred_ents))
    n_true = sum(len(t) for t in true_ents)
    n_pred = sum(len(q) for q in pred_ents)
    return {"precision": float(p), "recall": float(r), "f1": float(f), "tp": tp, "fp": n_pred - tp, "fn": n_true - tp}


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
