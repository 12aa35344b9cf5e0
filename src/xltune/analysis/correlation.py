"""Does a method's gain over a baseline track pretraining data size or tokenization fertility? (Spearman)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from .aggregate import AVG, AggRow


@dataclass(frozen=True)
class Correlation:
    x_name: str
    rho: float
    p_value: float
    n: int
    langs: tuple[str, ...]  # languages used, in the order of xs/ys
    xs: tuple[float, ...]
    ys: tuple[float, ...]
    skipped: tuple[str, ...]  # languages with a gain but without the statistic
    method: str = ""  # how p was computed

    def describe(self) -> str:
        skipped = f"; {len(self.skipped)} language(s) without {self.x_name} skipped ({', '.join(self.skipped)})" \
            if self.skipped else ""
        if self.n < 3:
            return f"Spearman over {self.n} language(s): too few to correlate{skipped}"
        return f"Spearman ρ = {self.rho:+.2f} ({self.method} p = {self.p_value:.3g}, n = {self.n}){skipped}"


def gains(rows: Sequence[AggRow], variant: str, baseline: str, **key: str) -> dict[str, float]:
    """Per-language mean(variant) - mean(baseline variant) over rows that match ``key`` (e.g. split=, metric=)."""

    def means(v: str) -> dict[str, float]:
        return {
            r.lang: r.mean
            for r in rows
            if r.variant == v and r.lang != AVG and all(str(getattr(r, k)) == str(x) for k, x in key.items())
        }

    a, b = means(variant), means(baseline)
    return {lang: a[lang] - b[lang] for lang in sorted(set(a) & set(b))}


def spearman(gain: dict[str, float], stat: Callable[[str], float | None], x_name: str) -> Correlation:
    """Spearman's rank correlation of per-language gains with ``stat(lang)`` (None or NaN = missing)."""
    langs, xs, ys, skipped = [], [], [], []
    for lang, g in gain.items():
        x = stat(lang)
        if x is None or math.isnan(x):
            skipped.append(lang)
            continue
        langs.append(lang)
        xs.append(float(x))
        ys.append(g)
    rho = p = math.nan
    method = ""
    if len(xs) >= 3:
        rho, p, method = spearman_exact(xs, ys)  # constant input -> NaN: the honest answer
    return Correlation(x_name, rho, p, len(xs), tuple(langs), tuple(xs), tuple(ys), tuple(skipped), method)


def spearman_exact(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float, str]:
    """Spearman's ρ with its two-sided p: exact (every permutation of the ranks) for n <= 10, a 9,999-permutation
    Monte Carlo p above that -- scipy's asymptotic p is wrong at small n (a perfect order of 4 gives p = 0.0;
    the exact p is 2/24 = 0.083). Returns (rho, p, method)."""
    n = len(xs)
    rx, ry = sps.rankdata(xs), sps.rankdata(ys)
    if n < 3 or np.std(rx) == 0 or np.std(ry) == 0:
        return math.nan, math.nan, "too few"
    rho = float(np.corrcoef(rx, ry)[0, 1])
    if n <= 10:
        rxc = rx - rx.mean()
        denom = math.sqrt((rxc ** 2).sum() * ((ry - ry.mean()) ** 2).sum())
        hits = total = 0
        block = []
        for perm in itertools.permutations(ry):
            block.append(perm)
            if len(block) == 200_000:
                h, t = _count(np.array(block), rxc, denom, rho)
                hits, total, block = hits + h, total + t, []
        if block:
            h, t = _count(np.array(block), rxc, denom, rho)
            hits, total = hits + h, total + t
        return rho, hits / total, "exact permutation"
    res = sps.permutation_test((ry,), lambda y: np.corrcoef(rx, y)[0, 1], permutation_type="pairings",
                               n_resamples=9999, alternative="two-sided", random_state=0)
    return rho, float(res.pvalue), "permutation (9,999)"


def _count(perms: np.ndarray, rxc: np.ndarray, denom: float, rho: float) -> tuple[int, int]:
    r = (perms - perms.mean(axis=1, keepdims=True)) @ rxc / denom
    return int(np.sum(np.abs(r) >= abs(rho) - 1e-12)), len(perms)



