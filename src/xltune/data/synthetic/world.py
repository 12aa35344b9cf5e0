"""The synthetic multilingual world: configuration, languages (lexicon, order, morphology, script), entities,
meaning samplers and the pretraining corpus. :func:`build_world` writes the corpus and the task files.

Everything is drawn from ``random.Random`` instances seeded from the config, so the same config gives
byte-identical files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import XLTuneError, unknown_name
from .render import (ATTRIBUTES, CONCEPTS, DIM_VERBS, OBJECTS, RELATIONS, SHARED_PUNCT, VALUE_DIM, VERDICT_OF, Entity, Language, Meaning,
                     render, text)

# Letters of each script's Unicode block (lowercase, no combining marks), so languages share no characters;
# entity names are ASCII capitalised and digits are ASCII: the declared shared forms.
SCRIPTS: dict[str, str] = {
    "latin": "abcdefghijklmnopqrstuvwxyz",
    "cyrillic": "".join(chr(c) for c in range(0x0430, 0x0450)),
    "greek": "".join(chr(c) for c in range(0x03B1, 0x03CA) if c != 0x03C2),  # no final sigma
    "armenian": "".join(chr(c) for c in range(0x0561, 0x0587)),
    "georgian": "".join(chr(c) for c in range(0x10D0, 0x10F1)),
    "hebrew": "".join(chr(c) for c in range(0x05D0, 0x05EB)),
    "tifinagh": "".join(chr(c) for c in range(0x2D30, 0x2D66)),
    "cherokee": "".join(chr(c) for c in range(0x13A0, 0x13F5)),
}
ORDERS = ("SVO", "SOV", "VSO")
WORLD_VERSION = 5  # bump when generation changes, so cached worlds are rebuilt


@dataclass
class LanguageConfig:
    code: str
    script: str = "latin"
    order: str = "SVO"
    morphology: bool = False
    resource: float = 1.0  # relative share of the pretraining corpus (normalised over languages)

    def __post_init__(self) -> None:
        if self.script not in SCRIPTS:
            raise unknown_name("script", self.script, SCRIPTS, f"language {self.code}")
        if self.order not in ORDERS:
            raise unknown_name("word order", self.order, ORDERS, f"language {self.code}")
        if self.resource <= 0:
            raise XLTuneError(f"language {self.code}: resource must be > 0, got {self.resource}")


def default_languages() -> list[LanguageConfig]:
    """Seven languages: one high-resource source, resource levels falling, orders/scripts/morphology varied."""
    return [
        LanguageConfig("xlat", "latin", "SVO", False, 0.30),
        LanguageConfig("xcyr", "cyrillic", "SVO", True, 0.20),
        LanguageConfig("xgrk", "greek", "SOV", False, 0.15),
        LanguageConfig("xarm", "armenian", "VSO", True, 0.12),
        LanguageConfig("xgeo", "georgian", "SOV", True, 0.10),
        LanguageConfig("xheb", "hebrew", "VSO", False, 0.08),
        LanguageConfig("xtfn", "tifinagh", "SOV", True, 0.05),
    ]


@dataclass
class WorldConfig:
    """Everything that determines the world's files; its hash names the cache directory."""

    languages: list[LanguageConfig] = field(default_factory=default_languages)
    seed: int = 0
    n_persons: int = 40
    n_locations: int = 16
    n_organisations: int = 16
    corpus_docs: int = 12000  # pretraining documents over all languages
    # Documents per unit of resource level instead (language c gets round(docs_per_level * resource_c)): then
    # changing one language's level leaves every other language's documents as they are (the resource sweep).
    docs_per_level: float | None = None
    qa_share: float = 0.8  # documents that are premise + hypothesis + verdict word ("question answering" text)
    anchor_share: float = 0.1  # documents that are a sentence and its translation joined by '|'
    codeswitch_share: float = 0.15  # documents whose content words are swapped into other languages
    codeswitch_prob: float = 0.3  # per-word swap probability inside code-switched documents
    nli_distractor: float = 0.0  # NLI premises with a relation fact as distractor (breaks the fixed offset)
    nli_sizes: dict[str, int] = field(default_factory=lambda: {"train": 768, "dev": 300, "test": 600})
    ner_sizes: dict[str, int] = field(default_factory=lambda: {"train": 600, "dev": 200, "test": 300})

    def __post_init__(self) -> None:
        self.languages = [LanguageConfig(**l) if isinstance(l, dict) else l for l in self.languages]
        codes = [l.code for l in self.languages]
        if len(set(codes)) != len(codes) or len(codes) < 2:
            raise XLTuneError(f"WorldConfig.languages: need >= 2 distinct language codes, got {codes}")
        scripts = [l.script for l in self.languages]
        if len(set(scripts)) != len(scripts):
            raise XLTuneError(f"WorldConfig.languages: each language needs its own script, got {scripts}")
        for name in ("qa_share", "anchor_share", "codeswitch_share", "codeswitch_prob", "nli_distractor"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise XLTuneError(f"WorldConfig.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.qa_share + self.anchor_share > 1.0 or self.codeswitch_share > 1.0 - self.anchor_share:
            raise XLTuneError("WorldConfig: need qa_share + anchor_share <= 1 and codeswitch_share <= 1 - anchor_share")
        if self.docs_per_level is not None and not self.docs_per_level > 0:
            raise XLTuneError(f"WorldConfig.docs_per_level must be > 0 (or None), got {self.docs_per_level}")
        if self.n_persons < 4:
            raise XLTuneError(f"WorldConfig.n_persons must be >= 4, got {self.n_persons}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def key(self) -> str:
        """Hash of the config and generator version: the cache directory name."""
        blob = json.dumps({"v": WORLD_VERSION, "cfg": self.to_dict()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    @property
    def codes(self) -> list[str]:
        return [l.code for l in self.languages]

    def doc_counts(self) -> dict[str, int]:
        """Pretraining documents per language: ``corpus_docs`` split by resource share, or ``docs_per_level``
        times each level."""
        if self.docs_per_level is not None:
            return {l.code: round(self.docs_per_level * l.resource) for l in self.languages}
        return {c: round(self.corpus_docs * share) for c, share in self.shares().items()}

    def shares(self) -> dict[str, float]:
        total = sum(l.resource for l in self.languages)
        return {l.code: l.resource / total for l in self.languages}


@dataclass
class World:
    """A built world: where its files are and what each language is like."""

    config: WorldConfig
    root: Path
    corpus: dict[str, Path]  # lang -> corpus file (one document per line)
    tasks: dict[str, Path]  # task name (nli, ner) -> directory of {split}-{lang}.tsv files
    facts: dict[str, dict]  # lang -> script, order, morphology, resource share, corpus documents/words
    shared_words: list[str]  # declared shared word forms (entity names, digits, punctuation)
    timings: dict[str, float]

    @property
    def languages(self) -> list[str]:
        return self.config.codes


# -- generation of languages and entities ------------------------------------------------------------------------
_CONS, _VOWELS = 14, 6  # abstract alphabet: 14 consonants, 6 vowels, mapped into each script


def _forms(rng: random.Random, letters: str, n: int, min_syl: int, max_syl: int, banned: set[str]) -> list[str]:
    cons, vows = letters[:_CONS], letters[_CONS:_CONS + _VOWELS]
    out: list[str] = []
    while len(out) < n:
        syl = rng.randint(min_syl, max_syl)
        w = "".join(rng.choice(cons) + rng.choice(vows) + (rng.choice(cons) if rng.random() < 0.3 else "")
                    for _ in range(syl))
        if w not in banned:
            banned.add(w)
            out.append(w)
    return out


def make_language(lc: LanguageConfig, seed: int) -> Language:
    rng = random.Random(f"{seed}/lang/{lc.code}")
    letters = list(SCRIPTS[lc.script])
    rng.shuffle(letters)
    letters = "".join(letters[:_CONS + _VOWELS])
    used: set[str] = set()
    # Function words and verdicts are short (frequent words are short in real languages); content words longer.
    # Attribute values are short too: the NLI decision compares the premise's value with the hypothesis' one, which
    # a tiny model learns far faster when each value is one token in the well-resourced languages.
    short = ("has", "and", "yes", "no", "maybe", *DIM_VERBS.values(), *VALUE_DIM)
    forms = dict(zip(short, _forms(rng, letters, len(short), 1, 1, used)))
    rest = [c for c in CONCEPTS if c not in forms]
    forms.update(zip(rest, _forms(rng, letters, len(rest), 2, 3, used)))
    suffixes = _forms(rng, letters, 2, 1, 1, set(used)) if lc.morphology else ["", ""]
    return Language(lc.code, lc.script, lc.order, lc.morphology, lc.resource, forms, suffixes[0], suffixes[1])


def make_entities(cfg: WorldConfig) -> list[Entity]:
    """PER: first + last name; LOC: one word; ORG: name + ORG word. ASCII, capitalised, shared by all languages."""
    rng = random.Random(f"{cfg.seed}/entities")
    used: set[str] = set()
    letters = "bdfgklmnprstvz" + "aeiouy"

    def names(n: int) -> list[str]:
        return [w.capitalize() for w in _forms(rng, letters, n, 2, 3, used)]

    firsts, lasts = names(cfg.n_persons), names(cfg.n_persons)
    ents = [Entity((f, l), "PER") for f, l in zip(firsts, lasts)]
    ents += [Entity((n,), "LOC") for n in names(cfg.n_locations)]
    org_words = names(4)
    ents += [Entity((n, rng.choice(org_words)), "ORG") for n in names(cfg.n_organisations)]
    return ents


# -- meaning samplers --------------------------------------------------------------------------------------------
class Sampler:
    def __init__(self, entities: list[Entity], distractor: float = 0.0):
        self.entities = entities
        self.distractor = distractor
        self.by_type = {t: [i for i, e in enumerate(entities) if e.type == t] for t in ("PER", "LOC", "ORG")}

    def fact(self, rng: random.Random, subj: int | None = None, state: dict | None = None) -> Meaning:
        """A random fact; with ``state`` (entity -> dim -> value) attribute facts stay consistent."""
        e = subj if subj is not None else rng.choice(self.by_type["PER"])
        kind = rng.choices(("attr", "rel", "num"), (0.5, 0.35, 0.15))[0]
        if kind == "attr":
            dim = rng.choice(list(ATTRIBUTES))
            known = state.setdefault(e, {}) if state is not None else {}
            v = known.setdefault(dim, rng.choice(ATTRIBUTES[dim]))
            return ("attr", e, v)
        if kind == "rel":
            pred = rng.choice(list(RELATIONS))
            others = [o for o in self.by_type[RELATIONS[pred]] if o != e]
            return ("rel", e, pred, rng.choice(others))
        return ("num", e, rng.randint(1, 9), rng.choice(OBJECTS))

    def nli(self, rng: random.Random, label: str) -> tuple[list[Meaning], Meaning]:
        """Premise: one attribute of a person (each dimension has its own verb: "stands tall", "feels sad"),
        with probability ``distractor`` a relation fact as well (default 0: the rigid template keeps the
        hypothesis' value a fixed number of tokens after the premise's, which a tiny causal LM learns). Hypothesis: one attribute of the same person.
        entailment = the stated value; contradiction = another value of the stated dimension; neutral = a value
        of another dimension. Unigram bags do not give the label away (every label has the same names, one
        attribute verb and one value in each side); what decides it is whether the hypothesis' verb and value
        recur in the premise, an interaction of premise and hypothesis."""
        e = rng.choice(self.by_type["PER"])
        d1, d2 = rng.sample(list(ATTRIBUTES), 2)
        a = rng.choice(ATTRIBUTES[d1])
        premise: list[Meaning] = [("attr", e, a)]
        if self.distractor and rng.random() < self.distractor:
            pred = rng.choice(list(RELATIONS))
            premise.append(("rel", e, pred, rng.choice([o for o in self.by_type[RELATIONS[pred]] if o != e])))
            rng.shuffle(premise)
        value = {"entailment": a,
                 "contradiction": rng.choice([v for v in ATTRIBUTES[d1] if v != a]),
                 "neutral": rng.choice(ATTRIBUTES[d2])}[label]
        return premise, ("attr", e, value)

    def ner_sentence(self, rng: random.Random) -> list[Meaning]:
        """One or two facts, relations weighted up so LOC and ORG mentions are frequent."""
        out = []
        for _ in range(rng.choice((1, 1, 2))):
            e = rng.choice(self.by_type["PER"])
            pred = rng.choice(list(RELATIONS)) if rng.random() < 0.75 else None
            if pred is None:
                out.append(self.fact(rng, e))
            else:
                out.append(("rel", e, pred, rng.choice([o for o in self.by_type[RELATIONS[pred]] if o != e])))
        return out


# -- corpus --------------------------------------------------------------------------------------------------------
def _story(rng: random.Random, s: Sampler) -> list[Meaning]:
    """3-6 consistent facts about 1-3 persons; facts may be restated (as text repeats itself)."""
    people = rng.sample(s.by_type["PER"], rng.randint(1, 3))
    state: dict = {}
    facts: list[Meaning] = []
    for _ in range(rng.randint(3, 6)):
        # Restating an earlier fact teaches the model to notice repeats, the skill entailment rests on.
        facts.append(rng.choice(facts) if facts and rng.random() < 0.25 else s.fact(rng, rng.choice(people), state))
    return facts


def _qa(rng: random.Random, s: Sampler) -> list[Meaning]:
    label = rng.choice(("entailment", "contradiction", "neutral"))
    premise, hyp = s.nli(rng, label)
    return premise + [hyp, ("verdict", VERDICT_OF[label])]


def make_corpus(cfg: WorldConfig, langs: dict[str, Language], s: Sampler) -> dict[str, list[str]]:
    """Documents per language, their number set by its resource level (:meth:`WorldConfig.doc_counts`). Kinds:
    stories, QA passages, code-switched documents and parallel anchors ('sentence | translation'), as real
    multilingual corpora mix them. Each language draws from its own random stream, so a language's documents do
    not depend on the other languages' levels."""
    codes = cfg.codes
    docs: dict[str, list[str]] = {c: [] for c in codes}
    for code, count in cfg.doc_counts().items():
        rng = random.Random(f"{cfg.seed}/corpus/{code}")
        lang = langs[code]
        others = [c for c in codes if c != code]
        for _ in range(count):
            r = rng.random()
            if r < cfg.anchor_share:
                # The translation side: any other language, uniformly (not by share, so that it does not depend
                # on the other languages' levels).
                other = langs[rng.choice(others)]
                meanings = [s.fact(rng) for _ in range(rng.randint(1, 2))]
                left = " ".join(text(render(m, lang, s.entities)) for m in meanings)
                right = " ".join(text(render(m, other, s.entities)) for m in meanings)
                docs[code].append(f"{left} | {right}")
                continue
            meanings = _qa(rng, s) if r < cfg.anchor_share + cfg.qa_share else _story(rng, s)
            swap = None
            if rng.random() < cfg.codeswitch_share / (1.0 - cfg.anchor_share):  # share of all documents
                swap = ([langs[c] for c in others], cfg.codeswitch_prob, rng)
            docs[code].append(" ".join(text(render(m, lang, s.entities, swap)) for m in meanings))
    return docs


# -- build -------------------------------------------------------------------------------------------------------
def build_world(cfg: WorldConfig, out_dir: str | Path) -> World:
    """Write ``corpus/{lang}.txt``, ``nli/{split}-{lang}.tsv``, ``ner/{split}-{lang}.tsv`` and ``world.json``."""
    from .tasks import write_tasks  # local: tasks imports this module's samplers

    t0 = time.perf_counter()
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    langs = {lc.code: make_language(lc, cfg.seed) for lc in cfg.languages}
    entities = make_entities(cfg)
    sampler = Sampler(entities, cfg.nli_distractor)
    docs = make_corpus(cfg, langs, sampler)
    corpus_dir = root / "corpus"
    corpus_dir.mkdir(exist_ok=True)
    corpus = {}
    for code, lines in docs.items():
        corpus[code] = corpus_dir / f"{code}.txt"
        corpus[code].write_text("".join(l + "\n" for l in lines), encoding="utf-8")
    t1 = time.perf_counter()
    tasks = write_tasks(cfg, langs, sampler, root)
    t2 = time.perf_counter()
    shares = cfg.shares()
    facts = {code: {"script": l.script, "order": l.order, "morphology": l.morphology,
                    "resource": round(shares[code], 4), "corpus_docs": len(docs[code]),
                    "corpus_words": sum(len(d.split()) for d in docs[code])}
             for code, l in langs.items()}
    shared = sorted({w for e in entities for w in e.name} | {str(n) for n in range(10)} | set(SHARED_PUNCT))
    world = World(cfg, root, corpus, tasks, facts, shared, {"corpus_s": t1 - t0, "tasks_s": t2 - t1})
    meta = {"config": cfg.to_dict(), "key": cfg.key(), "facts": facts, "shared_words": shared,
            "lexicons": {c: l.lexicon for c, l in langs.items()},
            "suffixes": {c: [l.verb_suffix, l.plural_suffix] for c, l in langs.items()}}
    (root / "world.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1, sort_keys=True), encoding="utf-8")
    return world
