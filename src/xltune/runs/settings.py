"""Transfer settings (``train.setting``): what each model trains on and which target languages it answers for.

A seed's run is one or more *units*, each a model trained on its examples and evaluated on its target languages:

* ``zero_shot`` -- one model on the source shots, every target (the default);
* ``few_shot_target`` -- the source model, then for each target its own copy trained further on K labelled shots of
  that target (Lauscher et al. 2020, "From Zero to Hero"); the source languages keep the source model;
* ``translate_train`` -- for each target a model trained on the source shots translated into it (XTREME's
  translate-train); the source languages keep the source model;
* ``translate_train_all`` -- one model on the source shots and all their translations (XTREME's translate-train-all);
* ``translate_test`` -- the source model scores each target's test set translated into the source language.

Translations (``train.translate``) come from the other language's file, same lines, where the task declares the
split parallel (human translations: an *oracle*, said so in labels and tables) or from a seq2seq model (``mt``),
cached on disk by (model, languages, text) so reruns and other seeds translate nothing twice.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..data.fewshot import sample_shots
from ..data.parallel import aligned_translations
from ..data.records import Example, SentenceExample
from ..errors import XLTuneError
from .prepare import Prepared


@dataclass
class Unit:
    name: str  # "all", "source", or the target language it is for
    targets: list[str]  # languages this unit's model is evaluated on
    shots: list[Example]  # what it trains on (first stage)
    stage2: list[Example] | None = None  # few_shot_target: the target's own shots, after the first stage
    test: dict[str, list[Example]] = field(default_factory=dict)  # translate_test: evaluation examples replacing
    facts: dict = field(default_factory=dict)


def plan_units(prep: Prepared, shots: list[Example], seed: int, log) -> list[Unit]:
    cfg, setting = prep.cfg, prep.cfg.train.setting
    targets, sources = list(prep.targets), list(prep.sources)
    others = [t for t in targets if t not in sources]
    if setting == "zero_shot":
        return [Unit("all", targets, shots)]
    check_setting(prep)
    source_langs = [t for t in targets if t in sources]
    if setting == "translate_test":
        src = sources[0]
        test = {t: translate_examples(prep, prep.test[t], t, src, cfg.eval.split) for t in others}
        return [Unit("all", targets, shots, test=test, facts={"translated_test": {t: len(v) for t, v in test.items()}})]
    if setting == "translate_train_all":
        more = [tr for t in others for tr in translate_shots(prep, shots, t)]
        log(f"   translate-train-all: {len(shots)} shots + {len(more)} translations into {len(others)} language(s)")
        return [Unit("all", targets, shots + more, facts={"train_examples": len(shots) + len(more)})]
    units = [Unit("source", source_langs, shots)] if source_langs else []
    if setting == "translate_train":
        for t in others:
            units.append(Unit(t, [t], translate_shots(prep, shots, t), facts={"trained_on": f"shots translated into {t}"}))
        return units
    if setting == "few_shot_target":
        k = cfg.train.target_shots if cfg.train.target_shots is not None else cfg.train.shots
        for t in others:
            pool = prep.load_split(cfg.train.split, t)
            own, man = sample_shots(pool, prep.spec, k, seed)
            units.append(Unit(t, [t], shots, stage2=own,
                              facts={"target_shots": k, "target_sample": man["ids"]}))
        return units
    raise XLTuneError(f"unknown train.setting {setting!r}")


def check_setting(prep: Prepared) -> None:
    """Refuse a setting the task cannot have, before any shot is drawn or model built."""
    setting = prep.cfg.train.setting
    if prep.spec.kind != "sequence" and setting.startswith("translate"):
        raise XLTuneError(f"train.setting {setting} translates sentence tasks; task {prep.spec.name} is a tagging task "
                          f"(for tagging, translate-train is the projected_cross_entropy objective with "
                          f"train.translations)")
    if setting == "translate_test" and len(prep.sources) != 1:
        raise XLTuneError("train.setting translate_test needs one source language (train.languages)")


# -- translations -------------------------------------------------------------------------------------------------
def translate_shots(prep: Prepared, shots: list[Example], tgt: str) -> list[Example]:
    """The shots in language ``tgt``, labels kept (grouped by their source language)."""
    out: list[Example] = []
    by_lang: dict[str, list[Example]] = {}
    for e in shots:
        by_lang.setdefault(e.lang, []).append(e)
    for src, group in by_lang.items():
        out.extend(translate_examples(prep, group, src, tgt, prep.cfg.train.split))
    return out


def translate_examples(prep: Prepared, examples: list[Example], src: str, tgt: str, split: str) -> list[Example]:
    """``examples`` of language ``src`` (from ``split``) rendered in ``tgt``, with the examples' own labels and ids
    (so predictions stay keyed by the original items)."""
    cfg, spec = prep.cfg, prep.spec
    if not examples:
        return []
    if cfg.train.translate.by == "oracle":
        if split not in spec.parallel_splits:
            raise XLTuneError(f"train.translate.by oracle reads the same lines of {tgt}'s {split!r} file, but task "
                              f"{spec.name} declares {', '.join(spec.parallel_splits) or 'no split'} parallel; use "
                              f"train.translate.by: mt (a translation model) or set task.parallel_splits")
        loaded = prep.load_split(split, tgt)
        found = aligned_translations(examples, lambda: loaded, source_size=len(prep.load_split(split, src)),
                                     context=f"{spec.name} {split} {src} -> {tgt}")
        return [dataclasses.replace(t, id=e.id, lang=tgt, index=e.index, label=e.label)
                for e, t in zip(examples, found)]
    texts = [seg for e in examples for seg in e.texts]
    done = machine_translate(texts, cfg.train.translate, src, tgt)
    out, k = [], 0
    for e in examples:
        n = len(e.texts)
        out.append(SentenceExample(e.id, tgt, e.index, tuple(done[k:k + n]), e.label))
        k += n
    return out


def machine_translate(texts: list[str], tcfg, src: str, tgt: str) -> list[str]:
    """``texts`` translated by ``tcfg.model``, from the disk cache where an earlier run translated them."""
    from ..data.parallel import translate

    codes = tcfg.codes or {}
    s, t = codes.get(src, src), codes.get(tgt, tgt)
    path = _cache_path(tcfg.model, s, t)
    cache = _read_cache(path)
    todo = sorted({x for x in texts if x not in cache})
    if todo:
        new = translate(todo, tcfg.model, s, t, batch_size=tcfg.batch_size, max_new_tokens=tcfg.max_new_tokens)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            for x, y in zip(todo, new):
                y = " ".join(y.split())
                cache[x] = y
                f.write(json.dumps({"text": x, "translation": y}, ensure_ascii=False) + "\n")
    return [cache[x] for x in texts]


def _cache_path(model: str, src: str, tgt: str) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "xltune" / "translations"
    key = hashlib.sha256(str(Path(model).resolve() if Path(model).exists() else model).encode()).hexdigest()[:12]
    return base / key / f"{src}__{tgt}.jsonl"


def _read_cache(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
                out[row["text"]] = row["translation"]
            except (ValueError, KeyError):
                continue  # a line cut by a killed run: translated again
    return out
