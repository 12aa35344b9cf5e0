"""The synthetic world: determinism, file layouts, parallelism, scripts, tokenizer fertility, BoW baseline, cache."""

from __future__ import annotations

import csv
import gzip
from collections import Counter
from pathlib import Path

import pytest
import torch

from xltune.data.synthetic import (NER_LABELS, NLI_LABELS, SCRIPTS, SPLITS, PretrainConfig, WorldConfig, build_world,
                                   ensure_world_and_model, fertility, train_tokenizer)
from xltune.data.synthetic.probe import fit_logreg
from xltune.errors import XLTuneError

SMALL = dict(corpus_docs=1500, nli_sizes={"train": 300, "dev": 30, "test": 150},
             ner_sizes={"train": 40, "dev": 20, "test": 20})
TINY_LM = PretrainConfig(vocab_size=300, d_model=32, layers=1, heads=2, ffn_dim=64, seq_len=32, batch_size=4, steps=3)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(WorldConfig(**SMALL), tmp_path_factory.mktemp("world"))


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _nli(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def _ner(path: Path) -> list[list[tuple[str, str]]]:
    sents, cur = [], []
    for line in path.read_text(encoding="utf-8").split("\n"):
        if line:
            word, tag = line.split("\t")
            cur.append((word, tag))
        elif cur:
            sents.append(cur)
            cur = []
    return sents


def test_same_seed_gives_identical_files_and_other_seed_differs(world, tmp_path):
    again = build_world(WorldConfig(**SMALL), tmp_path / "again")
    assert _files(world.root) == _files(again.root)
    other = build_world(WorldConfig(**SMALL, seed=1), tmp_path / "other")
    assert _files(other.root)["nli/test-xlat.tsv"] != _files(world.root)["nli/test-xlat.tsv"]


def test_raising_one_level_leaves_the_other_languages_documents(tmp_path):
    """The resource sweep's control: with docs_per_level, only the swept language's corpus changes (and grows)."""
    import dataclasses

    def corpus(level):
        langs = [dataclasses.replace(l, resource=level if l.code == "xtfn" else l.resource)
                 for l in WorldConfig().languages]
        cfg = WorldConfig(**dict(SMALL, corpus_docs=0), languages=langs, docs_per_level=1500)
        return _files(build_world(cfg, tmp_path / str(level)).root / "corpus")

    low, high = corpus(0.02), corpus(0.3)
    assert low.keys() == high.keys()
    assert {k for k in low if low[k] != high[k]} == {"xtfn.txt"}
    assert len(high["xtfn.txt"].splitlines()) == 450 and len(low["xtfn.txt"].splitlines()) == 30


def test_nli_files_parse_and_are_balanced(world):
    for split in SPLITS:
        for lang in world.languages:
            path = world.tasks["nli"] / f"{split}-{lang}.tsv"
            assert path.read_text(encoding="utf-8").split("\n", 1)[0] == "premise\thypothesis\tlabel"
            rows = _nli(path)
            assert len(rows) == world.config.nli_sizes[split]
            assert all(r["premise"] and r["hypothesis"] and r["label"] in NLI_LABELS and None not in r for r in rows)
            counts = Counter(r["label"] for r in rows)
            assert max(counts.values()) - min(counts.values()) <= 1


def test_ner_files_use_the_panx_token_layout_with_valid_iob2(world):
    for split in SPLITS:
        for lang in world.languages:
            sents = _ner(world.tasks["ner"] / f"{split}-{lang}.tsv")
            assert len(sents) == world.config.ner_sizes[split]
            for sent in sents:
                prev = "O"
                for _, tag in sent:
                    assert tag in NER_LABELS
                    if tag.startswith("I-"):  # IOB2: I-X continues B-X or I-X
                        assert prev[2:] == tag[2:] and prev != "O"
                    prev = tag
            assert any(t.startswith("B-LOC") for s in sents for _, t in s)


def test_ner_layout_matches_real_panx_file(world, shared_data):
    with gzip.open(shared_data / "panx" / "dev-en.tsv.gz", "rt", encoding="utf-8") as f:
        real = [next(f).rstrip("\n") for _ in range(5)]
    ours = (world.tasks["ner"] / "dev-xlat.tsv").read_text(encoding="utf-8").split("\n")[:5]
    assert [len(l.split("\t")) for l in real if l] == [2] * len([l for l in real if l])
    assert all(len(l.split("\t")) == 2 for l in ours if l)


def test_tasks_are_parallel_by_construction(world):
    src, *others = world.languages
    for split in SPLITS:
        base = _nli(world.tasks["nli"] / f"{split}-{src}.tsv")
        base_ner = _ner(world.tasks["ner"] / f"{split}-{src}.tsv")
        for lang in others:
            rows = _nli(world.tasks["nli"] / f"{split}-{lang}.tsv")
            assert [r["label"] for r in rows] == [r["label"] for r in base]
            # Entity names are shared forms: the same row names the same person in every language.
            names = lambda s: [w for w in s.split() if w[:1].isupper()]  # noqa: E731
            assert [names(r["hypothesis"]) for r in rows] == [names(r["hypothesis"]) for r in base]
            sents = _ner(world.tasks["ner"] / f"{split}-{lang}.tsv")
            mentions = lambda s: [(w, t) for w, t in s if t != "O"]  # noqa: E731
            assert [mentions(s) for s in sents] == [mentions(s) for s in base_ner]


def test_scripts_do_not_overlap_except_declared_shared_words(world):
    shared = set(world.shared_words)
    chars: dict[str, set[str]] = {}
    for lang in world.languages:
        words = {w for r in _nli(world.tasks["nli"] / f"test-{lang}.tsv") for w in (r["premise"] + " " + r["hypothesis"]).split()}
        words |= {w for s in _ner(world.tasks["ner"] / f"test-{lang}.tsv") for w, _ in s}
        own = words - shared
        assert own, lang
        chars[lang] = set("".join(own))
        assert chars[lang] <= set(SCRIPTS[world.facts[lang]["script"]]), lang
    langs = world.languages
    for i, a in enumerate(langs):
        for b in langs[i + 1:]:
            assert not chars[a] & chars[b], (a, b)
    assert all(w.isascii() for w in shared)


def test_low_resource_languages_get_higher_fertility(world, tmp_path):
    tok = train_tokenizer(list(world.corpus.values()), 400, tmp_path)
    fert = {}
    for lang in world.languages:
        rows = _nli(world.tasks["nli"] / f"test-{lang}.tsv")
        fert[lang] = fertility(tok, [r["premise"] for r in rows])
    shares = world.config.shares()
    high, low = max(shares, key=shares.get), min(shares, key=shares.get)
    assert fert[high] < fert[low], fert
    # the high-resource half of the languages is tokenized more compactly than the low-resource half
    ranked = sorted(world.languages, key=shares.get, reverse=True)
    half = len(ranked) // 2
    assert sum(fert[l] for l in ranked[:half]) < sum(fert[l] for l in ranked[-half:]), fert


def test_bag_of_words_baseline_cannot_solve_nli(world):
    """Unigram bags of premise and hypothesis (and hypothesis alone) -> logistic regression stays near chance."""
    src = world.languages[0]
    train, test = (_nli(world.tasks["nli"] / f"{s}-{src}.tsv") for s in ("train", "test"))
    vocab = {w: i for i, w in enumerate(sorted({w for r in train for w in (r["premise"] + " " + r["hypothesis"]).split()}))}

    def bags(rows, fields):
        x = torch.zeros(len(rows), len(vocab) * len(fields))
        for i, r in enumerate(rows):
            for k, f in enumerate(fields):
                for w in r[f].split():
                    if w in vocab:
                        x[i, k * len(vocab) + vocab[w]] += 1
        return x

    y_train = torch.tensor([NLI_LABELS.index(r["label"]) for r in train])
    y_test = torch.tensor([NLI_LABELS.index(r["label"]) for r in test])
    for fields in (("premise", "hypothesis"), ("hypothesis",)):
        clf = fit_logreg(bags(train, fields), y_train, l2=1e-1)
        acc = (clf(bags(test, fields)) == y_test).float().mean().item()
        assert acc < 0.47, (fields, acc)


def test_bad_language_config_is_a_clear_error():
    with pytest.raises(XLTuneError, match="script"):
        WorldConfig(languages=[{"code": "a", "script": "latn"}, {"code": "b", "script": "greek"}])
    with pytest.raises(XLTuneError, match="own script"):
        WorldConfig(languages=[{"code": "a", "script": "greek"}, {"code": "b", "script": "greek"}])


def test_ensure_world_and_model_caches_and_model_loads(tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    cfg = WorldConfig(**{**SMALL, "corpus_docs": 300})
    data_dir, model_dir, facts = ensure_world_and_model(cfg, pretrain_cfg=TINY_LM)
    assert data_dir.is_relative_to(tmp_path / "cache" / "xltune" / "synthetic")
    assert facts["timings"]["cached"] is False and facts["timings"]["total_s"] > 0
    assert set(facts["languages"]) == set(cfg.codes)
    assert (data_dir / "nli" / "test-xtfn.tsv").is_file() and (data_dir / "ner" / "train-xlat.tsv").is_file()
    tok = AutoTokenizer.from_pretrained(model_dir)
    assert (tok.bos_token, tok.eos_token, tok.pad_token, tok.unk_token) == ("<s>", "</s>", "<pad>", "<unk>")
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    assert type(model).__name__ == "XGLMForCausalLM"
    enc = tok(["Kako ."], return_tensors="pt")
    assert model(**enc).logits.shape[-1] == len(tok)
    _, _, again = ensure_world_and_model(cfg, pretrain_cfg=TINY_LM)
    assert again["timings"] == {"cached": True}
    _, _, rebuilt = ensure_world_and_model(cfg, fresh=True, pretrain_cfg=TINY_LM)
    assert rebuilt["timings"]["cached"] is False


def test_unpacked_pretraining_rows_start_each_document_at_position_0(world, tmp_path):
    import random

    from xltune.data.synthetic.pretrain import _blocks

    tok = train_tokenizer(list(world.corpus.values()), 400, tmp_path)
    rows = _blocks(tok, world, 48, random.Random(0), pack=False)
    n_docs = sum(1 for p in world.corpus.values() for l in p.read_text(encoding="utf-8").splitlines() if l)
    assert rows.shape == (n_docs, 48)
    assert (rows[:, 0] == tok.bos_token_id).all()
    # padding only after the document: once a row pads, it pads to the end
    pad = rows == tok.pad_token_id
    assert (pad.cumsum(1) == pad.long() * pad.cumsum(1)).all() and (pad[:, 1:] >= pad[:, :-1]).all()


def test_length_grouped_pretraining_batches():
    from xltune.data.synthetic.pretrain import _batch_indices

    lengths = torch.tensor([3] * 60 + [40] * 20)
    mask = torch.arange(48).unsqueeze(0) < lengths.unsqueeze(1)
    g = torch.Generator().manual_seed(0)
    grouped = _batch_indices(mask, 8, 4, g)
    batches = [next(grouped) for _ in range(40)]
    assert all(len(b) == 8 and int(b.max()) < 80 for b in batches)
    widths = [int(lengths[b].max()) for b in batches]
    # Sorted within each draw of 4 batches: most batches hold only short rows; ungrouped, nearly none would.
    assert widths.count(3) >= 15
    plain = _batch_indices(mask, 8, 1, torch.Generator().manual_seed(0))
    assert sum(int(lengths[next(plain)].max()) == 3 for _ in range(40)) <= 5
