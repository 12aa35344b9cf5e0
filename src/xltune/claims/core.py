"""Claims as data, checks as code: the types, the loader, the check context and the verdict tables.

A claim (``resources/claims.yaml`` or a user's file) is ``{id, text, check, params}``; ``check`` names a check kind
registered in :mod:`xltune.claims.checks`, ``params`` are that kind's declared parameters (thresholds included), so
a user edits a margin or adds a claim without touching code. A check reads only the results store (and, for
config facts, the model's config on the meta device) and returns a :class:`Verdict`.
"""

from __future__ import annotations

import importlib
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources as importlib_resources
from pathlib import Path
from typing import Any

import yaml

from ..analysis import aggregate as agg
from ..analysis.resources import ResourceTable
from ..analysis.select import select_runs
from ..analysis.significance import ChanceCheck, Comparison, chance_check, compare_variants
from ..errors import XLTuneError, unknown_name, where, yaml_error
from ..registry import Registry
from ..store import Store

SUPPORTED = "supported"
CONTRADICTED = "contradicted"
INCONCLUSIVE = "inconclusive"
NOT_TESTABLE = "not testable"
STATUSES = (SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_TESTABLE)  # empirical verdicts, from runs
HOLDS = "holds by construction"  # facts about configurations (parameter shares, architecture): not empirical
FAILS = "fails by construction"
FACTS = (HOLDS, FAILS)
DEFAULT_CLAIMS = "claims.yaml"


@dataclass(frozen=True)
class Claim:
    id: str
    text: str
    check: str
    params: dict[str, Any]
    source: str = ""  # file:line of the claim, for error messages


@dataclass
class Verdict:
    claim: Claim
    status: str  # one of STATUSES
    reason: str  # why this verdict, one line
    statistic: str  # the headline numbers, one line
    runs: str = ""  # runs used, or the runs that would make it testable
    details: list[str] = field(default_factory=list)  # one line per setting (task, model, shots) or fact
    settings: list[tuple[str, str, str]] = field(default_factory=list)  # (setting, its status, why), every one

    @property
    def id(self) -> str:
        return self.claim.id

    @property
    def is_fact(self) -> bool:
        return self.status in FACTS


@dataclass(frozen=True)
class CheckKind:
    """A registered check: ``func(claim, ctx) -> Verdict`` and its parameters with defaults."""

    func: Callable[[Claim, Context], Verdict]
    defaults: dict[str, Any]
    doc: str
    reads_models: bool = False  # reads model configs (meta device), not the store


CHECKS: Registry[CheckKind] = Registry("claim check", loader=lambda: importlib.import_module("xltune.claims.checks"))


def register_check(name: str, reads_models: bool = False, **defaults: Any) -> Callable:
    def deco(func: Callable[[Claim, Context], Verdict]) -> Callable:
        CHECKS.add(name, CheckKind(func, defaults, (func.__doc__ or "").strip().splitlines()[0], reads_models))
        return func

    return deco


# -- loading claims --------------------------------------------------------------------------------------------
def load_claims(path: str | Path | None = None) -> list[Claim]:
    """Claims from a YAML file (``None``: the packaged ``xltune/resources/claims.yaml``), parameters checked."""
    if path is None:
        ref = importlib_resources.files("xltune.resources").joinpath(DEFAULT_CLAIMS)
        text, source = ref.read_text(encoding="utf-8"), f"xltune/resources/{DEFAULT_CLAIMS}"
    else:
        try:
            text, source = Path(path).read_text(encoding="utf-8"), str(path)
        except OSError as e:
            raise XLTuneError(f"cannot read claims file {path}: {e.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise yaml_error(e, source) from None
    items = data.get("claims") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        raise XLTuneError(f"{source}: expected a top-level 'claims:' list of {{id, text, check, params}}")
    lines = _claim_lines(text)
    shared = data.get("defaults") or {}
    if not isinstance(shared, dict):
        raise XLTuneError(f"{source}: defaults must be a mapping of parameters (e.g. min_seeds: 3), got {shared!r}")
    out, seen = [], set()
    for i, item in enumerate(items):
        loc = where(source, lines[i] if i < len(lines) else None)
        out.append(_parse_claim(item, loc, shared))
        if out[-1].id in seen:
            raise XLTuneError(f"{loc}: claim id {out[-1].id!r} is used twice")
        seen.add(out[-1].id)
    return out


def _claim_lines(text: str) -> list[int]:
    """Line numbers of the claims list items (``- id:``), for file:line in errors."""
    return [n for n, line in enumerate(text.splitlines(), 1) if line.lstrip().startswith("- id:")]


def _parse_claim(item: Any, loc: str, shared: dict | None = None) -> Claim:
    if not isinstance(item, dict):
        raise XLTuneError(f"{loc}: a claim must be a mapping with id, text, check, params; got {item!r}")
    for key in item:
        if key not in ("id", "text", "check", "params"):
            raise unknown_name("claim key", key, ("id", "text", "check", "params"), loc)
    for key in ("id", "text", "check"):
        if not isinstance(item.get(key), (str, int)) or str(item.get(key)).strip() == "":
            raise XLTuneError(f"{loc}: claim needs a non-empty {key!r}")
    kind = CHECKS.get(str(item["check"]), f"{loc} (claim {item['id']})")
    params = item.get("params") or {}
    if not isinstance(params, dict):
        raise XLTuneError(f"{loc}: params of claim {item['id']} must be a mapping, got {params!r}")
    for key in params:
        if key not in kind.defaults:
            raise unknown_name(f"parameter of check {item['check']!r}", key, kind.defaults, f"{loc} (claim {item['id']})")
    inherited = {k: v for k, v in (shared or {}).items() if k in kind.defaults}  # the file's defaults that apply
    return Claim(str(item["id"]), str(item["text"]).strip(), str(item["check"]),
                 {**kind.defaults, **inherited, **params}, loc)


# -- what checks read ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Setting:
    """One cell two arms are compared in: same task, model and shot count."""

    task: str
    model: str
    shots: str

    def label(self) -> str:
        model = self.model if len(self.model) <= 32 else "…" + self.model[-31:]
        return f"{self.task} {model} K={self.shots}"


@dataclass(frozen=True)
class Arm:
    method: str
    objective: str = "none"

    def label(self) -> str:
        return self.method if self.objective == "none" else f"{self.method}+{self.objective}"


class Context:
    """The store's runs and aggregated metrics, resource/tokenization tables and cached comparisons."""

    def __init__(self, store: Store | None, table: ResourceTable, toks: dict | None = None,
                 tasks: Sequence[str] | None = None, n_resamples: int = 1000, seed: int = 0,
                 where: Sequence[str] = (), variants: Sequence[str] = ()):
        self.store = store
        self.table = table
        self.toks = toks
        self.tasks = list(tasks) if tasks else None
        self.n_resamples = n_resamples
        self.seed = seed
        runs = [r for r in (store.runs() if store else []) if not self.tasks or r["task"] in self.tasks]
        self.runs = select_runs(runs, where, variants) if (where or variants) else runs
        ids = {r["run_id"] for r in self.runs}
        self.metric_rows = [r for r in (store.metrics() if store else []) if r["run_id"] in ids]
        self.rows = agg.aggregate(self.metric_rows)
        metric_sets: dict[str, set[str]] = defaultdict(set)
        for r in self.metric_rows:
            metric_sets[r["task"]].add(r["metric"])
        self.primary = {t: agg.primary_metric(m) for t, m in metric_sets.items()}
        self._cmp: dict[tuple, Comparison | XLTuneError] = {}
        self._chance: dict[tuple, ChanceCheck | XLTuneError | None] = {}

    # runs ---------------------------------------------------------------------------------------------------
    def task_names(self) -> list[str]:
        return sorted({r["task"] for r in self.runs})

    def _arm_runs(self, setting: Setting, arm: Arm) -> list[dict]:
        return [r for r in self.runs if (r["task"], r["model"], r["shots"]) == (setting.task, setting.model,
                setting.shots) and (r["method"], r["objective"]) == (arm.method, arm.objective)]

    def seeds(self, setting: Setting, arm: Arm) -> list[int]:
        return sorted({r["seed"] for r in self._arm_runs(setting, arm)})

    def variant(self, setting: Setting, arm: Arm) -> str | XLTuneError:
        """The one variant of ``arm`` in ``setting``, or an error naming them when there are several: an arm is
        one configuration, never a pool of several (say which with --variant / --where)."""
        found = sorted({(r["variant_label"], r["variant"]) for r in self._arm_runs(setting, arm)})
        if len(found) == 1:
            return found[0][1]
        if not found:
            return XLTuneError(f"no {arm.label()} runs in {setting.label()}")
        return XLTuneError(f"{len(found)} variants of {arm.label()} in {setting.label()} ("
                           + "; ".join(lbl for lbl, _ in found) + "): choose one with --variant LABEL or --where KEY=VALUE")

    def settings(self, arms: Sequence[Arm], tasks: Any = "any", shots: Any = "any", model: Any = "any") -> list[Setting]:
        """Settings where every arm has runs, filtered by the claim's tasks / shots / model selectors."""
        have: dict[Setting, set[Arm]] = defaultdict(set)
        for r in self.runs:
            have[Setting(r["task"], r["model"], r["shots"])].add(Arm(r["method"], r["objective"]))
        out = [s for s, a in have.items() if all(x in a for x in arms)
               and _select(s.task, tasks) and _select_shots(s.shots, shots) and _select(s.model, model)]
        return sorted(out, key=lambda s: (s.task, s.model, agg.shots_sort_key(s.shots)))

    def missing(self, arms: Sequence[Arm], tasks: Any, shots: Any = "any") -> str:
        """'needs method=X runs on T' for the arms/tasks a claim lacks."""
        want = [tasks] if isinstance(tasks, str) and tasks != "any" else (tasks if isinstance(tasks, list) else None)
        shot_txt = "" if shots == "any" else f" with shots={shots}"
        parts = []
        for arm in arms:
            have = {r["task"] for r in self.runs if (r["method"], r["objective"]) == (arm.method, arm.objective)
                    and _select_shots(r["shots"], shots)}
            lack = [t for t in want if t not in have] if want else ([] if have else ["any task"])
            if lack:
                obj = "" if arm.objective == "none" else f", objective={arm.objective}"
                parts.append(f"method={arm.method}{obj} runs on {', '.join(lack)}{shot_txt}")
        if not parts:  # every arm has runs, but never in the same task/model/shots with matched seeds
            parts.append(f"{' and '.join(a.label() for a in arms)} runs in the same task, model and shots")
        return "needs " + "; ".join(parts)

    def metric(self, task: str) -> str:
        return self.primary.get(task, "accuracy")

    def compare(self, setting: Setting, a: Arm, b: Arm, langs: Sequence[str] | None = None,
                split: str = "test") -> Comparison | XLTuneError:
        """compare_methods (paired bootstrap + seed tests), cached; an XLTuneError is returned, not raised."""
        key = (setting, a, b, tuple(langs) if langs is not None else None, split)
        if key not in self._cmp:
            va, vb = self.variant(setting, a), self.variant(setting, b)
            if isinstance(va, XLTuneError) or isinstance(vb, XLTuneError):
                self._cmp[key] = va if isinstance(va, XLTuneError) else vb
                return self._cmp[key]
            try:
                self._cmp[key] = compare_variants(self.store, va, vb, split=split, metric=self.metric(setting.task),
                                                  langs=langs, n_resamples=self.n_resamples, seed=self.seed)
            except XLTuneError as e:
                self._cmp[key] = e
        return self._cmp[key]

    def chance(self, setting: Setting, arm: Arm, split: str = "test") -> ChanceCheck | XLTuneError | None:
        """Is the arm above the majority-class baseline where it was trained (its source language; when that was
        not evaluated, its best language)? None when the runs hold no predictions to check it with."""
        key = (setting, arm, split)
        if key not in self._chance:
            v = self.variant(setting, arm)
            if isinstance(v, XLTuneError):
                self._chance[key] = v
                return v
            runs = [r for r in self.runs if r["variant"] == v]
            sources = runs[0]["source_langs"].split(",") if runs else []
            means = {r.lang: r.mean for r in self.rows if r.variant == v and r.split == split and r.lang != agg.AVG
                     and r.metric == self.metric(setting.task)}
            lang = next((s for s in sources if s in means), max(means, key=means.get) if means else None)
            try:
                self._chance[key] = None if lang is None else chance_check(
                    self.store, v, lang, split=split, metric=self.metric(setting.task), n_resamples=self.n_resamples,
                    seed=self.seed)
            except XLTuneError as e:
                self._chance[key] = e
        return self._chance[key]

    def gains(self, setting: Setting, a: Arm, b: Arm, split: str = "test") -> dict[str, float] | XLTuneError:
        """Per-language mean(a) - mean(b) over seeds (stored metric values, no predictions needed); an error when an
        arm has several variants in the setting."""
        va, vb = self.variant(setting, a), self.variant(setting, b)
        if isinstance(va, XLTuneError) or isinstance(vb, XLTuneError):
            return va if isinstance(va, XLTuneError) else vb

        def means(v: str) -> dict[str, float]:
            return {r.lang: r.mean for r in self.rows if r.lang != agg.AVG and r.variant == v and r.split == split
                    and r.metric == self.metric(setting.task)}

        ma, mb = means(va), means(vb)
        return {lang: ma[lang] - mb[lang] for lang in sorted(set(ma) & set(mb))}


def _select(value: str, sel: Any) -> bool:
    if sel in (None, "any"):
        return True
    return value in sel if isinstance(sel, list) else value == str(sel)


def _select_shots(shots: str, sel: Any) -> bool:
    """'any', 'few' (a number of shots), 'all' (the whole training set), or a list of shot counts."""
    if sel in (None, "any"):
        return True
    if sel == "few":
        return str(shots).isdigit()
    if isinstance(sel, list):
        return str(shots) in [str(s) for s in sel]
    return str(shots) == str(sel)


# -- combining per-setting results -----------------------------------------------------------------------------
def combine(results: Sequence[tuple[str, str, str]]) -> tuple[str, str]:
    """(status, reason) over every setting a claim needs, each (label, status, reason). A claim is supported
    (contradicted) only when every setting it needs is; one untested setting makes it inconclusive, naming it
    (a claim "across XNLI, PAWS-X, POS and NER" is not shown by three of them); settings that disagree too."""
    counts = {s: [lbl for lbl, st, _ in results if st == s] for s in STATUSES}
    tested = [r for r in results if r[1] != NOT_TESTABLE]
    untested = [r for r in results if r[1] == NOT_TESTABLE]
    if not tested:
        return NOT_TESTABLE, "; ".join(f"{lbl}: {why}" for lbl, _, why in results) or "no runs"
    if untested:
        return INCONCLUSIVE, ("untested: " + "; ".join(f"{lbl} ({why})" for lbl, _, why in untested)
                              + " -- tested: " + "; ".join(f"{lbl} {st}" for lbl, st, _ in tested))
    if len(tested) == 1:
        return tested[0][1], tested[0][2]
    statuses = {st for _, st, _ in tested}
    if statuses == {SUPPORTED}:
        return SUPPORTED, f"supported in all {len(tested)} settings"
    if statuses == {CONTRADICTED}:
        return CONTRADICTED, f"contradicted in all {len(tested)} settings"
    summary = ", ".join(f"{s} in {len(counts[s])} ({', '.join(counts[s])})" for s in STATUSES[:3] if counts[s])
    return INCONCLUSIVE, f"settings disagree: {summary}"


# -- the entry points ------------------------------------------------------------------------------------------
def check_claims(store_path: str | Path, *, claims: str | Path | Sequence[Claim] | None = None,
                 tasks: Sequence[str] | None = None, tokstats: str | Path | None = None,
                 resources: str | Path | None = None, n_resamples: int = 1000, seed: int = 0,
                 where: Sequence[str] = (), variants: Sequence[str] = (), store_only: bool = False) -> list[Verdict]:
    """One :class:`Verdict` per claim, from the runs in ``store_path`` (``claims``: a YAML path or Claims).
    ``where`` / ``variants`` choose the runs; ``store_only`` leaves out checks that read model configs (not the
    store), e.g. for the report, which reads only the store."""
    from ..analysis.resources import load_resource_table
    from ..analysis.tokstats import read_tokstats_csv

    claim_list = list(claims) if isinstance(claims, (list, tuple)) else load_claims(claims)
    store_path = Path(store_path)
    if not store_path.is_file():
        raise XLTuneError(f"results store {store_path} does not exist (run `xltune run` or `xltune sweep` first)")
    table = load_resource_table(resources)
    toks = read_tokstats_csv(tokstats) if tokstats is not None else None
    with Store(store_path) as store:
        ctx = Context(store, table, toks, tasks, n_resamples, seed, where, variants)
        return [CHECKS.get(c.check, c.source).func(c, ctx) for c in claim_list
                if not (store_only and CHECKS.get(c.check, c.source).reads_models)]


def format_verdicts(verdicts: Sequence[Verdict], markdown: bool = False) -> str:
    """A terminal table (id, verdict, statistic, reason), or Markdown with one section of evidence per claim."""
    empirical = [v for v in verdicts if not v.is_fact]
    facts = [v for v in verdicts if v.is_fact]
    counts = {s: sum(v.status == s for v in empirical) for s in STATUSES}
    tally = ", ".join(f"{n} {s}" for s, n in counts.items()) + " (from runs)"
    if facts:
        tally += "; by construction: " + ", ".join(f"{v.id} {v.status.split()[0]}" for v in facts) + \
            " (facts about configurations, not counted with the verdicts)"
    if markdown:
        out = ["# Claims checked against the stored runs\n",
               agg.markdown_table(["claim", "verdict", "statistic", "reason"],
                                  [[v.id, v.status, v.statistic, v.reason] for v in empirical])]
        if facts:
            out.append("\nFacts about configurations, not empirical verdicts (they hold or fail by construction):\n")
            out.append(agg.markdown_table(["claim", "status", "statistic", "reason"],
                                          [[v.id, v.status, v.statistic, v.reason] for v in facts]))
        out.append(f"\n{tally}\n")
        for v in verdicts:
            out.append(f"\n## {v.id}: {v.claim.text}\n")
            out.append(f"**{v.status}** — {v.reason}\n")
            out.append(f"- check: `{v.claim.check}` ({', '.join(f'{k}={_short(p)}' for k, p in v.claim.params.items())})")
            out.append(f"- statistic: {v.statistic}")
            if v.runs:
                out.append(f"- runs: {v.runs}")
            if v.settings:
                out.append("- settings:")
                out.extend(f"  - {lbl}: **{st}** — {why}" for lbl, st, why in v.settings)
            out.extend(f"- {d}" for d in v.details)
        return "\n".join(out) + "\n"
    lines = []
    width = max([len(v.id) for v in verdicts] + [5])
    for v in [*empirical, *facts]:
        lines.append(f"{v.id:<{width}}  {v.status.upper():<13} {v.claim.text}")
        pad = " " * (width + 2)
        lines.append(f"{pad}statistic: {v.statistic}")
        lines.append(f"{pad}reason:    {v.reason}")
        if v.runs:
            lines.append(f"{pad}runs:      {v.runs}")
        if len(v.settings) > 1:
            lines.extend(f"{pad}  setting {lbl}: {st} — {why}" for lbl, st, why in v.settings)
        lines.extend(f"{pad}  · {d}" for d in v.details)
    lines.append(tally)
    return "\n".join(lines) + "\n"


def _short(v: Any) -> str:
    s = str(v)
    return s if len(s) <= 40 else s[:37] + "…"


def pts(x: float) -> str:
    """A 0..1 metric difference in points: '+2.90'."""
    return "nan" if x is None or math.isnan(x) else f"{x * 100:+.2f}"


def ci(lo: float, hi: float) -> str:
    return f"[{pts(lo)}, {pts(hi)}]"
