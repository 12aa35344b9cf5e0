"""Gain vs resource size / fertility correlation on hand-made aggregated rows."""

from __future__ import annotations

import math

import pytest
from scipy import stats as sps

from xltune.analysis.aggregate import AggRow
from xltune.analysis.correlation import gains, spearman
from xltune.analysis.resources import load_resource_table


def _row(method: str, lang: str, mean: float, shots: str = "16") -> AggRow:
    # a variant per (method, shots), as the store keys them
    return AggRow("xnli", "tiny", shots, f"{method}-{shots}", "test", "accuracy", lang, mean, math.nan, 1,
                  label=method, method=method)


def test_gain_vs_log_resources_skips_unseen_languages():
    base = {"en": 0.80, "de": 0.70, "sw": 0.50, "qu": 0.40, "yo": 0.35}
    lift = {"en": 0.01, "de": 0.03, "sw": 0.08, "qu": 0.10, "yo": 0.12}  # gain grows as data shrinks
    rows = [_row("finetune", lg, v) for lg, v in base.items()]
    rows += [_row("lora", lg, v + lift[lg]) for lg, v in base.items()]
    rows += [_row("lora", "de", 0.0, shots="32")]  # another cell: must not leak in
    g = gains(rows, "lora-16", "finetune-16")
    assert g == pytest.approx(lift)
    table = load_resource_table()
    c = spearman(g, table.log_tokens, "log10 tokens")
    assert c.n == 4 and c.skipped == ("yo",) and c.rho == pytest.approx(-1.0)
    # a perfect order of 4: the exact permutation p is 2/24, where scipy's asymptotic p says 0
    assert c.p_value == pytest.approx(2 / 24) and c.method == "exact permutation"
    assert sps.spearmanr([table.log_tokens(lg) for lg in c.langs], [g[lg] for lg in c.langs]).pvalue < 1e-6
    assert "1 language(s) without log10 tokens skipped (yo)" in c.describe()


def test_too_few_languages_says_so():
    c = spearman({"en": 0.1, "de": 0.2}, lambda lang: 1.0, "fertility")
    assert c.n == 2 and math.isnan(c.rho) and "too few" in c.describe()
