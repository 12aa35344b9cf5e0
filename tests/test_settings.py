"""The field's standard arms: transfer settings (zero-shot, few-shot in the target, translate-train(-all),
translate-test) and model-selection policies (source dev, last, target-dev oracle, checkpoint and run averaging)."""

from __future__ import annotations

import csv
import re
import io

import pytest

from xltune.api import run_experiment
from xltune.config import load_config
from xltune.errors import XLTuneError
from xltune.store import Store

from tiny_data import LANGS, write_xnli_like  # noqa: E402  (tests/ is on sys.path)

QUIET = {"log": lambda *_: None}
SETTINGS = ["zero_shot", "few_shot_target", "translate_train", "translate_train_all", "translate_test"]


def base(model_dir, data, tmp_path, *more) -> list[str]:
    return [f"model.name_or_path={model_dir}", "method.name=finetune", "task.name=xnli", f"task.data_dir={data}",
            "train.split=dev", "train.shots=2", "train.epochs=2", "train.batch_size=6", "train.lr=1e-2",
            "eval.split=test", "seeds=[1]", f"store={tmp_path / 'r.sqlite'}", f"output_dir={tmp_path / 'runs'}",
            "save_checkpoint=false", *more]


@pytest.fixture()
def xnli(tmp_path):
    return write_xnli_like(tmp_path / "xnli", n_dev=30, n_test=9)


def test_every_setting_runs_and_is_its_own_variant(tiny_xglm_dir, xnli, tmp_path):
    for setting in SETTINGS:
        (res,) = run_experiment(load_config(None, base(tiny_xglm_dir, xnli, tmp_path, f"train.setting={setting}")),
                                **QUIET)
        assert {r.lang for r in res.results} == set(LANGS)
    with Store(tmp_path / "r.sqlite") as s:
        runs = {r["config"]["train"]["setting"]: r for r in s.runs()}
    assert len({r["variant"] for r in runs.values()}) == len(SETTINGS)  # never pooled with one another
    assert runs["zero_shot"]["oracle"] == "" and "setting" not in runs["zero_shot"]["extra"]
    for setting in ("translate_train", "translate_train_all", "translate_test"):  # human translations: an oracle
        assert runs[setting]["oracle"] == "translation"
        assert "[ORACLE-translation]" in runs[setting]["variant_label"]
    units = runs["translate_train"]["extra"]["setting"]["units"]
    assert set(units) == {"source", "de", "sw"} and units["de"]["targets"] == ["de"]
    assert units["de"]["train_examples"] == 6  # the 6 English shots, in German
    few = runs["few_shot_target"]["extra"]["setting"]["units"]
    assert few["sw"]["target_shots"] == 2 and len(few["sw"]["target_sample"]) == 6
    assert runs["translate_test"]["extra"]["setting"]["units"]["all"]["translated_test"] == {"de": 9, "sw": 9}


def test_translate_test_with_oracle_translations_scores_the_source_items(tiny_xglm_dir, xnli, tmp_path):
    """Oracle translation of a parallel test set into the source language is the source test set: every target
    then scores exactly what the source does (a sanity check of the plumbing, and what 'oracle' means)."""
    (res,) = run_experiment(load_config(None, base(tiny_xglm_dir, xnli, tmp_path, "train.setting=translate_test")),
                            **QUIET)
    acc = {r.lang: r.headline for r in res.results}
    assert acc["de"] == acc["sw"] == acc["en"]


def test_translations_by_a_translation_model_are_cached(tiny_xglm_dir, xnli, tmp_path, monkeypatch):
    pytest.importorskip("sentencepiece")
    from tiny_data import tiny_m2m

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    m2m = tiny_m2m(tmp_path / "m2m")
    sets = base(tiny_xglm_dir, xnli, tmp_path, "train.setting=translate_train", "train.translate.by=mt",
                f"train.translate.model={m2m}", "train.translate.max_new_tokens=6", "eval.languages=[en, de]")
    run_experiment(load_config(None, sets), **QUIET)
    cached = list((tmp_path / "cache" / "xltune" / "translations").rglob("en__de.jsonl"))
    assert len(cached) == 1 and len(cached[0].read_text().splitlines()) == 12  # 6 pairs x 2 segments
    import xltune.data.parallel as parallel

    def refuse(*_a, **_k):
        raise AssertionError("translated again instead of reading the cache")

    monkeypatch.setattr(parallel, "translate", refuse)
    run_experiment(load_config(None, sets + ["seeds=[1]", "train.epochs=1"]), **QUIET)  # same shots: cache only
    with Store(tmp_path / "r.sqlite") as s:
        runs = s.runs()
    assert all(r["oracle"] == "" for r in runs) and "machine translation" in runs[0]["extra"]["setting"]["translations"]


def test_token_tasks_refuse_translation_settings_clearly(tiny_xlmr_dir, tmp_path):
    folder = tmp_path / "ner"
    folder.mkdir()
    for split in ("dev", "test"):
        for lang in ("en", "de"):
            (folder / f"{split}-{lang}.tsv").write_text("Anna\tB-PER\nlebt\tO\n\nBerlin\tB-LOC\n", encoding="utf-8")
    cfg = load_config(None, [f"model.name_or_path={tiny_xlmr_dir}", "task.name=panx", f"task.data_dir={folder}",
                             "task.languages=[en, de]", "task.labels=[O, B-PER, I-PER, B-LOC, I-LOC]",
                             "train.split=dev", "train.shots=1",
                             "train.setting=translate_train", f"store={tmp_path / 'r.sqlite'}"])
    with pytest.raises(XLTuneError, match="translates sentence tasks.*projected_cross_entropy"):
        run_experiment(cfg, **QUIET)


@pytest.mark.parametrize("policy", ["checkpoint_average", "run_average"])
def test_averaging_policies_predict_alike_at_every_evaluation_batch_size(tiny_xglm_dir, xnli, tmp_path, policy):
    stores = {}
    for bs in (1, 7, 64):
        sets = base(tiny_xglm_dir, xnli, tmp_path / str(bs), f"train.dev.policy={policy}", f"eval.batch_size={bs}",
                    "seeds=[1, 2]", "train.epochs=3")
        run_experiment(load_config(None, sets), **QUIET)
        with Store(tmp_path / str(bs) / "r.sqlite") as s:
            runs = s.runs()
            stores[bs] = {(r["variant_label"], r["seed"], lang): s.predictions(r["run_id"], lang, "test")
                          for r in runs for lang in LANGS}
    assert stores[1] == stores[7] == stores[64]
    labels = {label for label, _, _ in stores[1]}
    if policy == "run_average":  # the seeds' runs, and their average as its own variant
        assert len(labels) == 2 and any("[average of seeds 1,2]" in lab for lab in labels)
    else:
        assert len(labels) == 1 and "dev.policy=checkpoint_average" in labels.pop()


def test_target_dev_selection_is_marked_oracle_in_tables_and_csv(tiny_xglm_dir, xnli, tmp_path):
    from xltune.report import build_report

    run_experiment(load_config(None, base(tiny_xglm_dir, xnli, tmp_path, "train.dev.policy=target_oracle")), **QUIET)
    run_experiment(load_config(None, base(tiny_xglm_dir, xnli, tmp_path)), **QUIET)
    paths = build_report(tmp_path / "r.sqlite", tmp_path / "rep", n_resamples=20, progress=False)
    rows = list(csv.DictReader(io.StringIO(paths["csv"].read_text())))
    oracle = {r["label"]: r["oracle"] for r in rows}
    assert sorted(oracle.values()) == ["", "target dev"] and any("dev=target[ORACLE]" in lab for lab in oracle)
    md = paths["markdown"].read_text()
    assert "dev=target[ORACLE]" in md


def test_report_compares_settings_per_language_group(tiny_xglm_dir, xnli, tmp_path):
    from xltune.report import build_report

    for setting in ("zero_shot", "translate_train"):
        run_experiment(load_config(None, base(tiny_xglm_dir, xnli, tmp_path, f"train.setting={setting}",
                                              "seeds=[1, 2]")), **QUIET)
    md = build_report(tmp_path / "r.sqlite", tmp_path / "rep", n_resamples=50, progress=False)["markdown"].read_text()
    assert "## Transfer settings" in md
    rows = [line for line in md.splitlines() if line.startswith("| xnli | finetune |")]
    groups = {line.split(" | ")[2] for line in rows}
    assert groups == {"high", "low"}  # en, de are high and sw low in XGLM's table
    tt = [line for line in rows if "translate_train [ORACLE: translation]" in line]
    assert len(tt) == 2 and all(re.search(r"[+-]\d+\.\d\d \[[+-]\d+\.\d\d, [+-]\d+\.\d\d\] \(2 seeds\)", line)
                                for line in tt)


def test_a_sweep_averages_the_seeds_it_ran_as_separate_jobs(tiny_xglm_dir, xnli, tmp_path):
    """A sweep runs each seed as its own job (one shard each), so no job sees all seeds: the driver averages them
    once every seed is in the store, exactly as one run with all seeds does."""
    from xltune.sweep import run_sweep

    sets = base(tiny_xglm_dir, xnli, tmp_path / "sweep", "train.dev.policy=run_average", "train.epochs=3")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("{}\n")
    run_sweep(cfg, ["seeds=1,2"], overrides=sets, **QUIET)
    run_experiment(load_config(None, base(tiny_xglm_dir, xnli, tmp_path / "one", "train.dev.policy=run_average",
                                          "train.epochs=3", "seeds=[1, 2]")), **QUIET)

    def averaged(store):
        with Store(store) as s:
            [avg] = [r for r in s.runs() if "[average of seeds 1,2]" in r["variant_label"]]
            return {lang: s.predictions(avg["run_id"], lang, "test") for lang in LANGS}

    assert averaged(tmp_path / "sweep" / "r.sqlite") == averaged(tmp_path / "one" / "r.sqlite")


def test_a_run_with_one_model_per_target_keeps_each_and_reuse_says_which(tiny_xglm_dir, xnli, tmp_path, capsys):
    """translate_train with checkpoints: one run folder per unit (OUTPUT/RUN_ID/UNIT, run.json naming its targets);
    predict by --store/--run says there are several models and how to take one; --run-dir of a unit predicts."""
    import json

    from xltune.cli import main

    (res,) = run_experiment(load_config(None, base(tiny_xglm_dir, xnli, tmp_path, "train.setting=translate_train",
                                                   "save_checkpoint=true")), **QUIET)
    folders = sorted(p for p in (tmp_path / "runs" / res.run_id).iterdir() if p.is_dir())
    targets = {json.loads((p / "run.json").read_text())["unit"]["targets"][0]: p.name for p in folders}
    assert targets == {"en": "source", "de": "de", "sw": "sw"}  # the source's own model answers for the source
    desc = json.loads((tmp_path / "runs" / res.run_id / "sw" / "run.json").read_text())
    assert desc["unit"] == {"name": "sw", "setting": "translate_train", "targets": ["sw"]}
    code = main(["predict", "--store", str(tmp_path / "r.sqlite"), "--run", res.run_id, "--input",
                 str(xnli / "test-sw.tsv"), "--out", str(tmp_path / "p.jsonl")])
    err = capsys.readouterr().err
    assert code == 2 and "one model per target language" in err and "--run-dir" in err and "Traceback" not in err
    assert not (tmp_path / "p.jsonl").exists()
    assert main(["predict", "--run-dir", str(tmp_path / "runs" / res.run_id / "sw"), "--input",
                 str(xnli / "test-sw.tsv"), "--out", str(tmp_path / "p.jsonl")]) == 0
    with Store(tmp_path / "r.sqlite") as s:
        stored = s.predictions(res.run_id, "sw", "test")
    rows = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert [(r["index"], r["gold"], r["label"]) for r in rows] == stored
