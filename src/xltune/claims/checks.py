"""The check kinds claims can use. Each is registered with its parameters and defaults; thresholds are parameters.

Verdict rules (the same shape everywhere; docs/claims.md states each with its reference):

* A statistic with its uncertainty (a two-level bootstrap CI over seeds and items, a permutation p, an exact
  Spearman p) is compared with the claim's declared threshold. Clearly on the claim's side: supported; clearly on the
  other: contradicted; the interval straddles the threshold or p >= alpha: inconclusive.
* Gates before any verdict, per setting: each arm needs ``min_seeds`` seeds (default 3: one seed shows one training
  run, not a method), and each arm must be above chance where it was trained (its source language's score above the
  majority-class baseline, two-level bootstrap CI of the difference above 0). Otherwise: inconclusive, saying why.
* A claim needs every setting it names; one untested setting makes it inconclusive, naming that setting.
* Facts about configurations (a parameter share, an architecture) hold or fail by construction: they are reported
  apart and not counted with the empirical verdicts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats as sps

from ..analysis.correlation import spearman, spearman_exact
from ..analysis.significance import BootstrapResult, Comparison
from ..errors import XLTuneError
from .core import (CONTRADICTED, FAILS, HOLDS, INCONCLUSIVE, NOT_TESTABLE, SUPPORTED, Arm, Claim, Context, Setting,
                   Verdict, ci, combine, pts, register_check)

COMPARE = dict(method="deep_prompt", baseline="finetune", objective="none", baseline_objective="none",
               shots="any", model="any", split="test", min_seeds=3, chance_gate=True)
GPT3_SHAPES = [[12, 768], [24, 1024], [24, 1536], [24, 2048], [32, 2560], [32, 4096], [40, 5120], [96, 12288]]


def _arms(p: dict) -> tuple[Arm, Arm]:
    return Arm(p["method"], p["objective"]), Arm(p["baseline"], p["baseline_objective"])


def _headline(res: Comparison | XLTuneError) -> BootstrapResult | None:
    """The language average, or the only language when one was evaluated."""
    if isinstance(res, XLTuneError):
        return None
    return res.average or (res.per_lang[0] if len(res.per_lang) == 1 else None)


def _no_predictions(cmp: Comparison | XLTuneError) -> str:
    if isinstance(cmp, XLTuneError):
        return str(cmp)
    return (f"no stored per-example predictions for {', '.join(cmp.skipped) or 'any language'} "
            "(the bootstrap needs eval.save_predictions: true)")


def _runs_used(ctx: Context, s: Setting, arms: Sequence[Arm]) -> str:
    return f"{s.label()}: " + ", ".join(f"{a.label()} seeds {ctx.seeds(s, a)}" for a in arms)


def _not_testable(claim: Claim, why: str, statistic: str = "no matching runs", ctx: Context | None = None) -> Verdict:
    if ctx is not None:
        methods = sorted({f"{r['method']}+{r['objective']}" if r["objective"] != "none" else r["method"] for r in ctx.runs})
        statistic += f" ({len(ctx.runs)} runs in the store: {', '.join(methods) or 'none'})"
    return Verdict(claim, NOT_TESTABLE, why, statistic, runs=why if why.startswith("needs") else "",
                   settings=[("all", NOT_TESTABLE, why)])


def _tasks_missing(p: dict, settings: Sequence[Setting]) -> list[str]:
    if not (p.get("require_tasks") and isinstance(p["tasks"], list)):
        return []
    return [t for t in p["tasks"] if t not in {s.task for s in settings}]


def _gate(ctx: Context, s: Setting, arms: Sequence[Arm], p: dict) -> str | None:
    """Why the setting cannot give a verdict yet (too few seeds, an arm at chance), or None."""
    need = int(p.get("min_seeds", 3))
    few = [f"{a.label()} has {len(ctx.seeds(s, a))}" for a in arms if len(ctx.seeds(s, a)) < need]
    if few:
        return (f"needs {need} seeds per arm ({', '.join(few)}): fewer runs show those training runs, not the "
                f"method's spread over shot samples and initialisations")
    if not p.get("chance_gate", True):
        return None
    for a in arms:
        c = ctx.chance(s, a, p.get("split", "test"))
        if isinstance(c, XLTuneError) or c is None:
            continue  # no predictions to check with: the comparison itself will say so, or the gate is skipped
        if not c.above:
            return f"runs at chance: {a.label()} {c.describe()}"
    return None


def _setting_results(ctx: Context, settings: Sequence[Setting], arms: Sequence[Arm], p: dict, evaluate
                     ) -> tuple[list, list, list]:
    """Run ``evaluate(setting) -> (status, why, statistic, detail)`` on every setting; a testable setting that
    fails a gate (too few seeds, an arm at chance) is inconclusive whatever its statistic says (the statistic is
    still shown). Returns (results, stats, details)."""
    results, stats, details = [], [], []
    for s in settings:
        status, why, stat, detail = evaluate(s)
        if status != NOT_TESTABLE:
            gate = _gate(ctx, s, arms, p)
            if gate is not None:
                status, why = INCONCLUSIVE, gate
                detail = f"{s.label()}: inconclusive — {gate}"
        results.append((s.label(), status, why))
        if stat:
            stats.append(stat)
        details.append(detail or f"{s.label()}: {status} — {why}")
    return results, stats, details


def _missing_settings(ctx: Context, p: dict, settings: Sequence[Setting], arms: Sequence[Arm]) -> list:
    """Settings a claim needs (its declared tasks, with require_tasks) that the store does not have."""
    return [(f"{t} (any model/shots)", NOT_TESTABLE, ctx.missing(arms, t, p["shots"]))
            for t in _tasks_missing(p, settings)]


@register_check("paired_difference", tasks="any", threshold_points=-1.0, require_tasks=False, **COMPARE)
def paired_difference(claim: Claim, ctx: Context) -> Verdict:
    """Language-average difference method − baseline (two-level bootstrap 95 % CI over seeds and items) vs
    threshold_points."""
    p = claim.params
    a, b = _arms(p)
    thr = float(p["threshold_points"]) / 100
    settings = ctx.settings([a, b], p["tasks"], p["shots"], p["model"])
    if not settings:
        return _not_testable(claim, ctx.missing([a, b], p["tasks"], p["shots"]), ctx=ctx)

    def evaluate(s: Setting):
        cmp = ctx.compare(s, a, b, split=p["split"])
        res = _headline(cmp)
        if res is None:
            return NOT_TESTABLE, _no_predictions(cmp), "", None
        per = cmp.per_lang
        above = sum(r.ci_low > thr for r in per)
        below = sum(r.ci_high < thr for r in per)
        cross0 = sum(r.ci_low <= 0 <= r.ci_high for r in per)
        st = cmp.seed_tests.get(res.lang)
        seed_txt = (f"; per-seed differences {', '.join(pts(d) for d in st.diffs)}, paired t p = {st.t_p:.3g}"
                    if st and st.diffs and not math.isnan(st.t_p) else "")
        where_ = f"{len(per)} language(s)" if res.lang == "avg" else f"the only language ({res.lang})"
        joint = "; items drawn jointly, the test sets being parallel" if cmp.joint and res.lang == "avg" else ""
        if res.ci_low > thr:
            status, why = SUPPORTED, f"95 % CI {ci(res.ci_low, res.ci_high)} of the difference lies above {pts(thr)} pts"
        elif res.ci_high < thr:
            status, why = CONTRADICTED, f"95 % CI {ci(res.ci_low, res.ci_high)} of the difference lies below {pts(thr)} pts"
        else:
            status, why = INCONCLUSIVE, (f"95 % CI {ci(res.ci_low, res.ci_high)} of the difference crosses "
                                         f"{pts(thr)} pts; per-language CIs cross zero in {cross0} of {len(per)} languages")
        detail = (f"{s.label()}: {a.label()} − {b.label()} = {pts(res.diff)} pts {ci(res.ci_low, res.ci_high)} "
                  f"(seeds and items resampled{joint}) over {where_}, seeds {list(res.seeds)}, {res.n_examples} "
                  f"examples; per-language CIs above / across / below {pts(thr)}: {above} / "
                  f"{len(per) - above - below} / {below}{seed_txt} → {status}")
        return status, why, f"{s.label()}: {pts(res.diff)} {ci(res.ci_low, res.ci_high)}", detail

    results, stats, details = _setting_results(ctx, settings, [a, b], p, evaluate)
    results += _missing_settings(ctx, p, settings, [a, b])
    status, reason = combine(results)
    return Verdict(claim, status, reason, f"{a.label()} − {b.label()}, pts: " + ("; ".join(stats) or "–"),
                   runs="; ".join(_runs_used(ctx, s, (a, b)) for s in settings), details=details, settings=results)


@register_check("max_gain", tasks="xnli", expected_points=2.9, tolerance_points=1.0, alpha=0.05, **COMPARE)
def max_gain(claim: Claim, ctx: Context) -> Verdict:
    """The largest per-language gain of method over baseline is about expected_points (± tolerance_points), and
    significant after Holm's correction over the languages."""
    p = claim.params
    a, b = _arms(p)
    exp, tol = float(p["expected_points"]) / 100, float(p["tolerance_points"]) / 100
    settings = ctx.settings([a, b], p["tasks"], p["shots"], p["model"])
    if not settings:
        return _not_testable(claim, ctx.missing([a, b], p["tasks"], p["shots"]), ctx=ctx)

    def evaluate(s: Setting):
        cmp = ctx.compare(s, a, b, split=p["split"])
        if isinstance(cmp, XLTuneError) or not cmp.per_lang:
            return NOT_TESTABLE, _no_predictions(cmp), "", None
        best = max(cmp.per_lang, key=lambda r: r.diff)
        band = f"{pts(exp)} ± {abs(tol) * 100:.2f}"
        holm = f"Holm-adjusted p = {best.p_holm:.3g} over {len(cmp.per_lang)} languages"
        if abs(best.diff - exp) <= tol and best.ci_low > 0 and best.p_holm < p["alpha"]:
            status, why = SUPPORTED, f"largest gain {pts(best.diff)} ({best.lang}) is within {band}; {holm}"
        elif best.ci_high < exp - tol:
            status, why = CONTRADICTED, (f"largest gain {pts(best.diff)} ({best.lang}), CI {ci(best.ci_low, best.ci_high)}, "
                                         f"stays below {pts(exp - tol)}")
        elif best.ci_low > exp + tol:
            status, why = CONTRADICTED, (f"largest gain {pts(best.diff)} ({best.lang}), CI {ci(best.ci_low, best.ci_high)}, "
                                         f"is above {pts(exp + tol)}: larger than claimed")
        else:
            status, why = INCONCLUSIVE, (f"largest gain {pts(best.diff)} ({best.lang}) has CI {ci(best.ci_low, best.ci_high)} "
                                         f"and {holm}: too uncertain to place relative to {band}")
        ranked = sorted(cmp.per_lang, key=lambda r: -r.diff)
        detail = (f"{s.label()}: per-language gains " + ", ".join(f"{r.lang} {pts(r.diff)}" for r in ranked)
                  + f" (seeds {list(best.seeds)}, {best.n_examples} examples in {best.lang}) → {status}")
        return status, why, f"{s.label()}: max {pts(best.diff)} ({best.lang}) {ci(best.ci_low, best.ci_high)}", detail

    results, stats, details = _setting_results(ctx, settings, [a, b], p, evaluate)
    status, reason = combine(results)
    return Verdict(claim, status, reason, f"{a.label()} − {b.label()}, pts: " + ("; ".join(stats) or "–"),
                   runs="; ".join(_runs_used(ctx, s, (a, b)) for s in settings), details=details, settings=results)


@register_check("group_difference", tasks="any", low_groups=["low", "unseen"], high_groups=["high"], alpha=0.05,
                min_languages=2, permutations=9999, **COMPARE)
def group_difference(claim: Claim, ctx: Context) -> Verdict:
    """Mean gain over low-resource languages minus over high-resource ones (permutation test over languages,
    exact when the groups are small)."""
    p = claim.params
    a, b = _arms(p)
    settings = ctx.settings([a, b], p["tasks"], p["shots"], p["model"])
    if not settings:
        return _not_testable(claim, ctx.missing([a, b], p["tasks"], p["shots"]), ctx=ctx)

    def evaluate(s: Setting):
        g = ctx.gains(s, a, b, p["split"])
        if isinstance(g, XLTuneError):
            return NOT_TESTABLE, str(g), "", None
        low = {lg: v for lg, v in g.items() if ctx.table.group(lg) in p["low_groups"]}
        high = {lg: v for lg, v in g.items() if ctx.table.group(lg) in p["high_groups"]}
        if min(len(low), len(high)) < p["min_languages"]:
            why = (f"{len(low)} low-resource ({', '.join(low) or '-'}) and {len(high)} high-resource "
                   f"({', '.join(high) or '-'}) languages evaluated; needs >= {p['min_languages']} in each "
                   f"(groups from {ctx.table.source})")
            stat = (f"{s.label()}: {len(low)} low vs {len(high)} high langs, mean gain "
                    f"{pts(float(np.mean(list(g.values())))) if g else 'nan'} pts")
            return NOT_TESTABLE, why, stat, None
        diff = float(np.mean(list(low.values())) - np.mean(list(high.values())))
        # scipy enumerates every split exactly when there are no more than n_resamples of them
        test = sps.permutation_test((list(low.values()), list(high.values())),
                                    lambda x, y: np.mean(x) - np.mean(y), permutation_type="independent",
                                    n_resamples=int(p["permutations"]), alternative="two-sided",
                                    random_state=ctx.seed)
        pval = float(test.pvalue)
        rho = spearman(g, ctx.table.log_tokens, "log10 pretraining tokens")
        if pval < p["alpha"]:
            status = SUPPORTED if diff > 0 else CONTRADICTED
            why = f"low − high = {pts(diff)} pts, permutation p = {pval:.3g} < {p['alpha']}"
        else:
            status, why = INCONCLUSIVE, f"low − high = {pts(diff)} pts but permutation p = {pval:.3g} >= {p['alpha']}"
        detail = (f"{s.label()}: mean gain low {pts(float(np.mean(list(low.values()))))} over {', '.join(low)}; high "
                  f"{pts(float(np.mean(list(high.values()))))} over {', '.join(high)}; gain vs log10 pretraining "
                  f"tokens: {rho.describe()} → {status}")
        return status, why, f"{s.label()}: low − high {pts(diff)} pts (p = {pval:.3g}, {len(low)} vs {len(high)} langs)", detail

    results, stats, details = _setting_results(ctx, settings, [a, b], p, evaluate)
    status, reason = combine(results)
    return Verdict(claim, status, reason, f"gain of {a.label()} over {b.label()}: " + ("; ".join(stats) or "–"),
                   runs="; ".join(_runs_used(ctx, s, (a, b)) for s in settings), details=details, settings=results)


def _fertility(ctx: Context):
    def stat(lang: str) -> float | None:
        t = ctx.toks.get(lang) if ctx.toks else None
        # whitespace-free scripts are measured per character: not comparable with per-word fertility
        return t.fertility if t is not None and t.segmentation == "word" else None
    return stat


@register_check("correlation", tasks="any", x="fertility", expected_sign=1, alpha=0.05, min_languages=4, **COMPARE)
def correlation(claim: Claim, ctx: Context) -> Verdict:
    """Spearman correlation of per-language gains with x (fertility | log_tokens) has the expected sign (exact
    permutation p for up to 10 languages, a 9,999-permutation p above)."""
    p = claim.params
    a, b = _arms(p)
    if p["x"] not in ("fertility", "log_tokens"):
        raise XLTuneError(f"{claim.source}: claim {claim.id}: x must be fertility or log_tokens, got {p['x']!r}")
    settings = ctx.settings([a, b], p["tasks"], p["shots"], p["model"])
    if p["x"] == "fertility" and ctx.toks is None:
        return _not_testable(claim, "needs a tokenization table: `xltune tokstats --tokenizer MODEL --text FILES "
                                    "--lang-from-filename --out tokstats.csv`, then --tokstats tokstats.csv",
                             f"{len(settings)} comparable setting(s) in the store, no fertility table")
    if not settings:
        return _not_testable(claim, ctx.missing([a, b], p["tasks"], p["shots"]), ctx=ctx)
    stat = _fertility(ctx) if p["x"] == "fertility" else ctx.table.log_tokens
    name = "word-level fertility" if p["x"] == "fertility" else "log10 pretraining tokens"
    sign = 1 if p["expected_sign"] >= 0 else -1

    def evaluate(s: Setting):
        g = ctx.gains(s, a, b, p["split"])
        if isinstance(g, XLTuneError):
            return NOT_TESTABLE, str(g), "", None
        c = spearman(g, stat, name)
        if c.n < p["min_languages"]:
            why = f"{c.n} language(s) with both a gain and {name}; needs >= {p['min_languages']}"
            if c.skipped:
                why += f" (no {name} for {', '.join(c.skipped)})"
            return NOT_TESTABLE, why, "", None
        rho, pval, how = spearman_exact(c.xs, c.ys)
        desc = f"Spearman ρ = {rho:+.2f} ({how} p = {pval:.3g}, n = {c.n})"
        if math.isnan(rho) or pval >= p["alpha"]:
            status, why = INCONCLUSIVE, f"{desc}; p >= {p['alpha']}"
        else:
            status = SUPPORTED if rho * sign > 0 else CONTRADICTED
            why = f"{desc}; expected sign {'+' if sign > 0 else '−'}"
        detail = (f"{s.label()}: gain vs {name}: " + ", ".join(
            f"{lg} ({x:.2f}, {pts(y)})" for lg, x, y in zip(c.langs, c.xs, c.ys, strict=True)) + f" → {status}")
        return status, why, f"{s.label()}: ρ = {rho:+.2f} ({how} p = {pval:.3g}, n = {c.n})", detail

    results, stats, details = _setting_results(ctx, settings, [a, b], p, evaluate)
    status, reason = combine(results)
    return Verdict(claim, status, reason, f"gain of {a.label()} over {b.label()} vs {name}: "
                   + ("; ".join(stats) or "–"), runs="; ".join(_runs_used(ctx, s, (a, b)) for s in settings),
                   details=details, settings=results)


@register_check("trainable_share", reads_models=True, model="xglm-564M", method="deep_prompt", method_options={"prefix_length": 15},
                task_kind="sequence", num_labels=3, max_percent=0.135, allowed_trainable=["deep_prompt", "head"],
                store_models=["facebook/xglm-564M", "xglm-564M"])
def trainable_share(claim: Claim, ctx: Context) -> Verdict:
    """Trainable share of method on model (meta device, no weights) <= max_percent; only allowed modules train."""
    from ..config import ModelConfig
    from ..methods.base import build_method_settings, build_model
    from ..models.backbone import load_backbone

    p = claim.params
    method_cfg = build_method_settings({"name": p["method"], **(p["method_options"] or {})}, claim.source, "method")
    model_cfg = ModelConfig(name_or_path=p["model"])
    try:
        model = build_model(load_backbone(model_cfg, meta=True), method_cfg, p["task_kind"], int(p["num_labels"]),
                            model_cfg)
    except XLTuneError as e:
        return _not_testable(claim, f"cannot build {p['model']} on the meta device: {e}", "no config")
    trainable, total = model.count_parameters()
    percent = 100.0 * trainable / total
    modules = sorted({n.split(".")[0] for n, q in model.named_parameters() if q.requires_grad})
    extra = [m for m in modules if m not in p["allowed_trainable"]]
    opts = ", ".join(f"{k}={v}" for k, v in (p["method_options"] or {}).items())
    details = [f"{p['model']} + {p['method']} ({opts}), {p['task_kind']} head with {p['num_labels']} labels, meta "
               f"device: {trainable:,} of {total:,} parameters train ({percent:.4f} %); trainable modules: "
               f"{', '.join(modules)}"]
    stored = [r for r in ctx.runs if r["method"] == p["method"] and r["model"] in p["store_models"]
              and r["trainable_params"] and r["total_params"]]
    stored_pct = [100.0 * r["trainable_params"] / r["total_params"] for r in stored]
    if stored:
        details.append(f"stored {p['method']} runs of {', '.join(sorted({r['model'] for r in stored}))}: "
                       f"{len(stored)} run(s), trainable share {min(stored_pct):.4f} – {max(stored_pct):.4f} %")
    others = [r for r in ctx.runs if r["method"] == p["method"] and r not in stored and r["total_params"]]
    if others:
        share = [100.0 * (r["trainable_params"] or 0) / r["total_params"] for r in others]
        details.append(f"other models' {p['method']} runs in the store (not used: a different backbone): "
                       f"{len(others)} run(s), {min(share):.3f} – {max(share):.3f} %")
    worst = max([percent, *stored_pct])
    if extra:
        status, why = FAILS, f"modules outside {p['allowed_trainable']} train: {', '.join(extra)}"
    elif worst > p["max_percent"]:
        status, why = FAILS, f"{worst:.4f} % of the parameters train, above the declared {p['max_percent']} %"
    else:
        status, why = HOLDS, (f"{worst:.4f} % <= {p['max_percent']} % train, all in "
                              f"{', '.join(modules)}")
    return Verdict(claim, status, why, f"{trainable:,} / {total:,} = {percent:.4f} % trainable"
                   + (f"; stored runs max {max(stored_pct):.4f} %" if stored else ""),
                   runs=f"{len(stored)} stored run(s) of {p['method']} on {'/'.join(p['store_models'])}", details=details)


@register_check("model_config", reads_models=True, model="xglm-564M", decoder_only=True, vocab_min=230000, vocab_max=270000,
                shapes=GPT3_SHAPES)
def model_config(claim: Claim, ctx: Context) -> Verdict:
    """Facts of the model's config: decoder-only, vocabulary size range, (layers, width) among declared shapes."""
    from ..models.backbone import is_decoder_config, load_config

    p = claim.params
    try:
        cfg = load_config(p["model"])
    except XLTuneError as e:
        return _not_testable(claim, f"cannot load the config of {p['model']}: {e}", "no config")
    layers, width, vocab = cfg.num_hidden_layers, cfg.hidden_size, cfg.vocab_size
    decoder = is_decoder_config(cfg)
    shapes = [list(s) for s in p["shapes"]]
    facts = [
        (f"decoder-only: {decoder} (model_type {cfg.model_type}, architectures {getattr(cfg, 'architectures', None)})",
         decoder == bool(p["decoder_only"])),
        (f"vocabulary {vocab:,} in [{p['vocab_min']:,}, {p['vocab_max']:,}]", p["vocab_min"] <= vocab <= p["vocab_max"]),
        (f"(layers, width) = ({layers}, {width}) among the declared GPT-3 shapes", [layers, width] in shapes),
    ]
    failed = [f for f, ok in facts if not ok]
    status = FAILS if failed else HOLDS
    why = ("fails: " + "; ".join(failed)) if failed else "all 3 config facts hold"
    return Verdict(claim, status, why, f"{p['model']}: {layers} layers, width {width}, "
                   f"{cfg.num_attention_heads} heads, vocab {vocab:,}, decoder={decoder}",
                   runs="model config only (no runs needed)",
                   details=[f"{'ok  ' if ok else 'FAIL'} {f}" for f, ok in facts])


@register_check("objective_comparison", tasks="any", shots="few", model="any", groups=["low", "unseen"],
                threshold_points=0.0, split="test", min_seeds=3, chance_gate=True,
                contrastive={"method": "finetune", "objective": "tcl+lcl"},
                prompt={"method": "deep_prompt", "objective": "none"},
                combined={"method": "deep_prompt", "objective": "tcl+lcl"})
def objective_comparison(claim: Claim, ctx: Context) -> Verdict:
    """Combined (prompt + contrastive) beats each alone on the chosen language groups; reports which alone wins."""
    p = claim.params
    dcl, prm, both = (Arm(p[k]["method"], p[k].get("objective", "none")) for k in ("contrastive", "prompt", "combined"))
    thr = float(p["threshold_points"]) / 100
    arms = [both, prm, dcl]
    settings = ctx.settings(arms, p["tasks"], p["shots"], p["model"])
    if not settings:
        return _not_testable(claim, ctx.missing(arms, p["tasks"], p["shots"]), ctx=ctx)
    def evaluate(s: Setting):
        g = ctx.gains(s, both, prm, p["split"])
        if isinstance(g, XLTuneError):
            return NOT_TESTABLE, str(g), "", None
        langs = [lg for lg in g if ctx.table.group(lg) in p["groups"]]
        if not langs:
            return NOT_TESTABLE, f"no language of groups {p['groups']} evaluated (from {ctx.table.source})", "", None
        pairs = {"combined − prompt": (both, prm), "combined − contrastive": (both, dcl),
                 "contrastive − prompt": (dcl, prm)}
        res = {k: _headline(ctx.compare(s, x, y, langs, p["split"])) for k, (x, y) in pairs.items()}
        if any(r is None for r in res.values()):
            bad = [k for k, r in res.items() if r is None]
            why = f"no paired bootstrap for {', '.join(bad)}: " + _no_predictions(ctx.compare(s, *pairs[bad[0]], langs, p["split"]))
            return NOT_TESTABLE, why, "", None
        gates = [res["combined − prompt"], res["combined − contrastive"]]
        if all(r.ci_low > thr for r in gates):
            status, why = SUPPORTED, "combining beats both: both CIs lie above the threshold"
        elif any(r.ci_high < thr for r in gates):
            status, why = CONTRADICTED, "combining is worse than one of the two alone (a CI lies below the threshold)"
        else:
            status, why = INCONCLUSIVE, "a CI of combined − (prompt | contrastive) crosses the threshold"
        w = res["contrastive − prompt"]
        winner = ("contrastive alone better" if w.ci_low > 0 else "prompt alone better" if w.ci_high < 0
                  else "no clear winner between the two alone")
        stat = f"{s.label()} on {', '.join(langs)}: " + "; ".join(
            f"{k} {pts(r.diff)} {ci(r.ci_low, r.ci_high)}" for k, r in res.items()) + f" ({winner})"
        detail = (f"{s.label()}: {both.label()} / {prm.label()} / {dcl.label()} on {', '.join(langs)} "
                  f"(seeds {list(gates[0].seeds)}) → {status}; {winner}")
        return status, why, stat, detail

    results, stats, details = _setting_results(ctx, settings, arms, p, evaluate)
    status, reason = combine(results)
    return Verdict(claim, status, reason, "; ".join(stats) or "–",
                   runs="; ".join(_runs_used(ctx, s, arms) for s in settings), details=details, settings=results)
