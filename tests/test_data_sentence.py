"""Sentence tasks: task resolution, TSV/JSONL readers and their errors, stratified few-shot sampling."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pytest

from xltune.config import TaskConfig
from xltune.data.fewshot import sample_shots
from xltune.data.readers import load_examples
from xltune.data.tasks import TASKS, available_languages, resolve_task, task_file
from xltune.errors import XLTuneError

LABELS = ["entailment", "neutral", "contradiction"]


def custom_cfg(tmp_path: Path, fmt: str = "tsv", pattern: str = "{split}-{lang}.tsv", **kw) -> TaskConfig:
    base = dict(name="custom", data_dir=str(tmp_path), format=fmt, file_pattern=pattern,
                text_columns=["premise", "hypothesis"], label_column="label", labels=LABELS, languages=["en", "de"])
    base.update(kw)
    return TaskConfig(**base)


def tsv_rows(n_per_class: int) -> list[str]:
    rows = ["premise\thypothesis\tlabel"]
    for i in range(n_per_class):
        for lab in LABELS:
            rows.append(f'He said "hi" {i}\tA {lab} {i}\t{lab}')
    return rows


# -- tasks ----------------------------------------------------------------------------------------------------------
def test_declared_tasks_and_overrides(tmp_path):
    assert {"xnli", "pawsx", "custom", "panx", "masakhaner", "conll", "udpos", "custom_tagging"} <= set(TASKS.names())
    spec = resolve_task(TaskConfig(name="xnli", data_dir=str(tmp_path), languages=["en", "de"]))
    assert spec.languages == ("en", "de") and spec.labels == tuple(LABELS) and spec.kind == "sequence"
    with pytest.raises(XLTuneError, match="unknown task 'xnil'.*valid: xnli"):
        resolve_task(TaskConfig(name="xnil"))


def test_custom_task_lists_every_missing_field(tmp_path):
    with pytest.raises(XLTuneError) as e:
        resolve_task(TaskConfig(name="custom", data_dir=str(tmp_path), format="tsv"))
    msg = str(e.value)
    for key in ("task.labels", "task.languages", "task.text_columns", "task.label_column", "task.file_pattern"):
        assert key in msg
    assert "task.format" not in msg


def test_custom_without_data_dir_has_no_hub():
    cfg = TaskConfig(name="custom", format="tsv", file_pattern="{split}-{lang}.tsv", text_columns=["t"],
                     label_column="l", labels=["a", "b"], languages=["en"])
    with pytest.raises(XLTuneError, match="task.data_dir"):
        resolve_task(cfg)


def test_available_languages_and_gz_variant(tmp_path):
    (tmp_path / "dev-en.tsv").write_text("\n".join(tsv_rows(1)) + "\n", encoding="utf-8")
    with gzip.open(tmp_path / "dev-de.tsv.gz", "wt", encoding="utf-8") as f:
        f.write("\n".join(tsv_rows(1)) + "\n")
    spec = resolve_task(custom_cfg(tmp_path, languages=["fr", "en", "de"]))
    assert available_languages(spec, tmp_path, "dev") == ["en", "de"]
    assert task_file(spec, tmp_path, "dev", "de").name == "dev-de.tsv.gz"
    de = load_examples(spec, tmp_path, "dev", "de")
    en = load_examples(spec, tmp_path, "dev", "en")
    assert [e.texts for e in de] == [e.texts for e in en] and de[0].id == "de/dev/0"


# -- readers --------------------------------------------------------------------------------------------------------
def test_tsv_with_bom_crlf_and_quotes(tmp_path):
    text = "\r\n".join(tsv_rows(2)) + "\r\n"
    (tmp_path / "train-en.tsv").write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    spec = resolve_task(custom_cfg(tmp_path))
    ex = load_examples(spec, tmp_path, "train", "en")
    assert len(ex) == 6
    assert ex[0].texts == ('He said "hi" 0', "A entailment 0") and ex[0].label == 0
    assert ex[5].texts[1] == "A contradiction 1" and ex[5].label == 2 and ex[5].index == 5 and ex[5].id == "en/train/5"


def test_gzip_detected_by_magic_bytes(tmp_path):
    # A gzipped file whose name does not end in .gz.
    (tmp_path / "dev-en.tsv").write_bytes(gzip.compress(("\n".join(tsv_rows(1)) + "\n").encode()))
    ex = load_examples(resolve_task(custom_cfg(tmp_path)), tmp_path, "dev", "en")
    assert [e.label for e in ex] == [0, 1, 2]


def test_jsonl_reader(tmp_path):
    rows = [{"premise": "p", "hypothesis": f"h{i}", "label": LABELS[i % 3]} for i in range(4)]
    (tmp_path / "dev-en.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    spec = resolve_task(custom_cfg(tmp_path, fmt="jsonl", pattern="{split}-{lang}.jsonl"))
    ex = load_examples(spec, tmp_path, "dev", "en")
    assert [e.label for e in ex] == [0, 1, 2, 0] and ex[3].texts == ("p", "h3")


def test_jsonl_errors_name_file_and_line(tmp_path):
    spec = resolve_task(custom_cfg(tmp_path, fmt="jsonl", pattern="{split}-{lang}.jsonl"))
    (tmp_path / "dev-en.jsonl").write_text('{"premise": "p", "hypothesis": "h", "label": "neutral"}\n{"premise": \n')
    with pytest.raises(XLTuneError, match=r"dev-en\.jsonl:2: not valid JSON"):
        load_examples(spec, tmp_path, "dev", "en")
    (tmp_path / "dev-en.jsonl").write_text('{"premise": "p", "label": "neutral"}\n')
    with pytest.raises(XLTuneError, match=r"dev-en\.jsonl:1: missing text key 'hypothesis'"):
        load_examples(spec, tmp_path, "dev", "en")


def test_label_outside_set_names_file_and_line(tmp_path):
    rows = tsv_rows(6)
    rows[16] = "a\tb\tneutrall"  # physical line 17
    (tmp_path / "dev-en.tsv").write_text("\n".join(rows) + "\n")
    with pytest.raises(XLTuneError) as e:
        load_examples(resolve_task(custom_cfg(tmp_path)), tmp_path, "dev", "en")
    assert "dev-en.tsv:17: label 'neutrall' is not one of entailment, neutral, contradiction" in str(e.value)


def test_wrong_column_count_names_file_and_line(tmp_path):
    rows = tsv_rows(2)
    rows[3] = "only\ttwo"
    (tmp_path / "dev-en.tsv").write_text("\n".join(rows) + "\n")
    with pytest.raises(XLTuneError, match=r"dev-en\.tsv:4: expected 3 tab-separated columns .* got 2"):
        load_examples(resolve_task(custom_cfg(tmp_path)), tmp_path, "dev", "en")


def test_missing_header_column(tmp_path):
    (tmp_path / "dev-en.tsv").write_text("premise\thypo\tlabel\na\tb\tneutral\n")
    with pytest.raises(XLTuneError, match=r"dev-en\.tsv:1: missing column 'hypothesis' in the header"):
        load_examples(resolve_task(custom_cfg(tmp_path)), tmp_path, "dev", "en")


def test_empty_and_missing_files(tmp_path):
    spec = resolve_task(custom_cfg(tmp_path))
    (tmp_path / "dev-en.tsv").write_text("\n\n")
    with pytest.raises(XLTuneError, match=r"dev-en\.tsv: no examples"):
        load_examples(spec, tmp_path, "dev", "en")
    with pytest.raises(XLTuneError, match=r"dev-de\.tsv does not exist"):
        load_examples(spec, tmp_path, "dev", "de")
    with pytest.raises(XLTuneError, match="unknown language 'fr'"):
        load_examples(spec, tmp_path, "dev", "fr")


def test_unlabelled_only_when_asked(tmp_path):
    (tmp_path / "test-en.tsv").write_text("premise\thypothesis\na\tb\nc\td\n")
    spec = resolve_task(custom_cfg(tmp_path))
    with pytest.raises(XLTuneError, match="no 'label' column"):
        load_examples(spec, tmp_path, "test", "en")
    ex = load_examples(spec, tmp_path, "test", "en", labelled=False)
    assert [e.label for e in ex] == [None, None] and ex[1].texts == ("c", "d")


def test_non_utf8_is_reported_with_the_fix(tmp_path):
    rows = tsv_rows(2)
    rows[4] = "caf\xe9\tb\tneutral"  # physical line 5
    (tmp_path / "dev-en.tsv").write_bytes(("\n".join(rows) + "\n").encode("latin-1"))
    with pytest.raises(XLTuneError) as e:
        load_examples(resolve_task(custom_cfg(tmp_path)), tmp_path, "dev", "en")
    assert "dev-en.tsv:5" in str(e.value) and "byte 0xe9 at line 5" in str(e.value) and "task.encoding: latin-1" in str(e.value)
    ex = load_examples(resolve_task(custom_cfg(tmp_path, encoding="latin-1")), tmp_path, "dev", "en")
    assert ex[3].texts[0] == "café"


def test_header_less_declared_task_reads_label_map(tmp_path):
    # PAWS-X layout: no header, raw labels 0/1 mapped to names.
    (tmp_path / "dev-en.tsv").write_text("s1\ts2\t1\nt1\tt2\t0\n")
    spec = resolve_task(TaskConfig(name="pawsx", data_dir=str(tmp_path)))
    ex = load_examples(spec, tmp_path, "dev", "en")
    assert [spec.labels[e.label] for e in ex] == ["paraphrase", "not_paraphrase"]


# -- few-shot -------------------------------------------------------------------------------------------------------
def _pool(tmp_path: Path, n_per_class: int = 10):
    (tmp_path / "train-en.tsv").write_text("\n".join(tsv_rows(n_per_class)) + "\n")
    spec = resolve_task(custom_cfg(tmp_path))
    return spec, load_examples(spec, tmp_path, "train", "en")


def test_sampling_is_stratified_and_deterministic(tmp_path):
    spec, pool = _pool(tmp_path)
    a, man = sample_shots(pool, spec, 4, seed=3)
    b, _ = sample_shots(list(reversed(pool)), spec, 4, seed=3)  # pool order does not matter
    assert [e.id for e in a] == [e.id for e in b] == man["ids"]
    assert Counter(e.label for e in a) == {0: 4, 1: 4, 2: 4}
    assert man["per_class"] == {"entailment": 4, "neutral": 4, "contradiction": 4}
    assert man["seed"] == 3 and man["shots"] == 4
    c, _ = sample_shots(pool, spec, 4, seed=4)
    assert {e.id for e in c} != {e.id for e in a}
    # order is shuffled, not grouped by class
    assert [e.label for e in a] != sorted(e.label for e in a)


def test_sampling_all_and_too_few(tmp_path):
    spec, pool = _pool(tmp_path, 3)
    everything, man = sample_shots(pool, spec, "all", seed=0)
    assert sorted(e.id for e in everything) == sorted(e.id for e in pool) and man["per_class"]["neutral"] == 3
    with pytest.raises(XLTuneError, match=r"class 'entailment' has 3 examples in the pool en/train, fewer than shots=5"):
        sample_shots(pool, spec, 5, seed=0)


# -- real data ------------------------------------------------------------------------------------------------------
def test_real_xnli_and_pawsx(shared_data):
    xnli = resolve_task(TaskConfig(name="xnli", data_dir=str(shared_data / "xnli")))
    for split, n in (("dev", 2490), ("test", 5010)):
        assert available_languages(xnli, shared_data / "xnli", split) == list(xnli.languages)
        ex = load_examples(xnli, shared_data / "xnli", split, "en")
        assert len(ex) == n
        assert Counter(xnli.labels[e.label] for e in ex) == {lab: n // 3 for lab in LABELS}
    de = load_examples(xnli, shared_data / "xnli", "dev", "de")
    en = load_examples(xnli, shared_data / "xnli", "dev", "en")
    assert [e.label for e in de] == [e.label for e in en]  # line-aligned translations
    assert len(xnli.languages) == 15
    shots, man = sample_shots(en, xnli, 16, seed=1)
    assert len(shots) == 48 and set(man["per_class"].values()) == {16}

    pawsx = resolve_task(TaskConfig(name="pawsx", data_dir=str(shared_data / "pawsx")))
    assert available_languages(pawsx, shared_data / "pawsx", "dev") == list(pawsx.languages)
    dev = load_examples(pawsx, shared_data / "pawsx", "dev", "en")
    assert len(dev) == 2000 and Counter(pawsx.labels[e.label] for e in dev) == {"not_paraphrase": 1137, "paraphrase": 863}
    test = load_examples(pawsx, shared_data / "pawsx", "test", "en", labelled=False)
    assert len(test) == 2000 and test[0].label is None
    with pytest.raises(XLTuneError, match="test-en.tsv: no 'label' column"):
        load_examples(pawsx, shared_data / "pawsx", "test", "en")


def test_hub_unreachable_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.invalid")  # .invalid never resolves (RFC 2606)
    spec = resolve_task(TaskConfig(name="xnli"))
    with pytest.raises(XLTuneError, match="hub is not reachable.*task.data_dir"):
        load_examples(spec, None, "dev", "en")


def test_real_pawsx_labelled_test_files_with_header(shared_data):
    # hf_labeled/ has a header (id, sentence1, sentence2, label): detected although PAWS-X files are header-less.
    d = shared_data / "pawsx"
    spec = resolve_task(TaskConfig(name="pawsx", data_dir=str(d), file_pattern="hf_labeled/{lang}_{split}.tsv",
                                   languages=["zh", "de"]))
    zh = load_examples(spec, d, "test", "zh")
    assert Counter(spec.labels[e.label] for e in zh) == {"not_paraphrase": 1106, "paraphrase": 894}
    plain = load_examples(resolve_task(TaskConfig(name="pawsx", data_dir=str(d))), d, "test", "zh", labelled=False)
    assert len(plain) == len(zh) == 2000
