"""Translation pairs: line-aligned splits, parallel TSV, plain text, seq2seq translation with a tiny random model."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pytest

from xltune.data.parallel import aligned_translations, read_parallel_tsv, read_plain_text, translate
from xltune.data.records import SentenceExample, TokenExample
from xltune.errors import XLTuneError

XNLI_LABELS = ("entailment", "neutral", "contradiction")


def _read_pairs_tsv(path: Path, lang: str, split: str) -> list[SentenceExample]:
    """A minimal premise<TAB>hypothesis<TAB>label reader, so this test depends only on the module under test."""
    out = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        premise, hypothesis, label = line.split("\t")
        out.append(SentenceExample(f"{lang}/{split}/{i}", lang, i, (premise, hypothesis), XNLI_LABELS.index(label)))
    return out


def _examples(lang: str, labels: list[int]) -> list[SentenceExample]:
    return [SentenceExample(f"{lang}/dev/{i}", lang, i, (f"{lang} text {i}",), y) for i, y in enumerate(labels)]


# ---------------------------------------------------------------- line-aligned splits


def test_aligned_translations_by_index_in_example_order():
    en, de = _examples("en", [0, 1, 2, 0]), _examples("de", [0, 1, 2, 0])
    shots = [en[3], en[1]]
    got = aligned_translations(shots, lambda: de, source_size=len(en))
    assert [g.id for g in got] == ["de/dev/3", "de/dev/1"]


def test_aligned_translations_errors():
    en, de = _examples("en", [0, 1, 2]), _examples("de", [0, 1])
    with pytest.raises(XLTuneError, match="different line counts.*3.*2"):
        aligned_translations(en[:1], lambda: de, source_size=3, context="xnli dev en-de")
    with pytest.raises(XLTuneError, match="en/dev/2 has index 2"):
        aligned_translations([en[2]], lambda: de)
    with pytest.raises(XLTuneError, match="label 2 but its source en/dev/1 has 1"):
        aligned_translations([en[1]], lambda: _examples("de", [0, 2, 2]))
    assert aligned_translations([en[1]], lambda: _examples("de", [0, 2, 2]), check_labels=False)[0].label == 2
    with pytest.raises(XLTuneError, match="file order"):
        aligned_translations([en[0]], lambda: list(reversed(_examples("de", [0, 1, 2]))))


def test_aligned_translations_token_examples_skip_label_check():
    src = [TokenExample("en/dev/0", "en", 0, ("a", "b"), (1, 0))]
    tgt = [TokenExample("de/dev/0", "de", 0, ("x", "y", "z"), (0, 0, 1))]
    assert aligned_translations(src, lambda: tgt) == tgt


@pytest.mark.parametrize("split", ["dev", "test"])
def test_xnli_files_are_line_aligned_with_shared_labels(shared_data, split):
    root = shared_data / "xnli"
    en = _read_pairs_tsv(root / f"{split}-en.tsv", "en", split)
    for lang in ("de", "sw", "zh"):
        other = _read_pairs_tsv(root / f"{split}-{lang}.tsv", lang, split)
        assert len(other) == len(en)
        assert all(a.label == b.label for a, b in zip(en, other)), f"{split}-{lang} labels differ from English"
        # The whole split through the function: raises on any count or label mismatch.
        pairs = aligned_translations(en, lambda: other, source_size=len(en), context=f"xnli {split} en-{lang}")
        assert [p.index for p in pairs] == list(range(len(en)))
        assert pairs[0].texts != en[0].texts  # really another language


def test_xnli_all_dev_languages_share_labels(shared_data):
    root = shared_data / "xnli"
    en = _read_pairs_tsv(root / "dev-en.tsv", "en", "dev")
    langs = sorted(p.name[4:-4] for p in root.glob("dev-*.tsv"))
    assert len(langs) == 15
    for lang in langs:
        other = _read_pairs_tsv(root / f"dev-{lang}.tsv", lang, "dev")
        aligned_translations(en, lambda: other, source_size=len(en), context=f"xnli dev en-{lang}")


def test_truncated_translation_file_is_a_clear_error(shared_data, tmp_path):
    en = _read_pairs_tsv(shared_data / "xnli" / "dev-en.tsv", "en", "dev")
    short = tmp_path / "dev-de.tsv"
    short.write_text("".join((shared_data / "xnli" / "dev-de.tsv").read_text(encoding="utf-8").splitlines(True)[:-1]))
    with pytest.raises(XLTuneError, match="different line counts.*2490.*2489"):
        aligned_translations(en[:5], lambda: _read_pairs_tsv(short, "de", "dev"), source_size=len(en))


# ---------------------------------------------------------------- parallel TSV and plain text


def test_read_parallel_tsv(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("Hello\tHallo\tBonjour\n\nGood night\tGute Nacht\tBonne nuit\n", encoding="utf-8")
    pairs = read_parallel_tsv(path)
    assert [(p.line, p.source, p.translations) for p in pairs] == [
        (1, "Hello", ("Hallo", "Bonjour")),
        (3, "Good night", ("Gute Nacht", "Bonne nuit")),
    ]
    assert len(read_parallel_tsv(path, max_lines=1)) == 1


@pytest.mark.parametrize(
    "content, message",
    [
        ("a\tb\nno tab here\n", r"pairs.tsv:2: expected source<TAB>translation"),
        ("a\tb\nc\td\te\n", r"pairs.tsv:2: 3 columns, but line 1 has 2"),
        ("a\tb\n\t d\n", r"pairs.tsv:2: column 1 is empty"),
    ],
)
def test_read_parallel_tsv_errors_name_file_and_line(tmp_path, content, message):
    path = tmp_path / "pairs.tsv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(XLTuneError, match=message):
        read_parallel_tsv(path)


def test_read_parallel_tsv_missing_and_bad_encoding(tmp_path):
    with pytest.raises(XLTuneError, match="file not found"):
        read_parallel_tsv(tmp_path / "nope.tsv")
    bad = tmp_path / "bad.tsv"
    bad.write_bytes(b"a\tb\n\xff\xfe\tc\n")
    with pytest.raises(XLTuneError, match=r"bad.tsv:2: not UTF-8"):
        read_parallel_tsv(bad)


def test_read_plain_text_gz_and_blank_lines(tmp_path):
    path = tmp_path / "text.txt.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write("eins\r\n\nzwei\ndrei\n")
    assert read_plain_text(path) == ["eins", "", "zwei", "drei"]
    assert read_plain_text(path, skip_blank=True) == ["eins", "zwei", "drei"]
    assert read_plain_text(path, max_lines=2, skip_blank=True) == ["eins", "zwei"]
    plain = tmp_path / "text.txt"
    plain.write_text("one\ntwo\n", encoding="utf-8")
    assert read_plain_text(plain) == ["one", "two"]


def test_read_plain_text_ntrex(shared_data):
    path = shared_data / "ntrex128" / "newstest2019-ref.deu.txt.gz"
    head = read_plain_text(path, max_lines=3)
    assert len(head) == 3 and head[0].startswith("Mitglieder der Nationalversammlung")
    # Every NTREX file has 1,997 lines, line-aligned with the English source.
    assert len(read_plain_text(path)) == len(read_plain_text(shared_data / "ntrex128" / "newstest2019-src.eng.txt.gz")) == 1997


# ---------------------------------------------------------------- seq2seq translation


@pytest.fixture(scope="module")
def tiny_m2m(tmp_path_factory) -> Path:
    """A random 1-layer M2M-100 with a 40-piece sentencepiece vocabulary, saved like a hub model."""
    sentencepiece = pytest.importorskip("sentencepiece")
    import torch
    from transformers import M2M100Config, M2M100ForConditionalGeneration, M2M100Tokenizer

    d = tmp_path_factory.mktemp("m2m")
    corpus = ["the cat sat on the mat", "der Hund lief schnell", "a small test sentence", "ein kleiner Satz"] * 4
    buf = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus), model_writer=buf, vocab_size=40, hard_vocab_limit=False, minloglevel=2
    )
    (d / "sp.model").write_bytes(buf.getvalue())
    sp = sentencepiece.SentencePieceProcessor(model_file=str(d / "sp.model"))
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for i in range(sp.get_piece_size()):
        vocab.setdefault(sp.id_to_piece(i), len(vocab))
    (d / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    M2M100Tokenizer(str(d / "vocab.json"), str(d / "sp.model")).save_pretrained(d)
    config = M2M100Config(
        vocab_size=256,  # covers the pieces, the ~100 language tokens and the made-up words
        d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
        encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=64,
        pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2,
    )
    torch.manual_seed(0)
    M2M100ForConditionalGeneration(config).save_pretrained(d)
    return d


def test_translate_tiny_m2m_shapes_and_determinism(tiny_m2m):
    texts = ["the cat sat", "a small sentence", "der Hund", "x"]
    first = translate(texts, str(tiny_m2m), "en", "de", batch_size=3, max_new_tokens=6)
    assert isinstance(first, list) and len(first) == len(texts) and all(isinstance(t, str) for t in first)
    assert not any(t.startswith("__de__") for t in first)  # the forced language code is not part of the text
    assert translate(texts, str(tiny_m2m), "en", "de", batch_size=2, max_new_tokens=6) == first
    assert translate([], str(tiny_m2m), "en", "de") == []


def test_translate_errors(tiny_m2m, tmp_path):
    with pytest.raises(XLTuneError, match="target language 'xx-nope'"):
        translate(["a"], str(tiny_m2m), "en", "xx-nope")
    with pytest.raises(XLTuneError, match="cannot load translation model"):
        translate(["a"], str(tmp_path / "missing-model"), "en", "de")
    with pytest.raises(XLTuneError, match="batch_size"):
        translate(["a"], str(tiny_m2m), "en", "de", batch_size=0)
