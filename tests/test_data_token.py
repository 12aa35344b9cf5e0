"""Token tasks: tag schemes, CoNLL / CoNLL-U / XTREME token readers and their errors, tagging few-shot sampling."""

from __future__ import annotations

import gzip
import warnings
from collections import Counter
from pathlib import Path

import pytest

from xltune.config import TaskConfig
from xltune.data.fewshot import sample_shots
from xltune.data.readers import load_examples
from xltune.data.tags import entity_types, mentions, to_iob2
from xltune.data.tasks import available_languages, resolve_task
from xltune.errors import XLTuneError

NER = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


# -- tags -----------------------------------------------------------------------------------------------------------
def test_to_iob2_from_each_scheme():
    assert to_iob2(["I-PER", "I-PER", "O", "I-LOC", "B-LOC"], "IOB1") == (["B-PER", "I-PER", "O", "B-LOC", "B-LOC"], 0)
    assert to_iob2(["S-PER", "B-LOC", "I-LOC", "E-LOC", "O"], "BIOES") == (["B-PER", "B-LOC", "I-LOC", "I-LOC", "O"], 0)
    # IOB2 with ill-formed I-s: after O, and after a different type.
    assert to_iob2(["O", "I-PER", "B-LOC", "I-PER"], "IOB2") == (["O", "B-PER", "B-LOC", "B-PER"], 2)
    assert entity_types(NER) == ["PER", "LOC"]
    assert mentions(["B-PER", "I-PER", "O", "B-LOC", "B-LOC"]) == [("PER", 0, 2), ("LOC", 3, 4), ("LOC", 4, 5)]


# -- readers on hand-made files -------------------------------------------------------------------------------------
def tagging_cfg(tmp_path: Path, fmt: str = "conll", pattern: str = "{lang}.{split}", **kw) -> TaskConfig:
    base = dict(name="custom_tagging", data_dir=str(tmp_path), format=fmt, file_pattern=pattern, labels=NER,
                languages=["xx"])
    base.update(kw)
    return TaskConfig(**base)


def write(path: Path, text: str, encoding: str = "utf-8") -> None:
    path.write_bytes(text.encode(encoding))


def test_conll_reader_docstart_columns_and_repairs(tmp_path):
    text = ("-DOCSTART- -X- O\n\n"
            "Anna NNP B-PER\nSmith NNP I-PER\nin IN O\nParis NNP B-LOC\n\n"
            "-DOCSTART- -X- O\n\n\n"
            "the DT O\nRiver NN I-LOC\n\n")  # ill-formed I- at sentence 2 (repaired, warned once)
    write(tmp_path / "xx.train", text)
    spec = resolve_task(tagging_cfg(tmp_path))
    with pytest.warns(UserWarning, match=r"xx\.train: 1 I- tag\(s\) without an opening B-") as record:
        ex = load_examples(spec, tmp_path, "train", "xx")
    assert len(record) == 1  # -DOCSTART- blocks are not reported as empty sentences
    assert [e.words for e in ex] == [("Anna", "Smith", "in", "Paris"), ("the", "River")]
    assert [[spec.labels[t] for t in e.tags] for e in ex] == [["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-LOC"]]
    assert ex[1].id == "xx/train/1" and ex[1].index == 1


def test_conll_iob1_and_separator_and_columns(tmp_path):
    write(tmp_path / "xx.dev", "I-PER|Anna\nI-PER|Smith\nO|in\nI-LOC|Paris\n")
    spec = resolve_task(tagging_cfg(tmp_path, tag_scheme="IOB1", separator="|", token_column=1, tag_column=0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # IOB1 chunk starts are not repairs: no warning
        (e,) = load_examples(spec, tmp_path, "dev", "xx")
    assert e.words == ("Anna", "Smith", "in", "Paris")
    assert [spec.labels[t] for t in e.tags] == ["B-PER", "I-PER", "O", "B-LOC"]


def test_token_errors_name_file_and_line(tmp_path):
    spec = resolve_task(tagging_cfg(tmp_path))
    write(tmp_path / "xx.dev", "Anna B-PER\nin O\nParis B-MISC\n")
    with pytest.raises(XLTuneError, match=r"xx\.dev:3: tag 'B-MISC' is not one of O, B-PER"):
        load_examples(spec, tmp_path, "dev", "xx")
    write(tmp_path / "xx.dev", "Anna B-PER\n\nin X O\n")
    with pytest.raises(XLTuneError, match=r"xx\.dev:3: expected 2 columns .* got 3"):
        load_examples(spec, tmp_path, "dev", "xx")
    write(tmp_path / "xx.dev", "\n\n")
    with pytest.raises(XLTuneError, match=r"xx\.dev: no examples"):
        load_examples(spec, tmp_path, "dev", "xx")
    with pytest.raises(XLTuneError, match=r"xx\.test does not exist"):
        load_examples(spec, tmp_path, "test", "xx")


def test_latin1_detection_and_declared_encoding(tmp_path):
    write(tmp_path / "xx.dev", "Anna B-PER\n\nen O\nEspa\u00f1a B-LOC\n", encoding="latin-1")
    with pytest.raises(XLTuneError) as e:
        load_examples(resolve_task(tagging_cfg(tmp_path)), tmp_path, "dev", "xx")
    assert "xx.dev:4" in str(e.value) and "byte 0xf1 at line 4" in str(e.value) and "task.encoding: latin-1" in str(e.value)
    ex = load_examples(resolve_task(tagging_cfg(tmp_path, encoding="latin-1")), tmp_path, "dev", "xx")
    assert ex[1].words == ("en", "España")


def test_xtreme_tokens_gz_prefix_crlf_and_unlabelled(tmp_path):
    with gzip.open(tmp_path / "dev-xx.tsv.gz", "wb") as f:
        f.write(b"\xef\xbb\xbfxx:Anna\tB-PER\r\nxx:in\tO\r\n\r\nxx:Rome\tB-LOC\r\n")
    with gzip.open(tmp_path / "test-xx.tsv.gz", "wb") as f:
        f.write(b"Anna\nin\n\nRome\n")
    spec = resolve_task(tagging_cfg(tmp_path, fmt="xtreme_tokens", pattern="{split}-{lang}.tsv"))
    ex = load_examples(spec, tmp_path, "dev", "xx")  # found as .gz
    assert [e.words for e in ex] == [("Anna", "in"), ("Rome",)]
    assert ex[1].tags == (NER.index("B-LOC"),)
    with pytest.raises(XLTuneError, match="only a token column"):
        load_examples(spec, tmp_path, "test", "xx")
    test = load_examples(spec, tmp_path, "test", "xx", labelled=False)
    assert [e.tags for e in test] == [None, None] and test[0].words == ("Anna", "in")


CONLLU = """# sent_id = 1
# text = Don't go.
1-2\tDon't\t_\t_\t_\t_\t_\t_\t_\t_
1\tDo\tdo\tAUX\tVBP\t_\t3\taux\t_\t_
2\tn't\tnot\tPART\tRB\t_\t3\tadvmod\t_\t_
3\tgo\tgo\tVERB\tVB\t_\t0\troot\t_\t_
3.1\tgo\tgo\tVERB\tVB\t_\t_\t_\t3:conj\tCopyOf=3
4\t.\t.\tPUNCT\t.\t_\t3\tpunct\t_\t_

# sent_id = 2

"""


def test_conllu_skips_comments_ranges_and_empty_nodes(tmp_path):
    write(tmp_path / "xx.dev", CONLLU)
    upos = ["ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN", "PUNCT",
            "SCONJ", "SYM", "VERB", "X"]
    spec = resolve_task(tagging_cfg(tmp_path, fmt="conllu", labels=upos))
    assert spec.metric == "accuracy"  # plain tag set
    with pytest.warns(UserWarning, match="skipped 1 empty sentence"):
        (e,) = load_examples(spec, tmp_path, "dev", "xx")
    assert e.words == ("Do", "n't", "go", ".")
    assert [spec.labels[t] for t in e.tags] == ["AUX", "PART", "VERB", "PUNCT"]


# -- few-shot for tagging -------------------------------------------------------------------------------------------
def _ner_pool(tmp_path: Path):
    sents = []
    for i in range(12):
        sents.append(f"Anna{i} B-PER\nx O\n")
        sents.append(f"Rome{i} B-LOC\nand O\nOslo B-LOC\n" if i % 3 == 0 else f"Rome{i} B-LOC\n")
        sents.append("nothing O\nhere O\n")
    write(tmp_path / "xx.train", "\n".join(sents))
    spec = resolve_task(tagging_cfg(tmp_path))
    return spec, load_examples(spec, tmp_path, "train", "xx")


def test_ner_sampling_guarantees_k_mentions(tmp_path):
    spec, pool = _ner_pool(tmp_path)
    shots, man = sample_shots(pool, spec, 3, seed=7)
    again, _ = sample_shots(list(reversed(pool)), spec, 3, seed=7)
    assert [e.id for e in shots] == [e.id for e in again] == man["ids"]
    assert man["per_class"]["PER"] >= 3 and man["per_class"]["LOC"] >= 3
    counted = Counter(spec.labels[t][2:] for e in shots for t in e.tags if spec.labels[t].startswith("B-"))
    assert counted == Counter(man["per_class"])
    # greedy: sentences without entities are never taken
    assert all(any(t != 0 for t in e.tags) for e in shots)
    with pytest.raises(XLTuneError, match=r"'PER' \(12 mentions\), 'LOC' \(16 mentions\)"):
        sample_shots(pool, spec, 17, seed=7)


def test_pos_sampling_counts_sentences_per_tag(tmp_path):
    write(tmp_path / "xx.train", "\n".join(f"a{i} DET\nb NOUN\n" + ("c VERB\n" if i % 2 else "") for i in range(8)))
    spec = resolve_task(tagging_cfg(tmp_path, labels=["DET", "NOUN", "VERB"]))
    pool = load_examples(spec, tmp_path, "train", "xx")
    shots, man = sample_shots(pool, spec, 2, seed=0)
    assert man["per_class"]["VERB"] >= 2 and man["per_class"]["DET"] >= 2
    with pytest.raises(XLTuneError, match=r"'VERB' \(4 sentences containing it\)"):
        sample_shots(pool, spec, 5, seed=0)


# -- real data ------------------------------------------------------------------------------------------------------
def test_real_panx(shared_data):
    d = shared_data / "panx"
    spec = resolve_task(TaskConfig(name="panx", data_dir=str(d)))
    dev_langs = available_languages(spec, d, "dev")
    assert len(dev_langs) >= 40 and "en" in dev_langs
    en = load_examples(spec, d, "dev", "en")
    assert len(en) == 10000 and sum(len(e.words) for e in en) == 80536
    assert en[0].words[:3] == ("Sioux", "Falls", "Arena")
    shots, man = sample_shots(en, spec, 10, seed=1)
    assert min(man["per_class"].values()) >= 10
    for lang in dev_langs[::6]:  # a spread of scripts; all 47 are read in the integration check, not here (time)
        assert load_examples(spec, d, "dev", lang)
    assert len(load_examples(spec, d, "test", "th", labelled=False)) == 10000


def test_real_masakhaner(shared_data):
    d = shared_data / "masakhaner" / "v1"
    spec = resolve_task(TaskConfig(name="masakhaner", data_dir=str(d)))
    assert available_languages(spec, d, "train") == list(spec.languages) and len(spec.languages) == 10
    sizes = {lang: len(load_examples(spec, d, "dev", lang)) for lang in spec.languages}
    assert sizes["amh"] == 250 and sizes["hau"] == 276 and sizes["luo"] == 92
    types = {spec.labels[t] for e in load_examples(spec, d, "dev", "swa") for t in e.tags}
    assert {"B-DATE", "B-PER", "B-ORG", "B-LOC"} <= types


def test_real_udpos_and_conllu(shared_data):
    d = shared_data / "udpos_xtreme"
    spec = resolve_task(TaskConfig(name="udpos", data_dir=str(d)))
    assert len(available_languages(spec, d, "test")) == 32
    en = load_examples(spec, d, "dev", "en")
    assert len(en) == 3974 and sum(len(e.words) for e in en) == 62309
    ud = resolve_task(TaskConfig(name="udpos", data_dir=str(shared_data / "ud"), format="conllu",
                                 file_pattern="UD_*/{lang}_*-ud-{split}.conllu"))
    assert available_languages(ud, shared_data / "ud", "test") == ["en", "yo"]
    for lang, split, sents, toks in (("en", "dev", 2001, 25147), ("yo", "test", 317, 8243)):
        ex = load_examples(ud, shared_data / "ud", split, lang)
        assert (len(ex), sum(len(e.words) for e in ex)) == (sents, toks)


def test_real_conll_english_and_spanish_latin1(shared_data):
    en = resolve_task(TaskConfig(name="conll", data_dir=str(shared_data / "conll2003_en"), file_pattern="{split}.txt",
                                 languages=["en"]))
    assert len(load_examples(en, shared_data / "conll2003_en", "dev", "en")) == 3250
    d = shared_data / "conll2002_es"
    es = TaskConfig(name="conll", data_dir=str(d), file_pattern="esp.{split}", languages=["es"])
    with pytest.raises(XLTuneError, match=r"esp\.testa:\d+: esp\.testa is not UTF-8 \(byte 0x.. at line \d+\); set `task.encoding: latin-1`"):
        load_examples(resolve_task(es), d, "testa", "es")
    es.encoding = "latin-1"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the file has one ill-formed I- (repaired)
        ex = load_examples(resolve_task(es), d, "testa", "es")
    assert len(ex) == 1915 and sum(len(e.words) for e in ex) == 52923
    assert ex[0].words[:2] == ("Sao", "Paulo")
