"""Results out of a store: the list of runs (``xltune runs``) and the results as CSV, JSON or Markdown
(``xltune results``), per variant (mean ± sample std over its seeds) or per run, with units stated.

Reads only the store. Runs are chosen with ``--where`` / ``--variant`` (:mod:`.select`); evaluations of stored runs
on other data (``xltune eval``) come with their runs but apart from them: their own rows (``kind: evaluation``),
grouped per variant *and* evaluated data, never pooled with a run's own results.

Units: every value is in ``unit`` -- ``percent`` (default, as every printed table and the report) or ``fraction``
(the store's 0..1). CSV rows carry a ``unit`` column, JSON a top-level ``unit``; Markdown is always in percent.

The JSON follows lm-evaluation-harness's results schema per variant (``results`` keyed ``TASK_LANG`` and ``TASK``
for the language average, ``group_subtasks``, ``configs``, ``versions``, ``n-shot``, ``n-samples``,
``higher_is_better``), with xltune's additions (``_std`` over seeds, ``n_seeds``, the seeds and run ids).
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from ..version import __version__
from ..errors import XLTuneError, unknown_name
from . import aggregate as agg
from .select import select_runs

UNITS = ("percent", "fraction")
VERSION_KEYS = ("xltune", "python", "torch", "transformers", "peft", "accelerate")


@dataclass
class Selection:
    store: str
    runs: list[dict]
    metrics: list[dict]  # metric rows of the chosen runs
    evaluations: list[dict]  # evaluations of the chosen runs
    eval_metrics: list[dict]
    where: Sequence[str] = ()
    variants: Sequence[str] = ()
    examples: list[dict] | None = None  # per-example predictions (runs and evaluations), when asked for


def select(store, where: Sequence[str] = (), variants: Sequence[str] = (), examples: bool = False) -> Selection:
    """The runs of ``store`` (an open :class:`~xltune.store.Store`) that ``where`` / ``variants`` choose, with
    their metrics and evaluations (and per-example predictions: ``examples``)."""
    runs = store.runs()
    if not runs:
        raise XLTuneError(f"results store {store.path} has no runs")
    runs = select_runs(runs, where, variants)
    if not runs:
        raise XLTuneError(f"no run of {store.path} matches {' '.join([*where, *variants])}")
    ids = {r["run_id"] for r in runs}
    metrics = [m for m in store.metrics() if m["run_id"] in ids]
    evaluations = [e for e in store.evaluations() if e["run_id"] in ids]
    eids = {e["eval_id"] for e in evaluations}
    eval_metrics = [m for m in store.eval_metrics() if m["eval_id"] in eids]
    rows = store.predictions_of(sorted(ids), sorted(eids)) if examples else None
    return Selection(str(store.path), runs, metrics, evaluations, eval_metrics, where, variants, rows)


# -- the list of runs -------------------------------------------------------------------------------------------
def run_table(sel: Selection) -> tuple[list[str], list[list[str]]]:
    """One line per run: id, variant label, task, method, seed, date, language average (%, the headline metric of
    its evaluation split), languages, evaluations."""
    avg = _run_averages(sel.metrics, sel.runs)
    n_evals: dict[str, int] = defaultdict(int)
    for e in sel.evaluations:
        n_evals[e["run_id"]] += 1
    header = ["run", "variant", "task", "method", "seed", "date", "avg %", "metric", "langs", "evals"]
    body = []
    for r in sel.runs:
        a = avg.get(r["run_id"])
        body.append([r["run_id"], r.get("variant_label") or r["method"], r["task"], r["method"], str(r["seed"]),
                     str(r["created"]).replace("T", " ").rstrip("Z")[:16],
                     f"{100 * a[0]:.2f}" if a else agg.DASH, a[1] if a else "", str(a[2]) if a else "0",
                     str(n_evals.get(r["run_id"], 0))])
    return header, body


def _run_averages(metrics: Sequence[dict], runs: Sequence[dict]) -> dict[str, tuple[float, str, int]]:
    """run id -> (mean over languages of the headline metric, its name, languages)."""
    headline = {r["run_id"]: r.get("headline_metric") or "" for r in runs}
    per: dict[str, dict[str, float]] = defaultdict(dict)
    names: dict[str, set[str]] = defaultdict(set)
    for m in metrics:
        names[m["run_id"]].add(m["metric"])
    for m in metrics:
        want = headline.get(m["run_id"]) or agg.primary_metric(names[m["run_id"]])
        if m["metric"] == want:
            per[m["run_id"]][m["lang"]] = float(m["value"])
    out = {}
    for rid, vals in per.items():
        out[rid] = (sum(vals.values()) / len(vals), headline.get(rid) or agg.primary_metric(names[rid]), len(vals))
    return out


def text_table(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell; numbers right-aligned."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body)] if body else [len(h) for h in header]

    def line(cells):
        out = []
        for c, w in zip(cells, widths):
            c = str(c)
            out.append(c.rjust(w) if _numeric(c) else c.ljust(w))
        return "  ".join(out).rstrip()

    return "\n".join([line(header), *(line(b) for b in body)])


def _numeric(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return s == agg.DASH


# -- rows -------------------------------------------------------------------------------------------------------------
def _eval_rows(sel: Selection) -> list[dict]:
    """Evaluation metric rows shaped like run metric rows, keyed so that one cell is one variant on one evaluated
    setting (the evaluation's signature)."""
    about = {e["eval_id"]: e for e in sel.evaluations}
    out = []
    for m in sel.eval_metrics:
        e = about[m["eval_id"]]
        sig = e["extra"].get("signature") or e["eval_id"]
        out.append({**m, "variant": f"{m['variant']}@{sig}", "variant_label": m.get("variant_label") or m["method"],
                    "data": e["data"], "run_variant": m["variant"], "signature": sig})
    return out


def aggregates(sel: Selection) -> tuple[list[agg.AggRow], list[agg.AggRow], dict[str, dict]]:
    """(the runs' own cells, the evaluations' cells, evaluation cell variant -> {data, task, signature})."""
    ev_rows = _eval_rows(sel)
    about = {r["variant"]: {"data": r["data"], "task": r["task"], "variant": r["run_variant"],
                            "signature": r["signature"]} for r in ev_rows}
    return agg.aggregate(sel.metrics), agg.aggregate(ev_rows), about


def _data_of(run: dict) -> str:
    return (run.get("config") or {}).get("task", {}).get("data_dir") or "hub"


def per_run_rows(sel: Selection, scale: float) -> list[dict]:
    """One row per run (or evaluation), split, metric and language, with the language average per run last."""
    runs = {r["run_id"]: r for r in sel.runs}
    out = []

    def emit(kind: str, ident: str, run: dict, data: str, task: str, rows: Sequence[dict]) -> None:
        by: dict[tuple[str, str], list[dict]] = defaultdict(list)
        for m in rows:
            by[(m["split"], m["metric"])].append(m)
        for (split, metric), ms in by.items():
            base = {"kind": kind, "id": ident, "run_id": run["run_id"], "variant": run["variant"],
                    "label": run.get("variant_label") or run["method"], "task": task, "model": run["model"],
                    "method": run["method"], "objective": run.get("objective") or "none",
                    "oracle": run.get("oracle") or "", "shots": run["shots"],
                    "seed": run["seed"], "data": data, "split": split, "metric": metric}
            for m in sorted(ms, key=lambda x: x["lang"]):
                out.append({**base, "lang": m["lang"], "value": float(m["value"]) * scale, "n": m["n"]})
            if len(ms) > 1:
                out.append({**base, "lang": agg.AVG, "value": sum(float(m["value"]) for m in ms) / len(ms) * scale,
                            "n": sum(int(m["n"]) for m in ms)})

    by_run: dict[str, list[dict]] = defaultdict(list)
    for m in sel.metrics:
        by_run[m["run_id"]].append(m)
    for r in sel.runs:
        emit("run", r["run_id"], r, _data_of(r), r["task"], by_run.get(r["run_id"], []))
    by_eval: dict[str, list[dict]] = defaultdict(list)
    for m in sel.eval_metrics:
        by_eval[m["eval_id"]].append(m)
    for e in sel.evaluations:
        emit("evaluation", e["eval_id"], runs[e["run_id"]], e["data"], e["task"], by_eval.get(e["eval_id"], []))
    return out


def per_example_rows(sel: Selection) -> list[dict]:
    """One row per stored prediction: which run (or evaluation), its variant and seed, the example (language,
    split, index in its file), gold and predicted label (tagging: JSON lists of tags)."""
    runs = {r["run_id"]: r for r in sel.runs}
    of_eval = {e["eval_id"]: e for e in sel.evaluations}
    out = []
    for p in sel.examples or []:
        e = of_eval.get(p["id"]) if p["kind"] == "evaluation" else None
        run = runs[e["run_id"] if e else p["id"]]
        out.append({"kind": p["kind"], "id": p["id"], "run_id": run["run_id"], "variant": run["variant"],
                    "label": run.get("variant_label") or run["method"], "seed": run["seed"],
                    "task": e["task"] if e else run["task"], "data": e["data"] if e else _data_of(run),
                    "split": p["split"], "lang": p["lang"], "idx": p["idx"], "gold": p["gold"], "pred": p["pred"]})
    return out


EXAMPLE_FIELDS = ("kind", "id", "run_id", "variant", "label", "seed", "task", "data", "split", "lang", "idx", "gold",
                  "pred")


def examples_csv(sel: Selection) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(EXAMPLE_FIELDS)
    for r in per_example_rows(sel):
        w.writerow([r[f] for f in EXAMPLE_FIELDS])
    return buf.getvalue()


def examples_jsonl(sel: Selection) -> str:
    rows = per_example_rows(sel)
    for r in rows:
        if r["gold"].startswith("["):  # tagging: the tag lists as lists
            r["gold"], r["pred"] = json.loads(r["gold"]), json.loads(r["pred"])
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


# -- CSV --------------------------------------------------------------------------------------------------------------
# oracle: what a variant knew that zero-shot transfer does not (target dev labels, human translations); '' = none
AGG_FIELDS = ("kind", "task", "model", "shots", "variant", "label", "method", "objective", "oracle", "data", "split",
              "metric", "lang", "mean", "std", "n", "seeds", "unit")
RUN_FIELDS = ("kind", "id", "run_id", "variant", "label", "task", "model", "method", "objective", "oracle", "shots",
              "seed", "data", "split", "metric", "lang", "value", "n", "unit")


def to_csv(sel: Selection, *, per_run: bool = False, units: str = "percent") -> str:
    """Long CSV: per variant and language (mean, sample std over seeds, n seeds), or per run and language;
    evaluations of stored runs as their own rows (``kind``)."""
    scale = _scale(units)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if per_run:
        w.writerow(RUN_FIELDS)
        for r in per_run_rows(sel, scale):
            w.writerow([*(r[f] for f in RUN_FIELDS[:-3]), _num(r["value"]), r["n"], units])
        return buf.getvalue()
    own, evals, about = aggregates(sel)
    data = {r["variant"]: _data_of(r) for r in sel.runs}
    w.writerow(AGG_FIELDS)
    for kind, rows in (("run", own), ("evaluation", evals)):
        for r in rows:
            variant = about[r.variant]["variant"] if kind == "evaluation" else r.variant
            where = about[r.variant]["data"] if kind == "evaluation" else data.get(r.variant, "")
            w.writerow([kind, r.task, r.model, r.shots, variant, r.label, r.method, r.objective, r.oracle, where,
                        r.split, r.metric, r.lang, _num(r.mean * scale),
                        "" if math.isnan(r.std) else _num(r.std * scale), r.n, " ".join(map(str, r.seeds)), units])
    return buf.getvalue()


def _num(x: float) -> str:
    return repr(float(x))


def _scale(units: str) -> float:
    if units not in UNITS:
        raise unknown_name("unit", units, UNITS, "--units")
    return 100.0 if units == "percent" else 1.0


# -- Markdown ---------------------------------------------------------------------------------------------------------
def to_markdown(sel: Selection, *, per_run: bool = False) -> str:
    own, evals, about = aggregates(sel)
    chosen = " ".join([*(f"--where {w}" for w in sel.where), *(f"--variant {v!r}" for v in sel.variants)])
    out = [f"# Results: {sel.store}\n",
           f"{len(sel.runs)} run(s) of {len({r['variant'] for r in sel.runs})} variant(s)"
           + (f" chosen by {chosen}" if chosen else "") + f"; xltune {__version__}, "
           f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.\n",
           "Values in % (unit: percent): mean ± sample std (ddof=1) over the seeds of one variant (n: seeds; '–': "
           "one seed); 'avg' is the mean over languages per run, then over runs. Variants are never pooled.\n"]
    for (task, split, metric), rows in _groups(own):
        out.append(f"## {task} · {split} · {metric}\n")
        out.append(agg.markdown_table(*agg.pivot(rows, compact=True)))
    if per_run:
        out.append("## Per run\n")
        out += _per_run_md([r for r in per_run_rows(sel, 100.0) if r["kind"] == "run"])
    if sel.evaluations:
        out.append("## Evaluations of stored runs (`xltune eval`)\n")
        out.append("Stored runs scored on other data, languages or splits without training. Each is linked to its "
                   "run and is not one of its seeds: these rows are never pooled with the results above. Cells "
                   "are one variant on one evaluated setting (data, split), mean ± std over its evaluated runs.\n")
        for (task, split, metric), rows in _groups(evals):
            out.append(f"### {task} · {split} · {metric}\n")
            out.append(agg.markdown_table(*eval_pivot(rows, about)))
        if per_run:
            out.append("### Per evaluation\n")
            out += _per_run_md([r for r in per_run_rows(sel, 100.0) if r["kind"] == "evaluation"], evaluation=True)
    return "\n".join(out)


def eval_pivot(rows: Sequence[agg.AggRow], about: dict[str, dict]) -> tuple[list[str], list[list[str]]]:
    """A wide table of evaluation cells: the run's variant (label), the evaluated data, n runs, one column per
    language (then avg)."""
    from ..variants import distinguishing_labels

    langs = agg.languages(rows)
    labels = distinguishing_labels({about[r.variant]["variant"]: r.label for r in rows})
    cells: dict[str, dict[str, agg.AggRow]] = defaultdict(dict)
    for r in rows:
        cells[r.variant][r.lang] = r
    body = []
    for cell, per in cells.items():
        info = about[cell]
        n = max(r.n for r in per.values())
        body.append([labels[info["variant"]], info["data"], str(n),
                     *(agg.fmt_mean_std(per[lg].mean, per[lg].std) if lg in per else agg.DASH for lg in langs)])
    return ["variant", "data", "n", *langs], body


def _groups(rows: Sequence[agg.AggRow]) -> list[tuple[tuple[str, str, str], list[agg.AggRow]]]:
    groups: dict[tuple[str, str, str], list[agg.AggRow]] = defaultdict(list)
    for r in rows:
        groups[(r.task, r.split, r.metric)].append(r)
    return sorted(groups.items())


def _per_run_md(rows: Sequence[dict], evaluation: bool = False) -> list[str]:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["task"], r["split"], r["metric"])].append(r)
    out = []
    for (task, split, metric), rs in sorted(groups.items()):
        langs = sorted({r["lang"] for r in rs if r["lang"] != agg.AVG})
        langs += [agg.AVG] if any(r["lang"] == agg.AVG for r in rs) else []
        ids: dict[str, dict[str, dict]] = defaultdict(dict)
        for r in rs:
            ids[r["id"]][r["lang"]] = r
        head = (["evaluation", "run"] if evaluation else ["run"]) + ["variant", "seed"] + \
            (["data"] if evaluation else []) + langs
        body = []
        for ident, per in ids.items():
            first = next(iter(per.values()))
            cells = ([ident, first["run_id"]] if evaluation else [ident]) + [first["label"], str(first["seed"])] + \
                ([first["data"]] if evaluation else [])
            body.append(cells + [f"{per[lg]['value']:.1f}" if lg in per else agg.DASH for lg in langs])
        out.append(f"{task} · {split} · {metric} (%)\n")
        out.append(agg.markdown_table(head, body))
    return out


# -- JSON (lm-evaluation-harness's results schema, per variant) -------------------------------------------------------
def to_json(sel: Selection, *, per_run: bool = False, units: str = "percent") -> str:
    from ..metrics import METRICS

    scale = _scale(units)
    own, evals, about = aggregates(sel)
    runs_by_variant: dict[str, list[dict]] = defaultdict(list)
    for r in sel.runs:
        runs_by_variant[r["variant"]].append(r)
    metric_names = {r.metric for r in [*own, *evals]}
    own_n, eval_n = _examples(sel.metrics), _examples(_eval_rows(sel))
    doc = {
        "xltune_results": 1, "xltune_version": __version__, "store": sel.store,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "unit": units,
        "selection": {"where": list(sel.where), "variant": list(sel.variants)},
        "higher_is_better": {m: _higher(METRICS, m) for m in sorted(metric_names)},
        "variants": [_variant_block(rows, runs_by_variant[rows[0].variant], scale,
                                    n_examples=own_n.get(rows[0].variant)) for rows in _by_variant(own)],
        "evaluations": [],
    }
    evs = {e["eval_id"]: e for e in sel.evaluations}
    for rows in _by_variant(evals):
        info = about[rows[0].variant]
        variant_runs = {r["run_id"]: r for r in runs_by_variant[info["variant"]]}
        members = [e for e in evs.values() if (e["extra"].get("signature") or e["eval_id"]) == info["signature"]
                   and e["run_id"] in variant_runs]
        runs = [variant_runs[e["run_id"]] for e in members]
        block = _variant_block(rows, runs, scale, data=info["data"], n_examples=eval_n.get(rows[0].variant))
        block["variant"] = info["variant"]
        block["signature"] = info["signature"]
        block["eval_ids"] = [e["eval_id"] for e in members]
        if members:
            block["configs"] = {"task": members[0]["config"].get("task"), "eval": members[0]["config"].get("eval")}
        doc["evaluations"].append(block)
    if per_run:
        doc["per_run"] = per_run_rows(sel, scale)
    return json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n"


def _higher(metrics, name: str) -> bool | None:
    try:
        return bool(metrics.get(name).higher_is_better)
    except (XLTuneError, AttributeError):
        return True if name in ("precision", "recall") else None


def _by_variant(rows: Sequence[agg.AggRow]) -> list[list[agg.AggRow]]:
    groups: dict[tuple, list[agg.AggRow]] = defaultdict(list)
    for r in rows:
        groups[(r.variant, r.task, r.model, r.shots, r.split)].append(r)
    return list(groups.values())


def _examples(metric_rows: Sequence[dict]) -> dict[str, dict[str, int]]:
    """cell variant -> language -> examples evaluated (the largest n among its runs)."""
    out: dict[str, dict[str, int]] = defaultdict(dict)
    for m in metric_rows:
        per = out[m["variant"]]
        per[m["lang"]] = max(per.get(m["lang"], 0), int(m["n"]))
    return out


def _variant_block(rows: Sequence[agg.AggRow], runs: Sequence[dict], scale: float, data: str | None = None,
                   n_examples: dict[str, int] | None = None) -> dict:
    first = rows[0]
    task = first.task
    results: dict[str, dict] = {}
    samples: dict[str, dict] = {}
    langs = []
    for r in sorted(rows, key=lambda x: (x.lang == agg.AVG, x.lang, x.metric)):
        key = task if r.lang == agg.AVG else f"{task}_{r.lang}"
        entry = results.setdefault(key, {"alias": f"{task} (mean over languages)" if r.lang == agg.AVG else r.lang})
        entry[r.metric] = r.mean * scale
        entry[f"{r.metric}_std"] = None if math.isnan(r.std) else r.std * scale
        entry["n_seeds"] = r.n
        if r.lang != agg.AVG and key not in langs:
            langs.append(key)
    config = dict(runs[0]["config"]) if runs else {}
    if runs:
        config["seeds"] = sorted({int(r["seed"]) for r in runs})
    block = {
        "variant": first.variant, "label": first.label, "task": task, "model": first.model, "method": first.method,
        "objective": first.objective, "shots": first.shots, "split": first.split,
        **({"data": data} if data is not None else {}),
        "results": results,
        "group_subtasks": {task: langs},
        "configs": {task: config} if data is None else {},
        "versions": _versions(runs),
        "n-shot": {task: _shots(first.shots)},
        "n-samples": {f"{task}_{lang}": {"original": n, "effective": n}
                      for lang, n in sorted((n_examples or {}).items())},
        "higher_is_better": {task: {m: True for m in sorted({r.metric for r in rows})}},
        "seeds": sorted({s for r in rows for s in r.seeds}),
        "run_ids": [r["run_id"] for r in runs],
    }
    return block


def _shots(shots: str) -> int | str:
    return int(shots) if str(shots).isdigit() else shots


def _versions(runs: Sequence[dict]) -> dict:
    out: dict[str, object] = {}
    for k in VERSION_KEYS:
        vals = sorted({str((r.get("env") or {}).get(k)) for r in runs if (r.get("env") or {}).get(k)})
        if vals:
            out[k] = vals[0] if len(vals) == 1 else vals
    devices = sorted({str((r.get("env") or {}).get("device")) for r in runs if (r.get("env") or {}).get("device")})
    if devices:
        out["device"] = devices[0] if len(devices) == 1 else devices
    return out
