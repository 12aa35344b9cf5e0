"""In-context few-shot and verbalizer-head runs end to end: stored like any run, per language, beside tuned runs.

Tiny models cannot do NLI; these show the path runs, stores honestly, draws the same demonstrations as the tuned
methods' shots, and takes translated demonstrations from the target language's line-aligned file.
"""

from __future__ import annotations

import json
import shutil

import pytest

from xltune.api import prepare, run_experiment
from xltune.config import load_config, resolve_paths
from xltune.errors import XLTuneError
from xltune.runs.runners import demonstration_prefix, translated_demonstrations
from xltune.runs.runners import InContextRunner
from xltune.store import Store
from xltune.templates import load_templates

from tiny_data import LANGS, write_xnli_like


@pytest.fixture(scope="module")
def long_xglm_dir(tiny_xglm_dir, tmp_path_factory):
    """The tiny XGLM with a 16k position table: XGLM's positions are sinusoidal (no weights), so only the
    config's declared limit changes; K=4 demonstrations per class do not fit 512 tiny-tokenizer positions."""
    out = tmp_path_factory.mktemp("long-xglm")
    shutil.copytree(tiny_xglm_dir, out, dirs_exist_ok=True)
    cfg = json.loads((out / "config.json").read_text())
    cfg["max_position_embeddings"] = 16384
    (out / "config.json").write_text(json.dumps(cfg))
    return out


@pytest.fixture(scope="module")
def xnli_dir(tmp_path_factory):
    return write_xnli_like(tmp_path_factory.mktemp("xnli") / "xnli", n_dev=24, n_test=6)


def config(model_dir, data_dir, tmp_path, method="in_context", **sets):
    overrides = [
        f"model.name_or_path={model_dir}", f"method.name={method}", "method.prefix_length=4",
        "task.name=xnli", f"task.data_dir={data_dir}", "train.split=dev", "train.epochs=1", "train.batch_size=6",
        "eval.split=test", "eval.max_examples=3", "seeds=[1]", f"store={tmp_path / 'results.sqlite'}",
        f"output_dir={tmp_path / 'runs'}",
    ] + [f"{k}={v}" for k, v in sets.items()]
    return load_config(None, overrides)


def runs_by_method(store_path):
    with Store(store_path) as s:
        runs = s.runs()
        return {(r["method"], r["shots"]): (r, s.metrics(run_id=r["run_id"], metric="accuracy"),
                                            s.predictions(r["run_id"], "de", "test")) for r in runs}


def check_stored(store_path, langs, n, k=4):
    got = runs_by_method(store_path)
    assert set(got) == {("in_context", "0"), ("in_context", str(k)), ("deep_prompt", "4")}
    for (method, shots), (run, metrics, preds) in got.items():
        assert sorted(m["lang"] for m in metrics) == sorted(langs)
        assert all(m["n"] == n and 0.0 <= m["value"] <= 1.0 for m in metrics)
        assert len(preds) == n
        if method == "in_context":
            assert run["trainable_params"] == 0 and run["extra"]["head"] == "verbalizer"
            ids = [i for lang in run["manifest"]["languages"].values() for i in lang["ids"]]
            assert len(ids) == 3 * int(shots)
        else:
            assert run["config"]["model"]["head"] == "verbalizer" and 0 < run["trainable_params"]
    return got


def test_in_context_k0_k4_and_verbalizer_deep_prompt_are_stored_per_language(long_xglm_dir, xnli_dir, tmp_path):
    quiet = dict(log=lambda *_: None)
    run_experiment(config(long_xglm_dir, xnli_dir, tmp_path, **{"train.shots": 0}), **quiet)
    run_experiment(config(long_xglm_dir, xnli_dir, tmp_path, **{"train.shots": 4}), **quiet)
    run_experiment(config(long_xglm_dir, xnli_dir, tmp_path, "deep_prompt",
                          **{"train.shots": 4, "model.head": "verbalizer"}), **quiet)
    got = check_stored(tmp_path / "results.sqlite", LANGS, 3)
    # the in-context demonstrations are the deep-prompt run's training shots (same seeded sampler)
    icl, tuned = got[("in_context", "4")][0], got[("deep_prompt", "4")][0]
    assert icl["manifest"]["languages"]["en"]["ids"] == tuned["manifest"]["languages"]["en"]["ids"]


def test_in_context_is_batch_size_and_padding_invariant(long_xglm_dir, xnli_dir, tmp_path):
    preds = []
    for bs, side in ((1, "left"), (32, "right"), (32, "left")):
        cfg = config(long_xglm_dir, xnli_dir, tmp_path / f"{bs}{side}",
                     **{"train.shots": 1, "eval.batch_size": bs, "model.padding_side": side})
        (res,) = run_experiment(cfg, log=lambda *_: None)
        preds.append([r.predictions for r in res.results])
    assert preds[0] == preds[1] == preds[2]


def test_translated_demonstrations_take_the_same_lines_of_the_target_file(xnli_dir, tiny_xglm_dir, tmp_path):
    cfg = resolve_paths(config(tiny_xglm_dir, xnli_dir, tmp_path, **{"train.shots": 2,
                                                                      "method.demonstrations": "translated"}))
    prep = prepare(cfg)
    demos, manifest = InContextRunner().draw(prep, seed=1)
    assert len(demos) == 6 and manifest["demonstrations"] == "translated"
    de = translated_demonstrations(prep, demos, "de")
    assert [d.index for d in de] == [d.index for d in demos] and [d.label for d in de] == [d.label for d in demos]
    assert all(d.lang == "de" for d in de) and translated_demonstrations(prep, demos, "en") == demos
    templates = load_templates(prep.spec)
    text = demonstration_prefix(de, templates)
    # each German demonstration is the German template with its gold German label word
    words = templates.for_lang("de").labels
    for d in de:
        assert f"{d.texts[0]}, richtig? {words[d.label]}, {d.texts[1]}\n\n" in text


def test_k0_needs_in_context_and_too_long_contexts_fail_with_a_count(tiny_xglm_dir, xnli_dir, tmp_path):
    with pytest.raises(XLTuneError, match="0 only with method in_context"):
        config(tiny_xglm_dir, xnli_dir, tmp_path, "deep_prompt", **{"train.shots": 0})
    with pytest.raises(XLTuneError, match=r"3 of 3 examples .* need more than 512 tokens"):
        # the fixture's own 512 positions cannot hold 3 x 8 tiny-tokenizer demonstrations
        run_experiment(config(tiny_xglm_dir, xnli_dir, tmp_path, **{"train.shots": 8}), log=lambda *_: None)
    with Store(tmp_path / "results.sqlite") as s:
        assert s.runs() == []  # nothing half-stored


def test_shared_xnli_all_15_languages(shared_data, long_xglm_dir, tmp_path):
    """Real XNLI files (dev = demonstration pool, test), 15 languages, 1 example each: K=0, K=1 (translated
    demonstrations: the same dev lines in each language) and deep_prompt with the verbalizer head (K=4 shots).
    K=1 rather than 4 in context: the tiny tokenizer cuts real text into ~5x more tokens than XGLM's and eager
    attention is quadratic, so K=4 costs ~2 minutes of CPU here (it runs: see docs/baselines.md)."""
    data = shared_data / "xnli"
    langs = sorted(p.name[len("test-"):-len(".tsv")] for p in data.glob("test-*.tsv"))
    assert len(langs) == 15
    quiet = dict(log=lambda *_: None)
    small = {"eval.max_examples": 1, "eval.batch_size": 2, "train.dev.max_examples": 3}
    run_experiment(config(long_xglm_dir, data, tmp_path, **small, **{"train.shots": 0}), **quiet)
    run_experiment(config(long_xglm_dir, data, tmp_path, **small,
                          **{"train.shots": 1, "method.demonstrations": "translated"}), **quiet)
    run_experiment(config(long_xglm_dir, data, tmp_path, "deep_prompt", **small,
                          **{"train.shots": 4, "model.head": "verbalizer", "model.max_length": 1024}), **quiet)
    check_stored(tmp_path / "results.sqlite", langs, 1, k=1)
