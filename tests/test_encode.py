"""Sentence encoding: inputs over the limit are truncated and counted, never silently; the rest are untouched."""

from __future__ import annotations

from transformers import AutoTokenizer

from xltune.data.encode import encode_sentences
from xltune.data.records import SentenceExample


def test_truncation_is_counted_and_bounded(tiny_xlmr_dir):
    tok = AutoTokenizer.from_pretrained(tiny_xlmr_dir)
    exs = [SentenceExample(f"en/dev/{i}", "en", i, ("The quick brown fox " * (1 + 10 * i), "A fast animal"), i % 3)
           for i in range(4)]
    full = [tok(*e.texts)["input_ids"] for e in exs]
    enc = encode_sentences(exs, tok, max_length=32)
    assert enc.truncated == sum(len(f) > 32 for f in full) >= 2
    for f, ids in zip(enc.features, full):
        assert len(f.input_ids) <= 32
        if len(ids) <= 32:
            assert f.input_ids == ids  # short inputs are exactly the tokenizer's own encoding
    assert [f.label for f in enc.features] == [0, 1, 2, 0]
