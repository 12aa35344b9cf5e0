"""Paired bootstrap and seed tests on stores filled through the public Store API with constructed predictions."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from xltune.analysis import significance as sig
from xltune.errors import XLTuneError
from xltune.store import MetricRow, RunRecord, Store


def _run(store: Store, method: str, seed: int, preds: dict[str, list[tuple[int, str, str]]], task: str = "xnli") -> None:
    metrics = []
    for lang, rows in preds.items():
        acc = float(np.mean([g == p for _, g, p in rows]))
        metrics.append(MetricRow(lang, "test", "accuracy", acc, len(rows)))
    store.write_run(RunRecord(
        run_id=f"{task}-{method}-{seed}", seed=seed, task=task, method=method, objective="none", model="tiny",
        shots="16", source_langs=["en"], config={}, manifest={}, env={"python": "3.11"}, metrics=metrics,
        predictions={(lang, "test"): rows for lang, rows in preds.items()},
    ))


def _rows_with_accuracy(n: int, acc: float, rng: np.random.Generator, seed_gold: int = 0) -> list[tuple[int, str, str]]:
    gold = np.random.default_rng(seed_gold).integers(0, 3, n)  # the test set: same gold for every run
    correct = np.zeros(n, bool)
    correct[rng.choice(n, int(round(acc * n)), replace=False)] = True
    pred = np.where(correct, gold, (gold + 1) % 3)
    return [(i, str(g), str(p)) for i, (g, p) in enumerate(zip(gold, pred))]


def test_known_difference_sign_and_ci_cover_truth(tmp_path):
    rng = np.random.default_rng(1)
    n = 2000
    with Store(tmp_path / "r.sqlite") as store:
        for seed in (1, 2, 3):
            gold_rows = _rows_with_accuracy(n, 0.7, rng)  # A: 70 % correct
            golds = [g for _, g, _ in gold_rows]
            b_correct = np.zeros(n, bool)
            b_correct[rng.choice(n, int(0.6 * n), replace=False)] = True  # B: 60 % correct, same gold
            b_rows = [(i, g, g if c else str((int(g) + 1) % 3)) for i, (g, c) in enumerate(zip(golds, b_correct))]
            _run(store, "lora", seed, {"de": gold_rows})
            _run(store, "finetune", seed, {"de": b_rows})
        cmp = sig.compare_methods(store, "xnli", "lora", "finetune", n_resamples=500, seed=0)
    [res] = cmp.per_lang
    assert res.diff == pytest.approx(0.10, abs=1e-9)  # exact: 1400/2000 - 1200/2000 per seed
    assert res.ci_low < 0.10 < res.ci_high and res.ci_low > 0
    assert res.p_value < 0.01
    assert res.seeds == (1, 2, 3) and res.n_examples == n
    st = cmp.seed_tests["de"]
    assert st.n == 3 and st.mean_diff == pytest.approx(0.10) and st.wilcoxon_p is None and "t" in st.tests


def test_identical_predictions_give_p_one_and_zero_ci(tmp_path):
    rng = np.random.default_rng(2)
    with Store(tmp_path / "r.sqlite") as store:
        for seed in range(5):
            preds = {lang: _rows_with_accuracy(300, 0.5, rng, k) for k, lang in enumerate(("de", "sw"))}
            _run(store, "lora", seed, preds)
            _run(store, "prompt", seed, preds)
        cmp = sig.compare_methods(store, "xnli", "lora", "prompt", n_resamples=200, seed=3)
    for res in [*cmp.per_lang, cmp.average]:
        assert res.p_value == 1.0 and res.ci_low == 0.0 and res.ci_high == 0.0 and res.diff == 0.0
    assert cmp.average.lang == "avg"
    assert cmp.seed_tests["avg"].t_p == 1.0 and cmp.seed_tests["avg"].wilcoxon_p == 1.0  # n = 5 runs Wilcoxon too


def test_language_average_and_seeded_reproducibility(tmp_path):
    rng = np.random.default_rng(3)
    with Store(tmp_path / "r.sqlite") as store:
        for seed in (0, 1):
            _run(store, "a", seed, {"de": _rows_with_accuracy(500, 0.8, rng), "sw": _rows_with_accuracy(400, 0.5, rng, 1)})
            _run(store, "b", seed, {"de": _rows_with_accuracy(500, 0.6, rng), "sw": _rows_with_accuracy(400, 0.5, rng, 1)})
        one = sig.compare_methods(store, "xnli", "a", "b", n_resamples=300, seed=7)
        two = sig.compare_methods(store, "xnli", "a", "b", n_resamples=300, seed=7)
    assert one == two  # same generator seed, same answer
    de, sw = one.per_lang
    assert one.average.diff == pytest.approx((de.diff + sw.diff) / 2)
    assert de.diff == pytest.approx(0.2) and de.p_value < 0.01


def test_span_f1_recomputed_from_entities_matches_seqeval():
    from seqeval.metrics import f1_score

    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-ORG", "O"], ["B-LOC", "O"]]
    pred = [["B-PER", "I-PER", "O", "O"], ["O", "B-ORG", "O"], ["B-PER", "O"]]
    rows = [(i, json.dumps(g), json.dumps(p)) for i, (g, p) in enumerate(zip(gold, pred))]
    st = sig.example_stats(rows, "f1")
    assert st.value() == pytest.approx(f1_score(gold, pred))
    acc = sig.example_stats(rows, "accuracy")  # token accuracy: 7 of 9 tags
    assert acc.value() == pytest.approx(7 / 9)


def test_seed_test_uses_wilcoxon_from_five_seeds():
    five = sig.paired_seed_test([0.7, 0.72, 0.69, 0.71, 0.73], [0.6, 0.61, 0.62, 0.6, 0.59])
    assert five.wilcoxon_p is not None and five.t_p < 0.01 and "Wilcoxon" in five.tests
    one = sig.paired_seed_test([0.7], [0.6])
    assert math.isnan(one.t_p) and one.wilcoxon_p is None


def test_unmatched_seeds_is_a_user_error(tmp_path):
    rng = np.random.default_rng(4)
    with Store(tmp_path / "r.sqlite") as store:
        _run(store, "a", 1, {"de": _rows_with_accuracy(10, 0.5, rng)})
        _run(store, "b", 2, {"de": _rows_with_accuracy(10, 0.5, rng)})
        with pytest.raises(XLTuneError, match="no matched seeds"):
            sig.compare_methods(store, "xnli", "a", "b")


def _fixed(n: int, correct: int, gold_seed: int = 0, shift: int = 0) -> list[tuple[int, str, str]]:
    """n items (gold seeded by gold_seed) with exactly ``correct`` right: the first ones after ``shift``."""
    gold = np.random.default_rng(gold_seed).integers(0, 3, n)
    ok = np.zeros(n, bool)
    ok[(np.arange(correct) + shift) % n] = True
    return [(i, str(g), str(g if c else (g + 1) % 3)) for i, (g, c) in enumerate(zip(gold, ok))]


def test_seed_variance_widens_the_interval(tmp_path):
    """Differences of +6, -4 and +2.5 points over three seeds: resampling items alone gives a tight interval
    around +1.5; resampling seeds too crosses zero, as the seed t-test's p = 0.66 says."""
    n = 4000
    base = 2000
    with Store(tmp_path / "r.sqlite") as store:
        for seed, gain in zip((1, 2, 3), (0.06, -0.04, 0.025)):
            _run(store, "deep", seed, {"de": _fixed(n, base + int(gain * n))})
            _run(store, "prompt", seed, {"de": _fixed(n, base)})
        cmp = sig.compare_methods(store, "xnli", "deep", "prompt", n_resamples=2000, seed=0)
    [res] = cmp.per_lang
    assert res.diff == pytest.approx(0.015, abs=1e-9)
    assert res.ci_low < 0 < res.ci_high  # the seeds disagree: no sign can be claimed
    assert cmp.seed_tests["de"].t_p == pytest.approx(0.66, abs=0.01)
    assert cmp.seeds_a == cmp.seeds_b == (1, 2, 3)


def test_parallel_test_sets_are_resampled_jointly(tmp_path):
    """Two languages holding the same items (translations): the average's interval is as wide as one language's,
    not 1/sqrt(2) of it as independent resampling would make it."""
    n = 1000
    with Store(tmp_path / "r.sqlite") as store:
        for seed in (1, 2, 3):
            rows_a, rows_b = _fixed(n, 700, shift=seed), _fixed(n, 600, shift=3 * seed)
            _run(store, "a", seed, {"de": rows_a, "sw": rows_a})
            _run(store, "b", seed, {"de": rows_b, "sw": rows_b})
            # a third language with other items: not parallel -> independent
            _run(store, "c", seed, {"de": rows_a, "sw": _fixed(n, 700, gold_seed=5, shift=seed)})
            _run(store, "d", seed, {"de": rows_b, "sw": _fixed(n, 600, gold_seed=5, shift=3 * seed)})
        joint = sig.compare_methods(store, "xnli", "a", "b", n_resamples=2000, seed=1)
        indep = sig.compare_methods(store, "xnli", "c", "d", n_resamples=2000, seed=1)
    width = lambda r: r.ci_high - r.ci_low  # noqa: E731
    assert joint.joint and not indep.joint
    assert width(joint.average) == pytest.approx(width(joint.per_lang[0]), rel=0.02)
    assert width(indep.average) < 0.85 * width(indep.per_lang[0])


def test_span_f1_point_estimate_is_the_headline_in_both_modes():
    from xltune.metrics import span_prf

    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-ORG", "O"], ["B-LOC", "O"], ["O", "B-PER"]]
    pred = [["B-PER", "I-PER", "O", "O"], ["O", "I-ORG", "O"], ["B-PER", "O"], ["O", "I-PER"]]
    rows = [(i, json.dumps(g), json.dumps(p)) for i, (g, p) in enumerate(zip(gold, pred))]
    for mode in ("conlleval", "strict"):
        assert sig.example_stats(rows, "f1", mode).value() == pytest.approx(span_prf(gold, pred, mode)["f1"])
    assert span_prf(gold, pred, "conlleval")["f1"] != span_prf(gold, pred, "strict")["f1"]  # the I-s differ


def test_spearman_exact_p_and_holm():
    from xltune.analysis.correlation import spearman_exact

    rho, p, how = spearman_exact([1, 2, 3, 4], [10, 20, 30, 40])
    assert rho == pytest.approx(1.0) and p == pytest.approx(2 / 24) and how == "exact permutation"
    from scipy import stats

    assert stats.spearmanr([1, 2, 3, 4], [10, 20, 30, 40]).pvalue < 1e-6  # the asymptotic p it replaces
    rho, p, _ = spearman_exact(list(range(7)), [3, 1, 4, 1.5, 5, 9, 2.6])
    ref = stats.permutation_test(([3, 1, 4, 1.5, 5, 9, 2.6],), lambda y: stats.spearmanr(range(7), y).statistic,
                                 permutation_type="pairings", n_resamples=10_000)  # exhaustive: 7! = 5040
    assert p == pytest.approx(ref.pvalue)
    assert sig.holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])


def test_variance_split_of_a_crossed_grid():
    shot_effect, init_effect = {1: 0.0, 2: 0.1, 3: -0.1}, {1: 0.01, 2: -0.01, 3: 0.0}
    values = {(s, i): 0.5 + shot_effect[s] + init_effect[i] for s in (1, 2, 3) for i in (1, 2, 3)}
    split = sig.variance_split(values)
    assert split.shot == pytest.approx(0.01) and split.init == pytest.approx(1e-4) and split.residual < 1e-12
    assert sig.variance_split({(1, 1): 0.5, (1, 2): 0.6}) is None  # one shot seed: nothing to split


def test_chance_check(tmp_path):
    n = 900
    with Store(tmp_path / "r.sqlite") as store:
        for seed in (1, 2, 3):
            _run(store, "chance", seed, {"en": _fixed(n, 300, shift=seed * 7)})
            _run(store, "good", seed, {"en": _fixed(n, 700, shift=seed)})
        (v_chance, _), (v_good, _) = (sig.find_variant(store, method=m) for m in ("chance", "good"))
        low = sig.chance_check(store, v_chance, "en", n_resamples=500)
        high = sig.chance_check(store, v_good, "en", n_resamples=500)
    gold = [g for _, g, _ in _fixed(n, 0)]
    assert low.baseline == pytest.approx(max(gold.count(c) for c in set(gold)) / n)
    assert not low.above and high.above and high.score == pytest.approx(700 / n)


def test_group_gains_and_their_contrast(tmp_path):
    """A gains 20 points in the low group (sw, yo) and 0 in the high group (de): the group CIs and the contrast
    (low - high) cover the truth, and the high group's gain is not called significant."""
    rng = np.random.default_rng(4)
    n = 1500
    with Store(tmp_path / "r.sqlite") as store:
        for seed in (1, 2, 3):
            a = {"de": _rows_with_accuracy(n, 0.7, rng), "sw": _rows_with_accuracy(n, 0.6, rng, 1),
                 "yo": _rows_with_accuracy(n, 0.55, rng, 2)}
            b = {"de": a["de"], "sw": _rows_with_accuracy(n, 0.4, rng, 1), "yo": _rows_with_accuracy(n, 0.35, rng, 2)}
            _run(store, "mad_x", seed, a)
            _run(store, "adapter", seed, b)
        va, _ = sig.find_variant(store, method="mad_x")
        vb, _ = sig.find_variant(store, method="adapter")
        high, low, contrast = sig.compare_groups(store, va, vb, {"high": ["de"], "low": ["sw", "yo"]},
                                                 n_resamples=400, seed=0)
    assert (high.group, high.langs, high.diff, high.p_value) == ("high", ("de",), 0.0, 1.0)
    assert low.langs == ("sw", "yo") and low.diff == pytest.approx(0.20) and low.ci_low > 0.15 and low.p_value < 0.01
    assert contrast.group == "low - high" and contrast.diff == pytest.approx(0.20)
    assert contrast.ci_low < 0.20 < contrast.ci_high and contrast.ci_low > 0
