"""Tokenization statistics on a tiny tokenizer trained in the test, and on real NTREX-128 text."""

from __future__ import annotations

import argparse
import gzip
import math

import pytest

from xltune.analysis import tokstats as ts
from xltune.commands import tokstats as cmd

TRAIN = [
    "the cat sat on the mat",
    "the dog sat on the log",
    "a cat and a dog",
    "der Hund und die Katze",
    "猫が座った",
]


def _tiny_tokenizer(tmp_path, vocab_size: int = 60):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()  # SentencePiece-style "▁word", as XGLM/XLM-R use
    tok.train_from_iterator(TRAIN, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<unk>", "<pad>"]))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>")
    out = tmp_path / "tok"
    fast.save_pretrained(out)
    return ts.load_tokenizer(str(out))


def test_stats_on_tiny_tokenizer_match_direct_counts(tmp_path):
    tok = _tiny_tokenizer(tmp_path)
    sents = ["the cat sat on the mat", "the zebra sat"]  # 'zebra' is made of unseen letters -> <unk>
    st = ts.compute_tokstats(tok, "en", sents, progress=False)
    ids = [tok(s, add_special_tokens=False)["input_ids"] for s in sents]
    n_tokens = sum(map(len, ids))
    per_word = [len(tok(w, add_special_tokens=False)["input_ids"]) for s in sents for w in s.split()]
    assert st.n_sentences == 2 and st.n_words == 9 and st.n_tokens == n_tokens
    assert st.segmentation == "word" and st.fertility == pytest.approx(n_tokens / 9)
    assert st.split_share == pytest.approx(sum(p >= 2 for p in per_word) / 9)
    n_unk = sum(i == tok.unk_token_id for x in ids for i in x)
    assert n_unk > 0 and st.unk_rate == pytest.approx(n_unk / n_tokens)
    assert st.chars_per_token == pytest.approx(sum(len(s.replace(" ", "")) for s in sents) / n_tokens)


def test_whitespace_free_script_is_measured_per_character(tmp_path):
    tok = _tiny_tokenizer(tmp_path)
    st = ts.compute_tokstats(tok, "xx", ["猫が座った", "猫が"], progress=False)  # unknown code: detected by script
    assert st.segmentation == "char" and st.script in {"Han", "Hiragana"} and math.isnan(st.split_share)
    assert st.fertility == pytest.approx(st.n_tokens / 7)


def test_cli_writes_csv_with_mapped_languages(tmp_path, capsys):
    tok_dir = tmp_path / "tok"
    _tiny_tokenizer(tmp_path)
    files = []
    for code, text in (("eng-US", "the cat sat\nthe dog\n"), ("deu", "der Hund\n"), ("jpn", "猫が座った\n")):
        f = tmp_path / f"newstest2019-ref.{code}.txt.gz"
        f.write_bytes(gzip.compress(text.encode()))
        files.append(str(f))
    parser = argparse.ArgumentParser()
    cmd.add_parser(parser.add_subparsers())
    out = tmp_path / "ts.csv"
    args = parser.parse_args(["tokstats", "--tokenizer", str(tok_dir), "--text", *files, "--lang-from-filename",
                              "--out", str(out), "--no-progress"])
    assert args.func(args) == 0
    rows = ts.read_tokstats_csv(out)
    assert sorted(rows) == ["de", "en", "ja"] and rows["en"].n_sentences == 2 and rows["ja"].segmentation == "char"
    assert "per character" in capsys.readouterr().out


def test_two_files_for_one_language_is_an_error(tmp_path):
    from xltune.errors import XLTuneError

    for name in ("newstest2019-ref.eng-US.txt", "newstest2019-src.eng.txt"):
        (tmp_path / name).write_text("hello\n")
    with pytest.raises(XLTuneError, match="both map to language 'en'"):
        ts.texts_by_language(sorted(tmp_path.glob("*.txt")))


@pytest.mark.shared
def test_ntrex128_many_languages(shared_data, tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    codes = ["eng-US", "deu", "fra", "rus", "arb", "hin", "swa", "tur", "vie", "zho-CN", "jpn", "tha", "fin"]
    files = [shared_data / "ntrex128" / f"newstest2019-ref.{c}.txt.gz" for c in codes]
    texts = {lang: lines[:150] for lang, (_, lines) in ts.texts_by_language(files).items()}
    assert sorted(texts) == sorted(["en", "de", "fr", "ru", "ar", "hi", "sw", "tr", "vi", "zh", "ja", "th", "fi"])
    # a small Unigram tokenizer trained on the first 100 lines of each language (trained in seconds)
    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    train = [line for lines in texts.values() for line in lines[:100]]
    tok.train_from_iterator(train, trainers.UnigramTrainer(vocab_size=4000, unk_token="<unk>", special_tokens=["<unk>"]))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>")
    rows = {r.lang: r for r in ts.tokstats_table(fast, texts, progress=False)}
    assert {lg for lg, r in rows.items() if r.segmentation == "char"} == {"zh", "ja", "th"}
    for r in rows.values():
        assert r.n_sentences == 150 and r.n_tokens > 0 and r.fertility > 0 and 0 <= r.unk_rate < 0.5
        if r.segmentation == "word":
            assert r.fertility >= 1.0 and 0 <= r.split_share <= 1
    # Han text packs about one character per token; agglutinative Finnish needs more pieces per word than English
    assert rows["zh"].chars_per_token < rows["en"].chars_per_token
    assert rows["fi"].fertility > rows["en"].fertility
