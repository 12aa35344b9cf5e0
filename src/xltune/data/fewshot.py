"""Seeded few-shot sampling with a manifest of what was drawn.

The sample depends only on (seed, pool, K): the pool is first put in a canonical order (by language and index), so
the order a caller passes does not matter. Sentence tasks: K examples per class (stratified). Tagging tasks: a
greedy pass over a seeded shuffle that keeps sentences adding an under-filled entity type (NER: K mentions per type,
a mention = a B- span) or tag (POS: K sentences containing each tag), the usual few-shot NER sampling (Yang & Katiyar
2020, greedy variant); hand-written because no field library provides it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from ..errors import XLTuneError
from .records import Example, SentenceExample, TokenExample
from .tags import entity_types
from .tasks import TaskSpec

Shots = int | str


def sample_shots(examples: Sequence[Example], spec: TaskSpec, shots: Shots, seed: int) -> tuple[list[Example], dict]:
    """Draw the few-shot training set. Returns (examples in a seeded order, manifest).

    The manifest is ``{"seed", "shots", "ids", "per_class"}``; ``per_class`` counts examples per class (sentence
    tasks), mentions per entity type (NER) or sentences per tag (POS) in the sample.
    """
    if shots != "all" and (isinstance(shots, bool) or not isinstance(shots, int) or shots <= 0):
        raise XLTuneError(f"shots must be a positive integer or 'all', got {shots!r}")
    pool = sorted((e for e in examples if _labelled(e)), key=lambda e: (e.lang, e.index, e.id))
    if not pool:
        raise XLTuneError(f"no labelled examples in the few-shot pool {_pool_name(examples)}")
    rng = np.random.default_rng(seed)
    if shots == "all":
        chosen = pool
    elif spec.is_token:
        chosen = _greedy_tokens(pool, spec, shots, rng)
    else:
        chosen = _stratified(pool, spec, shots, rng)
    order = rng.permutation(len(chosen))
    chosen = [chosen[i] for i in order]
    manifest = {"seed": seed, "shots": shots, "ids": [e.id for e in chosen], "per_class": per_class(chosen, spec)}
    return chosen, manifest


def per_class(examples: Sequence[Example], spec: TaskSpec) -> dict[str, int]:
    """Examples per class / mentions per entity type / sentences per tag (every declared one, zeros included)."""
    if not spec.is_token:
        counts = Counter(spec.labels[e.label] for e in examples if e.label is not None)
        return {name: counts.get(name, 0) for name in spec.labels}
    units = _units(spec)
    total: Counter[str] = Counter()
    for e in examples:
        total.update(_sentence_units(e, spec))
    return {u: total.get(u, 0) for u in units}


def _labelled(e: Example) -> bool:
    return (e.label if isinstance(e, SentenceExample) else e.tags) is not None


def _pool_name(examples: Sequence[Example]) -> str:
    parts = sorted({e.id.rsplit("/", 1)[0] for e in examples})
    return ", ".join(parts) if parts else "(empty)"


def _stratified(pool: list[SentenceExample], spec: TaskSpec, k: int, rng: np.random.Generator) -> list[Example]:
    by_class: dict[int, list[SentenceExample]] = {i: [] for i in range(len(spec.labels))}
    for e in pool:
        by_class[e.label].append(e)
    chosen: list[Example] = []
    for i, name in enumerate(spec.labels):
        members = by_class[i]
        if not members:
            raise _absent([name], spec, pool, "examples of class")
        if len(members) < k:
            raise XLTuneError(f"class {name!r} has {len(members)} examples in the pool {_pool_name(pool)}, "
                              f"fewer than shots={k}; lower train.shots or use a larger split")
        picks = rng.choice(len(members), size=k, replace=False)
        chosen.extend(members[j] for j in sorted(picks))
    return chosen


def _absent(names: list[str], spec: TaskSpec, pool: Sequence[Example], what: str) -> XLTuneError:
    """A declared label the files never use (CoNLL-2003 files without MISC): fewer shots would not help; the label
    set should say what the files hold."""
    if spec.is_token and spec.uses_prefixes:
        kept = [t for t in spec.labels if t == "O" or t[2:] not in names]
    else:
        kept = [t for t in spec.labels if t not in names]
    listed = ", ".join(repr(n) for n in names)
    return XLTuneError(f"the pool {_pool_name(pool)} has no {what} {listed} (declared by task {spec.name}); if the "
                       f"files do not use {'it' if len(names) == 1 else 'them'}, set task.labels to the labels they "
                       f"use: task.labels=[{', '.join(kept)}]")


def _units(spec: TaskSpec) -> list[str]:
    """What K counts: entity types (span tag sets) or tags (plain tag sets such as UPOS)."""
    return entity_types(spec.labels) if spec.uses_prefixes else list(spec.labels)


def _sentence_units(e: TokenExample, spec: TaskSpec) -> Counter[str]:
    """NER: mentions (B- tags) per type in the sentence; POS: 1 per distinct tag present."""
    names = [spec.labels[t] for t in e.tags]
    if spec.uses_prefixes:
        return Counter(n[2:] for n in names if n.startswith("B-"))
    return Counter(set(names))


def _greedy_tokens(pool: list[TokenExample], spec: TaskSpec, k: int, rng: np.random.Generator) -> list[Example]:
    units = _units(spec)
    counts = [_sentence_units(e, spec) for e in pool]
    available: Counter[str] = Counter()
    for c in counts:
        available.update(c)
    what = "mentions" if spec.uses_prefixes else "sentences containing it"
    absent = [u for u in units if not available.get(u, 0)]
    if absent:
        raise _absent(absent, spec, pool, "mentions of" if spec.uses_prefixes else "tokens tagged")
    short = [u for u in units if available.get(u, 0) < k]
    if short:
        detail = ", ".join(f"{u!r} ({available.get(u, 0)} {what})" for u in short)
        raise XLTuneError(f"the pool {_pool_name(pool)} cannot give shots={k} for {detail}; "
                          f"lower train.shots or use a larger split")
    filled: Counter[str] = Counter()
    chosen: list[Example] = []
    for i in rng.permutation(len(pool)):
        if any(filled[u] < k for u in counts[i]):
            chosen.append(pool[i])
            filled.update(counts[i])
            if all(filled[u] >= k for u in units):
                break
    return chosen
