"""Mean ± std over seeds, per language and for the language average, as Markdown tables (CSV and JSON:
:mod:`.results`).

Input is what :meth:`xltune.store.Store.metrics` returns (one dict per run, language, split and metric). Runs of
one *variant* (one configuration, :mod:`xltune.variants`) on one split and metric are the seeds of one cell; two
variants are never pooled, whatever their method. The std is the sample std (ddof=1); with one seed it is NaN and
printed as "–". The language average is the mean over languages *per run*, then mean ± std over runs, over the
languages every run of the cell has (so a missing language cannot tilt it).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

AVG = "avg"  # the language-average pseudo-language
KEY_FIELDS = ("task", "model", "shots", "variant", "split", "metric")
DASH = "–"


@dataclass(frozen=True)
class AggRow:
    task: str
    model: str
    shots: str
    variant: str  # the configuration's id: the cell's identity
    split: str
    metric: str
    lang: str
    mean: float
    std: float
    n: int
    values: tuple[float, ...] = field(default=(), compare=False)
    seeds: tuple[int, ...] = field(default=(), compare=False)
    label: str = field(default="", compare=False)  # the variant's label (its config's name, or what it changes)
    method: str = field(default="", compare=False)
    objective: str = field(default="none", compare=False)
    oracle: str = field(default="", compare=False)  # what it knew that zero-shot transfer does not

    @property
    def key(self) -> tuple[str, ...]:
        return tuple(str(getattr(self, f)) for f in KEY_FIELDS)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample std (ddof=1); std is NaN for fewer than two values."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return math.nan, math.nan
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else math.nan


def shots_sort_key(shots: str) -> tuple[int, float]:
    """Numeric shot counts in order, then 'all'."""
    return (0, float(shots)) if str(shots).isdigit() else (1, math.inf)


def aggregate(rows: Iterable[dict]) -> list[AggRow]:
    """Aggregate metric rows over seeds, one cell per variant (and split, metric); adds a ``lang="avg"`` row per
    cell."""
    # cell key -> run_id -> (seed, {lang: value})
    cells: dict[tuple, dict[str, tuple[int, dict[str, float]]]] = defaultdict(dict)
    about: dict[tuple, tuple[str, str, str]] = {}
    for r in rows:
        key = tuple(str(r[f]) for f in KEY_FIELDS)
        seed, per_lang = cells[key].setdefault(r["run_id"], (int(r["seed"]), {}))
        per_lang[r["lang"]] = float(r["value"])
        about.setdefault(key, (r.get("variant_label") or _fallback_label(r), str(r["method"]),
                               str(r.get("objective") or "none"), str(r.get("oracle") or "")))
    out: list[AggRow] = []
    for key in sorted(cells, key=lambda k: (k[0], k[1], shots_sort_key(k[2]), about[k][0], k[3], k[4], k[5])):
        runs = cells[key]
        langs = sorted({lang for _, per in runs.values() for lang in per})
        for lang in langs:
            got = [(seed, per[lang]) for seed, per in runs.values() if lang in per]
            out.append(_row(key, lang, got, about[key]))
        common = sorted(set.intersection(*(set(per) for _, per in runs.values())))
        if len(common) > 1:
            got = [(seed, float(np.mean([per[lang] for lang in common]))) for seed, per in runs.values()]
            out.append(_row(key, AVG, got, about[key]))
    return out


def _fallback_label(r: dict) -> str:
    return str(r["method"]) if (r.get("objective") or "none") == "none" else f"{r['method']}+{r['objective']}"


def _row(key: tuple, lang: str, got: list[tuple[int, float]], about: tuple[str, str, str, str]) -> AggRow:
    got.sort()
    values = [v for _, v in got]
    m, s = mean_std(values)
    label, method, objective, oracle = about
    return AggRow(*key, lang=lang, mean=m, std=s, n=len(values), values=tuple(values), seeds=tuple(x for x, _ in got),
                  label=label, method=method, objective=objective, oracle=oracle)


def short_labels(rows: Iterable[AggRow]) -> dict[str, str]:
    """variant -> label, shortened to what tells the variants of ``rows`` apart (see xltune.variants)."""
    from ..variants import distinguishing_labels

    return distinguishing_labels({r.variant: r.label for r in rows})


def fmt_mean_std(mean: float, std: float, scale: float = 100.0, digits: int = 1) -> str:
    """'71.2 ± 1.3' (metrics in percent by default); '71.2 ± –' for one seed; '–' for nothing."""
    if math.isnan(mean):
        return DASH
    s = DASH if math.isnan(std) else f"{std * scale:.{digits}f}"
    return f"{mean * scale:.{digits}f} ± {s}"


def languages(rows: Iterable[AggRow]) -> list[str]:
    """Result languages, sorted, with the average last."""
    langs = sorted({r.lang for r in rows if r.lang != AVG})
    return langs + ([AVG] if any(r.lang == AVG for r in rows) else [])


SHOWN = ("task", "model", "shots", "variant", "split", "metric")  # columns of the wide table (variant: its label)


def pivot(rows: Sequence[AggRow], compact: bool = False) -> tuple[list[str], list[list[str]]]:
    """A wide table: one line per variant (cell), one column per language (then avg), and n seeds; variants show
    their labels, shortened to what tells them apart. ``compact``: columns that hold one value on every line are
    left out (a heading above the table says them)."""
    langs = languages(rows)
    labels = short_labels(rows)
    by_key: dict[tuple, dict[str, AggRow]] = defaultdict(dict)
    for r in rows:
        by_key[r.key][r.lang] = r
    shown = [f for f in SHOWN if not compact or f == "variant" or len({getattr(r, f) for r in rows}) > 1]
    header = [*shown, "n", *langs]
    body = []
    for key, per in by_key.items():
        first = next(iter(per.values()))
        n = max(r.n for r in per.values())
        cols = [labels[first.variant] if f == "variant" else str(getattr(first, f)) for f in shown]
        body.append([*cols, str(n), *(fmt_mean_std(per[lg].mean, per[lg].std) if lg in per else DASH for lg in langs)])
    return header, body


def markdown_table(header: Sequence[str], body: Sequence[Sequence[object]]) -> str:
    def esc(x: object) -> str:
        return str(x).replace("|", "\\|")

    lines = ["| " + " | ".join(esc(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in body]
    return "\n".join(lines) + "\n"


def to_markdown(rows: Sequence[AggRow]) -> str:
    """Wide Markdown table (values in %, mean ± sample std over seeds; '–' = one seed / missing)."""
    return markdown_table(*pivot(rows))


def primary_metric(metrics: set[str]) -> str:
    """Span F1 for tasks that store span precision/recall (NER), else accuracy, else the first metric."""
    if {"f1", "precision", "recall"} <= metrics:
        return "f1"
    return "accuracy" if "accuracy" in metrics else sorted(metrics)[0]
