"""Meanings and the grammar that renders them in each synthetic language.

A *meaning* is a small tuple over the shared meaning space (entities, attribute values, relations, numbers).
Every language renders the same meaning with its own lexicon, word order, optional morphology and script, so one
meaning rendered in two languages is a translation pair by construction. Entity names and digits are the only word
forms shared across languages (as named entities and numbers are in real multilingual text).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# -- the shared meaning space ------------------------------------------------------------------------------------
# Attribute dimensions, each with mutually exclusive values (a person has one value per dimension).
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "height": ("tall", "short", "medium"),
    "age": ("young", "old", "middle_aged"),
    "wealth": ("rich", "poor", "modest"),
    "mood": ("happy", "sad", "calm"),
    "skill": ("clever", "clumsy", "skilled"),
    "diet": ("hungry", "full", "thirsty"),
}
VALUE_DIM = {v: d for d, vs in ATTRIBUTES.items() for v in vs}
# Relations: predicate -> entity type of the object.
RELATIONS: dict[str, str] = {
    "lives_in": "LOC", "visited": "LOC", "works_for": "ORG", "founded": "ORG", "knows": "PER", "helps": "PER",
}
OBJECTS = ("dog", "book", "car", "house", "horse", "boat", "tree", "coin")
FUNCTION_WORDS = ("has", "and")
# Each attribute dimension has its own verb ("stands tall", "feels sad"), so which dimension a sentence is about
# is visible in the sentence, as it is in real languages.
DIM_VERBS = {d: f"be_{d}" for d in ATTRIBUTES}
VERDICTS = ("yes", "no", "maybe")  # entailment, contradiction, neutral — used only in the corpus's QA passages
NLI_LABELS = ("entailment", "contradiction", "neutral")
VERDICT_OF = dict(zip(NLI_LABELS, VERDICTS))

CONCEPTS: tuple[str, ...] = (FUNCTION_WORDS + tuple(DIM_VERBS.values()) + tuple(VALUE_DIM) + tuple(RELATIONS) + OBJECTS + VERDICTS)
# Concepts that are verbs (take the verb suffix in languages with morphology).
VERBS = frozenset(("has", *DIM_VERBS.values(), *RELATIONS))
SHARED_PUNCT = (".", "|")  # sentence end and the anchor separator: shared by every language

Meaning = tuple  # ("attr", ent, value) | ("rel", ent, pred, ent2) | ("num", ent, n, obj)


@dataclass(frozen=True)
class Entity:
    name: tuple[str, ...]  # one or more ASCII word forms, identical in every language
    type: str  # PER | LOC | ORG


@dataclass
class Language:
    """How one language renders meanings. Built by :func:`xltune.data.synthetic.world.make_language`."""

    code: str
    script: str
    order: str  # SVO | SOV | VSO
    morphology: bool
    resource: float
    lexicon: dict[str, str]  # concept -> word form
    verb_suffix: str = ""
    plural_suffix: str = ""

    def word(self, concept: str, plural: bool = False) -> str:
        w = self.lexicon[concept]
        if self.morphology:
            if concept in VERBS:
                w += self.verb_suffix
            elif plural:
                w += self.plural_suffix
        return w

    def clause(self, subj: list[tuple[str, str]], verb: list[tuple[str, str]], obj: list[tuple[str, str]]) -> list[tuple[str, str]]:
        parts = {"S": subj, "V": verb, "O": obj}
        return [wt for slot in self.order for wt in parts[slot]]


def mention(ent: Entity) -> list[tuple[str, str]]:
    """Entity words with IOB2 tags."""
    return [(w, ("B-" if i == 0 else "I-") + ent.type) for i, w in enumerate(ent.name)]


def render(meaning: Meaning, lang: Language, entities: list[Entity], swap: tuple[list[Language], float, random.Random] | None = None) -> list[tuple[str, str]]:
    """One sentence (ending in '.') as (word, tag) pairs.

    ``swap`` = (other languages, probability, rng) code-switches words: each concept is rendered with the word
    form of a random other language, inside this language's word order, which is what lets a model align word
    forms across scripts.
    """
    def w(concept: str, plural: bool = False) -> list[tuple[str, str]]:
        src = lang
        if swap is not None and swap[2].random() < swap[1]:
            src = swap[2].choice(swap[0])  # the swapped word keeps its own language's morphology and script
        return [(src.word(concept, plural), "O")]

    kind = meaning[0]
    if kind == "attr":
        _, e, v = meaning
        words = lang.clause(mention(entities[e]), w(DIM_VERBS[VALUE_DIM[v]]), w(v))
    elif kind == "rel":
        _, e, pred, e2 = meaning
        words = lang.clause(mention(entities[e]), w(pred), mention(entities[e2]))
    elif kind == "num":
        _, e, n, obj = meaning
        words = lang.clause(mention(entities[e]), w("has"), [(str(n), "O")] + w(obj, plural=n > 1))
    elif kind == "verdict":
        words = w(meaning[1])
    else:  # pragma: no cover - internal meanings only
        raise ValueError(f"unknown meaning kind {kind!r}")
    return words + [(".", "O")]


def text(words: list[tuple[str, str]]) -> str:
    return " ".join(w for w, _ in words)
