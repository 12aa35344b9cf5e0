"""Does a method's gain over a baseline track pretraining data size or tokenization fertility? (Spearman)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

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

    def describe(self) -> str:
        skipped = f"; {len(self.skipped)} language(s) without {self.x_name} skipped ({', '.join(self.skipped)})" \
            if self.skipped else ""
        if self.n < 3:
            return f"Spearman over {self.n} language(s): too few to correlate{skipped}"
        return f"Spearman ρ = {self.rho:+.2f} (p = {self.p_value:.3g}, n = {self.n}){skipped}"


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
    if len(xs) >= 3:
        with warnings.catch_warnings():  # constant input -> NaN with a warning; NaN is the honest answer
            warnings.simplefilter("ignore")
            res = sps.spearmanr(xs, ys)
        rho, p = float(res.statistic), float(res.pvalue)
    return Correlation(x_name, rho, p, len(xs), tuple(langs), tuple(xs), tuple(ys), tuple(skipped))
