"""Metrics: accuracy, seqeval strict span F1, and its agreement with our conlleval.pl reimplementation."""

from __future__ import annotations

import numpy as np
import pytest

from xltune.config import TaskConfig
from xltune.data.readers import load_examples
from xltune.data.tags import to_iob2
from xltune.data.tasks import resolve_task
from xltune.metrics import accuracy, conlleval_counts, span_prf, token_accuracy


def test_accuracy():
    assert accuracy([0, 1, 2, 1], [0, 1, 1, 1]) == 0.75
    assert token_accuracy([["A", "B"], ["C"]], [["A", "X"], ["C"]]) == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        accuracy([1, 2], [1])


HAND = [
    # gold, pred, (tp, fp, fn)
    (["B-PER", "I-PER", "O", "B-LOC"], ["B-PER", "I-PER", "O", "B-ORG"], (1, 1, 1)),  # wrong type
    (["B-PER", "I-PER", "O"], ["B-PER", "O", "O"], (0, 1, 1)),  # boundary too short
    (["B-PER", "B-PER", "O"], ["B-PER", "I-PER", "O"], (0, 1, 2)),  # two adjacent mentions merged
    (["O", "B-ORG", "I-ORG", "I-ORG"], ["O", "B-ORG", "I-ORG", "I-ORG"], (1, 0, 0)),  # exact, at sentence end
    (["O", "O"], ["B-LOC", "O"], (0, 1, 0)),
]


@pytest.mark.parametrize("gold,pred,counts", HAND)
def test_hand_made_counts_agree(gold, pred, counts):
    s = span_prf([gold], [pred])
    c = conlleval_counts([gold], [pred])
    assert (s["tp"], s["fp"], s["fn"]) == counts == (c["tp"], c["fp"], c["fn"])
    assert s["f1"] == pytest.approx(c["f1"], abs=1e-12)


def test_corpus_level_micro_scores():
    gold = [g for g, _, _ in HAND]
    pred = [p for _, p, _ in HAND]
    s = span_prf(gold, pred)
    tp, fp, fn = (sum(c[i] for *_, c in HAND) for i in range(3))
    assert (s["tp"], s["fp"], s["fn"]) == (tp, fp, fn) == (2, 4, 4)
    assert s["precision"] == pytest.approx(2 / 6) and s["recall"] == pytest.approx(2 / 6)
    assert s["f1"] == pytest.approx(conlleval_counts(gold, pred)["f1"])


def test_ill_formed_prediction_is_where_the_modes_differ():
    # A lone I- opens a chunk for conlleval (the default mode) but is no entity for strict IOB2.
    gold, pred = [["B-PER", "I-PER", "O"]], [["O", "I-PER", "O"]]
    assert conlleval_counts(gold, pred)["fp"] == span_prf(gold, pred)["fp"] == 1
    assert span_prf(gold, pred, mode="strict")["fp"] == 0
    # Repairing the prediction to IOB2 (what our readers do to gold files) makes strict agree again.
    fixed = [to_iob2(pred[0])[0]]
    assert span_prf(gold, fixed, mode="strict")["fp"] == conlleval_counts(gold, fixed)["fp"] == 1


def test_both_modes_equal_seqevals_own_scores_on_ill_formed_tags():
    from xltune.metrics import seqeval_prf

    rng = np.random.default_rng(1)
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "I-ORG"]
    for _ in range(200):
        gold = [[tags[i] for i in rng.integers(len(tags), size=rng.integers(1, 9))] for _ in range(3)]
        pred = [[tags[i] for i in rng.integers(len(tags), size=len(g))] for g in gold]
        for mode in ("conlleval", "strict"):
            ours, theirs = span_prf(gold, pred, mode), seqeval_prf(gold, pred, mode)
            assert all(ours[k] == pytest.approx(theirs[k], abs=1e-12) for k in theirs)
        c = conlleval_counts(gold, pred)
        assert span_prf(gold, pred)["tp"] == c["tp"] and span_prf(gold, pred)["fp"] == c["fp"]


def _corrupt(tags: list[str], rng: np.random.Generator, types: list[str]) -> list[str]:
    """Well-formed IOB2 noise: retype, drop or truncate gold mentions, and add spurious ones."""
    out = list(tags)
    for i, t in enumerate(out):
        r = rng.random()
        if t.startswith("B-") and r < 0.1:
            out[i] = "B-" + types[rng.integers(len(types))]  # may leave I-s of the old type: repaired below
        elif t.startswith("B-") and r < 0.2:
            out[i] = "O"
        elif t.startswith("I-") and r < 0.15:
            out[i] = "O"
        elif t == "O" and r < 0.03:
            out[i] = "B-" + types[rng.integers(len(types))]
    return to_iob2(out)[0]


def test_seqeval_equals_conlleval_on_real_panx(shared_data):
    spec = resolve_task(TaskConfig(name="panx", data_dir=str(shared_data / "panx")))
    for lang in ("en", "sw"):
        gold = [[spec.labels[t] for t in e.tags] for e in load_examples(spec, shared_data / "panx", "dev", lang)[:3000]]
        rng = np.random.default_rng(0)
        pred = [_corrupt(g, rng, ["PER", "ORG", "LOC"]) for g in gold]
        s, c = span_prf(gold, pred), conlleval_counts(gold, pred)
        assert (s["tp"], s["fp"], s["fn"]) == (c["tp"], c["fp"], c["fn"])
        assert 0.3 < s["f1"] < 0.95  # the corruption really changes the score
        for k in ("precision", "recall", "f1"):
            assert round(s[k], 4) == round(c[k], 4)
        assert span_prf(gold, gold)["f1"] == conlleval_counts(gold, gold)["f1"] == 1.0
