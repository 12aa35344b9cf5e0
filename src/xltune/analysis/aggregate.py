"""Mean ± std over seeds, per language and for the language average, as Markdown and CSV tables.

Input is what :meth:`xltune.store.Store.metrics` returns (one dict per run, language, split and metric). Runs that
share (task, method, objective, model, shots, split, metric) are the seeds of one cell. The std is the sample std
(ddof=1); with one seed it is NaN and printed as "–". The language average is the mean over languages *per run*,
then mean ± std over runs, over the languages every run of the cell has (so a missing language cannot tilt it).
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

AVG = "avg"  # the language-average pseudo-language
KEY_FIELDS = ("task", "method", "objective", "model", "shots", "split", "metric")
DASH = "–"


@dataclass(frozen=True)
class AggRow:
    task: str
    method: str
    objective: str
    model: str
    shots: str
    split: str
    metric: str
    lang: str
    mean: float
    std: float
    n: int
    values: tuple[float, ...] = field(default=(), compare=False)
    seeds: tuple[int, ...] = field(default=(), compare=False)

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
    """Aggregate metric rows over seeds; adds one ``lang="avg"`` row per cell."""
    # cell key -> run_id -> (seed, {lang: value})
    cells: dict[tuple, dict[str, tuple[int, dict[str, float]]]] = defaultdict(dict)
    for r in rows:
        key = tuple(str(r[f]) for f in KEY_FIELDS)
        seed, per_lang = cells[key].setdefault(r["run_id"], (int(r["seed"]), {}))
        per_lang[r["lang"]] = float(r["value"])
    out: list[AggRow] = []
    for key in sorted(cells, key=lambda k: (k[0], k[1], k[2], k[3], shots_sort_key(k[4]), k[5], k[6])):
        runs = cells[key]
        langs = sorted({lang for _, per in runs.values() for lang in per})
        for lang in langs:
            got = [(seed, per[lang]) for seed, per in runs.values() if lang in per]
            out.append(_row(key, lang, got))
        common = sorted(set.intersection(*(set(per) for _, per in runs.values())))
        if len(common) > 1:
            got = [(seed, float(np.mean([per[lang] for lang in common]))) for seed, per in runs.values()]
            out.append(_row(key, AVG, got))
    return out


def _row(key: tuple, lang: str, got: list[tuple[int, float]]) -> AggRow:
    got.sort()
    values = [v for _, v in got]
    m, s = mean_std(values)
    return AggRow(*key, lang=lang, mean=m, std=s, n=len(values), values=tuple(values), seeds=tuple(x for x, _ in got))


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


def pivot(rows: Sequence[AggRow]) -> tuple[list[str], list[list[str]]]:
    """A wide table: one line per cell key, one column per language (then avg), and n seeds."""
    langs = languages(rows)
    by_key: dict[tuple, dict[str, AggRow]] = defaultdict(dict)
    for r in rows:
        by_key[r.key][r.lang] = r
    header = [*KEY_FIELDS, "n", *langs]
    body = []
    for key, per in by_key.items():
        n = max(r.n for r in per.values())
        body.append([*key, str(n), *(fmt_mean_std(per[lg].mean, per[lg].std) if lg in per else DASH for lg in langs)])
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


def to_csv(rows: Sequence[AggRow], path: str | Path | None = None) -> str:
    """Long CSV (one line per cell and language, raw 0..1 values); written to ``path`` when given."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([*KEY_FIELDS, "lang", "mean", "std", "n", "seeds"])
    for r in rows:
        w.writerow([*r.key, r.lang, repr(r.mean), "" if math.isnan(r.std) else repr(r.std), r.n,
                    " ".join(map(str, r.seeds))])
    text = buf.getvalue()
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text
