"""Is variant A better than variant B? A two-level (seed-aware) paired bootstrap, a paired test over seeds, the
check that a run is above chance, and exact tests for small samples.

**Two-level paired bootstrap** (the hierarchical bootstrap: Davison & Hinkley 1997, sec. 3.8; Bouthillier et al.
2021, "Accounting for variance in machine learning benchmarks"). A score difference has two sources of noise: the
test items and the training run (seed: shot sample, initialisation, data order). Resampling items for fixed seeds
(Koehn 2004; Berg-Kirkpatrick et al. 2012) ignores the second, so three seeds at +6, −4 and +2.5 points look like a
sure +1.5. Each resample here draws the *seeds* with replacement (A seed s stays paired with B seed s: they share
their shots), then the *items* with replacement (the same items for both arms and every seed), and takes the mean
over the drawn seeds of metric(A) − metric(B). With one seed only the item level is left, and the claims refuse to
decide on it (see docs/claims.md).

**The language average.** XNLI, PAWS-X and SIB-200 test sets are translations of the same items, so their
languages' scores are not independent: when every language holds the same item ids with the same gold labels, the
items are drawn once per resample for all languages (jointly); otherwise each language is drawn on its own.

Metrics are recomputed on each resample from per-example sufficient statistics, each metric being
sum(num) / sum(den) over examples: sentence accuracy (num = correct, den = 1); token accuracy (correct tags / tags);
span F1 (num = 2 tp, den = 2 tp + fp + fn: micro F1, with tp/fp/fn per sentence from
:func:`xltune.metrics.span_counts` in the run's own ``eval.ner_mode``: the point estimate is the stored headline).

Two-sided p = min(1, 2 min((#{d* <= 0} + 1) / (R + 1), (#{d* >= 0} + 1) / (R + 1))) from the bootstrap
distribution d*; the 95 % CI is its 2.5 / 97.5 percentiles. Identical predictions give d* = 0: p = 1, CI [0, 0].
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from ..errors import XLTuneError
from ..store import Store
from . import N_RESAMPLES
from .aggregate import AVG

CHUNK = 100  # resamples per block: bounds memory at CHUNK x n_examples indices
TOKEN_METRICS = ("accuracy", "f1", "precision", "recall")


@dataclass(frozen=True)
class ExampleStats:
    """Per-example numerator/denominator of a ratio metric, aligned by example index."""

    idx: np.ndarray
    gold: tuple[str, ...]
    num: np.ndarray
    den: np.ndarray

    def value(self) -> float:
        d = self.den.sum()
        return float(self.num.sum() / d) if d > 0 else 0.0

    def take(self, k: np.ndarray) -> ExampleStats:
        return ExampleStats(self.idx[k], tuple(self.gold[i] for i in k), self.num[k], self.den[k])


@dataclass(frozen=True)
class BootstrapResult:
    lang: str
    metric: str
    diff: float  # observed metric(A) - metric(B), seed-averaged
    ci_low: float
    ci_high: float
    p_value: float
    n_examples: int
    seeds: tuple[int, ...]
    n_resamples: int
    p_holm: float | None = None  # Holm-adjusted over a comparison's languages (per-language results)


@dataclass(frozen=True)
class SeedTest:
    """Paired test over matched seeds of the stored metric values."""

    n: int
    mean_diff: float
    t_p: float  # paired t-test (scipy.stats.ttest_rel); NaN below 2 seeds
    wilcoxon_p: float | None  # Wilcoxon signed-rank (scipy.stats.wilcoxon), only for n >= 5
    tests: str  # which tests ran, for tables
    diffs: tuple[float, ...] = ()  # per seed


@dataclass(frozen=True)
class Comparison:
    task: str
    method_a: str  # the variants' labels (a variant is one configuration; see xltune.variants)
    method_b: str
    split: str
    metric: str
    per_lang: list[BootstrapResult]
    average: BootstrapResult | None
    seed_tests: dict[str, SeedTest]  # lang (and "avg") -> test
    skipped: list[str]  # languages without predictions for both methods
    joint: bool = False  # the language average resampled items jointly (parallel test sets)
    seeds_a: tuple[int, ...] = ()  # every seed each variant has (the comparison uses the matched ones)
    seeds_b: tuple[int, ...] = ()


@dataclass(frozen=True)
class ChanceCheck:
    """Is a variant's score on a language above the majority-class baseline (two-level bootstrap)?"""

    lang: str
    metric: str
    score: float
    baseline: float  # majority-class accuracy, or 0 for span F1 (all-O predictions find no entity)
    ci_low: float  # of score - baseline
    ci_high: float
    seeds: tuple[int, ...]

    @property
    def above(self) -> bool:
        return self.ci_low > 0

    def describe(self) -> str:
        return (f"{self.lang} {self.metric} {self.score * 100:.1f} vs majority baseline {self.baseline * 100:.1f} "
                f"(difference CI [{self.ci_low * 100:+.1f}, {self.ci_high * 100:+.1f}], seeds {list(self.seeds)})")


def _is_json_list(s: str) -> bool:
    return s.startswith("[")


def example_stats(rows: Sequence[tuple[int, str, str]], metric: str, ner_mode: str = "conlleval") -> ExampleStats:
    """Sufficient statistics of ``metric`` for stored prediction rows (idx, gold, pred)."""
    from ..metrics import span_counts

    if not rows:
        raise XLTuneError("no predictions to score")
    idx = np.array([r[0] for r in rows], dtype=np.int64)
    gold = tuple(r[1] for r in rows)
    if not _is_json_list(rows[0][1]):
        if metric != "accuracy":
            raise XLTuneError(f"bootstrap supports accuracy for sentence tasks, not {metric!r}")
        num = np.array([g == p for _, g, p in rows], dtype=float)
        return ExampleStats(idx, gold, num, np.ones_like(num))
    if metric not in TOKEN_METRICS:
        raise XLTuneError(f"bootstrap supports {', '.join(TOKEN_METRICS)} for token tasks, not {metric!r}")
    golds = [json.loads(g) for _, g, _ in rows]
    preds = [json.loads(p) for _, _, p in rows]
    if metric == "accuracy":
        num = np.array([sum(a == b for a, b in zip(g, p, strict=False)) for g, p in zip(golds, preds)], dtype=float)
        return ExampleStats(idx, gold, num, np.array([len(g) for g in golds], dtype=float))
    counts = np.array(span_counts(golds, preds, ner_mode or "conlleval"), dtype=float).reshape(-1, 3)
    tp, fp, fn = counts[:, 0], counts[:, 1], counts[:, 2]
    num, den = {"f1": (2 * tp, 2 * tp + fp + fn), "precision": (tp, tp + fp), "recall": (tp, tp + fn)}[metric]
    return ExampleStats(idx, gold, num, den)


def _align(a: ExampleStats, b: ExampleStats, where: str) -> tuple[ExampleStats, ExampleStats]:
    """Restrict both to the example indices they share; the gold labels must agree there."""
    common, ia, ib = np.intersect1d(a.idx, b.idx, return_indices=True)
    if common.size == 0:
        raise XLTuneError(f"{where}: the two runs share no test example indices")
    for i, j in zip(ia, ib, strict=True):
        if a.gold[i] != b.gold[j]:
            raise XLTuneError(f"{where}: gold labels differ at example {a.idx[i]} — were the runs scored on the same data?")
    return a.take(ia), b.take(ib)


def _ratio(num: np.ndarray, den: np.ndarray, idx: np.ndarray) -> np.ndarray:
    n, d = num[idx].sum(axis=1), den[idx].sum(axis=1)
    return np.divide(n, d, out=np.zeros_like(n, dtype=float), where=d > 0)


def summarize(observed: float, diffs: np.ndarray) -> tuple[float, float, float]:
    """(ci_low, ci_high, two-sided p) from a bootstrap distribution of the difference."""
    r = diffs.size
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    p = min(1.0, 2 * min((np.sum(diffs <= 0) + 1) / (r + 1), (np.sum(diffs >= 0) + 1) / (r + 1)))
    return float(lo), float(hi), float(p)


def two_level_bootstrap(langs: dict[str, list[tuple[ExampleStats, ExampleStats]]], n_resamples: int,
                        rng: np.random.Generator, joint: bool) -> tuple[dict[str, tuple[float, np.ndarray]],
                                                                         tuple[float, np.ndarray] | None]:
    """Per language (observed difference, bootstrap distribution), and the same for the language average.

    ``langs[lang]`` holds one (A, B) pair of aligned stats per matched seed, every pair on the same items. Each
    resample draws seeds with replacement (the same draw for every language) and items with replacement (once for
    all languages when ``joint``: the test sets are translations of one another), and averages the per-seed
    differences over the drawn seeds."""
    names = list(langs)
    n_seeds = len(langs[names[0]])
    observed = {lg: float(np.mean([a.value() - b.value() for a, b in pairs])) for lg, pairs in langs.items()}
    dist = {lg: np.empty(n_resamples) for lg in names}
    sizes = {lg: pairs[0][0].num.size for lg, pairs in langs.items()}
    for start in range(0, n_resamples, CHUNK):
        stop = min(start + CHUNK, n_resamples)
        m = stop - start
        seed_draw = rng.integers(0, n_seeds, size=(m, n_seeds))
        shared = rng.integers(0, sizes[names[0]], size=(m, sizes[names[0]])) if joint else None
        for lg in names:
            items = shared if joint else rng.integers(0, sizes[lg], size=(m, sizes[lg]))
            per_seed = np.stack([_ratio(a.num, a.den, items) - _ratio(b.num, b.den, items) for a, b in langs[lg]],
                                axis=1)  # [m, seeds]
            dist[lg][start:stop] = np.take_along_axis(per_seed, seed_draw, axis=1).mean(axis=1)
    per_lang = {lg: (observed[lg], dist[lg]) for lg in names}
    if len(names) < 2:
        return per_lang, None
    avg_obs = float(np.mean([observed[lg] for lg in names]))
    return per_lang, (avg_obs, np.mean([dist[lg] for lg in names], axis=0))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error over the languages one claim tests)."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [0.0] * len(p_values)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def paired_seed_test(a: Sequence[float], b: Sequence[float]) -> SeedTest:
    """Paired t-test over matched seeds, plus Wilcoxon signed-rank when there are >= 5 pairs."""
    d = np.asarray(a, float) - np.asarray(b, float)
    n = d.size
    if n == 0:
        return SeedTest(0, math.nan, math.nan, None, "none (no matched seeds)")
    if np.all(d == 0):  # scipy returns NaN for zero variance; identical scores are no evidence of a difference
        return SeedTest(n, 0.0, 1.0 if n >= 2 else math.nan, 1.0 if n >= 5 else None,
                        "paired t" + (" + Wilcoxon" if n >= 5 else ""), tuple(d.tolist()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        t_p = float(sps.ttest_rel(a, b).pvalue) if n >= 2 else math.nan
        w_p = float(sps.wilcoxon(d).pvalue) if n >= 5 else None
    tests = "paired t + Wilcoxon" if n >= 5 else ("paired t (Wilcoxon needs >= 5 seeds)" if n >= 2 else "none (1 seed)")
    return SeedTest(n, float(d.mean()), t_p, w_p, tests, tuple(d.tolist()))


# -- runs of a variant ---------------------------------------------------------------------------------------------
def variant_runs(store: Store, variant: str) -> dict[int, str]:
    """seed -> run id of one variant's runs (a variant is one configuration: its runs are seeds of each other).
    Runs that differ only in train.shot_seed share a seed number and are told apart by it: the key is then the
    (seed, shot seed) pair's position, so every run counts once."""
    by_seed: dict[int, list[str]] = defaultdict(list)
    for r in store.runs(variant=variant):
        key = r["seed"] if r.get("shot_seed") in (None, r["seed"]) else r["seed"] * 1_000_003 + r["shot_seed"]
        by_seed[key].append(r["run_id"])
    for s, ids in by_seed.items():
        if len(ids) > 1:
            raise XLTuneError(f"variant {variant}: {len(ids)} runs with seed {s} ({', '.join(ids)}); the store holds "
                              "a run twice (rerun with --force replaces it)")
    return {s: ids[0] for s, ids in by_seed.items()}


def find_variant(store: Store, **where: object) -> tuple[str, str]:
    """(variant id, label) of the one variant whose runs match ``where`` (run columns); an error that lists the
    candidates when none or several do -- two configurations are never pooled."""
    runs = store.runs(**{k: v for k, v in where.items() if v is not None})
    found = sorted({(r["variant"], r["variant_label"]) for r in runs}, key=lambda v: v[1])
    what = ", ".join(f"{k}={v}" for k, v in where.items() if v is not None)
    if not found:
        raise XLTuneError(f"no runs with {what}")
    if len(found) > 1:
        raise XLTuneError(f"{len(found)} variants with {what}: " + "; ".join(lbl for _, lbl in found)
                          + " -- choose one (--variant LABEL or --where KEY=VALUE)")
    return found[0]


def _ner_mode(store: Store, run_id: str) -> str:
    row = store.runs(run_id=run_id)[0]
    return row.get("ner_mode") or "conlleval"


def _stats(store: Store, run_id: str, lang: str, split: str, metric: str) -> ExampleStats | None:
    rows = store.predictions(run_id, lang, split)
    return example_stats(rows, metric, _ner_mode(store, run_id)) if rows else None


def compare_methods(
    store: Store,
    task: str,
    method_a: str,
    method_b: str,
    *,
    split: str = "test",
    metric: str = "accuracy",
    model: str | None = None,
    shots: str | None = None,
    objective_a: str | None = None,
    objective_b: str | None = None,
    langs: Sequence[str] | None = None,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> Comparison:
    """:func:`compare_variants` of the one variant of method A and the one of method B in (task, model, shots);
    an error when either has several (say which with --variant / --where)."""
    base = {"task": task, "model": model, "shots": None if shots is None else str(shots)}
    va, _ = find_variant(store, **base, method=method_a, objective=objective_a)
    vb, _ = find_variant(store, **base, method=method_b, objective=objective_b)
    return compare_variants(store, va, vb, split=split, metric=metric, langs=langs, n_resamples=n_resamples,
                            seed=seed)


def compare_variants(
    store: Store,
    variant_a: str,
    variant_b: str,
    *,
    split: str = "test",
    metric: str = "accuracy",
    langs: Sequence[str] | None = None,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> Comparison:
    """Two-level paired bootstrap (per language and language average) and seed tests of variant A vs B."""
    boot = language_bootstraps(store, variant_a, variant_b, split=split, metric=metric, langs=langs,
                               n_resamples=n_resamples, seed=seed)
    per_lang: list[BootstrapResult] = []
    for lang, (obs, d, n) in boot.langs.items():
        lo, hi, p = summarize(obs, d)
        per_lang.append(BootstrapResult(lang, metric, obs, lo, hi, p, n, boot.seeds, n_resamples))
    adjusted = holm([r.p_value for r in per_lang])
    per_lang = [dataclasses.replace(r, p_holm=a) for r, a in zip(per_lang, adjusted)]
    average = None
    if boot.average is not None:
        lo, hi, p = summarize(*boot.average)
        average = BootstrapResult(AVG, metric, boot.average[0], lo, hi, p, sum(r.n_examples for r in per_lang),
                                  boot.seeds, n_resamples)
    seed_tests = _seed_tests(boot.values, boot.runs_a, boot.runs_b, list(boot.seeds), [r.lang for r in per_lang])
    return Comparison(boot.task, boot.label_a, boot.label_b, split, metric, per_lang, average, seed_tests,
                      boot.skipped, boot.joint, tuple(sorted(boot.runs_a)), tuple(sorted(boot.runs_b)))


@dataclass
class LanguageBootstraps:
    """Per language: (observed seed-averaged difference A - B, its two-level bootstrap distribution, examples); all
    languages' distributions come from the same seed draws (and item draws, when ``joint``), so their averages over
    any group of languages are themselves bootstrap distributions."""

    task: str
    label_a: str
    label_b: str
    seeds: tuple[int, ...]
    langs: dict[str, tuple[float, np.ndarray, int]]
    average: tuple[float, np.ndarray] | None
    joint: bool
    skipped: list[str]
    values: dict
    runs_a: dict[int, str]
    runs_b: dict[int, str]


def language_bootstraps(store: Store, variant_a: str, variant_b: str, *, split: str = "test",
                        metric: str = "accuracy", langs: Sequence[str] | None = None,
                        n_resamples: int = N_RESAMPLES, seed: int = 0) -> LanguageBootstraps:
    """The two-level paired bootstrap of every language (matched seeds; items jointly when the test sets are
    translations of one another)."""
    runs_a, runs_b = variant_runs(store, variant_a), variant_runs(store, variant_b)
    if not runs_a or not runs_b:
        raise XLTuneError(f"no runs of variant {variant_a if not runs_a else variant_b}")
    first_a = store.runs(run_id=next(iter(runs_a.values())))[0]
    first_b = store.runs(run_id=next(iter(runs_b.values())))[0]
    task, label_a, label_b = first_a["task"], first_a["variant_label"], first_b["variant_label"]
    seeds = sorted(set(runs_a) & set(runs_b))
    if not seeds:
        raise XLTuneError(
            f"{task}: no matched seeds between {label_a} (seeds {sorted(runs_a)}) and {label_b} (seeds {sorted(runs_b)})"
        )
    values = _metric_values(store, [runs_a[s] for s in seeds] + [runs_b[s] for s in seeds], split, metric)
    all_langs = sorted({lang for (_, lang) in values})
    tested: dict[str, list[tuple[ExampleStats, ExampleStats]]] = {}
    skipped: list[str] = []
    for lang in langs if langs is not None else all_langs:
        pairs = []
        for s in seeds:
            pa, pb = _stats(store, runs_a[s], lang, split, metric), _stats(store, runs_b[s], lang, split, metric)
            if pa is not None and pb is not None:
                pairs.append(_align(pa, pb, f"{task}/{lang}/{split}"))
        if len(pairs) < len(seeds):
            skipped.append(lang)
            continue
        tested[lang] = _common_examples(pairs)  # every seed pair on the same examples
    out: dict[str, tuple[float, np.ndarray, int]] = {}
    average, joint = None, False
    if tested:
        joint = _parallel(tested)
        dists, average = two_level_bootstrap(tested, n_resamples, np.random.default_rng(seed), joint)
        out = {lang: (obs, d, tested[lang][0][0].num.size) for lang, (obs, d) in dists.items()}
    return LanguageBootstraps(task, label_a, label_b, tuple(seeds), out, average, joint, skipped, values, runs_a,
                              runs_b)


def _parallel(tested: dict[str, list[tuple[ExampleStats, ExampleStats]]]) -> bool:
    """Do all languages hold the same item ids with the same gold labels (translations of one test set)?"""
    if len(tested) < 2:
        return False
    first = next(iter(tested.values()))[0][0]
    return all(pairs[0][0].idx.shape == first.idx.shape and np.array_equal(pairs[0][0].idx, first.idx)
               and pairs[0][0].gold == first.gold for pairs in tested.values())


@dataclass(frozen=True)
class GroupGain:
    group: str
    langs: tuple[str, ...]
    diff: float  # mean over the group's languages of the seed-averaged difference A - B
    ci_low: float
    ci_high: float
    p_value: float


def compare_groups(store: Store, variant_a: str, variant_b: str, groups: dict[str, Sequence[str]], *,
                   split: str = "test", metric: str = "accuracy", n_resamples: int = N_RESAMPLES,
                   seed: int = 0) -> list[GroupGain]:
    """A - B averaged over each group of languages (e.g. high / low resource), with two-level paired-bootstrap
    95 % CIs, and for two groups the contrast (second - first: "does A gain more in the second group?") on the same
    resamples."""
    return group_gains(language_bootstraps(store, variant_a, variant_b, split=split, metric=metric,
                                           n_resamples=n_resamples, seed=seed), groups)


def group_gains(boot: LanguageBootstraps, groups: dict[str, Sequence[str]]) -> list[GroupGain]:
    """:func:`compare_groups` on bootstraps already drawn (so per-language and group intervals share resamples)."""
    out, dists = [], {}
    for name, langs in groups.items():
        have = tuple(lg for lg in langs if lg in boot.langs)
        if not have:
            continue
        obs = float(np.mean([boot.langs[lg][0] for lg in have]))
        dists[name] = (obs, np.mean([boot.langs[lg][1] for lg in have], axis=0))
        out.append(GroupGain(name, have, obs, *summarize(*dists[name])))
    if len(dists) == 2:
        (n1, (o1, d1)), (n2, (o2, d2)) = dists.items()
        out.append(GroupGain(f"{n2} - {n1}", (), o2 - o1, *summarize(o2 - o1, d2 - d1)))
    return out


def _common_examples(pairs: list[tuple[ExampleStats, ExampleStats]]) -> list[tuple[ExampleStats, ExampleStats]]:
    common = pairs[0][0].idx
    for a, _ in pairs[1:]:
        common = np.intersect1d(common, a.idx)
    out = []
    for a, b in pairs:
        k = np.searchsorted(a.idx, common)  # idx are sorted (predictions come ORDER BY idx)
        out.append((a.take(k), b.take(k)))
    return out


def _metric_values(store: Store, run_ids: list[str], split: str, metric: str) -> dict[tuple[str, str], float]:
    rows = store.metrics(run_id=run_ids, split=split, metric=metric)
    return {(r["run_id"], r["lang"]): float(r["value"]) for r in rows}


def _seed_tests(values, runs_a, runs_b, seeds, langs) -> dict[str, SeedTest]:
    out: dict[str, SeedTest] = {}
    for lang in langs:
        ok = [s for s in seeds if (runs_a[s], lang) in values and (runs_b[s], lang) in values]
        out[lang] = paired_seed_test([values[runs_a[s], lang] for s in ok], [values[runs_b[s], lang] for s in ok])
    if len(langs) > 1:
        ok = [s for s in seeds if all((runs_a[s], lg) in values and (runs_b[s], lg) in values for lg in langs)]
        out[AVG] = paired_seed_test(
            [float(np.mean([values[runs_a[s], lg] for lg in langs])) for s in ok],
            [float(np.mean([values[runs_b[s], lg] for lg in langs])) for s in ok],
        )
    return out


# -- above chance ------------------------------------------------------------------------------------------------
def chance_check(store: Store, variant: str, lang: str, *, split: str = "test", metric: str = "accuracy",
                 n_resamples: int = N_RESAMPLES, seed: int = 0) -> ChanceCheck | None:
    """The variant's score on ``lang`` against the majority-class baseline (two-level bootstrap of the
    difference); None when the language has no stored predictions."""
    runs = variant_runs(store, variant)
    stats = {s: _stats(store, rid, lang, split, metric) for s, rid in runs.items()}
    stats = {s: st for s, st in stats.items() if st is not None}
    if not stats:
        return None
    seeds = sorted(stats)
    gold = stats[seeds[0]].gold
    baseline = 0.0 if metric in ("f1", "precision", "recall") else _majority(gold, metric)
    base = ExampleStats(stats[seeds[0]].idx, gold, np.full(len(gold), baseline), np.ones(len(gold)))
    if metric == "accuracy" and _is_json_list(gold[0]):  # token accuracy: per-sentence tag counts
        lens = np.array([len(json.loads(g)) for g in gold], dtype=float)
        base = ExampleStats(base.idx, gold, lens * baseline, lens)
    pairs = _common_examples([(stats[s], base) for s in seeds])
    dists, _ = two_level_bootstrap({lang: pairs}, n_resamples, np.random.default_rng(seed), joint=False)
    obs, d = dists[lang]
    lo, hi, _ = summarize(obs, d)
    score = float(np.mean([a.value() for a, _ in pairs]))
    return ChanceCheck(lang, metric, score, baseline, lo, hi, tuple(seeds))


def _majority(gold: Sequence[str], metric: str) -> float:
    if _is_json_list(gold[0]):  # token accuracy: the most frequent tag's share of all tags
        tags = [t for g in gold for t in json.loads(g)]
        return max(tags.count(t) for t in set(tags)) / len(tags) if tags else 0.0
    return max(gold.count(g) for g in set(gold)) / len(gold)


# -- variance split -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VarianceSplit:
    """Variance of a variant's runs split into shot-sample, initialisation and residual parts (two-way random
    effects ANOVA without replication over a full shot-seed x init-seed grid)."""

    n_shot: int
    n_init: int
    shot: float
    init: float
    residual: float

    @property
    def total(self) -> float:
        return self.shot + self.init + self.residual


def variance_split(values: dict[tuple[int, int], float]) -> VarianceSplit | None:
    """``values[(shot_seed, init_seed)]`` -> the variance components, when both vary over a full grid."""
    shots = sorted({s for s, _ in values})
    inits = sorted({i for _, i in values})
    if len(shots) < 2 or len(inits) < 2 or any((s, i) not in values for s in shots for i in inits):
        return None
    y = np.array([[values[s, i] for i in inits] for s in shots])
    a, b = y.shape
    grand = y.mean()
    ms_shot = b * ((y.mean(axis=1) - grand) ** 2).sum() / (a - 1)
    ms_init = a * ((y.mean(axis=0) - grand) ** 2).sum() / (b - 1)
    resid = y - y.mean(axis=1, keepdims=True) - y.mean(axis=0, keepdims=True) + grand
    ms_res = (resid ** 2).sum() / ((a - 1) * (b - 1))
    return VarianceSplit(a, b, max(0.0, (ms_shot - ms_res) / b), max(0.0, (ms_init - ms_res) / a), float(ms_res))
