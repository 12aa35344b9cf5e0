"""`xltune demo` end to end on a small world and a few pretraining steps (seconds): the table, the store, the
report, the cache, the resource sweep and the knobs' errors. The default world's numbers are in docs/synthetic.md;
a few-step model only proves the plumbing, not transfer."""

from __future__ import annotations

import re

import pytest

from xltune.cli import main
from xltune.data.synthetic import PretrainConfig, WorldConfig
from xltune.config import load_config
from xltune.demo import VARIANTS, DemoConfig, parse_knobs, resource_sweep, run_configs, select_languages
from xltune.errors import XLTuneError
from xltune.store import Store

WORLD = ["--world", "corpus_docs=800", "--world", "nli_sizes={train: 60, dev: 15, test: 30}",
         "--world", "ner_sizes={train: 10, dev: 5, test: 5}"]
PRETRAIN = ["--pretrain", "steps=4", "--pretrain", "d_model=16", "--pretrain", "heads=2", "--pretrain", "ffn_dim=32",
            "--pretrain", "vocab_size=300", "--pretrain", "batch_size=8", "--pretrain", "threads=1"]
LANGS = ["xlat", "xcyr", "xtfn"]


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def demo_args(tmp_path, *more):
    return ["demo", "--languages", ",".join(LANGS), "--shots", "4", "--seeds", "1,2", "--epochs", "1",
            "--methods", "finetune,deep_prompt", "--store", str(tmp_path / "demo.sqlite"),
            "--out", str(tmp_path / "report"), *WORLD, *PRETRAIN, *more]


def test_demo_command_end_to_end_and_cached_rerun(tmp_path, capsys, cache):
    assert main(demo_args(tmp_path)) == 0
    out = capsys.readouterr().out
    # The table: every language with its resource share and fertility, both methods with mean ± std.
    table = out[out.index("NLI accuracy (%)"):]
    for lang in LANGS:
        row = next(line for line in table.splitlines() if line.startswith(lang))
        assert len(re.findall(r"\d+\.\d ± \d+\.\d", row)) == 2, row
    assert "other languages clearly above chance: finetune " in table and "/2" in table
    stages = next(line for line in out.splitlines() if line.startswith("stage times:"))
    for stage in ("world + pretraining", "finetune", "deep_prompt", "report", "total"):
        assert stage in stages
    assert "pretrain_s" in out and "cached: False" in out
    import torch
    import transformers

    versions = next(line for line in out.splitlines() if line.startswith("versions: "))  # what the numbers came from
    assert f"torch {torch.__version__}" in versions and f"transformers {transformers.__version__}" in versions
    with Store(tmp_path / "demo.sqlite") as s:
        runs = s.runs()
        assert sorted((r["method"], r["seed"]) for r in runs) == [("deep_prompt", 1), ("deep_prompt", 2),
                                                                   ("finetune", 1), ("finetune", 2)]
        assert {r["source_langs"] for r in runs} == {"xlat"}  # the highest resource level is the source
        assert {m["lang"] for m in s.metrics(metric="accuracy")} == set(LANGS)
    assert (tmp_path / "report" / "report.html").is_file()
    # The world's own resource table, beside the store: the report groups the languages by it (none "unseen").
    tsv = (tmp_path / "demo-resources.tsv").read_text(encoding="utf-8").splitlines()
    assert tsv[1] == "# high_share: 0.3333" and [r.split("\t")[0] for r in tsv[3:]] == LANGS
    import csv

    with open(tmp_path / "demo-tokstats.csv", encoding="utf-8") as f:
        toks = {r["lang"]: r for r in csv.DictReader(f)}
    assert sorted(toks) == sorted(LANGS) and all(float(r["fertility"]) >= 1.0 for r in toks.values())
    report = (tmp_path / "report" / "report.md").read_text(encoding="utf-8")
    groups = dict(re.findall(r"^\| (x\w+) \| (high|low|unseen) \|", report, flags=re.M))
    assert groups["xlat"] == "high" and groups["xtfn"] == "low" and "unseen" not in groups.values()

    # Again: world and model come from the cache, runs from the store, and the same numbers are printed.
    assert main(demo_args(tmp_path)) == 0
    again = capsys.readouterr().out
    assert "cached: True" in again and "already in" in again
    (kept,) = cache.rglob("tokstats.csv")  # the tokenization table is computed once per world and reused
    assert kept.read_bytes() == (tmp_path / "demo-tokstats.csv").read_bytes()
    assert again[again.index("NLI accuracy (%)"):again.index("stage times")] == table[:table.index("stage times")]


def test_demo_with_language_modules_trains_them_once_per_world(tmp_path, capsys, cache):
    args = [a if a != "finetune,deep_prompt" else "adapter,mad_x,lang_prefix" for a in demo_args(tmp_path)]
    args += ["--module", "steps=2", "--module", "batch_size=4", "--module", "dev_lines=0", "--no-report"]
    assert main(args) == 0
    out = capsys.readouterr().out
    table = out[out.index("NLI accuracy (%)"):]
    assert all(m in table.splitlines()[1] for m in ("adapter", "mad_x", "lang_prefix"))
    for lang in LANGS:
        row = next(line for line in table.splitlines() if line.startswith(lang))
        assert len(re.findall(r"\d+\.\d ± \d+\.\d", row)) == 3, row
    assert out.count("module for ") == 2 * len(LANGS)  # an adapter and a prefix module per language
    gains = out[out.index("Gains of language modules"):]
    assert "high: xcyr; low: xtfn" in gains and re.search(r"mad_x - adapter +[+-]\d+\.\d \[", gains)
    assert "lang_prefix - deep_prompt" not in gains  # deep_prompt did not run
    # cached with the world: beside its data and model, reused by the next demo
    kinds = sorted(p.parent.parent.name.split("-")[0] for p in cache.rglob("modules/*/*/manifest.json"))
    assert kinds == ["adapter"] * len(LANGS) + ["prefix"] * len(LANGS)
    with Store(tmp_path / "demo.sqlite") as s:
        extra = {(r["variant_label"], r["seed"]): r["extra"] for r in s.runs()}
    facts = [e["per_language"] for (label, _), e in extra.items() if "language_modules" in e]
    assert len(facts) == 4 and all(f == {lang: {"module": lang} for lang in LANGS} for f in facts)
    assert main(args + ["--store", str(tmp_path / "again.sqlite")]) == 0
    assert "module for " not in capsys.readouterr().out


def test_resource_sweep_rebuilds_the_world_per_level(tmp_path):
    languages = select_languages(LANGS, WorldConfig().languages)
    world = parse_knobs(WORLD[1::2], WorldConfig, "--world")
    pretrain = PretrainConfig(**parse_knobs(PRETRAIN[1::2], PretrainConfig, "--pretrain"))
    demo = DemoConfig(shots=4, seeds=[1, 2], methods=["finetune"], epochs=1, store=str(tmp_path / "s.sqlite"),
                      report_dir=None)
    lines: list[str] = []
    out = resource_sweep(demo, languages, "xtfn=0.02,0.1,0.4", log=lines.append, world_overrides=world,
                         pretrain=pretrain)
    assert list(out) == [0.02, 0.1, 0.4]
    shares = [out[x]["share"] for x in out]
    assert shares == sorted(shares) and shares[0] < shares[-1]  # the language's corpus share follows its level
    assert all(len(out[x]["finetune"]) == 2 for x in out)
    # One store and one world per level.
    assert sorted(p.name for p in tmp_path.glob("s-xtfn-*.sqlite")) == ["s-xtfn-0.02.sqlite", "s-xtfn-0.1.sqlite",
                                                                        "s-xtfn-0.4.sqlite"]
    keys = {line for line in "\n".join(lines).splitlines() if "world: 3 languages" in line}
    assert len(keys) == 3
    table = lines[-1]
    assert table.startswith("xtfn: transfer accuracy") and "spearman" in table


def test_resource_sweep_pools_several_pretrainings(tmp_path):
    languages = select_languages(LANGS, WorldConfig().languages)
    world = parse_knobs(WORLD[1::2], WorldConfig, "--world")
    pretrain = PretrainConfig(**parse_knobs(PRETRAIN[1::2], PretrainConfig, "--pretrain"))
    demo = DemoConfig(shots=4, seeds=[1], methods=["deep_prompt"], epochs=1, store=str(tmp_path / "s.sqlite"),
                      report_dir=None)
    lines: list[str] = []
    out = resource_sweep(demo, languages, "xcyr=0.05,0.5", log=lines.append, world_overrides=world,
                         pretrain=pretrain, pretrain_seeds=[0, 1])
    assert [len(out[x]["deep_prompt"]) for x in out] == [2, 2]  # one run per pretraining seed, pooled
    assert len(list(tmp_path.glob("s-xcyr-*-p*.sqlite"))) == 4
    assert "over 2 pretraining x 1 seeds" in lines[-1]


@pytest.mark.parametrize("extra, message", [
    (["--resource-sweep", "xtfn=low,high"], "two or more positive levels"),
    (["--resource-sweep", "xtfn=0.1"], "two or more positive levels"),
    (["--resource-sweep", "xzzz=0.1,0.2"], "unknown demo language 'xzzz'"),
    (["--resource-sweep", "xlat=0.1,0.2"], "xlat is the source language"),
    (["--source", "xgeo"], "unknown demo source language 'xgeo'"),
    (["--world", "corpus_doc=5"], "unknown --world key 'corpus_doc'"),
    (["--world", "qa_share=2"], "qa_share must be in [0, 1]"),
    (["--pretrain", "steps=0"], "steps must be > 0"),
    (["--pretrain", "steps"], "--pretrain expects KEY=VALUE"),
    (["--pretrain", "steps=many"], "--pretrain: steps must be an integer, got 'many'"),
    (["--world", "nli_sizes=3"], "--world: nli_sizes must be a mapping, got 3"),
    (["--world", "nli_sizes={train: many}"], "--world: nli_sizes[train] must be an integer, got 'many'"),
    (["--resource", "xtfn=lots"], "--resource xtfn: expected a number"),
    (["--resource", "xtfn=0"], "the level must be > 0"),
    (["--languages", "xlat"], "at least two languages"),
    (["--shots", "300"], "1..256"),
    (["--seeds", "1,x"], "--seeds expects comma-separated integers"),
    (["--resource-sweep", "xtfn=0.1,0.2", "--pretrain-seeds", "a"], "--pretrain-seeds expects"),
    (["--settings", "translate_tarin"], "unknown demo setting 'translate_tarin'"),
])
def test_bad_demo_arguments_are_clear_errors_before_any_build(tmp_path, capsys, cache, extra, message):
    args = demo_args(tmp_path)
    if extra[0] == "--languages":
        i = args.index("--languages")
        args[i + 1] = extra[1]
        extra = []
    assert main(args + extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("xltune: error:") and message in err, err
    assert not cache.exists()  # nothing was built


def test_parse_knobs_reads_yaml_values():
    assert parse_knobs(["seed=3", "nli_sizes={train: 6, dev: 3, test: 3}"], WorldConfig, "--world") == {
        "seed": 3, "nli_sizes": {"train": 6, "dev": 3, "test": 3}}
    assert parse_knobs(["lr=1e-2", "steps=10"], PretrainConfig, "--pretrain") == {"lr": 0.01, "steps": 10}
    with pytest.raises(XLTuneError, match="valid: .*steps"):
        parse_knobs(["step=3"], PretrainConfig, "--pretrain")


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_demo_variant_is_a_valid_run_config(tmp_path, variant):
    cfg = load_config(None, run_configs(tmp_path / "data", tmp_path / "model", LANGS, "xlat", DemoConfig(), variant,
                                       LANGS[1:]))
    assert cfg.method.name == {"adapter": "mad_x"}.get(variant, variant.split("+")[0]) and cfg.train.shots == 256
    assert (cfg.objective_tag != "none") == variant.endswith("+tcl+lcl")
    if variant.endswith("+tcl+lcl"):
        assert cfg.train.translations.languages == LANGS[1:]


def test_demo_compares_transfer_settings(tmp_path, capsys, cache):
    """--settings: each method also with translate-train and translate-test (the world's own translations)."""
    assert main(demo_args(tmp_path, "--methods", "finetune", "--settings", "zero_shot,translate_train,translate_test",
                          "--no-report")) == 0
    table = capsys.readouterr().out.split("NLI accuracy (%)")[1]
    head = table.splitlines()[1]
    assert "finetune [translate_train]" in head and "finetune [translate_test]" in head
    with Store(tmp_path / "demo.sqlite") as s:
        settings = {(r["config"]["train"]["setting"], r["oracle"]) for r in s.runs()}
    assert settings == {("zero_shot", ""), ("translate_train", "translation"), ("translate_test", "translation")}
