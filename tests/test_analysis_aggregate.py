"""Aggregation over seeds and the resource table, on stores filled through the public Store API."""

from __future__ import annotations

import csv
import io
import math

import numpy as np
import pytest

from xltune.analysis import aggregate as agg
from xltune.analysis import results
from xltune.analysis.resources import group_languages, load_resource_table, parse_resource_table
from xltune.errors import XLTuneError
from xltune.store import MetricRow, RunRecord, Store

VALUES = {  # method -> seed -> lang -> accuracy (hand values)
    "lora": {1: {"de": 0.70, "sw": 0.50}, 2: {"de": 0.74, "sw": 0.46}, 3: {"de": 0.69, "sw": 0.55}},
    "prompt": {1: {"de": 0.60, "sw": 0.40}},
}


def _fill(path) -> Store:
    store = Store(path)
    for method, seeds in VALUES.items():
        for seed, per in seeds.items():
            store.write_run(RunRecord(
                run_id=f"{method}-{seed}", seed=seed, task="xnli", method=method, objective="none", model="tiny",
                shots="16", source_langs=["en"], config={}, manifest={}, env={},
                metrics=[MetricRow(lang, "test", "accuracy", v, 100) for lang, v in per.items()],
            ))
    return store


def test_mean_std_match_numpy_and_language_average(tmp_path):
    with _fill(tmp_path / "r.sqlite") as store:
        rows = agg.aggregate(store.metrics())
    by = {(r.method, r.lang): r for r in rows}
    de = [VALUES["lora"][s]["de"] for s in (1, 2, 3)]
    assert by["lora", "de"].mean == pytest.approx(np.mean(de))
    assert by["lora", "de"].std == pytest.approx(np.std(de, ddof=1))
    assert by["lora", "de"].n == 3
    per_seed_avg = [np.mean(list(VALUES["lora"][s].values())) for s in (1, 2, 3)]
    assert by["lora", "avg"].mean == pytest.approx(np.mean(per_seed_avg))
    assert by["lora", "avg"].std == pytest.approx(np.std(per_seed_avg, ddof=1))
    assert math.isnan(by["prompt", "de"].std) and by["prompt", "de"].n == 1


def test_markdown_and_csv_tables(tmp_path):
    with _fill(tmp_path / "r.sqlite") as store:
        rows = agg.aggregate(store.metrics())
    md = agg.to_markdown(rows)
    assert "| task | model | shots | variant | split | metric | n |" in md and "avg" in md
    assert "60.0 ± –" in md  # one seed: std shown as a dash
    lora_line = next(line for line in md.splitlines() if "| lora |" in line)
    de = [VALUES["lora"][s]["de"] for s in (1, 2, 3)]
    assert f"{np.mean([70, 74, 69]):.1f} ± {np.std([70, 74, 69], ddof=1):.1f}" in lora_line
    with Store(tmp_path / "r.sqlite") as store:
        sel = results.select(store)
    for units, scale in (("percent", 100.0), ("fraction", 1.0)):  # the unit is stated on every row
        parsed = list(csv.DictReader(io.StringIO(results.to_csv(sel, units=units))))
        assert {r["lang"] for r in parsed} == {"de", "sw", "avg"} and {r["unit"] for r in parsed} == {units}
        one = next(r for r in parsed if r["method"] == "prompt" and r["lang"] == "de")
        assert one["std"] == "" and float(one["mean"]) == pytest.approx(0.6 * scale)
        lora = next(r for r in parsed if r["method"] == "lora" and r["lang"] == "de")
        assert float(lora["std"]) == pytest.approx(np.std(de, ddof=1) * scale) and lora["seeds"] == "1 2 3"


def test_packaged_xglm_table_and_grouping():
    table = load_resource_table()
    assert len(table.tokens) == 30 and table.tokens["en"] == 803526736124
    groups = group_languages(["en", "th", "bg", "sw", "qu", "yo", "zh-TW"], table)
    assert groups == {"high": ["en", "th", "zh-TW"], "low": ["bg", "sw", "qu"], "unseen": ["yo"], "unknown": []}
    flores = group_languages(["eng_Latn", "swh_Latn", "zho_Hant", "arz_Arab", "yor_Latn"], table)  # SIB-200 codes
    assert flores == {"high": ["eng_Latn"], "low": ["swh_Latn"], "unseen": ["yor_Latn"],
                      "unknown": ["zho_Hant", "arz_Arab"]}
    assert table.log_tokens("yo") is None and table.log_tokens("en") == pytest.approx(np.log10(803526736124))


def test_user_table_and_errors(tmp_path):
    table = parse_resource_table("# mine\nlang\ttokens\nxx\t900\nyy\t100\n")
    assert table.share["xx"] == pytest.approx(0.9) and table.group("yy") == "high"  # 10 % share
    assert table.group("yy", high_share=0.5, high_tokens=1e12) == "low"
    # A table may carry its own thresholds (the demo's synthetic world does).
    own = parse_resource_table("# high_share: 0.5\n# high_tokens: 1e12\nlang\ttokens\nxx\t900\nyy\t100\n")
    assert (own.group("xx"), own.group("yy"), own.high_share) == ("high", "low", 0.5)
    with pytest.raises(XLTuneError, match=r"<table>:1: high_share must be a number, got 'lots'"):
        parse_resource_table("# high_share: lots\nxx\t1\n")
    with pytest.raises(XLTuneError, match=r"t\.tsv:2"):
        bad = tmp_path / "t.tsv"
        bad.write_text("xx\t5\nyy\tmany\n")
        load_resource_table(bad)
