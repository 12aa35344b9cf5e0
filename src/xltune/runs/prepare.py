"""What an experiment loads once and shares across its seeds: the task spec, source pools, dev and test sets."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..data.encode import Encoded
from ..data.readers import load_examples
from ..data.tasks import TaskSpec, available_languages, resolve_task
from ..errors import XLTuneError, unknown_name


@dataclass
class Prepared:
    """What one experiment loads once and shares across its seeds."""

    cfg: object  # ExperimentConfig
    spec: TaskSpec
    sources: list[str]
    targets: list[str]
    pool: dict[str, list]  # source lang -> train-split examples
    dev: dict[str, list]  # source lang -> dev examples (model selection)
    test: dict[str, list]  # target lang -> evaluation examples
    encoded: dict[str, Encoded] = field(default_factory=dict)  # target lang -> encoded test set (same for all seeds)

    def load_split(self, split: str, lang: str, **kw) -> list:
        return load_examples(self.spec, self.cfg.task.data_dir, split, lang, **kw)


def prepare(cfg) -> Prepared:
    from ..methods.base import method_spec

    method_spec(cfg.method.name)  # an unknown method fails before any data is read
    spec = resolve_task(cfg.task)
    data_dir = cfg.task.data_dir
    if data_dir and not Path(data_dir).is_dir():
        raise XLTuneError(f"task.data_dir {data_dir} is not a folder (set it to the folder with the task's files, "
                          f"or null to load from the hub)")
    for lang in cfg.train.languages:
        if lang not in spec.languages:
            raise unknown_name("source language", lang, spec.languages, f"task {spec.name}")
    targets = target_languages(cfg, spec)
    pool = {lang: load_examples(spec, data_dir, cfg.train.split, lang) for lang in cfg.train.languages}
    dev: dict[str, list] = {}
    if cfg.train.dev.policy == "source":
        for lang in cfg.train.languages:
            if data_dir and lang not in available_languages(spec, data_dir, cfg.train.dev.split):
                print(f"note: no {cfg.train.dev.split!r} split for {lang}; model selection falls back to the last epoch",
                      file=sys.stderr)
                continue
            dev[lang] = load_examples(spec, data_dir, cfg.train.dev.split, lang)
    return Prepared(cfg, spec, list(cfg.train.languages), targets, pool, dev, test_sets(cfg, spec, targets))


def target_languages(cfg, spec: TaskSpec) -> list[str]:
    """eval.languages, checked; ``all``: every declared language with a file of eval.split (all declared ones for
    hub data)."""
    data_dir = cfg.task.data_dir
    if cfg.eval.languages == "all":
        targets = available_languages(spec, data_dir, cfg.eval.split) if data_dir else list(spec.languages)
        if not targets:
            raise XLTuneError(f"no {cfg.eval.split!r} files for task {spec.name} in {data_dir}")
        return targets
    targets = list(cfg.eval.languages)
    for lang in targets:
        if lang not in spec.languages:
            raise unknown_name("target language", lang, spec.languages, f"task {spec.name}")
    return targets


def test_sets(cfg, spec: TaskSpec, targets: list[str]) -> dict[str, list]:
    """Each target language's evaluation examples (eval.split; the first eval.max_examples when capped)."""
    test = {}
    for lang in targets:
        exs = load_examples(spec, cfg.task.data_dir, cfg.eval.split, lang)
        test[lang] = exs[: cfg.eval.max_examples] if cfg.eval.max_examples else exs
    return test


def prepare_evaluation(cfg) -> Prepared:
    """What evaluating a trained model needs: the spec and the target languages' evaluation sets (no pools, no
    dev sets: nothing trains)."""
    spec = resolve_task(cfg.task)
    data_dir = cfg.task.data_dir
    if data_dir and not Path(data_dir).is_dir():
        raise XLTuneError(f"task.data_dir {data_dir} is not a folder (set it to the folder with the task's files, "
                          f"or null to load from the hub)")
    targets = target_languages(cfg, spec)
    return Prepared(cfg, spec, list(cfg.train.languages), targets, {}, {}, test_sets(cfg, spec, targets))


def check_data(cfg) -> str:
    """Read what a run of ``cfg`` would read (its pools, dev and test files: labels, languages, K shots) without
    building a model; a one-line summary, or the same error the run would give. Hub data (no data_dir) is not
    fetched: said so."""
    from ..config import resolve_paths
    from ..data.fewshot import sample_shots

    import copy

    cfg = resolve_paths(copy.deepcopy(cfg))
    if not cfg.task.data_dir:
        return f"{cfg.task.name}: data from the hub (not checked offline)"
    prep = prepare(cfg)
    if cfg.train.shots != 0:
        for lang in prep.sources:  # too few examples for K shots fails here, not after a model is loaded
            sample_shots(prep.pool[lang], prep.spec, cfg.train.shots, cfg.seeds[0])
    sizes = [len(v) for v in prep.test.values()]
    pools = ", ".join(f"{lang} {len(v)}" for lang, v in prep.pool.items())
    dev = ", ".join(f"{lang} {len(v)}" for lang, v in prep.dev.items()) or "none"
    return (f"{prep.spec.name}: {cfg.train.split} pool {pools}; dev {dev}; {cfg.eval.split} {len(prep.targets)} "
            f"languages ({min(sizes)}-{max(sizes)} examples)")
