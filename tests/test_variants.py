"""Variants: a configuration is its own experiment. Run identity survives upgrades, stores written by xltune 0.1
migrate in place, and tables, CSV, bootstrap and claims never pool two variants."""

from __future__ import annotations

import csv
import dataclasses
import io
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest

from xltune import variants
from xltune.analysis import aggregate as agg
from xltune.api import run_experiment
from xltune.config import load_config
from xltune.errors import XLTuneError
from xltune.store import Store

from tiny_data import write_xnli_like  # noqa: E402  (tests/ is on sys.path)

FIXTURES = Path(__file__).parent / "fixtures"
sys.path.insert(0, str(FIXTURES))
from v1_configs import STORE_NAME, base, runs as v1_runs  # noqa: E402

QUIET = {"log": lambda *_: None}


def test_canonical_variant_drops_defaults_and_excluded_fields():
    cfg = load_config(None, ["model.name_or_path=/m", "method.name=lora", "method.r=4", "train.lr=0.03",
                             "seeds=[1, 2, 3]", "store=x.sqlite", "eval.batch_size=7", "name=my lora"])
    canon = variants.canonical(cfg)
    assert canon == {"schema": variants.SCHEMA_VERSION, "model": {"name_or_path": "/m"},
                     "method": {"name": "lora", "r": 4}, "train": {"lr": 0.03}}
    assert variants.label(cfg) == "my lora"  # the config's name, when it has one
    cfg.name = None
    assert variants.label(cfg) == "lora r=4 lr=0.03"


def test_adding_a_defaulted_field_changes_no_run_key(monkeypatch):
    """A method gains a knob with a default (as deep_prompt gained prefix_positions): no key moves."""
    from xltune.methods import METHODS
    from xltune.methods.deep_prompt import DeepPromptSettings

    configs = [load_config(None, ["model.name_or_path=/m"] + sets) for sets in (
        [], ["method.prefix_length=8", "train.lr=0.03"], ["method.prefix_positions=keep"],
        ["objectives=[{name: cross_entropy}, {name: label_contrast, weight: 0.5}]"])]
    before = [c.run_key(s) for c in configs for s in (1, 2)]

    @dataclasses.dataclass
    class Grown(DeepPromptSettings):
        prefix_init: str = "normal"  # the new field, at its default

    spec = METHODS.get("deep_prompt")
    monkeypatch.setitem(METHODS._items, "deep_prompt", dataclasses.replace(spec, settings=Grown))
    again = [load_config(None, base=c.to_dict()) for c in configs]
    assert all(type(c.method) is Grown for c in again)
    assert [c.run_key(s) for c in again for s in (1, 2)] == before
    changed = load_config(None, ["model.name_or_path=/m", "method.prefix_init=uniform"])
    assert changed.run_key(1) != before[0]  # a non-default value is a different variant


@pytest.fixture()
def v1_store(tmp_path) -> Path:
    """A copy of the store xltune 0.1 wrote (tests/fixtures/make_v1_store.py)."""
    path = tmp_path / STORE_NAME
    shutil.copy(FIXTURES / STORE_NAME, path)
    return path


def _counts(path) -> tuple[int, int, int]:
    conn = sqlite3.connect(str(path))
    try:
        return tuple(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("runs", "metrics", "predictions"))
    finally:
        conn.close()


def test_store_of_xltune_0_1_migrates_in_place_and_its_runs_are_skipped_on_rerun(v1_store):
    before = _counts(v1_store)
    with Store(v1_store) as s:
        rows = s.runs()
    assert _counts(v1_store) == before == (8, 24, 144)  # nothing lost
    assert all(r["variant"] and r["variant_label"] and r["run_key"] for r in rows)
    by_method = {}
    for r in rows:
        by_method.setdefault(r["method"], set()).add(r["variant_label"])
    assert by_method["deep_prompt"] == {"deep_prompt prefix_length=4 epochs=2 batch_size=6 head_dropout=0",
                                        "deep_prompt prefix_length=4 epochs=2 lr=0.3 batch_size=6 head_dropout=0"}
    assert by_method["lora"] == {"lora r=4 epochs=2 lr=0.001 batch_size=6 head_dropout=0"}  # lora_r read as r
    tcl = next(r for r in rows if r["objective"] == "tcl+lcl")
    assert "tcl.weight=0.5" in tcl["variant_label"] and "translations.languages=de,sw" in tcl["variant_label"]
    kd = next(r for r in rows if r["objective"] == "kd")
    assert kd["variant_label"].startswith("finetune+kd")
    # today's xltune reruns the very configs of 0.1 (old keys and all): every run is found, none redone
    teacher = None
    for overrides, kind in v1_runs():
        cfg = load_config(None, overrides + [f"store={v1_store}"])
        if kind == "kd":
            from xltune.distill import UnlabelledSource, distill

            results = distill(teacher, [UnlabelledSource("de", split="dev")], cfg, temperature=2.0, max_examples=6,
                              **QUIET)
        else:
            results = run_experiment(cfg, **QUIET)
        assert results and all(r.skipped for r in results), overrides
        if kind == "teacher":
            teacher = results[0].run_id
    assert _counts(v1_store) == before
    # ... and the learning-rate search is two rows of two seeds, not one row of four
    with Store(v1_store) as s:
        cells = [r for r in agg.aggregate(s.metrics(method="deep_prompt")) if r.lang == agg.AVG]
    assert sorted((r.n, r.seeds) for r in cells) == [(2, (1, 2)), (2, (1, 2))]


def test_learning_rate_search_is_two_rows_in_report_and_csv(tiny_xglm_dir, tmp_path, capsys):
    """deep_prompt at lr 1e-2 and 3e-1, seeds 1 and 2 each, in one store: two rows with n = 2 each."""
    from xltune.report import build_report

    from xltune.cli import main

    data = write_xnli_like(tmp_path / "xnli", n_dev=24, n_test=6)
    store = tmp_path / "r.sqlite"
    for method in (["method.name=deep_prompt", "train.lr=1e-2"], ["method.name=deep_prompt", "train.lr=3e-1"],
                   ["method.name=finetune", "train.lr=1e-2"]):
        run_experiment(load_config(None, [
            f"model.name_or_path={tiny_xglm_dir}", *method, "method.prefix_length=4",
            "task.name=xnli", f"task.data_dir={data}", "train.split=dev", "train.shots=2", "train.epochs=1",
            "train.batch_size=6", "eval.split=test", "seeds=[1, 2]", f"store={store}",
            f"output_dir={tmp_path / 'runs'}", "save_checkpoint=false"]), **QUIET)
    paths = build_report(store, tmp_path / "rep", n_resamples=50, progress=False, where=["method.name=deep_prompt"])
    table = list(csv.DictReader(io.StringIO(paths["csv"].read_text())))
    avg = [r for r in table if r["lang"] == "avg"]
    assert len(avg) == 2 and all(r["n"] == "2" and r["seeds"] == "1 2" for r in avg)
    assert {r["label"] for r in avg} == {"deep_prompt prefix_length=4 epochs=1 batch_size=6",
                                         "deep_prompt prefix_length=4 epochs=1 lr=0.3 batch_size=6"}
    md = paths["markdown"].read_text()
    rows = [line for line in md.splitlines() if line.startswith("| deep_prompt")]
    assert {line.split(" | ")[1] for line in rows[:2]} == {"2"}  # n = 2 in both rows of the results table
    assert any(line.startswith("| deep_prompt lr=0.3 |") for line in rows)  # labels say what differs
    # --where / --variant choose: one variant left, n = 2
    paths = build_report(store, tmp_path / "rep2", n_resamples=50, progress=False, where=["train.lr=0.3"])
    avg = [r for r in csv.DictReader(io.StringIO(paths["csv"].read_text())) if r["lang"] == "avg"]
    assert len(avg) == 1 and avg[0]["n"] == "2" and "lr=0.3" in avg[0]["label"]
    with pytest.raises(XLTuneError, match="--where train.lrr: no stored run has this key; close ones: train.lr"):
        build_report(store, tmp_path / "rep3", progress=False, where=["train.lrr=0.3"])
    # the claims never pool the two deep_prompt variants: they say which there are; --where / --variant pick one
    capsys.readouterr()
    assert main(["claims", "--store", str(store), "--resamples", "50"]) == 0
    out = capsys.readouterr().out
    assert "2 variants of deep_prompt" in out and "choose one with --variant LABEL or --where KEY=VALUE" in out
    assert main(["claims", "--store", str(store), "--resamples", "50", "--where", "train.lr=0.01"]) == 0
    out = capsys.readouterr().out
    assert "2 variants of deep_prompt" not in out and "deep_prompt − finetune" in out
    with Store(store) as s:
        (ft,) = {r["variant_label"] for r in s.runs(method="finetune")}
    assert main(["claims", "--store", str(store), "--resamples", "50", "--variant", avg[0]["label"], "--variant",
                 ft]) == 0
    out = capsys.readouterr().out
    assert "2 variants of deep_prompt" not in out and "deep_prompt − finetune" in out


def test_labels_shorten_to_what_differs():
    labels = {"a": "deep_prompt prefix_length=4 lr=0.01 epochs=2", "b": "deep_prompt prefix_length=4 lr=0.3 epochs=2",
              "c": "finetune lr=0.01 epochs=2"}
    assert variants.distinguishing_labels(labels) == {
        "a": "deep_prompt prefix_length=4 lr=0.01", "b": "deep_prompt prefix_length=4 lr=0.3",
        "c": "finetune lr=0.01"}
    named = variants.distinguishing_labels({"a": "deep_prompt lr=0.3", "b": "my own name"})
    assert named == {"a": "deep_prompt lr=0.3", "b": "my own name"}  # nothing shared: nothing dropped
    same = variants.distinguishing_labels({"abcdef123": "finetune", "fedcba321": "finetune"})
    assert same == {"abcdef123": "finetune #abcdef", "fedcba321": "finetune #fedcba"}


def test_fixture_configs_are_the_old_keys():
    """The fixture's configs use xltune 0.1's keys (flat lora_r, the objective section): the migration path."""
    keys = " ".join(" ".join(o) for o, _ in v1_runs())
    assert "method.lora_r" in keys and "objective.translation_contrast" in keys and base()[0].startswith("model.")


def test_shot_seed_fixes_the_sample_across_initialisation_seeds(tiny_xglm_dir, tmp_path):
    """train.shot_seed: seeds 1 and 2 train on one shot sample (different initialisations), as seeds of one variant
    with their own run keys; each source language draws its own sample."""
    data = write_xnli_like(tmp_path / "xnli", n_dev=30, n_test=6)
    base = [f"model.name_or_path={tiny_xglm_dir}", "method.name=finetune", "task.name=xnli", f"task.data_dir={data}",
            "train.split=dev", "train.shots=2", "train.epochs=1", "train.batch_size=6", "eval.split=test",
            f"store={tmp_path / 'r.sqlite'}", f"output_dir={tmp_path / 'runs'}", "save_checkpoint=false"]
    fixed = load_config(None, base + ["train.shot_seed=7", "seeds=[1, 2]"])
    free = load_config(None, base + ["seeds=[1, 2]"])
    assert variants.variant_id(fixed) == variants.variant_id(free)  # the same experiment
    assert len({fixed.run_key(1), fixed.run_key(2), free.run_key(1), free.run_key(2)}) == 4
    run_experiment(fixed, **QUIET)
    run_experiment(load_config(None, base + ["seeds=[1]", "train.languages=[en, de]"]), **QUIET)
    with Store(tmp_path / "r.sqlite") as s:
        runs = {(r["seed"], r["shot_seed"], r["source_langs"]): r for r in s.runs()}
    ids = [runs[(seed, 7, "en")]["manifest"]["languages"]["en"]["ids"] for seed in (1, 2)]
    assert ids[0] == ids[1]  # one shot sample, two initialisations
    two = runs[(1, 1, "en,de")]["manifest"]["languages"]
    idx = [sorted(int(i.rsplit("/", 1)[-1]) for i in two[lang]["ids"]) for lang in ("en", "de")]
    assert idx[0] != idx[1]  # parallel pools, but not the same lines in both languages
