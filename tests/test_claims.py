"""Claims as checks: constructed stores where a claim is true, false or undecidable give the three verdicts;
config facts (XGLM-564M from KNOWN_CONFIGS, meta device); the paper's configs load and expand; a store filled by
real tiny runs gets a verdict with numbers for every claim."""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from xltune.claims import (CONTRADICTED, INCONCLUSIVE, NOT_TESTABLE, SUPPORTED, check_claims,
                           format_verdicts, load_claims)
from xltune.claims.core import FAILS, HOLDS
from xltune.cli import main
from xltune.errors import XLTuneError
from xltune.store import MetricRow, RunRecord, Store

HIGH = ["de", "en", "es", "fr", "zh"]  # >= 1 % of XGLM's CC100-XL
LOW = ["bg", "hi", "sw", "ur"]  # listed, below 1 %
CLAIMS = {c.id: c for c in load_claims()}


def _preds(n: int, correct: int, rng: np.random.Generator) -> list[tuple[int, str, str]]:
    """n examples with the same gold in every run (seeded by n) and exactly ``correct`` right, at random places."""
    gold = np.random.default_rng(n).integers(0, 3, n)
    ok = np.zeros(n, bool)
    ok[rng.choice(n, correct, replace=False)] = True
    pred = np.where(ok, gold, (gold + 1) % 3)
    return [(i, str(g), str(p)) for i, (g, p) in enumerate(zip(gold, pred, strict=True))]


def _write(store: Store, method: str, seed: int, acc: dict[str, float], n: int, rng, task: str = "xnli",
           objective: str = "none", shots: str = "16", model: str = "xglm", predictions: bool = True) -> None:
    preds = {lang: _preds(n, int(round(a * n)), rng) for lang, a in acc.items()}
    store.write_run(RunRecord(
        run_id=f"{task}-{model}-{shots}-{method}-{objective}-{seed}", seed=seed, task=task, method=method,
        objective=objective, model=model, shots=shots, source_langs=["en"], config={}, manifest={}, env={},
        metrics=[MetricRow(lang, "test", "accuracy", int(round(a * n)) / n, n) for lang, a in acc.items()],
        predictions={(lang, "test"): rows for lang, rows in preds.items()} if predictions else {},
    ))


def _store(tmp_path, arms: dict[tuple[str, str], dict[str, float]], n: int, seeds=(1, 2, 3), **kw):
    path = tmp_path / "r.sqlite"
    rng = np.random.default_rng(0)
    with Store(path) as s:
        for (method, objective), acc in arms.items():
            for seed in seeds:
                _write(s, method, seed, acc, n, rng, objective=objective, **kw)
    return path


def _check(path, claim_id: str, **params):
    claim = CLAIMS[claim_id]
    claim = dataclasses.replace(claim, params={**claim.params, **params})
    [v] = check_claims(path, claims=[claim], n_resamples=400)
    assert v.statistic and v.reason  # every verdict carries its numbers and why
    return v


# -- C1 / C6: paired difference of the language average against a margin ---------------------------------------
@pytest.mark.parametrize("claim_id,baseline,dp,base,n,expected", [
    ("C1", "finetune", 0.72, 0.70, 3000, SUPPORTED),      # +2 pts, CI well above -1
    ("C1", "finetune", 0.60, 0.70, 3000, CONTRADICTED),   # -10 pts, CI well below -1
    ("C1", "finetune", 0.70, 0.70, 40, INCONCLUSIVE),     # 0 pts on 40 examples: CI crosses -1
    ("C6", "prompt", 0.74, 0.70, 3000, SUPPORTED),        # deep better than input-only prompts
    ("C6", "prompt", 0.66, 0.70, 3000, CONTRADICTED),
    ("C6", "prompt", 0.70, 0.70, 40, INCONCLUSIVE),
])
def test_paired_difference_verdicts(tmp_path, claim_id, baseline, dp, base, n, expected):
    langs = ["de", "sw", "en"]
    path = _store(tmp_path, {("deep_prompt", "none"): dict.fromkeys(langs, dp),
                             (baseline, "none"): dict.fromkeys(langs, base)}, n)
    v = _check(path, claim_id)
    assert v.status == expected, v
    assert f"{(dp - base) * 100:+.2f}" in v.statistic  # the observed average difference, exactly
    if expected == INCONCLUSIVE:
        assert "crosses" in v.reason and "of 3 languages" in v.reason


def test_not_testable_names_the_missing_runs(tmp_path):
    path = _store(tmp_path, {("finetune", "none"): {"de": 0.7, "sw": 0.6}}, 50)
    v = _check(path, "C1")
    assert v.status == NOT_TESTABLE and "needs method=deep_prompt runs on any task" in v.reason
    # C4 needs all four tasks: supported on xnli alone is not enough -- inconclusive, naming what is untested
    path = _store(tmp_path / "b", {("deep_prompt", "none"): {"de": 0.72, "sw": 0.72},
                                   ("finetune", "none"): {"de": 0.70, "sw": 0.70}}, 3000)
    v = _check(path, "C4")
    assert v.status == INCONCLUSIVE and v.reason.startswith("untested: pawsx")
    assert "method=deep_prompt runs on pawsx" in v.reason and "xnli xglm K=16 supported" in v.reason
    assert [st for _, st, _ in v.settings] == [SUPPORTED, NOT_TESTABLE, NOT_TESTABLE, NOT_TESTABLE]


def test_no_predictions_is_not_testable_for_bootstrap_claims(tmp_path):
    path = _store(tmp_path, {("deep_prompt", "none"): {"de": 0.8, "sw": 0.8},
                             ("finetune", "none"): {"de": 0.7, "sw": 0.7}}, 100, predictions=False)
    v = _check(path, "C1")
    assert v.status == NOT_TESTABLE and "save_predictions" in v.reason


# -- C2: the largest per-language gain ----------------------------------------------------------------------------
@pytest.mark.parametrize("gains,n,expected", [
    ({"de": 0.029, "sw": 0.01, "en": 0.0}, 5000, SUPPORTED),   # max +2.9 (de), CI excludes 0
    ({"de": 0.0, "sw": 0.0, "en": -0.01}, 5000, CONTRADICTED),  # max 0, CI below 1.9
    ({"de": 0.0, "sw": 0.0, "en": 0.0}, 30, INCONCLUSIVE),      # 30 examples: CI far too wide
])
def test_max_gain_verdicts(tmp_path, gains, n, expected):
    path = _store(tmp_path, {("deep_prompt", "none"): {lg: 0.6 + g for lg, g in gains.items()},
                             ("finetune", "none"): dict.fromkeys(gains, 0.6)}, n, seeds=(1, 2, 3))
    v = _check(path, "C2")
    assert v.status == expected, v
    best = max(gains, key=gains.get)
    assert f"max {gains[best] * 100:+.2f} ({best})" in v.statistic


# -- C3: larger advantage for low-resource languages (permutation test over languages) ----------------------------
@pytest.mark.parametrize("low_gain,high_gain,expected", [
    ([5, 6, 4, 5.5], [0, 1, -0.5, 0.5, 0], SUPPORTED),
    ([0, 1, -0.5, 0.5], [5, 6, 4, 5.5, 5], CONTRADICTED),
    ([0, 5, 1, 4], [5, 0, 4, 1, 2], INCONCLUSIVE),
])
def test_group_difference_verdicts(tmp_path, low_gain, high_gain, expected):
    gain = dict(zip(LOW + HIGH, [g / 100 for g in low_gain + high_gain], strict=True))
    path = _store(tmp_path, {("deep_prompt", "none"): {lg: 0.6 + g for lg, g in gain.items()},
                             ("finetune", "none"): dict.fromkeys(gain, 0.6)}, 1000, predictions=False)
    v = _check(path, "C3")
    assert v.status == expected, v
    stored = {lg: (round((0.6 + g) * 1000) - 600) / 10 for lg, g in gain.items()}  # points, as written
    diff = np.mean([stored[lg] for lg in LOW]) - np.mean([stored[lg] for lg in HIGH])
    shown = float(re.search(r"low − high ([+-][\d.]+) pts", v.statistic).group(1))
    assert shown == pytest.approx(diff, abs=0.006) and "4 vs 5 langs" in v.statistic


def test_group_difference_needs_both_groups(tmp_path):
    path = _store(tmp_path, {("deep_prompt", "none"): dict.fromkeys(HIGH, 0.7),
                             ("finetune", "none"): dict.fromkeys(HIGH + ["sw"], 0.6)}, 100, predictions=False)
    v = _check(path, "C3")
    assert v.status == NOT_TESTABLE and "0 low-resource" in v.reason


# -- C5: correlation with fertility ---------------------------------------------------------------------------
def test_correlation_needs_tokstats_then_checks_the_sign(tmp_path):
    langs = ["de", "en", "es", "fr", "sw", "hi"]
    gain = dict(zip(langs, [0.01, 0.0, 0.02, 0.03, 0.05, 0.04], strict=True))
    path = _store(tmp_path, {("deep_prompt", "none"): {lg: 0.6 + g for lg, g in gain.items()},
                             ("finetune", "none"): dict.fromkeys(langs, 0.6)}, 1000, predictions=False)
    v = _check(path, "C5")
    assert v.status == NOT_TESTABLE and "xltune tokstats" in v.reason
    fert = dict(zip(langs, [1.4, 1.2, 1.5, 1.6, 2.2, 1.9], strict=True))  # same order as the gains: rho = +1
    csv = tmp_path / "tok.csv"
    csv.write_text("lang,n_sentences,n_words,n_chars,n_tokens,segmentation,script,fertility,split_share,unk_rate,"
                   "chars_per_token\n" + "".join(f"{lg},10,100,500,{int(f * 100)},word,,{f},0.3,0,4\n"
                                                 for lg, f in fert.items()), encoding="utf-8")
    [v] = check_claims(path, claims=[CLAIMS["C5"]], tokstats=csv)
    assert v.status == SUPPORTED and "ρ = +1.00" in v.statistic and "n = 6" in v.statistic
    neg = dataclasses.replace(CLAIMS["C5"], params={**CLAIMS["C5"].params, "expected_sign": -1})
    [v] = check_claims(path, claims=[neg], tokstats=csv)
    assert v.status == CONTRADICTED


# -- C9: dual-contrastive vs prompt tuning vs both ------------------------------------------------------------------
def test_objective_comparison(tmp_path):
    langs = ["en", "de", "sw", "ur"]
    arms = {("deep_prompt", "tcl+lcl"): dict.fromkeys(langs, 0.70), ("deep_prompt", "none"): dict.fromkeys(langs, 0.64),
            ("finetune", "tcl+lcl"): dict.fromkeys(langs, 0.60)}
    v = _check(_store(tmp_path, arms, 3000), "C9")
    assert v.status == SUPPORTED, v
    assert "on sw, ur" in v.statistic and "combined − prompt +6.00" in v.statistic and "prompt alone better" in v.statistic
    arms[("deep_prompt", "tcl+lcl")] = dict.fromkeys(langs, 0.62)
    v = _check(_store(tmp_path / "b", arms, 3000), "C9")
    assert v.status == CONTRADICTED
    v = _check(_store(tmp_path / "c", {k: a for k, a in arms.items() if k[1] == "none"}, 100), "C9")
    assert v.status == NOT_TESTABLE and "objective=tcl+lcl" in v.reason


# -- C7 / C8: config facts ------------------------------------------------------------------------------------
def test_trainable_share_of_xglm_564m(tmp_path, tiny_xglm_dir):
    path = _store(tmp_path, {("finetune", "none"): {"de": 0.7}}, 10)
    v = _check(path, "C7")
    assert v.status == HOLDS and "740,355 / 565,203,971 = 0.1310 %" in v.statistic and v.is_fact
    assert "deep_prompt, head" in v.details[0]
    v = _check(path, "C7", method_options={"prefix_length": 64})
    assert v.status == FAILS and "above the declared 0.135 %" in v.reason
    v = _check(path, "C7", method="finetune", method_options={})
    assert v.status == FAILS and "backbone" in v.reason  # the whole backbone trains
    v = _check(path, "C7", model=str(tiny_xglm_dir))  # a tiny model: the prompt is a big share of it
    assert v.status == FAILS
    v = _check(path, "C7", model="/nonexistent/model")
    assert v.status == NOT_TESTABLE


def test_model_config_facts(tmp_path):
    path = _store(tmp_path, {("finetune", "none"): {"de": 0.7}}, 10)
    v = _check(path, "C8")
    assert v.status == HOLDS and "24 layers, width 1024" in v.statistic and "vocab 256,008" in v.statistic
    v = _check(path, "C8", model="xlm-roberta-base")  # an encoder
    assert v.status == FAILS and "decoder-only" in v.reason
    v = _check(path, "C8", model="/nonexistent/model")
    assert v.status == NOT_TESTABLE


# -- loading and formatting -----------------------------------------------------------------------------------
def test_claims_file_errors_name_the_place(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("claims:\n  - id: X\n    text: t\n    check: paired_diference\n", encoding="utf-8")
    with pytest.raises(XLTuneError, match=r"c.yaml:2.*paired_difference"):
        load_claims(bad)
    bad.write_text("claims:\n  - id: X\n    text: t\n    check: max_gain\n    params: {expected_point: 3}\n",
                   encoding="utf-8")
    with pytest.raises(XLTuneError, match=r"c.yaml:2.*expected_points"):
        load_claims(bad)
    bad.write_text("claims:\n  - {id: X, text: t,\n\n    check: max_gain\n", encoding="utf-8")
    with pytest.raises(XLTuneError, match=r"c.yaml:5: not valid YAML \(.*started at line 2"):
        load_claims(bad)


def test_format_and_cli(tmp_path, capsys):
    path = _store(tmp_path, {("deep_prompt", "none"): {"de": 0.72, "sw": 0.72},
                             ("finetune", "none"): {"de": 0.70, "sw": 0.70}}, 500)
    md = tmp_path / "claims.md"
    assert main(["claims", "--store", str(path), "--markdown", str(md), "--resamples", "200"]) == 0
    out = capsys.readouterr().out
    assert all(f"C{i} " in out for i in range(1, 10)) and "SUPPORTED" in out
    assert "by construction: C7 holds, C8 holds (facts about configurations, not counted" in out
    assert "1 supported, 0 contradicted, 2 inconclusive, 4 not testable (from runs)" in out  # C7/C8 apart
    text = md.read_text(encoding="utf-8")
    assert text.startswith("# Claims") and "## C7:" in text and "| C8 | holds by construction |" in text


# -- the study's configs ----------------------------------------------------------------------------------------
PAPER = Path(__file__).resolve().parents[1] / "configs" / "paper"


def test_every_paper_config_loads_and_the_plan_expands_to_the_full_grid():
    from xltune.sweep import expand_plan, is_plan
    from xltune.config import load_config

    configs = [p for p in sorted(PAPER.glob("*.yaml")) if not is_plan(p)]
    assert {p.name for p in configs} >= {"deep_prompt.yaml", "finetune.yaml", "prompt.yaml", "deep_prompt_dcl.yaml",
                                         "finetune_dcl.yaml"}
    for p in configs:
        cfg = load_config(p)
        assert cfg.model.name_or_path == "facebook/xglm-564M" and cfg.train.languages == ["en"]
        assert len(cfg.seeds) >= 3 and cfg.task.data_dir is None
        if cfg.method.name in ("deep_prompt", "prompt"):
            length = cfg.method.prefix_length if cfg.method.name == "deep_prompt" else cfg.method.length
            assert length <= 15 and cfg.train.lr == pytest.approx(1e-2)
        else:
            assert 1e-5 <= cfg.train.lr <= 2e-5
    cells = expand_plan(PAPER / "study.yaml")
    grid = Counter((c.config.method.name, c.config.objective_tag, c.config.task.name, str(c.config.train.shots))
                   for c in cells)
    for task in ("xnli", "pawsx", "udpos", "panx"):
        for method in ("deep_prompt", "finetune"):
            assert grid[method, "none", task, "16"] == 3 and grid[method, "none", task, "all"] == 3
    assert grid["prompt", "none", "xnli", "16"] == 3
    assert grid["deep_prompt", "tcl+lcl", "xnli", "16"] == grid["finetune", "tcl+lcl", "xnli", "16"] == 3
    assert len(cells) == sum(grid.values()) == 60
    full_ft = next(c.config for c in cells if c.config.method.name == "finetune" and c.config.train.shots == "all")
    assert full_ft.train.lr == pytest.approx(2e-5) and full_ft.train.epochs == 2
    shared = expand_plan(PAPER / "study_shared.yaml")
    assert all(c.config.task.data_dir.endswith(("xnli", "pawsx", "udpos_xtreme", "panx")) for c in shared)


def test_paper_cells_run_tiny_and_every_claim_gets_a_verdict(tiny_xglm_dir, tmp_path, capsys):
    """Four cells of the study (deep_prompt and finetune on XNLI, seeds 1 and 2) on a tiny model and tiny files,
    then `xltune claims` on that store: a verdict with numbers for every claim."""
    from tiny_data import write_xnli_like

    from xltune.api import run_experiment
    from xltune.sweep import expand_plan
    data = write_xnli_like(tmp_path / "xnli", n_dev=24, n_test=30)
    store = tmp_path / "paper.sqlite"
    tiny = [f"model.name_or_path={tiny_xglm_dir}", f"task.data_dir={data}", "train.split=dev", "train.shots=2",
            "train.epochs=1", "train.batch_size=6", "train.dev.max_examples=6", "eval.max_examples=30",
            "seeds=[1, 2]", f"store={store}", f"output_dir={tmp_path / 'runs'}", "save_checkpoint=false"]
    cells = [c for c in expand_plan(PAPER / "study.yaml", tiny) if c.config.task.name == "xnli"
             and c.config.objective_tag == "none" and c.config.method.name in ("deep_prompt", "finetune")
             and c.config.train.shots == 2]
    assert len(cells) == 4
    for c in cells:
        run_experiment(c.config, log=lambda *_: None)
    md = tmp_path / "claims.md"
    assert main(["claims", "--store", str(store), "--markdown", str(md), "--resamples", "300"]) == 0
    out = capsys.readouterr().out
    verdicts = check_claims(store, n_resamples=300)
    assert [v.id for v in verdicts] == [f"C{i}" for i in range(1, 10)]
    by = {v.id: v for v in verdicts}
    assert by["C7"].status == HOLDS and by["C8"].status == HOLDS  # config facts of XGLM-564M
    # C1 / C2 on the tiny runs: two seeds per arm, so inconclusive whatever the numbers (they are not shown)
    assert by["C1"].status == INCONCLUSIVE and "needs 3 seeds per arm" in by["C1"].reason
    assert by["C2"].status == INCONCLUSIVE and "needs 3 seeds per arm" in by["C2"].reason
    assert by["C3"].status == NOT_TESTABLE and "1 low-resource (sw)" in by["C3"].reason
    assert by["C4"].status == INCONCLUSIVE and "untested: pawsx" in by["C4"].reason
    assert by["C5"].status == NOT_TESTABLE and "tokstats" in by["C5"].reason
    assert by["C6"].status == NOT_TESTABLE and "method=prompt" in by["C6"].reason
    assert by["C9"].status == NOT_TESTABLE and "objective=tcl+lcl" in by["C9"].reason
    assert all(v.statistic for v in verdicts)
    assert all(v.id in out for v in verdicts) and md.read_text(encoding="utf-8").count("\n## C") == 9
    print(format_verdicts(verdicts))  # shown with pytest -s


# -- the verdict rules a reviewer asks for (issue 14's constructed stores) -------------------------------------
def test_chance_level_runs_get_no_verdict(tmp_path):
    """A random model at ~33 % on 3-way NLI: whatever the difference, C1 is inconclusive 'runs at chance'."""
    langs = ["en", "de", "sw"]
    path = _store(tmp_path, {("deep_prompt", "none"): dict.fromkeys(langs, 0.34),
                             ("finetune", "none"): dict.fromkeys(langs, 0.33)}, 3000)
    v = _check(path, "C1")
    assert v.status == INCONCLUSIVE and "runs at chance" in v.reason and "en accuracy" in v.reason


def test_seed_disagreement_makes_c6_inconclusive(tmp_path):
    """Three seeds with differences +6, -4 and +2.5 points (paired t p = 0.66): no verdict, though the item-only
    interval was [+1.21, +1.78]."""
    langs = ["en", "de", "sw"]
    n = 3000
    rng = np.random.default_rng(0)
    path = tmp_path / "r.sqlite"
    with Store(path) as s:
        for seed, gain in zip((1, 2, 3), (0.06, -0.04, 0.025)):
            _write(s, "deep_prompt", seed, dict.fromkeys(langs, 0.60 + gain), n, rng)
            _write(s, "prompt", seed, dict.fromkeys(langs, 0.60), n, rng)
    v = _check(path, "C6")
    assert v.status == INCONCLUSIVE and "crosses" in v.reason, v
    assert "per-seed differences +6.00, -4.00, +2.50" in v.details[0] and "paired t p = 0.66" in v.details[0]


def test_a_missing_ner_setting_makes_c4_inconclusive_naming_it(tmp_path):
    path = tmp_path / "r.sqlite"
    rng = np.random.default_rng(1)
    with Store(path) as s:
        for task in ("xnli", "pawsx", "udpos"):
            for seed in (1, 2, 3):
                _write(s, "deep_prompt", seed, {"en": 0.75, "de": 0.72}, 3000, rng, task=task)
                _write(s, "finetune", seed, {"en": 0.70, "de": 0.70}, 3000, rng, task=task)
    v = _check(path, "C4")
    assert v.status == INCONCLUSIVE and v.reason.startswith("untested: panx")
    assert {lbl.split()[0]: st for lbl, st, _ in v.settings} == {
        "xnli": SUPPORTED, "pawsx": SUPPORTED, "udpos": SUPPORTED, "panx": NOT_TESTABLE}


def test_a_perfect_order_of_four_languages_is_not_significant(tmp_path):
    """Spearman over 4 languages in perfect order: the exact permutation p is 2/24 = 0.083 (scipy's asymptotic p
    said 0.0), so C5 is inconclusive."""
    langs = ["de", "en", "sw", "hi"]
    gain = dict(zip(langs, [0.01, 0.02, 0.03, 0.04], strict=True))
    path = _store(tmp_path, {("deep_prompt", "none"): {lg: 0.6 + g for lg, g in gain.items()},
                             ("finetune", "none"): dict.fromkeys(langs, 0.6)}, 1000)
    csv = tmp_path / "tok.csv"
    fert = dict(zip(langs, [1.1, 1.2, 1.3, 1.4], strict=True))
    csv.write_text("lang,n_sentences,n_words,n_chars,n_tokens,segmentation,script,fertility,split_share,unk_rate,"
                   "chars_per_token\n" + "".join(f"{lg},10,100,500,{int(f * 100)},word,,{f},0.3,0,4\n"
                                                 for lg, f in fert.items()), encoding="utf-8")
    [v] = check_claims(path, claims=[CLAIMS["C5"]], tokstats=csv, n_resamples=200)
    assert v.status == INCONCLUSIVE and "ρ = +1.00 (exact permutation p = 0.0833, n = 4)" in v.reason
