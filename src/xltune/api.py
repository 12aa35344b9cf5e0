"""The one entry point the CLI and the tests use: :func:`run_experiment`.

config -> task spec -> reader -> few-shot sampler -> encoder -> backbone + method + head -> train loop
-> per-language evaluation -> results store. One run per seed; a run already in the store is skipped.
"""

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

from . import __version__
from .config import ExperimentConfig, resolve_paths
from .data.encode import Encoded, encode_sentences, encode_tokens
from .data.fewshot import sample_shots
from .data.readers import load_examples
from .data.tasks import TaskSpec, available_languages, resolve_task
from .errors import XLTuneError, unknown_name
from .evaluate import LanguageResult, format_table, predict_sharded, score
from .store import RunRecord, Store
from .train import TrainResult, autocast_dtype, resolve_mixed_precision, train


@dataclass
class RunResult:
    run_id: str
    seed: int
    results: list[LanguageResult] = field(default_factory=list)
    train: TrainResult | None = None
    skipped: bool = False  # already in the store

    @property
    def average(self) -> float:
        return float(np.mean([r.headline for r in self.results])) if self.results else float("nan")


@dataclass
class Prepared:
    """What one experiment loads once and shares across its seeds."""

    cfg: ExperimentConfig
    spec: TaskSpec
    sources: list[str]
    targets: list[str]
    pool: dict[str, list]  # source lang -> train-split examples
    dev: dict[str, list]  # source lang -> dev examples (model selection)
    test: dict[str, list]  # target lang -> evaluation examples
    encoded: dict[str, Encoded] = field(default_factory=dict)  # target lang -> encoded test set (same for all seeds)


def environment() -> dict:
    import accelerate
    import peft
    import transformers

    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else platform.processor() or "cpu"
    return {
        "xltune": __version__, "python": sys.version.split()[0], "torch": torch.__version__,
        "transformers": transformers.__version__, "peft": peft.__version__, "accelerate": accelerate.__version__,
        "device": dev, "platform": platform.platform(), "cpu_count": os.cpu_count(),
    }


def prepare(cfg: ExperimentConfig) -> Prepared:
    from .methods import METHODS

    METHODS.get(cfg.method.name, "method.name")  # an unknown method fails before any data is read
    spec = resolve_task(cfg.task)
    data_dir = cfg.task.data_dir
    if data_dir and not Path(data_dir).is_dir():
        raise XLTuneError(f"task.data_dir {data_dir} is not a folder (set it to the folder with the task's files, "
                          f"or null to load from the hub)")
    for lang in cfg.train.languages:
        if lang not in spec.languages:
            raise unknown_name("source language", lang, spec.languages, f"task {spec.name}")
    if cfg.eval.languages == "all":
        targets = available_languages(spec, data_dir, cfg.eval.split) if data_dir else list(spec.languages)
        if not targets:
            raise XLTuneError(f"no {cfg.eval.split!r} files for task {spec.name} in {data_dir}")
    else:
        targets = list(cfg.eval.languages)
        for lang in targets:
            if lang not in spec.languages:
                raise unknown_name("target language", lang, spec.languages, f"task {spec.name}")
    pool = {lang: load_examples(spec, data_dir, cfg.train.split, lang) for lang in cfg.train.languages}
    dev: dict[str, list] = {}
    if cfg.train.dev.policy == "source":
        for lang in cfg.train.languages:
            if data_dir and lang not in available_languages(spec, data_dir, cfg.train.dev.split):
                print(f"note: no {cfg.train.dev.split!r} split for {lang}; model selection falls back to the last epoch",
                      file=sys.stderr)
                continue
            dev[lang] = load_examples(spec, data_dir, cfg.train.dev.split, lang)
    test = {}
    for lang in targets:
        exs = load_examples(spec, data_dir, cfg.eval.split, lang)
        test[lang] = exs[: cfg.eval.max_examples] if cfg.eval.max_examples else exs
    return Prepared(cfg, spec, list(cfg.train.languages), targets, pool, dev, test)


def run_experiment(cfg: ExperimentConfig, *, force: bool = False, log=print) -> list[RunResult]:
    """Run every seed of ``cfg`` that is not yet in its store; returns one :class:`RunResult` per seed."""
    cfg = resolve_paths(copy.deepcopy(cfg))
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())
    if not state.is_main_process:
        log = _quiet  # under `accelerate launch` / --processes: one process speaks
    with state.main_process_first():  # one process creates the file and its schema; the others then open it
        store = Store(cfg.store)  # opened first: an unwritable store fails before any work
    with store:
        keys = {seed: cfg.run_key(seed) for seed in cfg.seeds}
        todo = [s for s in cfg.seeds if force or not store.has_run(keys[s])]
        done = [RunResult(keys[s], s, skipped=True) for s in cfg.seeds if s not in todo]
        for r in done:
            log(f"seed {r.seed}: run {r.run_id} is already in {cfg.store}; skipped (use --force to redo)")
        if not todo:
            return done
        prep = prepare(cfg)
        results = []
        for seed in todo:
            res = _run_seed(prep, seed, keys[seed], store, force, log)
            results.append(res)
        if len(results) > 1:
            log(summary_table(results, prep.targets))
        log(f"stored {len(results)} run(s) in {cfg.store}")
        return done + results


def _run_seed(prep: Prepared, seed: int, run_id: str, store: Store, force: bool, log) -> RunResult:
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    from .methods.base import build_model
    from .models.backbone import load_backbone

    cfg, spec = prep.cfg, prep.spec
    token_task = spec.kind == "token"
    if cfg.method.name == "in_context":  # nothing trains: demonstrations + verbalizer head (xltune.icl)
        from .icl import run_in_context

        return run_in_context(prep, seed, run_id, store, force, log)
    # cpu=True without CUDA: several CPU processes (torchrun / --processes) then join a gloo process group
    acc = Accelerator(mixed_precision=resolve_mixed_precision(cfg.train.mixed_precision),
                      cpu=not torch.cuda.is_available())
    if not acc.is_main_process:
        log = _quiet  # one process speaks and writes
    log(f"== seed {seed}  run {run_id}  {cfg.method.name} on {spec.name} "
        f"({','.join(prep.sources)} -> {len(prep.targets)} languages)")
    set_seed(seed)  # the same on every process: identical initialisation of heads and prompts

    shots, manifest = [], {"seed": seed, "shots": cfg.train.shots, "languages": {}}
    for lang in prep.sources:
        chosen, man = sample_shots(prep.pool[lang], spec, cfg.train.shots, seed)
        shots.extend(chosen)
        manifest["languages"][lang] = man
    chosen_ids = {e.id for e in shots}

    # frozen backbones may live in bf16 on a GPU (dtype auto); weights that train stay fp32 for AdamW
    backbone = load_backbone(cfg.model, device=acc.device, frozen=cfg.method.name in ("deep_prompt", "prompt"))
    tok = backbone.tokenizer
    padding_side = tok.padding_side if cfg.model.padding_side == "auto" else cfg.model.padding_side
    model = build_model(backbone, cfg.method, spec.kind, len(spec.labels), cfg.model).to(acc.device)
    if cfg.model.head == "verbalizer":  # label words scored by the LM head (xltune.models.verbalizer)
        from .models.verbalizer import encode_verbalized, verbalizer_model
        from .templates import load_templates

        templates = load_templates(spec, cfg.task.template)
        model = verbalizer_model(model, backbone, templates, padding_side)
    trainable, total = model.count_parameters()
    log(f"   trainable parameters: {trainable:,} of {total:,} ({100 * trainable / total:.4f} %)")
    if token_task and backbone.is_decoder:
        log("   note: with a decoder each token's label is predicted from its LEFT context only (causal attention)")

    def encode(examples) -> Encoded:
        if cfg.model.head == "verbalizer":
            return encode_verbalized(examples, tok, templates, cfg.model.max_length)
        if token_task:
            return encode_tokens(examples, tok, cfg.model.max_length, cfg.task.label_alignment)
        return encode_sentences(examples, tok, cfg.model.max_length)

    amp = autocast_dtype(cfg.train.mixed_precision)
    common = dict(batch_size=cfg.eval.batch_size, pad_id=backbone.pad_token_id, padding_side=padding_side,
                  token_task=token_task, device=acc.device, autocast_dtype=amp)

    def predict_all(enc: Encoded) -> list:
        return predict_sharded(model, enc, acc, **common)

    # model selection on the source-language dev split, without the training shots (XNLI has no train split,
    # so shots are drawn from dev: they must not also select the model)
    dev_sets = []
    for lang, exs in prep.dev.items():
        exs = [e for e in exs if e.id not in chosen_ids]
        if cfg.train.dev.max_examples:
            exs = exs[: cfg.train.dev.max_examples]
        if exs:
            dev_sets.append((exs, encode(exs)))
    dev_score = None
    if dev_sets:
        def dev_score() -> float:
            vals = [score(spec, exs, predict_all(enc), "dev", "dev").headline for exs, enc in dev_sets]
            return float(np.mean(vals))
    elif cfg.train.dev.policy == "source":
        log("   no dev examples left for model selection (all dev examples are training shots): using the last epoch")

    train_enc = encode(shots)
    if train_enc.truncated:
        log(f"   note: {train_enc.truncated} training example(s) truncated to {cfg.model.max_length} tokens")
    from .objectives.compose import build_extra_loss

    extra_loss, objective_info = build_extra_loss(
        cfg, spec, shots, encode, lambda split, lang, **kw: load_examples(spec, cfg.task.data_dir, split, lang, **kw),
        model, tokenizer=tok, pad_id=backbone.pad_token_id, padding_side=padding_side, seed=seed, log=log)
    resume = Path(cfg.output_dir) / run_id / "resume.pt"
    if force:
        resume.unlink(missing_ok=True)  # --force redoes the run from scratch
    tres = train(model, train_enc, cfg.train, seed=seed, token_task=token_task, pad_id=backbone.pad_token_id,
                 padding_side=padding_side, accelerator=acc, dev_score=dev_score, extra_loss=extra_loss,
                 resume_path=resume, log=log)
    log(f"   trained {tres.steps} steps in {tres.seconds:.1f} s"
        + (f"; best dev {100 * tres.best_score:.2f}% at step {tres.best_step}" if tres.best_score is not None else ""))

    t0 = time.perf_counter()
    results, truncated, windowed = [], 0, 0
    langs = tqdm(prep.targets, desc="evaluate", unit="lang", leave=False,
                 disable=not (acc.is_main_process and sys.stderr.isatty()))
    for lang in langs:
        exs = prep.test[lang]
        if lang not in prep.encoded:  # the tokenizer is the same for every seed: encode once
            prep.encoded[lang] = encode(exs)
        enc = prep.encoded[lang]
        truncated += enc.truncated
        windowed += enc.windowed
        results.append(score(spec, exs, predict_all(enc), lang, cfg.eval.split))
    eval_seconds = time.perf_counter() - t0
    if truncated:
        log(f"   note: {truncated} evaluation example(s) truncated to {cfg.model.max_length} tokens")
    if windowed:
        log(f"   note: {windowed} evaluation sentence(s) longer than {cfg.model.max_length} sub-words were windowed")
    log(format_table(results, f"   {spec.name} {cfg.eval.split}  seed {seed}  ({cfg.method.name})"))

    if acc.is_main_process:
        if cfg.save_checkpoint:
            _save_trainable(model, Path(cfg.output_dir) / run_id, cfg)
        rec = RunRecord(
            run_id=run_id, seed=seed, task=spec.name, method=cfg.method.name, objective=cfg.objective.tag(),
            model=cfg.model.name_or_path, shots=str(cfg.train.shots), source_langs=prep.sources,
            config=cfg.to_dict(), manifest=manifest, env=environment(),
            metrics=[row for r in results for row in r.rows()],
            predictions={(r.lang, r.split): r.predictions for r in results} if cfg.eval.save_predictions else {},
            trainable_params=trainable, total_params=total, train_seconds=tres.seconds, eval_seconds=eval_seconds,
            extra={"train": {"steps": tres.steps, "epochs": tres.epochs, "best_dev": tres.best_score,
                             "best_step": tres.best_step, "stopped_early": tres.stopped_early,
                             "history": tres.history},
                   "truncated": truncated + train_enc.truncated, "windowed": windowed,
                   "decoder": backbone.is_decoder, "task_kind": spec.kind, "objective": objective_info},
        )
        store.write_run(rec, replace=force)
        resume.unlink(missing_ok=True)  # the run is stored: nothing left to resume
    return RunResult(run_id, seed, results, tres)


def _quiet(*_args, **_kw) -> None:
    pass


def _save_trainable(model, folder: Path, cfg: ExperimentConfig) -> None:
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
