"""A seed's run, start to end: build the context, fit with the method's runner, evaluate every target language,
record. :func:`evaluate_languages` is the one per-language evaluation loop and :func:`record` the one place a run
is turned into a :class:`~xltune.store.RunRecord` (whatever the runner)."""

from __future__ import annotations

import copy
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import __version__
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

    from ..config import resolve_paths
    from ..cpus import size_threads

    size_threads()
    cfg = resolve_paths(copy.deepcopy(cfg))
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
        done = [RunResult(store.stored_id(keys[s]) or keys[s], s, skipped=True) for s in cfg.seeds if s not in todo]
        for r in done:
            log(f"seed {r.seed}: run {r.run_id} is already in {path}; skipped (use --force to redo)")
        if not todo:
            return done
        prep = prepare(cfg)
        results = [run_seed(prep, seed, keys[seed], store, force, log) for seed in todo]
        if len(results) > 1:
            log(summary_table(results, prep.targets))
        log(f"stored {len(results)} run(s) in {path}")
        return done + results


def run_seed(prep: Prepared, seed: int, run_id: str, store: Store, force: bool, log) -> RunResult:
    from ..methods.base import method_spec

    runner = RUNNERS.get(method_spec(prep.cfg.method.name).runner)()
    runner.check(prep)
    shots, manifest = runner.draw(prep, seed)
    ctx = build_context(prep, seed, run_id, log, verbalizer=runner.verbalizer)
    if not ctx.is_main:
        ctx.log = _quiet  # one process speaks and writes
    ctx.log(runner.title(prep, seed, run_id))
    fit = runner.fit(ctx, shots, manifest, force)
    t0 = time.perf_counter()
    results, facts = evaluate_languages(ctx, runner)
    eval_seconds = time.perf_counter() - t0
    if ctx.is_main:
        record(ctx, fit, results, facts, eval_seconds, store, force)
    return RunResult(run_id, seed, results, fit.train)


def evaluate_languages(ctx: RunContext, runner) -> tuple[list[LanguageResult], dict]:
    """Every target language: encode (once per experiment), predict (sharded over processes), score. A method's
    ``for_language`` hook wraps each language (e.g. swaps in that language's module); what it yields is kept."""
    cfg, spec, prep = ctx.cfg, ctx.spec, ctx.prep
    results, facts, truncated, windowed = [], {}, 0, 0
    langs = tqdm(prep.targets, desc="evaluate", unit="lang", leave=False,
                 disable=not (ctx.is_main and sys.stderr.isatty()))
    hook = ctx.method.for_language
    for lang in langs:
        enc = runner.encode_eval(ctx, lang)
        truncated += enc.truncated
        windowed += enc.windowed
        if hook is not None:
            with hook(ctx, lang) as fact:
                preds = ctx.predict(enc)
            if fact:
                facts[lang] = fact
        else:
            preds = ctx.predict(enc)
        results.append(score(spec, prep.test[lang], preds, lang, cfg.eval.split))
    if truncated:
        ctx.log(f"   note: {truncated} evaluation example(s) truncated to {cfg.model.max_length} tokens")
    if windowed:
        ctx.log(f"   note: {windowed} evaluation sentence(s) longer than {cfg.model.max_length} sub-words were "
                f"windowed")
    what = cfg.method.name if ctx.method.runner != "in_context" else f"in_context K={cfg.train.shots}"
    ctx.log(format_table(results, f"   {spec.name} {cfg.eval.split}  seed {ctx.seed}  ({what})"))
    out = {"truncated": truncated, "windowed": windowed}
    if facts:
        out["per_language"] = facts
    return results, out


def record(ctx: RunContext, fit: Fit, results: list[LanguageResult], facts: dict, eval_seconds: float,
           store: Store, force: bool) -> None:
    """Store the run (the only place a RunRecord is built) and its checkpoint; drop its resume state."""
    from .. import variants

    cfg, spec = ctx.cfg, ctx.spec
    if cfg.save_checkpoint and fit.train is not None:
        save_trainable(ctx.model, Path(cfg.output_dir) / ctx.run_id, cfg)
    trainable, total = ctx.model.count_parameters()
    extra = {**fit.extra, "truncated": facts.get("truncated", 0) + fit.truncated, "windowed": facts.get("windowed", 0),
             "decoder": ctx.backbone.is_decoder, "task_kind": spec.kind}
    if "per_language" in facts:
        extra["per_language"] = facts["per_language"]
    rec = RunRecord(
        run_id=ctx.run_id, seed=ctx.seed, task=spec.name, method=cfg.method.name, objective=cfg.objective_tag,
        model=cfg.model.name_or_path, shots=str(cfg.train.shots), source_langs=ctx.prep.sources,
        config=cfg.to_dict(), manifest=fit.manifest, env=environment(),
        metrics=[row for r in results for row in r.rows()],
        predictions={(r.lang, r.split): r.predictions for r in results} if cfg.eval.save_predictions else {},
        trainable_params=trainable, total_params=total,
        train_seconds=fit.train.seconds if fit.train is not None else 0.0, eval_seconds=eval_seconds, extra=extra,
        headline_metric=ctx.kind.headline(spec), **variants.describe_variant(cfg),
    )
    store.write_run(rec, replace=force)
    (Path(cfg.output_dir) / ctx.run_id / "resume.pt").unlink(missing_ok=True)  # stored: nothing left to resume


def _quiet(*_args, **_kw) -> None:
    pass


def save_trainable(model, folder: Path, cfg) -> None:
    """Only the trainable parameters (prefix, head, adapters), written atomically (temp file, then rename)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict_trainable().items()}
    tmp = folder / "trainable.safetensors.tmp"
    save_file(state, str(tmp))
    os.replace(tmp, folder / "trainable.safetensors")
    tmpc = folder / "config.json.tmp"
    tmpc.write_text(json.dumps(cfg.to_dict(), indent=2, ensure_ascii=False))
    os.replace(tmpc, folder / "config.json")


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

