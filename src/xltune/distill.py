"""Knowledge distillation to the target languages: a stored run (the teacher) labels unlabelled target-language
text with its temperature-softened distributions; a student (any method, from a config) learns them, then is
evaluated like any run and stored with objective ``"kd"`` and the teacher's run id in ``extra``.

Unlabelled text per language is either a plain-text file (one sentence per line, gzip transparent; for tagging,
words are split on whitespace) or the unlabelled side of a task split (its labels are dropped before anything sees
them). A sentence-pair task (XNLI, PAWS-X) needs pairs, which plain text does not give: use a split, e.g. the
target-language ``dev`` premise/hypothesis pairs. Teacher targets are computed once, before the student trains:
sentence tasks ``[C]`` logits per example; tagging ``[W, C]`` logits per *word* (read at the teacher's first
sub-word), put on the student's first sub-word of each word, so teacher and student may use different tokenizers.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from accelerate import Accelerator
from accelerate.utils import set_seed
from safetensors.torch import load_file

from .api import RunResult, _save_trainable, environment, prepare
from .config import ExperimentConfig, resolve_paths
from .data.encode import IGNORE, Encoded, collate, encode_sentences, encode_tokens, eval_batches
from .data.parallel import read_plain_text
from .data.readers import load_examples
from .data.records import Example, SentenceExample, TokenExample
from .data.tasks import TaskSpec, resolve_task
from .errors import XLTuneError
from .evaluate import format_table, predict, score
from .methods.base import build_model
from .models.backbone import load_backbone
from .objectives.distillation import distillation
from .store import RunRecord, Store
from .train import autocast_dtype, resolve_mixed_precision, train

KD_TAG = "kd"


@dataclass(frozen=True)
class UnlabelledSource:
    """Where one language's unlabelled text comes from: a plain-text ``path``, or ``split`` of the task files."""

    lang: str
    path: str | None = None
    split: str | None = None

    def describe(self) -> str:
        return self.path if self.path else f"{self.split} split (labels dropped)"


@dataclass
class Teacher:
    run_id: str
    cfg: ExperimentConfig
    run: dict  # the stored row (config, manifest, shots, ...)
    checkpoint: Path


def load_teacher(run_id: str, store_path: str | Path) -> Teacher:
    """The stored run ``run_id`` of ``store_path`` and its checkpoint (OUTPUT_DIR/RUN_ID/trainable.safetensors)."""
    with Store(store_path) as s:
        runs = s.runs(run_id=run_id)
    if not runs:
        raise XLTuneError(f"teacher run {run_id!r} is not in {store_path}")
    run = runs[0]
    cfg = ExperimentConfig.from_dict(run["config"], f"run {run_id} in {store_path}")
    ckpt = Path(cfg.output_dir) / run_id / "trainable.safetensors"
    if not ckpt.is_file():
        raise XLTuneError(f"teacher run {run_id} has no checkpoint at {ckpt} (was it run with save_checkpoint: false?)")
    return Teacher(run_id, cfg, run, ckpt)


def unlabelled_examples(spec: TaskSpec, data_dir: str | None, src: UnlabelledSource, max_examples: int) -> list[Example]:
    """Up to ``max_examples`` (0: all) unlabelled examples of ``src`` (labels removed)."""
    cap = max_examples or None
    if src.path:
        if spec.kind == "sequence" and len(spec.text_columns or ()) > 1:
            raise XLTuneError(f"task {spec.name} takes sentence pairs; plain text {src.path} has single sentences -- "
                              f"use the unlabelled side of a split instead (e.g. the {src.lang} dev split)")
        lines = [t.strip() for t in read_plain_text(src.path, max_lines=cap, skip_blank=True)]
        if spec.kind == "token":
            return [TokenExample(f"{src.lang}/kd/{i}", src.lang, i, tuple(t.split()), None) for i, t in enumerate(lines)]
        return [SentenceExample(f"{src.lang}/kd/{i}", src.lang, i, (t,), None) for i, t in enumerate(lines)]
    exs = load_examples(spec, data_dir, src.split, src.lang, labelled=False)[:cap]
    if spec.kind == "token":
        return [dataclasses.replace(e, tags=None) for e in exs]
    return [dataclasses.replace(e, label=None) for e in exs]


# ---------------------------------------------------------------- teacher targets


def _encoder(spec: TaskSpec, cfg: ExperimentConfig, tokenizer) -> Callable[[Sequence[Example]], Encoded]:
    if spec.kind == "token":
        return lambda exs: encode_tokens(exs, tokenizer, cfg.model.max_length, cfg.task.label_alignment)
    return lambda exs: encode_sentences(exs, tokenizer, cfg.model.max_length)


@torch.no_grad()
def teacher_targets(model, encoded: Encoded, *, batch_size: int, pad_id: int, padding_side: str, token_task: bool,
                    device: torch.device) -> list[torch.Tensor]:
    """Per example: the teacher's logits ``[C]`` (sequence) or ``[W, C]`` per word at its first sub-word (token;
    windows stitched by word index, as evaluation does), float32 on the CPU."""
    model.eval()
    feats = encoded.features
    per_feat: list = [None] * len(feats)
    for idx in eval_batches(encoded.lengths(), batch_size):
        batch = collate([feats[i] for i in idx], pad_id, padding_side, token_task)
        out = model(batch["input_ids"].to(device), batch["attention_mask"].to(device))
        logits = out.logits.float().cpu()
        for r, i in enumerate(idx):
            per_feat[i] = logits[r][batch["attention_mask"][r].bool()] if token_task else logits[r]
    if not token_task:
        out_t: list = [None] * encoded.n_examples
        for f, t in zip(feats, per_feat):
            out_t[f.example] = t
        return out_t
    words: list[dict[int, torch.Tensor]] = [dict() for _ in range(encoded.n_examples)]
    for f, t in zip(feats, per_feat):
        prev = None
        for pos, w in enumerate(f.word_ids):
            if w is not None and w != prev:
                words[f.example][w] = t[pos]
            prev = w
    return [torch.stack([d[k] for k in sorted(d)]) if d else torch.zeros(0) for d in words]


def student_targets(encoded: Encoded, targets: list[torch.Tensor], token_task: bool, num_labels: int
                    ) -> list[torch.Tensor]:
    """Per student feature: ``[C]`` (sequence) or ``[L, C]`` with the word's teacher logits on the student's first
    sub-word of each word and NaN elsewhere (NaN rows are masked out of the loss)."""
    out = []
    for f in encoded.features:
        t = targets[f.example]
        if not token_task:
            out.append(t)
            continue
        rows = torch.full((len(f.input_ids), num_labels), float("nan"))
        prev = None
        for pos, w in enumerate(f.word_ids):
            if w is not None and w != prev and w < t.shape[0]:
                rows[pos] = t[w]
            prev = w
        out.append(rows)
    return out


def kd_loss(targets: list[torch.Tensor], temperature: float, token_task: bool, padding_side: str):
    """The ``extra_loss(out, batch, part)`` of a distillation run: T^2 KL to the teacher over the micro-batch."""

    def extra_loss(out, batch: dict, part: list[int]) -> torch.Tensor:
        device = out.logits.device
        if not token_task:
            return distillation(out.logits, torch.stack([targets[p] for p in part]).to(device), temperature)
        width, c = out.logits.shape[1], out.logits.shape[2]
        t = torch.full((len(part), width, c), float("nan"))
        for r, p in enumerate(part):
            n = targets[p].shape[0]
            sl = slice(width - n, width) if padding_side == "left" else slice(0, n)
            t[r, sl] = targets[p]
        mask = ~torch.isnan(t[..., 0])
        return distillation(out.logits, torch.nan_to_num(t).to(device), temperature, mask.to(device))

    return extra_loss


# ---------------------------------------------------------------- the run


def kd_run_id(cfg: ExperimentConfig, seed: int, teacher_id: str, sources: Sequence[UnlabelledSource],
              temperature: float, max_examples: int) -> str:
    blob = json.dumps({"student": cfg.run_key(seed), "teacher": teacher_id, "temperature": temperature,
                       "max_examples": max_examples, "sources": [dataclasses.asdict(s) for s in sources]},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def distill(
    teacher_run_id: str,
    sources: Sequence[UnlabelledSource],
    student_cfg: ExperimentConfig | None = None,
    *,
    teacher_store: str | Path | None = None,
    temperature: float = 2.0,
    max_examples: int = 1000,
    force: bool = False,
    log: Callable[[str], None] = print,
):
    """Distil the stored run ``teacher_run_id`` into a student on the unlabelled text of ``sources`` (2+ languages
    is the usual set-up; 1 works). ``student_cfg`` None: the teacher's own config (same method and model).
    The student is evaluated on ``student_cfg.eval`` and stored in ``student_cfg.store``; returns one
    :class:`xltune.api.RunResult` per seed (skipped when already stored, unless ``force``)."""
    if not sources:
        raise XLTuneError("distillation needs unlabelled text in at least one target language")
    if temperature <= 0:
        raise XLTuneError(f"distillation temperature must be > 0, got {temperature}")
    teacher_store = teacher_store or (student_cfg.store if student_cfg else None)
    if teacher_store is None:
        raise XLTuneError("say which store holds the teacher run (teacher_store / --teacher-store)")
    teacher = load_teacher(teacher_run_id, teacher_store)
    cfg = resolve_paths(copy.deepcopy(student_cfg or teacher.cfg))
    spec, t_spec = resolve_task(cfg.task), resolve_task(teacher.cfg.task)
    if (spec.kind, spec.labels) != (t_spec.kind, t_spec.labels):
        raise XLTuneError(f"student task {spec.name} ({spec.kind}, labels {list(spec.labels)}) does not match the "
                          f"teacher's {t_spec.name} ({t_spec.kind}, labels {list(t_spec.labels)})")
    token_task = spec.kind == "token"
    with Store(cfg.store) as store:
        keys = {s: kd_run_id(cfg, s, teacher_run_id, sources, temperature, max_examples) for s in cfg.seeds}
        todo = [s for s in cfg.seeds if force or not store.has_run(keys[s])]
        results = [RunResult(keys[s], s, skipped=True) for s in cfg.seeds if s not in todo]
        if not todo:
            return results
        prep = prepare(cfg)
        for src in sources:
            if src.split and src.split == cfg.eval.split:
                log(f"note: unlabelled {src.lang} text is the evaluation split {src.split!r} (transductive)")
        unlabelled = {s.lang: unlabelled_examples(spec, cfg.task.data_dir, s, max_examples) for s in sources}
        kd_examples = [e for s in sources for e in unlabelled[s.lang]]
        if len(kd_examples) == 0:
            raise XLTuneError("no unlabelled text in " + ", ".join(s.describe() for s in sources))
        acc = Accelerator(mixed_precision=resolve_mixed_precision(cfg.train.mixed_precision))
        amp = autocast_dtype(cfg.train.mixed_precision)

        # teacher: rebuilt from its stored config and checkpoint; soft targets once, then freed
        t_back = load_backbone(teacher.cfg.model, device=acc.device, frozen=True)
        t_model = build_model(t_back, teacher.cfg.method, t_spec.kind, len(t_spec.labels), teacher.cfg.model)
        t_model.load_trainable(load_file(str(teacher.checkpoint)))
        t_model.to(acc.device)
        t_pad_side = (t_back.tokenizer.padding_side if teacher.cfg.model.padding_side == "auto"
                      else teacher.cfg.model.padding_side)
        t0 = time.perf_counter()
        with torch.autocast(acc.device.type, dtype=amp) if amp else torch.autocast("cpu", enabled=False):
            soft = teacher_targets(t_model, _encoder(t_spec, teacher.cfg, t_back.tokenizer)(kd_examples),
                                   batch_size=cfg.eval.batch_size, pad_id=t_back.pad_token_id,
                                   padding_side=t_pad_side, token_task=token_task, device=acc.device)
        log(f"   teacher {teacher_run_id}: soft targets for {len(kd_examples)} examples in "
            f"{time.perf_counter() - t0:.1f} s")
        del t_model, t_back

        for seed in todo:
            results.append(_student_seed(cfg, spec, prep, teacher, sources, unlabelled, kd_examples, soft, seed,
                                         keys[seed], store, acc, amp, temperature, force, log))
        log(f"stored {len(todo)} distillation run(s) in {cfg.store}")
        return results


def _student_seed(cfg, spec, prep, teacher, sources, unlabelled, kd_examples, soft, seed, run_id, store, acc, amp,
                  temperature, force, log) -> RunResult:
    token_task = spec.kind == "token"
    log(f"== kd seed {seed}  run {run_id}  {cfg.method.name} student of {teacher.run_id} on {spec.name} "
        f"({', '.join(f'{s.lang}: {len(unlabelled[s.lang])}' for s in sources)} unlabelled)")
    set_seed(seed)
    backbone = load_backbone(cfg.model, device=acc.device)
    tok = backbone.tokenizer
    padding_side = tok.padding_side if cfg.model.padding_side == "auto" else cfg.model.padding_side
    model = build_model(backbone, cfg.method, spec.kind, len(spec.labels), cfg.model).to(acc.device)
    trainable, total = model.count_parameters()
    encode = _encoder(spec, cfg, tok)
    enc = encode(kd_examples)
    targets = student_targets(enc, soft, token_task, len(spec.labels))
    # no gold labels: the task loss is 0 and the whole signal is the distillation term
    enc.features = [dataclasses.replace(f, label=[IGNORE] * len(f.input_ids) if token_task else IGNORE)
                    for f in enc.features]
    common = dict(batch_size=cfg.eval.batch_size, pad_id=backbone.pad_token_id, padding_side=padding_side,
                  token_task=token_task, device=acc.device, autocast_dtype=amp)
    dev_sets = []
    for lang, exs in prep.dev.items():
        exs = exs[: cfg.train.dev.max_examples] if cfg.train.dev.max_examples else exs
        if exs:
            dev_sets.append((exs, encode(exs)))
    dev_score = None
    if dev_sets:
        def dev_score() -> float:
            return float(np.mean([score(spec, exs, predict(model, e, **common), "dev", "dev").headline
                                  for exs, e in dev_sets]))
    resume = Path(cfg.output_dir) / run_id / "resume.pt"
    if force:
        resume.unlink(missing_ok=True)
    tres = train(model, enc, cfg.train, seed=seed, token_task=token_task, pad_id=backbone.pad_token_id,
                 padding_side=padding_side, accelerator=acc, dev_score=dev_score,
                 extra_loss=kd_loss(targets, temperature, token_task, padding_side), resume_path=resume, log=log)
    log(f"   trained {tres.steps} steps in {tres.seconds:.1f} s")
    t0 = time.perf_counter()
    results = [score(spec, prep.test[lang], predict(model, encode(prep.test[lang]), **common), lang, cfg.eval.split)
               for lang in prep.targets]
    eval_seconds = time.perf_counter() - t0
    log(format_table(results, f"   {spec.name} {cfg.eval.split}  seed {seed}  ({cfg.method.name}, kd)"))
    if acc.is_main_process:
        if cfg.save_checkpoint:
            _save_trainable(model, Path(cfg.output_dir) / run_id, cfg)
        kd_info = {"teacher_run_id": teacher.run_id, "temperature": temperature,
                   "teacher_method": teacher.cfg.method.name, "teacher_model": teacher.cfg.model.name_or_path,
                   "sources": {s.lang: {"from": s.describe(), "examples": len(unlabelled[s.lang])} for s in sources}}
        manifest = dict(teacher.run["manifest"])
        manifest["kd"] = {s.lang: s.describe() for s in sources}
        rec = RunRecord(
            run_id=run_id, seed=seed, task=spec.name, method=cfg.method.name, objective=KD_TAG,
            model=cfg.model.name_or_path, shots=teacher.run["shots"],
            source_langs=teacher.run["source_langs"].split(","), config=cfg.to_dict(), manifest=manifest,
            env=environment(), metrics=[row for r in results for row in r.rows()],
            predictions={(r.lang, r.split): r.predictions for r in results} if cfg.eval.save_predictions else {},
            trainable_params=trainable, total_params=total, train_seconds=tres.seconds, eval_seconds=eval_seconds,
            extra={"teacher_run_id": teacher.run_id, "kd": kd_info,
                   "train": {"steps": tres.steps, "epochs": tres.epochs, "best_dev": tres.best_score,
                             "best_step": tres.best_step, "stopped_early": tres.stopped_early,
                             "history": tres.history},
                   "decoder": backbone.is_decoder},
        )
        store.write_run(rec, replace=force)
        resume.unlink(missing_ok=True)
    return RunResult(run_id, seed, results, tres)
