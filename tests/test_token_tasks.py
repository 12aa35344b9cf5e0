"""Token tasks (NER, POS) through the same path as sentence tasks: alignment round trips, windowing, runs."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from xltune.api import run_experiment
from xltune.config import load_config
from xltune.data.encode import IGNORE, encode_tokens
from xltune.data.readers import load_examples
from xltune.data.records import TokenExample
from xltune.data.tasks import TASKS
from xltune.evaluate import words_from_subwords
from xltune.store import Store

from tiny_data import write_panx_like  # noqa: E402  (tests/ is on sys.path)

PANX = TASKS.get("panx")

# one hand-written sentence per script (Latin, Cyrillic, Arabic, Devanagari, CJK), with entity tags
HAND = {
    "en": ("Angela Merkel visited Paris on Monday .", "B-PER I-PER O B-LOC O O O"),
    "ru": ("Владимир Путин посетил Москву вчера .", "B-PER I-PER O B-LOC O O"),
    "ar": ("زار محمد القاهرة أمس .", "O B-PER B-LOC O O"),
    "hi": ("नरेंद्र मोदी दिल्ली गए ।", "B-PER I-PER B-LOC O O"),
    "zh": ("习近平 访问 了 北京 大学 。", "B-PER O O B-ORG I-ORG O"),
}


def token_example(lang, i, words, tags):
    return TokenExample(f"{lang}/dev/{i}", lang, i, tuple(words), tuple(PANX.labels.index(t) for t in tags))


def roundtrip(examples, tokenizer, max_length, alignment="first"):
    """Encode with gold tags, use the gold sub-word labels as the 'predictions', stitch back to words."""
    enc = encode_tokens(examples, tokenizer, max_length, alignment)
    preds = []
    for f in enc.features:
        # a prediction for every position: the gold label where there is one, garbage (0) elsewhere
        preds.append([lab if lab != IGNORE else 0 for lab in f.label])
    return enc, words_from_subwords(enc.features, preds, enc.n_words)


@pytest.mark.parametrize("arch", ["tiny_xglm_dir", "tiny_xlmr_dir"])
@pytest.mark.parametrize("max_length", [256, 8])  # 8: every sentence is windowed
def test_alignment_roundtrip_hand_sentences(arch, max_length, request):
    tok = AutoTokenizer.from_pretrained(request.getfixturevalue(arch))
    exs = [token_example(lang, i, s.split(), t.split()) for i, (lang, (s, t)) in enumerate(HAND.items())]
    enc, words = roundtrip(exs, tok, max_length)
    assert words == [list(e.tags) for e in exs]
    assert (enc.windowed > 0) == (max_length == 8)
    assert all(len(f.input_ids) <= max_length for f in enc.features)
    # 'first': exactly one scored sub-word per word
    assert sum(lab != IGNORE for f in enc.features for lab in f.label) == sum(len(e.words) for e in exs)


def test_alignment_all_labels_every_subword(tiny_xlmr_dir):
    tok = AutoTokenizer.from_pretrained(tiny_xlmr_dir)
    exs = [token_example("en", 0, *(x.split() for x in HAND["en"]))]
    enc, words = roundtrip(exs, tok, 256, alignment="all")
    assert words == [list(exs[0].tags)]
    n_sub = sum(w is not None for w in enc.features[0].word_ids)
    assert sum(lab != IGNORE for lab in enc.features[0].label) == n_sub


@pytest.mark.shared
@pytest.mark.parametrize("lang", ["en", "ru", "ar", "hi", "zh"])  # Latin, Cyrillic, Arabic, Devanagari, CJK
def test_alignment_roundtrip_real_panx(shared_data, tiny_xlmr_dir, tiny_xglm_dir, lang):
    exs = load_examples(PANX, shared_data / "panx", "dev", lang)[:300]
    for model in (tiny_xlmr_dir, tiny_xglm_dir):
        tok = AutoTokenizer.from_pretrained(model)
        for max_length in (512, 12):
            enc, words = roundtrip(exs, tok, max_length)
            assert words == [list(e.tags) for e in exs], (lang, model, max_length)
            if max_length == 12:
                assert enc.windowed > 0


# -- end to end on tiny files --------------------------------------------------------------------------------------
@pytest.mark.parametrize("model_fixture, method", [
    ("tiny_xglm_dir", "deep_prompt"), ("tiny_xglm_dir", "finetune"), ("tiny_xlmr_dir", "deep_prompt"),
    ("tiny_xlmr_dir", "lora"),
])
def test_ner_run_stores_span_f1_per_language(request, tmp_path, model_fixture, method):
    data = write_panx_like(tmp_path / "panx")
    cfg = load_config(None, [
        f"model.name_or_path={request.getfixturevalue(model_fixture)}", f"method.name={method}",
        "method.prefix_length=4", "task.name=panx", f"task.data_dir={data}", "train.split=train", "train.shots=3",
        "train.epochs=2", "train.batch_size=4", "eval.split=test", "seeds=[1]",
        f"store={tmp_path / 's.sqlite'}", f"output_dir={tmp_path / 'runs'}",
    ])
    (res,) = run_experiment(cfg, log=lambda *_: None)
    with Store(tmp_path / "s.sqlite") as s:
        rows = s.metrics(metric="f1")
        assert sorted(r["lang"] for r in rows) == ["de", "en", "sw"] and all(0 <= r["value"] <= 1 for r in rows)
        run = s.runs()[0]
        per_type = run["manifest"]["languages"]["en"]
        assert per_type["ids"]  # the few-shot manifest (K mentions per type) is stored
        preds = s.predictions(run["run_id"], "de", "test")
        assert len(preds) == 15 and preds[0][1].startswith("[")  # JSON tag lists per sentence
    if model_fixture == "tiny_xglm_dir" and method == "finetune":
        from xltune.report import build_report

        md = build_report(tmp_path / "s.sqlite", tmp_path / "report", progress=False)["markdown"].read_text()
        assert "left context only" in md  # decoders' causal view of tagging is stated in the report


@pytest.mark.shared
def test_panx_all_languages_tiny_xlmr(shared_data, tiny_xlmr_dir, tmp_path):
    """Must-show (issue 3): PAN-X, en source (8 mentions per type), dev sets of every PAN-X language."""
    cfg = load_config(None, [
        f"model.name_or_path={tiny_xlmr_dir}", "method.name=deep_prompt", "method.prefix_length=4",
        "task.name=panx", f"task.data_dir={shared_data / 'panx'}", "train.split=train", "train.shots=8",
        "train.epochs=1", "train.batch_size=8", "train.dev.policy=none", "eval.split=dev", "eval.max_examples=20",
        "seeds=[1]", f"store={tmp_path / 's.sqlite'}", f"output_dir={tmp_path / 'runs'}",
    ])
    run_experiment(cfg, log=lambda *_: None)
    with Store(tmp_path / "s.sqlite") as s:
        langs = {r["lang"] for r in s.metrics(metric="f1")}
    assert len(langs) >= 40


@pytest.mark.shared
@pytest.mark.parametrize("task, source, split, n_min", [("masakhaner", "swa", "test", 10), ("udpos", "en", "dev", 25)])
def test_masakhaner_and_udpos_run(shared_data, tiny_xglm_dir, tmp_path, task, source, split, n_min):
    data = {"masakhaner": shared_data / "masakhaner" / "v1", "udpos": shared_data / "udpos_xtreme"}[task]
    cfg = load_config(None, [
        f"model.name_or_path={tiny_xglm_dir}", "method.name=finetune", f"task.name={task}", f"task.data_dir={data}",
        f"train.languages=[{source}]", "train.split=train", "train.shots=2", "train.epochs=1", "train.batch_size=8",
        "train.dev.policy=none", f"eval.split={split}", "eval.max_examples=10", "seeds=[1]",
        f"store={tmp_path / 's.sqlite'}", f"output_dir={tmp_path / 'runs'}",
    ])
    run_experiment(cfg, log=lambda *_: None)
    metric = "f1" if task == "masakhaner" else "accuracy"
    with Store(tmp_path / "s.sqlite") as s:
        assert len({r["lang"] for r in s.metrics(metric=metric)}) >= n_min


@pytest.mark.shared
def test_masakhaner_headline_f1_is_conlleval_and_the_bootstrap_point_estimate(shared_data, tiny_xlmr_dir, tmp_path):
    """A real MasakhaNER v1 run: every language's stored F1 equals conlleval.pl's counts on the stored
    predictions, and the bootstrap's point estimate is that headline, to 4 decimals (one F1 everywhere)."""
    import json

    from xltune.analysis.significance import chance_check, example_stats
    from xltune.metrics import conlleval_counts

    cfg = load_config(None, [
        f"model.name_or_path={tiny_xlmr_dir}", "method.name=finetune", "task.name=masakhaner",
        f"task.data_dir={shared_data / 'masakhaner' / 'v1'}", "train.languages=[swa]", "train.split=train",
        "train.shots=8", "train.epochs=3", "train.lr=1e-2", "train.batch_size=8", "train.dev.policy=none",
        "eval.split=test", "eval.max_examples=150", "seeds=[1]", f"store={tmp_path / 's.sqlite'}",
        f"output_dir={tmp_path / 'runs'}", "save_checkpoint=false"])
    run_experiment(cfg, log=lambda *_: None)
    with Store(tmp_path / "s.sqlite") as s:
        (run,) = s.runs()
        assert run["ner_mode"] == "conlleval" and run["headline_metric"] == "f1"
        f1 = {r["lang"]: r["value"] for r in s.metrics(metric="f1")}
        assert len(f1) == 10 and max(f1.values()) > 0  # the model finds some entities: the check is not 0 == 0
        for lang, value in f1.items():
            rows = s.predictions(run["run_id"], lang, "test")
            gold = [json.loads(g) for _, g, _ in rows]
            pred = [json.loads(p) for _, _, p in rows]
            assert round(conlleval_counts(gold, pred)["f1"], 4) == round(value, 4), lang
            assert round(example_stats(rows, "f1", "conlleval").value(), 4) == round(value, 4), lang
        check = chance_check(s, run["variant"], "swa", metric="f1", n_resamples=50)
        assert round(check.score, 4) == round(f1["swa"], 4)
