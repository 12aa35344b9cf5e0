"""The report: tables, plots and tests from a results store, as report.md (+ figures/) and a self-contained report.html.

Reads only the store (and optional resource / tokenization tables). Each section that lacks an ingredient (no
predictions for the bootstrap, one shot count for the curves, no tokstats for fertility) says what it needs instead.
Figures are drawn with matplotlib's object API (``Figure``, Agg canvas), so no global backend state is touched; the
HTML embeds them as base64 PNG and has no scripts.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .analysis import aggregate as agg
from .analysis.correlation import gains, spearman
from .analysis.resources import ResourceTable, load_resource_table
from .analysis import results as results_out
from .analysis.significance import N_RESAMPLES, compare_variants
from .analysis.tokstats import TokStats, read_tokstats_csv
from .errors import XLTuneError, unknown_name
from .store import Store

PREFERRED_BASELINE = "finetune"


# -- a tiny document model rendered both as Markdown and as HTML ------------------------------------------------
@dataclass
class Doc:
    blocks: list[tuple[str, object]] = field(default_factory=list)
    figures: dict[str, bytes] = field(default_factory=dict)

    def h(self, level: int, text: str) -> None:
        self.blocks.append(("h", (level, text)))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def table(self, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        self.blocks.append(("table", (list(header), [list(r) for r in rows])))

    def img(self, png: bytes, caption: str) -> None:
        name = f"fig{len(self.figures) + 1:02d}.png"
        self.figures[name] = png
        self.blocks.append(("img", (name, caption)))

    def markdown(self) -> str:
        out = []
        for kind, data in self.blocks:
            if kind == "h":
                out.append("#" * data[0] + " " + data[1] + "\n")
            elif kind == "p":
                out.append(data + "\n")
            elif kind == "table":
                out.append(agg.markdown_table(*data))
            elif kind == "img":
                out.append(f"![{data[1]}](figures/{data[0]})\n\n*{data[1]}*\n")
        return "\n".join(out)

    def html(self, title: str) -> str:
        e = html.escape
        body = []
        for kind, data in self.blocks:
            if kind == "h":
                body.append(f"<h{data[0]}>{e(data[1])}</h{data[0]}>")
            elif kind == "p":
                body.append(f"<p>{e(data)}</p>")
            elif kind == "table":
                head = "".join(f"<th>{e(str(c))}</th>" for c in data[0])
                rows = "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in r) + "</tr>" for r in data[1])
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
            elif kind == "img":
                b64 = base64.b64encode(self.figures[data[0]]).decode("ascii")
                body.append(f'<figure><img alt="{e(data[1])}" src="data:image/png;base64,{b64}">'
                            f"<figcaption>{e(data[1])}</figcaption></figure>")
        style = (
            "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
            "table{border-collapse:collapse;margin:1em 0;font-size:.85em}"
            "th,td{border:1px solid #bbb;padding:.25em .5em;text-align:left}th{background:#eee}"
            "img{max-width:100%}figcaption{font-style:italic;font-size:.9em}"
        )
        return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>'
                f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


# -- plots ------------------------------------------------------------------------------------------------------
def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()


def _figure(width: float = 8.0, height: float = 3.6):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    return fig, fig.add_subplot(1, 1, 1)


def bar_plot(rows: Sequence[agg.AggRow], title: str, ylabel: str) -> bytes:
    """Grouped bars: languages on x, one bar per variant, sample-std error bars (none for one seed)."""
    langs = agg.languages(rows)
    labels = agg.short_labels(rows)
    methods = sorted({labels[r.variant] for r in rows})
    by = {(labels[r.variant], r.lang): r for r in rows}
    fig, ax = _figure(max(6.0, 0.55 * len(langs) * max(1, len(methods)) / 2 + 3))
    width = 0.8 / len(methods)
    x = np.arange(len(langs))
    for i, m in enumerate(methods):
        ys = [by[m, lg].mean * 100 if (m, lg) in by else np.nan for lg in langs]
        es = [by[m, lg].std * 100 if (m, lg) in by and not math.isnan(by[m, lg].std) else 0 for lg in langs]
        ax.bar(x + (i - (len(methods) - 1) / 2) * width, ys, width, yerr=es, capsize=2, label=m)
    ax.set_xticks(x, langs, rotation=45 if len(langs) > 12 else 0)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize="small", ncols=min(4, len(methods)))
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def shots_plot(points: dict[str, list[tuple[str, float, float]]], title: str, ylabel: str) -> bytes:
    """Language-average score vs K per method, with std bands as error bars."""
    all_shots = sorted({s for pts in points.values() for s, _, _ in pts}, key=agg.shots_sort_key)
    pos = {s: i for i, s in enumerate(all_shots)}
    fig, ax = _figure(6.0, 3.6)
    for m, pts in sorted(points.items()):
        pts = sorted(pts, key=lambda t: agg.shots_sort_key(t[0]))
        ax.errorbar([pos[s] for s, _, _ in pts], [v * 100 for _, v, _ in pts],
                    yerr=[0 if math.isnan(sd) else sd * 100 for _, _, sd in pts], marker="o", capsize=3, label=m)
    ax.set_xticks(range(len(all_shots)), all_shots)
    ax.set_xlabel("shots (K)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return _png(fig)


def scatter_plot(corr, title: str, xlabel: str, ylabel: str) -> bytes:
    fig, ax = _figure(5.5, 3.8)
    ax.scatter(corr.xs, [y * 100 for y in corr.ys])
    for lang, x, y in zip(corr.langs, corr.xs, corr.ys, strict=True):
        ax.annotate(lang, (x, y * 100), fontsize=8, xytext=(3, 3), textcoords="offset points")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title + (f"  (ρ={corr.rho:+.2f}, n={corr.n})" if corr.n >= 3 else ""), fontsize=10)
    ax.grid(alpha=0.3)
    return _png(fig)


# -- the report -------------------------------------------------------------------------------------------------
primary_metric = agg.primary_metric


def choose_baseline(methods: Sequence[str], baseline: str | None, labels: Sequence[str] = ()) -> str:
    """The method (or a variant's label) that gains and tests compare against."""
    if baseline is not None:
        if baseline not in methods and baseline not in labels:
            raise unknown_name("baseline method or variant", baseline, [*methods, *labels], "the store")
        return baseline
    return PREFERRED_BASELINE if PREFERRED_BASELINE in methods else sorted(methods)[0]


def _is_baseline(r: agg.AggRow, base: str) -> bool:
    return r.label == base or r.method == base


def build_report(
    store_path: str | Path,
    out_dir: str | Path,
    *,
    resources: str | Path | None = None,
    tokstats: str | Path | None = None,
    baseline: str | None = None,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    progress: bool = True,
    where: Sequence[str] = (),
    variants: Sequence[str] = (),
) -> dict[str, Path]:
    """Write report.md, figures/*.png, results.csv and report.html into ``out_dir``; return their paths.
    ``where`` / ``variants`` choose the runs (see :mod:`xltune.analysis.select`)."""
    store_path = Path(store_path)
    if not store_path.is_file():
        raise XLTuneError(f"results store {store_path} does not exist (run `xltune run` first, or check the path)")
    out = Path(out_dir)
    table = load_resource_table(resources)
    toks = read_tokstats_csv(tokstats) if tokstats is not None else None
    with Store(store_path) as store:
        sel = results_out.select(store, where, variants)
        runs, metric_rows = sel.runs, sel.metrics
        doc = Doc()
        _build(doc, store, store_path, runs, metric_rows, table, toks, baseline, n_resamples, seed, progress,
               tokstats_path=tokstats, resources_path=resources, where=where, variants=variants, sel=sel)
    out.mkdir(parents=True, exist_ok=True)
    (out / "figures").mkdir(exist_ok=True)
    for name, png in doc.figures.items():
        (out / "figures" / name).write_bytes(png)
    paths = {"markdown": out / "report.md", "html": out / "report.html", "csv": out / "results.csv"}
    paths["markdown"].write_text(doc.markdown(), encoding="utf-8")
    paths["html"].write_text(doc.html(f"xltune report — {store_path.name}"), encoding="utf-8")
    # the same CSV as `xltune results --format csv` (per variant and language, in percent, units stated)
    paths["csv"].write_text(results_out.to_csv(sel), encoding="utf-8")
    return paths


def _build(doc, store, store_path, runs, metric_rows, table: ResourceTable, toks, baseline, n_resamples, seed,
           progress, tokstats_path=None, resources_path=None, where=(), variants=(), sel=None) -> None:
    chosen = [*(f"--where {w}" for w in where), *(f"--variant {v!r}" for v in variants)]
    rows = agg.aggregate(metric_rows)
    methods = sorted({r["method"] for r in runs})
    base = choose_baseline(methods, baseline, sorted({r["variant_label"] for r in runs}))
    tasks = sorted({r["task"] for r in runs})
    n_variants = len({r["variant"] for r in runs})
    doc.h(1, f"xltune report: {store_path.name}")
    doc.p(f"{len(runs)} runs of {n_variants} variant(s){' chosen by ' + ' '.join(chosen) if chosen else ''}; tasks "
          f"{', '.join(tasks)}; methods {', '.join(methods)}; models {', '.join(sorted({r['model'] for r in runs}))}; "
          f"shots {', '.join(sorted({r['shots'] for r in runs}, key=agg.shots_sort_key))}. Baseline for gains and "
          f"tests: {base}{'' if baseline else ' (chosen automatically; pass --baseline to change)'}. "
          f"Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.")
    doc.p("Scores are in %, mean ± sample std (ddof=1) over seeds; '–' marks a single seed. "
          "'avg' is the mean over languages per run, then mean ± std over runs. A variant is one configuration: "
          "runs are pooled only with the other seeds of their own variant, never across variants (its label says "
          "what it sets away from the defaults; --variant / --where choose what to compare).")
    # work items: (task, model, shots, split, metric) cells of the primary metric
    metric_sets: dict[str, set[str]] = defaultdict(set)
    for r in metric_rows:
        metric_sets[r["task"]].add(r["metric"])
    primary = {t: primary_metric(metric_sets[t]) for t in tasks}
    cells: dict[tuple, list[agg.AggRow]] = defaultdict(list)
    for r in rows:
        if r.metric == primary[r.task]:
            cells[(r.task, r.model, r.shots, r.split)].append(r)
    keys = sorted(cells, key=lambda k: (k[0], k[1], agg.shots_sort_key(k[2]), k[3]))
    bar = tqdm(total=2 * len(keys), desc="report", unit="step", disable=not progress)

    doc.h(2, "Results per language")
    causal_tagging = sorted({(r["task"], r["model"]) for r in runs
                             if r["extra"].get("decoder") and r["extra"].get("task_kind") == "token"})
    if causal_tagging:
        doc.p("Note: " + "; ".join(f"{t} with {m}" for t, m in causal_tagging) + " — a decoder labels each token "
              "from its left context only (causal attention), while an encoder sees the whole sentence; compare "
              "tagging results across the two kinds of model with that in mind.")
    for key in keys:
        task, model, shots, split = key
        doc.h(3, f"{task} — {model}, K={shots}, {split} ({primary[task]})")
        doc.table(*agg.pivot(cells[key], compact=True))
        doc.img(bar_plot(cells[key], f"{task} {model} K={shots} {split}", f"{primary[task]} (%)"),
                f"{task}, {model}, K={shots}, {split}: {primary[task]} per language (error bars: std over seeds)")
        bar.update()

    if sel is not None and sel.evaluations:
        _evaluations_section(doc, sel)
    _language_facts_section(doc, runs)
    _shots_section(doc, rows, primary)
    _variance_section(doc, runs, metric_rows, primary)
    _resource_section(doc, rows, keys, cells, table, toks, base, primary)
    _settings_section(doc, store, runs, rows, table, primary, n_resamples, seed)
    _significance_section(doc, store, keys, cells, base, primary, n_resamples, seed, bar)
    bar.close()
    _claims_section(doc, store_path, tokstats_path, resources_path, n_resamples, seed, where, variants)
    _environment_section(doc, runs)


def _evaluations_section(doc: Doc, sel) -> None:
    """Stored runs scored on other data (`xltune eval`): their own tables, never pooled with the runs' results."""
    _own, evals, about = results_out.aggregates(sel)
    doc.h(2, "Evaluations of stored runs on other data")
    doc.p("Stored runs scored without training on other data, splits or languages (`xltune eval`). Each evaluation "
          "is linked to its run and is not one of its seeds: nothing above includes these numbers. A cell is one "
          "variant on one evaluated setting, mean ± std over its evaluated runs (n).")
    groups: dict[tuple, list[agg.AggRow]] = defaultdict(list)
    for r in evals:
        groups[(r.task, r.split, r.metric)].append(r)
    for (task, split, metric), rows in sorted(groups.items()):
        doc.h(3, f"{task}, {split} ({metric})")
        doc.table(*results_out.eval_pivot(rows, about))


def _language_facts_section(doc: Doc, runs: Sequence[dict]) -> None:
    """What a method's per-language hook recorded (e.g. the language module each target language used, and where
    a language fell back to the source language's): one row per variant, one column per language."""
    facts: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for r in runs:
        for lang, fact in (r["extra"].get("per_language") or {}).items():
            facts[r["variant_label"]][lang].add("; ".join(f"{k}: {v}" for k, v in fact.items()))
    if not facts:
        return
    doc.h(3, "Per-language facts (the method's per-language hook)")
    doc.p("What each variant's method used in each target language, as stored with its results (e.g. which "
          "language module was swapped in; a language without one falls back to the source language's).")
    langs = sorted({lang for per in facts.values() for lang in per})
    doc.table(["variant", *langs], [[label, *(" / ".join(sorted(per.get(lang, {"–"}))) for lang in langs)]
                                    for label, per in sorted(facts.items())])


def _test_split(keys: Sequence[tuple]) -> list[tuple]:
    """Keys on the test split when there is one (gains and tests are about test scores), else all keys."""
    test = [k for k in keys if k[3] == "test"]
    return test or list(keys)


def _shots_section(doc: Doc, rows: Sequence[agg.AggRow], primary: dict[str, str]) -> None:
    doc.h(2, "Score vs number of shots")
    groups: dict[tuple, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for r in rows:  # a line joins the variants that differ only in shots (shots are not in a label)
        if r.lang == agg.AVG and r.metric == primary[r.task]:
            groups[(r.task, r.model, r.split)][r.label].append((r.shots, r.mean, r.std))
    drew = False
    for (task, model, split), pts in sorted(groups.items()):
        if len({s for p in pts.values() for s, _, _ in p}) < 2:
            continue
        doc.img(shots_plot(pts, f"{task} {model} {split}", f"avg {primary[task]} (%)"),
                f"{task}, {model}, {split}: language-average {primary[task]} vs K (error bars: std over seeds)")
        drew = True
    if not drew:
        doc.p("Needs runs at two or more shot counts (train.shots) of the same task and model; this store has one.")


def _variance_section(doc: Doc, runs: Sequence[dict], metric_rows: Sequence[dict], primary: dict[str, str]) -> None:
    """Where a variant's runs vary the shot sample (train.shot_seed) and the initialisation (seed) over a full
    grid, how much of the language average's variance each explains (two-way ANOVA, random effects)."""
    from .analysis.significance import variance_split

    per_run: dict[str, list[float]] = defaultdict(list)
    for r in metric_rows:
        if r["metric"] == primary.get(r["task"]) and r["split"] == "test":
            per_run[r["run_id"]].append(float(r["value"]))
    by_variant: dict[str, dict[tuple[int, int], float]] = defaultdict(dict)
    labels = {}
    for r in runs:
        if r["run_id"] in per_run:
            shot = r.get("shot_seed") if r.get("shot_seed") is not None else r["seed"]
            by_variant[r["variant"]][(shot, r["seed"])] = float(np.mean(per_run[r["run_id"]]))
            labels[r["variant"]] = f"{r['task']} {r['variant_label']}"
    out = []
    for v, values in sorted(by_variant.items(), key=lambda kv: labels[kv[0]]):
        split = variance_split(values)
        if split is None or split.total == 0:
            continue
        out.append([labels[v], f"{split.n_shot} x {split.n_init}", f"{100 * split.shot / split.total:.0f} %",
                    f"{100 * split.init / split.total:.0f} %", f"{100 * split.residual / split.total:.0f} %",
                    f"{100 * np.sqrt(split.total):.2f}"])
    if out:
        doc.h(2, "Shot sample vs initialisation")
        doc.p("Variants whose runs cross shot seeds (train.shot_seed) with initialisation seeds: the share of the "
              "language average's variance due to the shot sample, the initialisation, and the rest (two-way "
              "random-effects ANOVA without replication; Zhao et al. 2021 measured >10-point spreads from the shot "
              "set alone). sd: total standard deviation in points.")
        doc.table(["variant", "shot seeds x seeds", "shot sample", "initialisation", "residual", "sd"], out)


def _resource_section(doc, rows, keys, cells, table: ResourceTable, toks: dict[str, TokStats] | None, base, primary):
    doc.h(2, "Resource groups and correlations")
    langs = sorted({r.lang for r in rows if r.lang != agg.AVG})
    doc.p(f"Resource table: {table.source}. Groups: high = share >= {table.high_share:.0%} of the corpus or >= "
          f"{table.high_tokens:.0e} tokens; low = listed below both; unseen = not listed. The packaged table is XGLM's "
          "CC100-XL; for other models pass --resources (lang<TAB>tokens).")
    doc.table(["lang", "group", "tokens", "share"],
              [[lg, table.group(lg), f"{table.tokens[k]:.3g}" if (k := table.lookup(lg)) else "–",
                f"{table.share[k]:.3g}" if k else "–"] for lg in langs])
    group_rows = []
    for key in _test_split(keys):
        labels = agg.short_labels(cells[key])
        by_variant: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for r in cells[key]:
            if r.lang != agg.AVG:
                by_variant[labels[r.variant]][table.group(r.lang)].append(r.mean)
        for m, groups in sorted(by_variant.items()):
            group_rows.append([*key[:3], m, *(f"{np.mean(groups[g]) * 100:.1f} ({len(groups[g])})" if groups[g]
                                             else "–" for g in ("high", "low", "unseen"))])
    doc.p("Mean over the languages of each group (number of languages in brackets):")
    doc.table(["task", "model", "shots", "variant", "high", "low", "unseen"], group_rows)
    for key in _test_split(keys):
        task, model, shots, split = key
        for va, la, vb, lb in _pairs(cells[key], base):
            g = gains(cells[key], va, vb)
            if not g:
                continue
            m = la
            label = f"{task} {model} K={shots}: {la} − {lb}"
            c = spearman(g, table.log_tokens, "log10 pretraining tokens")
            doc.p(f"Gain vs log10 pretraining tokens, {label}: {c.describe()}.")
            if c.n:
                doc.img(scatter_plot(c, label, "log10 pretraining tokens", "gain (points)"),
                        f"Gain of {m} over {lb} vs log10 pretraining tokens ({task}, {model}, K={shots})")
            if toks is None:
                doc.p("Gain vs fertility needs a tokenization table: run `xltune tokstats --tokenizer MODEL --text "
                      "FILES --lang-from-filename --out tokstats.csv` and pass --tokstats tokstats.csv.")
                continue
            c = spearman(g, lambda lg: toks[lg].fertility if lg in toks and toks[lg].segmentation == "word" else None,
                         "word-level fertility")
            doc.p(f"Gain vs fertility (tokens per word; whitespace-free languages, measured per character, are "
                  f"left out as not comparable), {label}: {c.describe()}.")
            if c.n:
                doc.img(scatter_plot(c, label, "fertility (tokens per word)", "gain (points)"),
                        f"Gain of {m} over {lb} vs tokenizer fertility ({task}, {model}, K={shots})")


def _pairs(cell: Sequence[agg.AggRow], base: str) -> list[tuple[str, str, str, str]]:
    """(variant, label, baseline variant, its label) for every variant of a cell against every baseline variant
    (the baseline method's variants, or the variant labelled ``base``); labels shortened within the cell."""
    labels = agg.short_labels(cell)
    variants = sorted({r.variant for r in cell}, key=lambda v: labels[v])
    bases = [v for v in variants if any(_is_baseline(r, base) for r in cell if r.variant == v)]
    return [(v, labels[v], b, labels[b]) for b in bases for v in variants if v not in bases]


SETTING_KEYS = ("setting", "translate", "target_shots")  # train.* keys that make a transfer setting


def _settings_section(doc, store, runs, rows, table: ResourceTable, primary, n_resamples, seed) -> None:
    """Variants that differ only in train.setting: per language group, the score of each setting and its gain
    over zero-shot transfer (two-level bootstrap CI over the group's languages)."""
    from .analysis.select import config_of

    groups: dict[str, dict[str, dict]] = defaultdict(dict)  # configuration minus the setting -> setting -> info
    for r in runs:
        cfg = config_of(r)
        train = cfg.get("train", {})
        setting = train.get("setting", "zero_shot")
        rest = json.dumps({k: v for k, v in cfg.items() if k not in ("seeds", "store", "output_dir", "name")}
                          | {"train": {k: v for k, v in train.items() if k not in (*SETTING_KEYS, "shot_seed")}},
                          sort_keys=True, default=str)
        groups[rest].setdefault(setting, {"variant": r["variant"], "label": r["variant_label"], "task": r["task"],
                                          "method": r["method"], "oracle": r.get("oracle") or ""})
    compared = {k: v for k, v in groups.items() if "zero_shot" in v and len(v) > 1}
    if not compared:
        return
    doc.h(2, "Transfer settings")
    doc.p("Variants that differ only in their transfer setting (train.setting), per language group of the resource "
          "table: the mean score of the group's languages, and each setting's gain over zero-shot transfer with its "
          "95 % CI (two-level bootstrap over seeds and items, restricted to the group's languages). Translations "
          "from the same lines of the other language's file are human translations: an ORACLE for what machine "
          "translation could give.")
    out = []
    for by_setting in compared.values():
        zs = by_setting["zero_shot"]
        metric = primary[zs["task"]]
        means = {s: {r.lang: r.mean for r in rows if r.variant == info["variant"] and r.lang != agg.AVG
                     and r.metric == metric and r.split == "test"} for s, info in by_setting.items()}
        langs = sorted(means["zero_shot"])
        for g in ("high", "low", "unseen", "unknown"):
            in_group = [lg for lg in langs if table.group(lg) == g]
            if not in_group:
                continue
            for s, info in sorted(by_setting.items(), key=lambda kv: kv[0] != "zero_shot"):
                vals = [means[s][lg] for lg in in_group if lg in means[s]]
                cell = f"{100 * np.mean(vals):.1f}" if vals else "–"
                gain = "–"
                if s != "zero_shot":
                    try:
                        c = compare_variants(store, info["variant"], zs["variant"], metric=metric, langs=in_group,
                                             n_resamples=n_resamples, seed=seed)
                        res = c.average or (c.per_lang[0] if len(c.per_lang) == 1 else None)
                        if res is not None:
                            gain = (f"{res.diff * 100:+.2f} [{res.ci_low * 100:+.2f}, {res.ci_high * 100:+.2f}] "
                                    f"({len(res.seeds)} seed{'s' if len(res.seeds) > 1 else ''})")
                    except XLTuneError as e:
                        gain = f"not tested: {e}"
                oracle = f" [ORACLE: {info['oracle']}]" if info["oracle"] else ""
                out.append([zs["task"], info["method"], g, f"{len(in_group)}", f"{s}{oracle}", cell, gain])
    doc.table(["task", "method", "group", "langs", "setting", "score", "gain over zero-shot (CI)"], out)


def _significance_section(doc, store, keys, cells, base, primary, n_resamples, seed, bar) -> None:
    doc.h(2, f"Significance (vs {base})")
    doc.p(f"Paired bootstrap over test examples ({n_resamples} resamples, generator seed {seed}), seeds matched; "
          "diff = method − baseline in points with its 95 % percentile CI and two-sided p. The seed test is a paired "
          "t-test over matched seeds of the stored scores (plus Wilcoxon signed-rank from 5 seeds).")
    header = ["task", "model", "shots", "variant", "baseline", "lang", "diff", "95% CI", "p (bootstrap)", "seeds",
              "seed test", "p (t)", "p (Wilcoxon)"]
    out, notes = [], []
    for key in _test_split(keys):
        task, model, shots, split = key
        for va, m, vb, mb in _pairs(cells[key], base):
            try:
                cmp = compare_variants(store, va, vb, split=split, metric=primary[task], n_resamples=n_resamples,
                                       seed=seed)
            except XLTuneError as e:
                notes.append(f"{task} {model} K={shots} {m} vs {mb}: not tested — {e}")
                continue
            if cmp.skipped:
                notes.append(f"{task} {model} K={shots} {m}: no stored predictions for {', '.join(cmp.skipped)} "
                             "(the bootstrap needs per-example predictions in the store)")
            for res in [*cmp.per_lang, *([cmp.average] if cmp.average else [])]:
                st = cmp.seed_tests.get(res.lang)
                out.append([task, model, shots, m, mb, res.lang, f"{res.diff * 100:+.2f}",
                            f"[{res.ci_low * 100:+.2f}, {res.ci_high * 100:+.2f}]", f"{res.p_value:.3g}",
                            len(res.seeds), st.tests if st else "–", _fmt_p(st.t_p) if st else "–",
                            _fmt_p(st.wilcoxon_p) if st else "–"])
        bar.update()
    if out:
        doc.table(header, out)
    else:
        doc.p("Nothing to test: needs a variant of the baseline method and another variant, with matched seeds and "
              "stored predictions.")
    for n in notes:
        doc.p(n)


def _fmt_p(p: float | None) -> str:
    return "–" if p is None or (isinstance(p, float) and math.isnan(p)) else f"{p:.3g}"


def _claims_section(doc: Doc, store_path, tokstats_path, resources_path, n_resamples: int, seed: int,
                    where: Sequence[str] = (), variants: Sequence[str] = ()) -> None:
    """The published claims (xltune.claims) checked against these runs, one row per claim. The report reads only
    the store: claims about model configurations (parameter shares, architecture) are left to `xltune claims`."""
    from .claims import check_claims

    doc.h(2, "Claims")
    verdicts = check_claims(store_path, tokstats=tokstats_path, resources=resources_path, n_resamples=n_resamples,
                            seed=seed, where=where, variants=variants, store_only=True)
    doc.p("Each claim of the study is a declared check (xltune/resources/claims.yaml; `xltune claims` prints the "
          "evidence in full, and checks the claims about model configurations, which this report leaves out "
          "because it reads only the store).")
    doc.table(["claim", "verdict", "statistic", "reason"],
              [[f"{v.id}: {v.claim.text}", v.status, v.statistic, v.reason] for v in verdicts])


def _environment_section(doc: Doc, runs: Sequence[dict]) -> None:
    doc.h(2, "Environment")
    envs: dict[str, list[str]] = defaultdict(list)
    for r in runs:
        envs[json.dumps(r["env"], sort_keys=True)].append(r["run_id"])
    if not any(json.loads(k) for k in envs):
        doc.p("No environment manifest was stored with these runs (runs.env_json is empty).")
        return
    for i, (env_json, ids) in enumerate(sorted(envs.items(), key=lambda kv: -len(kv[1])), 1):
        env = json.loads(env_json)
        doc.p(f"Environment {i}: {len(ids)} run(s).")
        doc.table(["component", "version"], [[k, env[k]] for k in sorted(env)])
