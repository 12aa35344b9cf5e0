"""Choosing what to compare: ``--where key=value`` and ``--variant LABEL`` over the runs of a store.

``key`` is a run column (task, model, shots, method, objective, seed, variant) or a config key (``train.lr``,
``method.r``, ``train.translations.languages``, ...), read from each run's stored config as today's config loader
reads it (so runs stored by older versions answer in today's keys). ``value`` is parsed as YAML (``0.03``,
``[de, sw]``, ``true``), numbers compared as numbers. ``--variant`` matches a variant's label, its id (or a prefix of
it), or its config ``name``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

import yaml

from ..errors import XLTuneError, closest_first

RUN_COLUMNS = ("task", "model", "shots", "method", "objective", "seed", "variant", "variant_label", "run_id")


def parse_where(items: Sequence[str]) -> list[tuple[str, Any]]:
    out = []
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise XLTuneError(f"--where expects key=value (e.g. train.lr=0.03 or method.name=lora), got {item!r}")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        out.append((key.strip(), value))
    return out


def config_of(run: dict) -> dict:
    """The run's config in today's shape (older stored configs are read through the config loader)."""
    return _today(_freeze(run["config"]))


@lru_cache(maxsize=4096)
def _today(frozen: str) -> dict:
    import json

    from ..config import ExperimentConfig
    from ..errors import quiet_notes

    data = json.loads(frozen)
    try:
        with quiet_notes():
            return ExperimentConfig.from_dict(data, "stored run").to_dict()
    except XLTuneError:
        return data


def _freeze(config: dict) -> str:
    import json

    return json.dumps(config, sort_keys=True, default=str)


def lookup(run: dict, key: str) -> tuple[bool, Any]:
    """(found, value) of ``key`` for ``run``."""
    if key in RUN_COLUMNS:
        return True, run.get(key)
    node: Any = config_of(run)
    for part in key.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return False, None
    return True, node


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or str(a).lower() == str(b).lower()
    try:
        fa, fb = float(a), float(b)
        return math.isclose(fa, fb, rel_tol=1e-9, abs_tol=0.0)
    except (TypeError, ValueError):
        pass
    if isinstance(a, list) or isinstance(b, list):
        return isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and all(map(_equal, a, b))
    return str(a) == str(b)


def select_runs(runs: Iterable[dict], where: Sequence[str] = (), variants: Sequence[str] = ()) -> list[dict]:
    """The runs that match every ``where`` item and (when given) one of ``variants``. A key no run has, or a
    variant no run matches, is an error naming what the store holds (an empty table would be silently wrong)."""
    runs = list(runs)
    out = runs
    for key, value in parse_where(where):
        found = [(r, v) for r in out for ok, v in [lookup(r, key)] if ok]
        if not found and out:
            known = sorted(set(RUN_COLUMNS) | _config_keys(out[0]))
            raise XLTuneError(f"--where {key}: no stored run has this key; close ones: "
                              f"{', '.join(closest_first(key, known)[:6])}")
        out = [r for r, v in found if _equal(v, value)]
    if variants:
        chosen = []
        for want in variants:
            hit = [r for r in out if want in (r.get("variant_label"), r.get("variant"), config_of(r).get("name"))
                   or (len(want) >= 4 and str(r.get("variant", "")).startswith(want))]
            if not hit:
                labels = sorted({r.get("variant_label") or "" for r in out})
                raise XLTuneError(f"--variant {want!r} matches no run; the store's variants: "
                                  f"{'; '.join(closest_first(want, labels)[:8])}")
            chosen.extend(r for r in hit if r not in chosen)
        out = chosen
    return out


def _config_keys(run: dict) -> set[str]:
    keys: set[str] = set()

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{prefix}{k}.")
        else:
            keys.add(prefix.rstrip("."))

    walk(config_of(run), "")
    return keys
