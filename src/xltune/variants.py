"""Variants: what makes two runs the same experiment (and so seeds of one another), and what tells them apart.

A *variant* is one configuration: the resolved config minus what does not change results (seeds, store and output
paths, evaluation batch size, checkpoint saving, trackers, the display name), canonicalised by dropping every value equal to
its default, plus the config schema version. Dropping defaults makes identity stable across upgrades: adding a
field with a default never changes a variant, so it never re-keys a stored run. A run is (variant, seed):
``run_key = hash(variant, seed)``.

Statistics never pool two variants: tables, CSV, bootstrap and claims group runs by variant. Each variant has a
label: the config's ``name:``, else a short description of what differs from the defaults (``deep_prompt lr=0.03
epochs=3``); :func:`distinguishing_labels` shortens labels to what differs among the variants shown together.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

SCHEMA_VERSION = 2  # 1: xltune 0.1 (a flat method section, one objective section); 2: method specs, objectives list
# not part of a variant: they do not change what a run computes
EXCLUDED = ("seeds", "store", "output_dir", "save_checkpoint", "name")
# shot_seed: like seeds, in the run key; trackers only watch a run
EXCLUDED_NESTED = (("eval", "batch_size"), ("train", "shot_seed"), ("train", "report_to"), ("train", "logging_dir"))
# shown in their own table columns (task, model, shots), so left out of labels
SETTING_KEYS = {("model", "name_or_path"), ("train", "shots"), ("train", "languages"), ("train", "split"),
                ("eval", "split"), ("eval", "languages")}


def field_defaults(cls: type) -> dict:
    """The defaults of a settings dataclass as a plain dict, without running its checks (an objective may
    require fields that have empty defaults)."""
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            value = f.default
        elif f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
        else:
            continue
        if dataclasses.is_dataclass(value):
            value = dataclasses.asdict(value)
        elif isinstance(value, list) and value and dataclasses.is_dataclass(value[0]):
            value = [dataclasses.asdict(v) for v in value]
        out[f.name] = value
    return out


def _prune(value: Any, default: Any) -> Any:
    """``value`` without the entries equal to ``default`` (recursively for mappings)."""
    if isinstance(value, dict) and isinstance(default, dict):
        out = {}
        for k, v in value.items():
            if k in default and _same(v, default[k]):
                continue
            pv = _prune(v, default.get(k))
            if isinstance(pv, dict) and not pv and isinstance(default.get(k), dict):
                continue
            out[k] = pv
        return out
    return value


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def canonical(cfg) -> dict:
    """The variant of ``cfg`` (an :class:`~xltune.config.ExperimentConfig`) as a canonical mapping."""
    from .methods.base import method_spec
    from .objectives.base import OBJECTIVES, default_objectives

    experiment = type(cfg)  # ExperimentConfig (not imported: config imports this module)
    d = cfg.to_dict()
    for k in EXCLUDED:
        d.pop(k, None)
    for sec, k in EXCLUDED_NESTED:
        d.get(sec, {}).pop(k, None)
    if not _token_task(cfg):  # where sub-word labels sit is meaningless for sentence tasks
        d["task"].pop("label_alignment", None)
    defaults = {k: v for k, v in field_defaults(experiment).items() if k not in ("method", "objectives")}
    out = _prune({k: v for k, v in d.items() if k not in ("method", "objectives")}, defaults)
    method = _prune(d["method"], field_defaults(method_spec(cfg.method.name).settings))
    if cfg.method.name != field_defaults(experiment)["method"]["name"]:
        method["name"] = cfg.method.name
    if method:
        out["method"] = method
    if not _same(d["objectives"], [dataclasses.asdict(o) for o in default_objectives()]):
        out["objectives"] = [{"name": o["name"], **_prune(o, field_defaults(OBJECTIVES.get(o["name"]).settings))}
                             for o in d["objectives"]]
    return {"schema": SCHEMA_VERSION, **out}


def _token_task(cfg) -> bool:
    from .data.tasks import resolve_task
    from .errors import XLTuneError, quiet_notes

    try:
        with quiet_notes():
            return resolve_task(cfg.task).kind == "token"
    except XLTuneError:
        return True  # a task that does not resolve keeps every field


def _hash(obj: Any, n: int) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:n]


def variant_id(cfg) -> str:
    return _hash(canonical(cfg), 12)


def run_key(cfg, seed: int) -> str:
    """The id of one run: hash of (variant, seed), and of the shot seed when it is not the run's seed."""
    key = {"variant": canonical(cfg), "seed": int(seed)}
    shot_seed = cfg.train.shot_seed
    if shot_seed is not None and int(shot_seed) != int(seed):
        key["shot_seed"] = int(shot_seed)
    return _hash(key, 16)


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list):
        return ",".join(_fmt(x) for x in v) or "[]"
    if isinstance(v, dict):
        return ",".join(f"{k}:{_fmt(x)}" for k, x in v.items())
    s = str(v)
    return s if len(s) <= 24 else "…" + s[-23:]


def label_parts(cfg) -> list[str]:
    """[method(+objective tags), key=value ...] for what ``cfg`` sets away from the defaults (setting columns --
    task, model, shots, languages, splits -- excluded)."""
    from .objectives.base import OBJECTIVES

    canon = canonical(cfg)
    head = cfg.method.name + ("" if cfg.objective_tag == "none" else f"+{cfg.objective_tag}")
    parts = [head]
    for sec in ("method", "train", "model", "eval"):
        for path, v in _leaves(canon.get(sec, {}), (sec,)):
            if path[:2] in SETTING_KEYS or path == ("method", "name") or path[0] == "task":
                continue
            parts.append(f"{path[-1] if len(path) == 2 else '.'.join(path[1:])}={_fmt(v)}")
    for o in canon.get("objectives", []):
        tag = OBJECTIVES.get(o["name"]).tag
        for k, v in o.items():
            if k != "name":
                parts.append(f"{tag}.{k}={_fmt(v)}")
    return [_mark_oracle(p, cfg) for p in parts]


def oracle_of(cfg) -> str:
    """What of ``cfg`` uses information a zero-shot user does not have: '' or e.g. 'target dev, translation'."""
    out = []
    if cfg.train.dev.policy == "target_oracle":
        out.append("target dev")
    if cfg.train.setting in ("translate_train", "translate_train_all", "translate_test") and \
            cfg.train.translate.by == "oracle":
        out.append("translation")
    return ", ".join(out)


def _mark_oracle(part: str, cfg) -> str:
    if part == "dev.policy=target_oracle":
        return "dev=target[ORACLE]"
    if part.startswith("setting=translate") and cfg.train.translate.by == "oracle":
        return f"{part}[ORACLE-translation]"
    return part


def _leaves(d: dict, prefix: tuple) -> list[tuple[tuple, Any]]:
    out = []
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.extend(_leaves(v, prefix + (k,)))
        else:
            out.append((prefix + (k,), v))
    return out


def label(cfg) -> str:
    """The variant's label: ``cfg.name``, else the method and what differs from the defaults; an oracle is named
    either way."""
    if cfg.name:
        o = oracle_of(cfg)
        return cfg.name + (f" [ORACLE: {o}]" if o else "")
    return " ".join(label_parts(cfg))


def distinguishing_labels(labels: dict[str, str]) -> dict[str, str]:
    """variant id -> label, shortened to what tells the variants apart: parts every label shares are dropped (the
    method stays); labels that are still equal get the variant id."""
    split = {v: lab.split(" ") for v, lab in labels.items()}
    if len(split) > 1:  # only derived key=value parts are dropped (a config's own name is kept whole)
        common = set.intersection(*({x for x in p[1:] if "=" in x} for p in split.values()))
        split = {v: [p[0]] + [x for x in p[1:] if x not in common] for v, p in split.items()}
    out = {v: " ".join(p) for v, p in split.items()}
    seen: dict[str, int] = {}
    for lab in out.values():
        seen[lab] = seen.get(lab, 0) + 1
    return {v: (lab if seen[lab] == 1 else f"{lab} #{v[:6]}") for v, lab in out.items()}


def ensemble_variant(cfg, seeds: list[int]) -> dict:
    """The variant of the average of ``cfg``'s seeds (train.dev.policy run_average): its own configuration."""
    canon = {"ensemble_of": sorted(int(s) for s in seeds), **canonical(cfg)}
    return {"variant": _hash(canon, 12), "variant_label": f"{label(cfg)} [average of seeds "
            f"{','.join(map(str, sorted(seeds)))}]", "config_schema": SCHEMA_VERSION, "oracle": oracle_of(cfg)}


def ensemble_key(cfg, seeds: list[int]) -> str:
    return _hash({"ensemble_of": sorted(int(s) for s in seeds), "variant": canonical(cfg)}, 16)


def describe_variant(cfg) -> dict:
    """What the store keeps per run: variant id, label and schema. An oracle (target-language dev selection, human
    translations) is named in the label, so every table that shows the variant shows it."""
    return {"variant": variant_id(cfg), "variant_label": label(cfg), "config_schema": SCHEMA_VERSION,
            "oracle": oracle_of(cfg)}
