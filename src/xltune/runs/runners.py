"""Runners: how a method is fitted. They differ only there; the context, the evaluation and the record are shared.

* ``train``: K shots per class drawn by the seeded sampler, the run's objectives prepared over them (translations,
  teacher targets, ...), the training loop with model selection on the source-language dev split (the shots left
  out of it), the best state restored.
* ``in_context``: nothing trains. K demonstrations per class, drawn by the same sampler (so in-context and tuned runs
  of one seed see the same examples), written with the template and their gold label words before every test
  example, which the verbalizer head scores. ``method.demonstrations``: ``source`` (the same source-language
  demonstrations everywhere) or ``translated`` (for target T, the examples at the *same indices* of T's file of
  ``train.split``: line-aligned translations, as XNLI dev/test are). Every sequence must fit the model's positions;
  examples that do not fit are counted in an error, never truncated.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data.encode import IGNORE, Encoded
from ..data.fewshot import sample_shots
from ..errors import XLTuneError
from ..evaluate import score
from ..registry import Registry
from .context import RunContext
from .prepare import Prepared


@dataclass
class Fit:
    """What fitting produced, for the record."""

    manifest: dict
    train: Any = None  # train.TrainResult (None: nothing trained)
    extra: dict = field(default_factory=dict)  # facts stored in the run's extra
    truncated: int = 0  # training examples cut to max_length


class Runner:
    name = ""
    verbalizer = False  # needs the verbalizer head

    def check(self, prep: Prepared) -> None:
        """Refuse what this runner cannot run, before any model is built."""

    def title(self, prep: Prepared, seed: int, run_id: str) -> str:
        cfg, spec = prep.cfg, prep.spec
        return (f"== seed {seed}  run {run_id}  {cfg.method.name} on {spec.name} "
                f"({','.join(prep.sources)} -> {len(prep.targets)} languages)")

    def draw(self, prep: Prepared, seed: int) -> tuple[list, dict]:
        """The seed's shots (or demonstrations) and their manifest, drawn before any model is built (too few
        examples for K shots fails early)."""
        return draw_shots(prep, seed)

    def fit(self, ctx: RunContext, shots: list, manifest: dict, force: bool, unit=None) -> Fit:
        """Fit ``ctx.model`` (for ``unit``: one model of a transfer setting, see runs.settings)."""
        raise NotImplementedError

    def encode_eval(self, ctx: RunContext, lang: str, examples: list) -> Encoded:
        """The target language's evaluation examples, encoded (cached when they are the whole test set)."""
        if examples is ctx.prep.test[lang]:
            return ctx.encode_test(lang)
        return ctx.encode_train(examples)


RUNNERS: Registry[Runner] = Registry("runner")


def shot_seed_of(cfg, seed: int) -> int:
    return seed if cfg.train.shot_seed is None else int(cfg.train.shot_seed)


def language_seed(shot_seed: int, lang: str, position: int) -> int:
    """The sampling seed of the ``position``-th source language: the shot seed for the first, a seed derived from
    (shot seed, language) for the others, so each language draws its own sample (the same seed on parallel pools
    would pick the same lines: translations of each other)."""
    if position == 0:
        return shot_seed
    import zlib

    return int(shot_seed) * 1_000_003 + zlib.crc32(lang.encode())


def draw_shots(prep: Prepared, seed: int) -> tuple[list, dict]:
    """K per class from each source language's pool (seeded by the shot seed, each language its own sample; none
    for K = 0, or when no objective trains on shots, e.g. distillation alone) and the manifest of what was drawn."""
    from ..objectives.base import OBJECTIVES

    cfg, spec = prep.cfg, prep.spec
    shot_seed = shot_seed_of(cfg, seed)
    shots, manifest = [], {"seed": seed, "shots": cfg.train.shots, "languages": {}}
    if shot_seed != seed:
        manifest["shot_seed"] = shot_seed
    if cfg.train.shots == 0:
        return shots, manifest
    if not any(OBJECTIVES.get(o.name).objective.uses_shots for o in cfg.objectives):
        manifest["shots"] = 0
        manifest["note"] = "no objective trains on shots: " + ", ".join(o.name for o in cfg.objectives)
        return shots, manifest
    for i, lang in enumerate(prep.sources):
        chosen, man = sample_shots(prep.pool[lang], spec, cfg.train.shots, language_seed(shot_seed, lang, i))
        shots.extend(chosen)
        manifest["languages"][lang] = man
    return shots, manifest


class TrainRunner(Runner):
    name = "train"

    def check(self, prep: Prepared) -> None:
        from .settings import check_setting

        check_setting(prep)

    def __init__(self):
        self.stage1: tuple[dict, object] | None = None  # few_shot_target: the source model's weights, trained once
        self.said = False

    def fit(self, ctx: RunContext, shots: list, manifest: dict, force: bool, unit=None) -> Fit:
        log = ctx.log
        if not self.said:  # once per seed, whatever the number of units
            self.said = True
            trainable, total = ctx.model.count_parameters()
            log(f"   trainable parameters: {trainable:,} of {total:,} ({100 * trainable / total:.4f} %)")
            if ctx.token_task and ctx.backbone.is_decoder:
                log("   note: with a decoder each token's label is predicted from its LEFT context only (causal "
                    "attention)")
        if ctx.method.before_train is not None:
            ctx.method.before_train(ctx)
        targets = unit.targets if unit is not None else list(ctx.prep.targets)
        name = unit.name if unit is not None else "all"
        if unit is not None and unit.stage2 is not None:  # few_shot_target: source stage (once), then the target's
            if self.stage1 is None:
                first = self._stage(ctx, shots, force, targets, "source stage", "stage1")
                self.stage1 = (ctx.model.state_dict_trainable(), first)
            else:
                ctx.model.load_trainable(self.stage1[0])
            log(f"   {name}: {len(unit.stage2)} labelled {name} shots after the source stage")
            second = self._stage(ctx, unit.stage2, force, targets, f"{name} stage", name)
            extra = {"train": second.extra["train"], "source_stage": self.stage1[1].extra["train"],
                     "objective": second.extra["objective"]}
            return Fit(manifest, second.train, extra, second.truncated)
        fit = self._stage(ctx, shots, force, targets, name, "" if name == "all" else name)
        fit.manifest = manifest
        return fit

    def dev_sets(self, ctx: RunContext, shots: list, targets: list[str]) -> list:
        """(examples, encoded) per language that selects the model, by train.dev.policy: the source languages' dev
        split (source) or the targets' (target_oracle: an oracle, labelled so), without the training shots -- and,
        on a parallel split, without their translations (XNLI has no train split: shots come from dev, which must
        not also select the model); none for last / checkpoint_average / run_average."""
        cfg, prep = ctx.cfg, ctx.prep
        policy = cfg.train.dev.policy
        if policy == "source":
            dev = prep.dev
        elif policy == "target_oracle":
            dev = {lang: prep.load_split(cfg.train.dev.split, lang) for lang in targets}
        else:
            return []
        ids = {e.id for e in shots}
        same = cfg.train.dev.split == cfg.train.split and cfg.train.split in prep.spec.parallel_splits
        indices = {e.index for e in shots} if same else set()
        out = []
        for lang, exs in dev.items():
            exs = [e for e in exs if e.id not in ids and e.index not in indices]
            if cfg.train.dev.max_examples:
                exs = exs[: cfg.train.dev.max_examples]
            if exs:
                out.append((exs, ctx.encode_train(exs)))
        return out

    def _stage(self, ctx: RunContext, shots: list, force: bool, targets: list[str], what: str, key: str) -> Fit:
        from ..objectives.base import prepare_objectives
        from ..train import train

        cfg, spec, log = ctx.cfg, ctx.spec, ctx.log
        dev_sets = self.dev_sets(ctx, shots, targets)
        dev_score = None
        if dev_sets:
            def dev_score() -> float:
                vals = [score(spec, exs, ctx.predict(enc), "dev", "dev", cfg.eval.ner_mode).headline
                        for exs, enc in dev_sets]
                return float(np.mean(vals))
        elif cfg.train.dev.policy in ("source", "target_oracle"):
            log("   no dev examples left for model selection (all dev examples are training shots): using the last "
                "epoch")

        objectives = prepare_objectives(ctx, shots)
        plan = objectives.plan
        if not plan.examples:
            raise XLTuneError("nothing to train on: no shots (train.shots) and no objective brings examples")
        train_enc = ctx.encode_train(plan.examples)
        if any(owner is not None for owner in plan.owners):  # examples objectives brought carry no gold label
            train_enc.features = [f if plan.owners[f.example] is None else
                                  dataclasses.replace(f, label=[IGNORE] * len(f.input_ids) if ctx.token_task
                                                      else IGNORE) for f in train_enc.features]
        for o in objectives.objectives:
            if hasattr(o, "on_encoded"):
                o.on_encoded(train_enc)
        if train_enc.truncated:
            log(f"   note: {train_enc.truncated} training example(s) truncated to {cfg.model.max_length} tokens")
        resume = Path(cfg.output_dir) / ctx.run_id / (f"resume-{key}.pt" if key else "resume.pt")
        if force:
            resume.unlink(missing_ok=True)  # --force redoes the run from scratch
        average = cfg.train.dev.average_last if cfg.train.dev.policy == "checkpoint_average" else 0
        tres = train(ctx.model, train_enc, cfg.train, seed=ctx.seed, token_task=ctx.token_task, pad_id=ctx.pad_id,
                     padding_side=ctx.padding_side, accelerator=ctx.acc, dev_score=dev_score, loss=objectives,
                     resume_path=resume, log=log, average_last=average, track=ctx.track if ctx.tracking else None)
        selected = (f"; best dev {100 * tres.best_score:.2f}% at step {tres.best_step}" if tres.best_score is not None
                    else f"; weights averaged over the last {tres.averaged} epochs" if tres.averaged else "")
        log(f"   trained{'' if what == 'all' else ' ' + what} {tres.steps} steps in {tres.seconds:.1f} s{selected}")
        extra = {"train": {"steps": tres.steps, "epochs": tres.epochs, "best_dev": tres.best_score,
                           "best_step": tres.best_step, "stopped_early": tres.stopped_early, "history": tres.history,
                           "averaged": tres.averaged},
                 "objective": objectives.info()}
        return Fit({}, tres, extra, train_enc.truncated)


class InContextRunner(Runner):
    name = "in_context"
    verbalizer = True

    def check(self, prep: Prepared) -> None:
        if prep.spec.kind != "sequence":
            raise XLTuneError(f"method in_context is for sentence tasks; task {prep.spec.name} is a "
                              f"{prep.spec.kind} task")
        if prep.cfg.train.setting != "zero_shot":
            raise XLTuneError(f"method in_context trains nothing: train.setting {prep.cfg.train.setting} does not "
                              f"apply (translated demonstrations: method.demonstrations: translated)")

    def title(self, prep: Prepared, seed: int, run_id: str) -> str:
        cfg = prep.cfg
        return (f"== seed {seed}  run {run_id}  in_context K={cfg.train.shots} on {prep.spec.name} "
                f"({','.join(prep.sources)} demonstrations, {cfg.method.demonstrations}; "
                f"{len(prep.targets)} languages)")

    def draw(self, prep: Prepared, seed: int) -> tuple[list, dict]:
        demos, manifest = draw_shots(prep, seed)
        manifest["demonstrations"] = prep.cfg.method.demonstrations
        return demos, manifest

    def fit(self, ctx: RunContext, shots: list, manifest: dict, force: bool, unit=None) -> Fit:
        demos = self.demos = shots
        limit = ctx.backbone.max_positions or ctx.cfg.model.max_length
        self.limit = limit
        # the model's position table bounds demonstrations + input (model.max_length only where it declares none)
        self.what = (f"the limit is max_position_embeddings = {limit} in the config of {ctx.backbone.name}, which "
                     f"model.max_length does not raise" if ctx.backbone.max_positions else
                     f"the limit is model.max_length = {limit}")
        self.fix = "lower train.shots" if ctx.backbone.max_positions else "raise model.max_length or lower train.shots"
        extra = {"head": "verbalizer", "scoring": ctx.templates.scoring, "templates": ctx.templates.source,
                 "demonstrations": ctx.cfg.method.demonstrations, "n_demonstrations": len(demos)}
        return Fit(manifest, None, extra)

    def encode_eval(self, ctx: RunContext, lang: str, examples: list) -> Encoded:
        from ..models.verbalizer import encode_verbalized

        demos = translated_demonstrations(ctx.prep, self.demos, lang) \
            if ctx.cfg.method.demonstrations == "translated" else self.demos
        text = demonstration_prefix(demos, ctx.templates)
        return encode_verbalized(examples, ctx.tokenizer, ctx.templates, self.limit,
                                 prefix=lambda e: text,
                                 what=f"{lang}: K={ctx.cfg.train.shots} demonstrations per class + input; "
                                      f"{self.what}", fix=f"{self.fix} (K demonstrations per class) or use "
                                                          f"shorter ones")


def demonstration_prefix(demos: list, templates) -> str:
    """The demonstrations as text, each with its gold label word, each followed by the separator."""
    sep = templates.demo_separator
    return "".join(templates.demonstration(d) + sep for d in demos)


def translated_demonstrations(prep: Prepared, demos: list, lang: str) -> list:
    """The examples at the demonstrations' indices in ``lang``'s file of ``train.split`` (same labels)."""
    cfg = prep.cfg
    if not demos or all(d.lang == lang for d in demos):
        return demos
    rows = {e.index: e for e in prep.load_split(cfg.train.split, lang)}
    out = []
    for d in demos:
        t = rows.get(d.index)
        if t is None:
            raise XLTuneError(f"translated demonstrations: {lang} {cfg.train.split} has no line {d.index} "
                              f"(needed for {d.id}); the files must be line-aligned")
        if t.label != d.label:
            raise XLTuneError(f"translated demonstrations: {t.id} has label {prep.spec.labels[t.label]!r} but "
                              f"{d.id} has {prep.spec.labels[d.label]!r}; the files are not line-aligned")
        out.append(t)
    return out


RUNNERS.add("train", TrainRunner)
RUNNERS.add("in_context", InContextRunner)
