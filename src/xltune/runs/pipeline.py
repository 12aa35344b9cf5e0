"""A seed's run, start to end: build the context, fit with the method's runner, evaluate every target language,
record. :func:`evaluate_languages` is the one per-language evaluation loop and :func:`record` the one place a run
is turned into a :class:`~xltune.store.RunRecord` (whatever the runner)."""

from __future__ import annotations

import copy
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..version import __version__
from ..evaluate import LanguageResult, format_table, score
from ..store import RunRecord, Store
from .context import RunContext, build_context
from .prepare import Prepared, prepare
from .runners import RUNNERS, Fit


@dataclass
class RunResult:
    run_id: str
    seed: int
    results: list[LanguageResult] = field(default_factory=list)
    train: object | None = None  # train.TrainResult
    skipped: bool = False  # already in the store

    @property
    def average(self) -> float:
        return float(np.mean([r.headline for r in self.results])) if self.results else float("nan")


def environment() -> dict:
    import accelerate
    import peft
    import transformers

    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else platform.processor() or "cpu"
    return {
        "xltune": __version__, "python": sys.version.split()[0], "torch": torch.__version__,
        "transformers": transformers.__version__, "peft": peft.__version__, "accelerate": accelerate.__version__,
        "device": dev, "platform": platform.platform(), "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
    }


def run_experiment(cfg, *, force: bool = False, into: str | None = None, log=print) -> list[RunResult]:
    """Run every seed of ``cfg`` that is not yet in its store; returns one :class:`RunResult` per seed.

    ``into``: write the runs to this store instead (a sweep job's shard, :mod:`xltune.jobs`); the stored config
    still names ``cfg.store``, where the sweep merges them."""
    from accelerate import PartialState

    from .. import variants
    from ..config import resolve_paths
    from ..cpus import size_threads

    size_threads()
    cfg = resolve_paths(copy.deepcopy(cfg))
    if cfg.train.report_to:  # a tracker whose package is missing fails now, not after the data is read
        from ..tracking import check_available

        check_available(cfg.train.report_to)
    state = PartialState(cpu=not torch.cuda.is_available())
    if not state.is_main_process:
        log = _quiet  # under `accelerate launch` / --processes: one process speaks
    path = into or cfg.store
    with state.main_process_first():  # one process creates the file and its schema; the others then open it
        # opened first: an unwritable store fails before any work; a shard has one writer (rollback journal)
        store = Store(path, journal="delete" if into else "wal")
    with store:
        keys = {seed: cfg.run_key(seed) for seed in cfg.seeds}
        todo = [s for s in cfg.seeds if force or not store.has_run(keys[s])]
        done = [RunResult(store.stored_id(keys[s]) or keys[s], s, stored_results(store, store.stored_id(keys[s])),
                          skipped=True) for s in cfg.seeds if s not in todo]
        for r in done:
            log(f"seed {r.seed}: run {r.run_id} is already in {path}; skipped (use --force to redo); stored:")
            log(format_table(r.results, ""))
        if not todo:
            if cfg.train.dev.policy == "run_average" and state.is_main_process and len(cfg.seeds) > 1 \
                    and (force or not store.has_run(variants.ensemble_key(cfg, sorted(cfg.seeds)))):
                # every seed is stored but not their average (e.g. a sweep ran the seeds as separate jobs)
                average_runs(prepare(cfg), {s: store.stored_id(keys[s]) or keys[s] for s in cfg.seeds}, store,
                             force, log)
            return done
        prep = prepare(cfg)
        out = Path(cfg.output_dir)
        made = not out.exists()
        try:
            results = [run_seed(prep, seed, keys[seed], store, force, log) for seed in todo]
        finally:
            if made and state.is_main_process and out.is_dir() and not any(out.iterdir()):
                out.rmdir()  # created for resume files only and left empty (no checkpoint kept): not left behind
        if len(results) > 1:
            log(summary_table(results, prep.targets))
        log(f"stored {len(results)} run(s) in {path}")
        if cfg.train.dev.policy == "run_average" and state.is_main_process:
            average_runs(prep, {s: store.stored_id(keys[s]) or keys[s] for s in cfg.seeds}, store, force, log)
        return done + results


def average_runs(prep: Prepared, runs: dict[int, str], store: Store, force: bool, log) -> RunResult | None:
    """train.dev.policy run_average: the seeds' test logits averaged (per example; per word for tagging), stored as
    a run of its own variant ("[average of seeds ...]"), scored on the items every seed evaluated."""
    from .. import variants
    from ..evaluate import format_table

    cfg, spec = prep.cfg, prep.spec
    seeds = sorted(runs)
    if len(seeds) < 2:
        log("   note: run_average needs 2 or more seeds; nothing averaged")
        return None
    key = variants.ensemble_key(cfg, seeds)
    if store.has_run(key) and not force:
        log(f"average of seeds {seeds}: run {key} is already in {cfg.store}; skipped")
        return None
    saved = {}
    for s, rid in runs.items():
        path = Path(cfg.output_dir) / rid / "logits.pt"
        if not path.is_file():
            log(f"   note: no saved logits for seed {s} ({path}); rerun it with --force to average the seeds")
            return None
        saved[s] = torch.load(path, weights_only=False)
    results = []
    for lang in prep.targets:
        if not all(lang in saved[s] for s in seeds):
            continue
        common = set.intersection(*(set(saved[s][lang][0]) for s in seeds))
        per_seed = [dict(zip(*saved[s][lang])) for s in seeds]
        examples = [e for e in prep.test[lang] if e.index in common]
        mean = [torch.stack([p[e.index] for p in per_seed]).mean(0) for e in examples]
        preds = [m.argmax(-1).tolist() if spec.kind == "token" else int(m.argmax()) for m in mean]
        results.append(score(spec, examples, preds, lang, cfg.eval.split, cfg.eval.ner_mode))
    log(format_table(results, f"   {spec.name} {cfg.eval.split}  average of seeds {seeds}  ({cfg.method.name})"))
    ctx = build_context(prep, seeds[0], key, _quiet, tracking=False)  # nothing trains: no tracker run
    fit = Fit({"seed": 0, "averaged_seeds": seeds, "runs": runs}, None,
              {"run_average": {"seeds": seeds, "runs": {str(s): r for s, r in runs.items()}}})
    record(ctx, fit, results, {}, 0.0, store, force, save=False, run_id=key, seed=0,
           describe=variants.ensemble_variant(cfg, seeds))
    log(f"stored the average of seeds {seeds} as run {key}")
    return RunResult(key, 0, results)


def run_seed(prep: Prepared, seed: int, run_id: str, store: Store, force: bool, log) -> RunResult:
    from ..methods.base import method_spec

    from .settings import Unit, plan_units

    runner = RUNNERS.get(method_spec(prep.cfg.method.name).runner)()
    runner.check(prep)
    shots, manifest = runner.draw(prep, seed)
    units = plan_units(prep, shots, seed, log) if runner.name == "train" else [Unit("all", list(prep.targets), shots)]
    held_out = held_out_items(prep, shots)
    by_lang: dict[str, LanguageResult] = {}
    fits, unit_facts, eval_seconds, facts = [], {}, 0.0, {"truncated": 0, "windowed": 0}
    for i, unit in enumerate(units):  # one model per unit (one unit but for per-target settings)
        ctx = build_context(prep, seed, run_id, log, verbalizer=runner.verbalizer)
        if not ctx.is_main:
            ctx.log = _quiet  # one process speaks and writes
        try:
            if i == 0:
                ctx.log(runner.title(prep, seed, run_id))
            if ctx.tracking:
                from .. import variants

                ctx.track({"variant": variants.label(ctx.cfg)}, 0)  # a text entry (TensorBoard's TEXT tab)
            if len(units) > 1:
                ctx.log(f"   -- {prep.cfg.train.setting} model for {unit.name}: evaluates {', '.join(unit.targets)}")
            fit = runner.fit(ctx, unit.shots, manifest, force, unit=unit)
            t0 = time.perf_counter()
            results, f = evaluate_languages(ctx, runner, held_out, unit.targets, unit.test, save_logits=_logits_path(
                ctx) if prep.cfg.train.dev.policy == "run_average" else None)
            eval_seconds += time.perf_counter() - t0
            if ctx.tracking:
                step = fit.train.steps if fit.train is not None else 0
                ctx.track({f"test/{r.lang}": r.headline for r in results}
                          | {"test/average": float(np.mean([r.headline for r in results]))}, step)
        finally:
            ctx.end_tracking()
        by_lang.update({r.lang: r for r in results})
        facts = _merge_facts(facts, f)
        fits.append(fit)
        unit_facts[unit.name] = {"targets": unit.targets, "train_examples": len(unit.shots), **unit.facts,
                                 **({"train": fit.extra.get("train")} if len(units) > 1 else {})}
        if len(units) > 1 and ctx.is_main and prep.cfg.save_checkpoint and fit.train is not None:
            from .folder import describe_run, write_run_folder

            # one model per unit: each its own run folder (OUTPUT/RUN_ID/UNIT), saying which targets it answers for
            write_run_folder(Path(prep.cfg.output_dir) / run_id / unit.name, ctx.model, prep.cfg,
                             {**describe_run(ctx, results, environment()),
                              "unit": {"name": unit.name, "setting": prep.cfg.train.setting,
                                       "targets": list(unit.targets)}})
    results = [by_lang[lang] for lang in prep.targets if lang in by_lang]
    fit = fits[0] if len(fits) == 1 else _merge_fits(fits)
    if prep.cfg.train.setting != "zero_shot":
        fit.extra["setting"] = {"name": prep.cfg.train.setting, "translations": _translation_source(prep.cfg),
                                "units": unit_facts}
    if ctx.is_main:
        record(ctx, fit, results, facts, eval_seconds, store, force, save=len(units) == 1)
    return RunResult(run_id, seed, results, fit.train)


def _translation_source(cfg) -> str:
    if cfg.train.setting in ("zero_shot", "few_shot_target"):
        return ""
    t = cfg.train.translate
    return "oracle (human translations: the same lines of each language's file)" if t.by == "oracle" \
        else f"machine translation by {t.model}"


def _merge_facts(a: dict, b: dict) -> dict:
    out = {**a, **b}
    out["truncated"] = a.get("truncated", 0) + b.get("truncated", 0)
    out["windowed"] = a.get("windowed", 0) + b.get("windowed", 0)
    for key in ("per_language", "held_out"):
        if key in a or key in b:
            out[key] = {**a.get(key, {}), **b.get(key, {})}
    return out


def _merge_fits(fits: list[Fit]) -> Fit:
    """One run's record from its units' fits: the first unit's train facts, seconds summed over all."""
    import dataclasses

    first = fits[0]
    total = dataclasses.replace(first.train, seconds=sum(f.train.seconds for f in fits if f.train is not None)) \
        if first.train is not None else None
    return Fit(first.manifest, total, dict(first.extra), sum(f.truncated for f in fits))


def _logits_path(ctx: RunContext) -> Path:
    return Path(ctx.cfg.output_dir) / ctx.run_id / "logits.pt"



def stored_results(store: Store, run_id: str | None) -> list[LanguageResult]:
    """A stored run's per-language metrics (headline first), without predictions: what a rerun shows."""
    if run_id is None:
        return []
    row = store.runs(run_id=run_id)
    headline = row[0]["headline_metric"] if row else ""
    per: dict[tuple[str, str], dict] = {}
    for m in store.metrics(run_id=run_id):
        d = per.setdefault((m["lang"], m["split"]), {"n": m["n"], "metrics": {}})
        d["metrics"][m["metric"]] = m["value"]
    out = []
    for (lang, split), d in per.items():
        ms = d["metrics"]
        order = sorted(ms, key=lambda k: (k != headline, k))
        out.append(LanguageResult(lang, split, {k: ms[k] for k in order}, d["n"], []))
    return out


def held_out_items(prep: Prepared, shots: list) -> dict[str, set[int]]:
    """Evaluation items to leave out because the shots come from the same split: the shots themselves in their
    language, and, when the split is parallel across languages, their translations in every other language
    (PAWS-X shots drawn from English dev, evaluated on every language's dev)."""
    cfg, spec = prep.cfg, prep.spec
    if cfg.eval.split != cfg.train.split or not shots:
        return {}
    parallel = cfg.train.split in spec.parallel_splits
    out = {lang: {e.index for e in shots if parallel or e.lang == lang} for lang in prep.targets}
    return {lang: idx for lang, idx in out.items() if idx}


def evaluate_languages(ctx: RunContext, runner, held_out: dict[str, set[int]] | None = None,
                       targets: list[str] | None = None, test: dict[str, list] | None = None,
                       save_logits: Path | None = None) -> tuple[list[LanguageResult], dict]:
    """Every target language: encode (once per experiment), predict (sharded over processes), score. A method's
    ``for_language`` hook wraps each language (e.g. swaps in that language's module); what it yields is kept.
    ``held_out``: items left out per language (the shots, or their translations, in the evaluated split);
    ``targets``: the languages (default: all); ``test``: evaluation examples replacing a language's test set
    (translate-test); ``save_logits``: a file for each language's logits (run averaging)."""
    cfg, spec, prep = ctx.cfg, ctx.spec, ctx.prep
    held_out = held_out or {}
    test = test or {}
    results, facts, truncated, windowed, logits = [], {}, 0, 0, {}
    langs = tqdm(targets if targets is not None else prep.targets, desc="evaluate", unit="lang", leave=False,
                 disable=not (ctx.is_main and sys.stderr.isatty()))
    hook = ctx.method.for_language
    for lang in langs:
        examples = test.get(lang, prep.test[lang])
        if lang in held_out:
            examples = [e for e in examples if e.index not in held_out[lang]]
        enc = runner.encode_eval(ctx, lang, examples)
        truncated += enc.truncated
        windowed += enc.windowed

        def run():
            if save_logits is None:
                return ctx.predict(enc)
            scores = ctx.predict(enc, logits=True)
            logits[lang] = ([e.index for e in examples], scores)
            return [s.argmax(-1).tolist() if ctx.token_task else int(s.argmax()) for s in scores]

        if hook is not None:
            with hook(ctx, lang) as fact:
                preds = run()
            if fact:
                facts[lang] = fact
        else:
            preds = run()
        results.append(score(spec, examples, preds, lang, cfg.eval.split, cfg.eval.ner_mode))
    if save_logits is not None and ctx.is_main:
        save_logits.parent.mkdir(parents=True, exist_ok=True)
        old = torch.load(save_logits, weights_only=False) if save_logits.is_file() else {}
        tmp = save_logits.with_suffix(".tmp")
        torch.save({**old, **logits}, tmp)
        os.replace(tmp, save_logits)
    if held_out:
        n = max(len(v) for v in held_out.values())
        ctx.log(f"   note: up to {n} evaluation item(s) per language left out: the shots come from the evaluated "
                f"split {cfg.eval.split!r}" + (" (their translations too: the split is parallel)"
                                               if cfg.train.split in spec.parallel_splits else ""))
    if truncated:
        ctx.log(f"   note: {truncated} evaluation example(s) truncated to {cfg.model.max_length} tokens")
    if windowed:
        ctx.log(f"   note: {windowed} evaluation sentence(s) longer than {cfg.model.max_length} sub-words were "
                f"windowed")
    what = cfg.method.name if ctx.method.runner != "in_context" else f"in_context K={cfg.train.shots}"
    ctx.log(format_table(results, f"   {spec.name} {cfg.eval.split}  seed {ctx.seed}  ({what})", facts))
    out = {"truncated": truncated, "windowed": windowed}
    if facts:
        out["per_language"] = facts
    if held_out:
        out["held_out"] = {lang: len(v) for lang, v in held_out.items()}
    return results, out


def record(ctx: RunContext, fit: Fit, results: list[LanguageResult], facts: dict, eval_seconds: float,
           store: Store, force: bool, save: bool = True, run_id: str | None = None, seed: int | None = None,
           describe: dict | None = None) -> None:
    """Store the run (the only place a RunRecord is built) and its checkpoint; drop its resume state.
    ``run_id`` / ``seed`` / ``describe`` (variant, label) are given for a record that is not one seed's run: the
    average of a variant's seeds (dev.policy run_average)."""
    from .. import variants

    from .folder import describe_run, shown_path, write_run_folder

    cfg, spec = ctx.cfg, ctx.spec
    run_id = run_id or ctx.run_id
    folder = Path(cfg.output_dir) / run_id
    if save and cfg.save_checkpoint and fit.train is not None:
        write_run_folder(folder, ctx.model, cfg, describe_run(ctx, results, environment()))
    trainable, total = ctx.model.count_parameters()
    extra = {**ctx.facts, **fit.extra, "truncated": facts.get("truncated", 0) + fit.truncated,
             "windowed": facts.get("windowed", 0), "decoder": ctx.backbone.is_decoder, "task_kind": spec.kind}
    for key in ("per_language", "held_out"):
        if key in facts:
            extra[key] = facts[key]
    if ctx.cfg.train.dev.policy == "target_oracle":
        extra["oracle"] = "model selected on the target languages' labelled dev sets"
    rec = RunRecord(
        run_id=run_id, seed=ctx.seed if seed is None else seed, task=spec.name, method=cfg.method.name,
        objective=cfg.objective_tag,
        model=cfg.model.name_or_path, shots=str(cfg.train.shots), source_langs=ctx.prep.sources,
        config=cfg.to_dict(), manifest=fit.manifest, env=environment(),
        metrics=[row for r in results for row in r.rows()],
        predictions={(r.lang, r.split): r.predictions for r in results} if cfg.eval.save_predictions else {},
        trainable_params=trainable, total_params=total,
        train_seconds=fit.train.seconds if fit.train is not None else 0.0, eval_seconds=eval_seconds, extra=extra,
        headline_metric=ctx.kind.headline(spec), ner_mode=cfg.eval.ner_mode if spec.metric == "span_f1" else "",
        shot_seed=(ctx.seed if cfg.train.shot_seed is None else cfg.train.shot_seed) if seed is None else seed,
        **(describe or variants.describe_variant(cfg)),
    )
    store.write_run(rec, replace=force)
    for resume in folder.glob("resume*.pt"):  # stored: nothing left to resume
        resume.unlink(missing_ok=True)
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()  # no checkpoint kept (save_checkpoint: false, e.g. the demo): no empty runs/RUN_ID/ left
    if (folder / "run.json").is_file():
        ctx.log(f"   saved {shown_path(folder)}/ (run.json describes it); reuse it: xltune predict --store "
                f"{shown_path(cfg.store)} --run {run_id} --input FILE --out FILE")


def _quiet(*_args, **_kw) -> None:
    pass


def summary_table(results: list[RunResult], langs: list[str]) -> str:
    """Mean ± std over seeds per language (sample std), average last."""
    per_lang = {lang: [] for lang in langs}
    for r in results:
        for lr in r.results:
            per_lang[lr.lang].append(lr.headline)
    name = next(iter(results[0].results[0].metrics)) if results and results[0].results else "metric"
    lines = [f"== mean ± std over {len(results)} seeds ({name})", f"{'lang':<8}{'mean':>8}{'std':>8}"]
    for lang, vals in per_lang.items():
        v = np.array(vals) * 100
        lines.append(f"{lang:<8}{v.mean():>8.2f}{(v.std(ddof=1) if len(v) > 1 else float('nan')):>8.2f}")
    avgs = np.array([r.average for r in results]) * 100
    lines.append(f"{'avg':<8}{avgs.mean():>8.2f}{(avgs.std(ddof=1) if len(avgs) > 1 else float('nan')):>8.2f}")
    return "\n".join(lines)

