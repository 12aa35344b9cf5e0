"""Is method A better than method B? A paired bootstrap over test examples, and a paired test over seeds.

Paired bootstrap (Koehn 2004; Berg-Kirkpatrick et al. 2012): the two methods are scored on the *same* resamples of
the test examples. With several seeds, seeds are matched (A seed s vs B seed s) and every seed pair is scored on the
same resample, so the statistic is the seed-averaged difference. Metrics are recomputed on each resample from
per-example sufficient statistics, each metric being sum(num) / sum(den) over examples:

- sentence accuracy: num = correct (0/1), den = 1;
- token accuracy (POS): num = correct tags in the sentence, den = tags in the sentence;
- span F1 (NER, seqeval's entity definition via ``get_entities``): num = 2 tp, den = 2 tp + fp + fn, i.e. micro F1;
  precision and recall likewise.

The language average resamples each language independently and averages the per-language differences.
Two-sided p = min(1, 2 min((#{d* <= 0} + 1) / (R + 1), (#{d* >= 0} + 1) / (R + 1))) from the bootstrap distribution
d* of the difference; the 95 % CI is its 2.5 / 97.5 percentiles. Identical predictions give d* = 0, so p = 1, CI [0, 0].
"""

from __future__ import annotations

import json
import math
import warnings
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps
from seqeval.metrics.sequence_labeling import get_entities

from ..errors import XLTuneError
from ..store import Store
from .aggregate import AVG

N_RESAMPLES = 1000
CHUNK = 200  # resamples per gather: bounds memory at CHUNK x n_examples indices
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


@dataclass(frozen=True)
class SeedTest:
    """Paired test over matched seeds of the stored metric values."""

    n: int
    mean_diff: float
    t_p: float  # paired t-test (scipy.stats.ttest_rel); NaN below 2 seeds
    wilcoxon_p: float | None  # Wilcoxon signed-rank (scipy.stats.wilcoxon), only for n >= 5
    tests: str  # which tests ran, for tables


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


def _is_json_list(s: str) -> bool:
    return s.startswith("[")


def example_stats(rows: Sequence[tuple[int, str, str]], metric: str) -> ExampleStats:
    """Sufficient statistics of ``metric`` for stored prediction rows (idx, gold, pred)."""
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
    num = np.empty(len(rows))
    den = np.empty(len(rows))
    for i, (_, g, p) in enumerate(rows):
        gt, pt = json.loads(g), json.loads(p)
        if metric == "accuracy":
            num[i] = sum(a == b for a, b in zip(gt, pt, strict=False))
            den[i] = len(gt)
            continue
        ge, pe = set(get_entities(gt)), set(get_entities(pt))
        tp = len(ge & pe)
        fp, fn = len(pe) - tp, len(ge) - tp
        num[i], den[i] = {"f1": (2 * tp, 2 * tp + fp + fn), "precision": (tp, tp + fp), "recall": (tp, tp + fn)}[metric]
    return ExampleStats(idx, gold, num, den)


def _align(a: ExampleStats, b: ExampleStats, where: str) -> tuple[ExampleStats, ExampleStats]:
    """Restrict both to the example indices they share; the gold labels must agree there."""
    common, ia, ib = np.intersect1d(a.idx, b.idx, return_indices=True)
    if common.size == 0:
        raise XLTuneError(f"{where}: the two runs share no test example indices")
    for i, j in zip(ia, ib, strict=True):
        if a.gold[i] != b.gold[j]:
            raise XLTuneError(f"{where}: gold labels differ at example {a.idx[i]} — were the runs scored on the same data?")

    def take(s: ExampleStats, k: np.ndarray) -> ExampleStats:
        return ExampleStats(s.idx[k], tuple(s.gold[i] for i in k), s.num[k], s.den[k])

    return take(a, ia), take(b, ib)


def _ratio(num: np.ndarray, den: np.ndarray, idx: np.ndarray) -> np.ndarray:
    n, d = num[idx].sum(axis=1), den[idx].sum(axis=1)
    return np.divide(n, d, out=np.zeros_like(n, dtype=float), where=d > 0)


def bootstrap_diffs(
    pairs: Sequence[tuple[ExampleStats, ExampleStats]], n_resamples: int, rng: np.random.Generator
) -> tuple[float, np.ndarray]:
    """Observed seed-averaged difference and its bootstrap distribution; every pair sees the same resamples.

    All pairs must be aligned to the same example indices (one language, several seeds)."""
    n = pairs[0][0].num.size
    if any(a.num.size != n or b.num.size != n for a, b in pairs):
        raise XLTuneError("seed pairs of one language must cover the same test examples")
    observed = float(np.mean([a.value() - b.value() for a, b in pairs]))
    diffs = np.empty(n_resamples)
    for start in range(0, n_resamples, CHUNK):
        stop = min(start + CHUNK, n_resamples)
        idx = rng.integers(0, n, size=(stop - start, n))
        acc = np.zeros(stop - start)
        for a, b in pairs:
            acc += _ratio(a.num, a.den, idx) - _ratio(b.num, b.den, idx)
        diffs[start:stop] = acc / len(pairs)
    return observed, diffs


def summarize(observed: float, diffs: np.ndarray) -> tuple[float, float, float]:
    """(ci_low, ci_high, two-sided p) from a bootstrap distribution of the difference."""
    r = diffs.size
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    p = min(1.0, 2 * min((np.sum(diffs <= 0) + 1) / (r + 1), (np.sum(diffs >= 0) + 1) / (r + 1)))
    return float(lo), float(hi), float(p)


def paired_seed_test(a: Sequence[float], b: Sequence[float]) -> SeedTest:
    """Paired t-test over matched seeds, plus Wilcoxon signed-rank when there are >= 5 pairs."""
    d = np.asarray(a, float) - np.asarray(b, float)
    n = d.size
    if n == 0:
        return SeedTest(0, math.nan, math.nan, None, "none (no matched seeds)")
    if np.all(d == 0):  # scipy returns NaN for zero variance; identical scores are no evidence of a difference
        return SeedTest(n, 0.0, 1.0 if n >= 2 else math.nan, 1.0 if n >= 5 else None,
                        "paired t" + (" + Wilcoxon" if n >= 5 else ""))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        t_p = float(sps.ttest_rel(a, b).pvalue) if n >= 2 else math.nan
        w_p = float(sps.wilcoxon(d).pvalue) if n >= 5 else None
    tests = "paired t + Wilcoxon" if n >= 5 else ("paired t (Wilcoxon needs >= 5 seeds)" if n >= 2 else "none (1 seed)")
    return SeedTest(n, float(d.mean()), t_p, w_p, tests)


def variant_runs(store: Store, variant: str) -> dict[int, str]:
    """seed -> run id of one variant's runs (a variant is one configuration: its runs are seeds of each other)."""
    by_seed: dict[int, list[str]] = defaultdict(list)
    for r in store.runs(variant=variant):
        by_seed[r["seed"]].append(r["run_id"])
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
    """Paired bootstrap (per language and language average) and seed tests of variant A vs variant B."""
    boot = language_bootstraps(store, variant_a, variant_b, split=split, metric=metric, langs=langs,
                               n_resamples=n_resamples, seed=seed)
    per_lang = [BootstrapResult(lang, metric, obs, *summarize(obs, diffs), n, boot.seeds, n_resamples)
                for lang, (obs, diffs, n) in boot.langs.items()]
    average = None
    if len(boot.langs) > 1:
        obs = float(np.mean([o for o, _, _ in boot.langs.values()]))
        diffs = np.mean([d for _, d, _ in boot.langs.values()], axis=0)
        average = BootstrapResult(AVG, metric, obs, *summarize(obs, diffs), sum(r.n_examples for r in per_lang),
                                  boot.seeds, n_resamples)
    seed_tests = _seed_tests(boot.values, boot.runs_a, boot.runs_b, list(boot.seeds), list(boot.langs))
    return Comparison(boot.task, boot.label_a, boot.label_b, split, metric, per_lang, average, seed_tests,
                      boot.skipped)


@dataclass
class LanguageBootstraps:
    """Per language: (observed seed-averaged difference A - B, its bootstrap distribution, examples)."""

    task: str
    label_a: str
    label_b: str
    seeds: tuple[int, ...]
    langs: dict[str, tuple[float, np.ndarray, int]]
    skipped: list[str]
    values: dict
    runs_a: dict[int, str]
    runs_b: dict[int, str]


def language_bootstraps(store: Store, variant_a: str, variant_b: str, *, split: str = "test",
                        metric: str = "accuracy", langs: Sequence[str] | None = None,
                        n_resamples: int = N_RESAMPLES, seed: int = 0) -> LanguageBootstraps:
    """The paired bootstrap of every language (matched seeds, each language resampled on its own)."""
    runs_a, runs_b = variant_runs(store, variant_a), variant_runs(store, variant_b)
    if not runs_a or not runs_b:
        raise XLTuneError(f"no runs of variant {variant_a if not runs_a else variant_b}")
    first_a = store.runs(run_id=next(iter(runs_a.values())))[0]
    first_b = store.runs(run_id=next(iter(runs_b.values())))[0]
    task, label_a, label_b = first_a["task"], first_a["variant_label"], first_b["variant_label"]
    seeds = sorted(set(runs_a) & set(runs_b))
    if not seeds:
        raise XLTuneError(
            f"{task}: no matched seeds between {label_a} (seeds {sorted(runs_a)}) and {label_b} "
            f"(seeds {sorted(runs_b)})"
        )
    values = _metric_values(store, [runs_a[s] for s in seeds] + [runs_b[s] for s in seeds], split, metric)
    all_langs = sorted({lang for (_, lang) in values})
    rng = np.random.default_rng(seed)
    out: dict[str, tuple[float, np.ndarray, int]] = {}
    skipped: list[str] = []
    for lang in langs if langs is not None else all_langs:
        pairs = []
        for s in seeds:
            pa = store.predictions(runs_a[s], lang, split)
            pb = store.predictions(runs_b[s], lang, split)
            if pa and pb:
                pairs.append(_align(example_stats(pa, metric), example_stats(pb, metric), f"{task}/{lang}/{split}"))
        if len(pairs) < len(seeds):
            skipped.append(lang)
            continue
        # every seed pair must be scored on the same examples: restrict to the indices all pairs share
        pairs = _common_examples(pairs)
        obs, diffs = bootstrap_diffs(pairs, n_resamples, rng)
        out[lang] = (obs, diffs, pairs[0][0].num.size)
    return LanguageBootstraps(task, label_a, label_b, tuple(seeds), out, skipped, values, runs_a, runs_b)


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
    """A - B averaged over each group of languages (e.g. high / low resource), with paired-bootstrap 95 % CIs, and
    for two groups the contrast (second - first: "does A gain more in the second group?") on the same resamples."""
    boot = language_bootstraps(store, variant_a, variant_b, split=split, metric=metric, n_resamples=n_resamples,
                               seed=seed)
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
        out.append(tuple(ExampleStats(s.idx[k], tuple(s.gold[i] for i in k), s.num[k], s.den[k]) for s in (a, b)))
    return out  # type: ignore[return-value]


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
