"""The records that flow from readers to the encoder. Plain, frozen, hashable.

``index`` is the example's 0-based position in its file (after skipping headers/blank/comment lines for
sentence files; the sentence number for token files). For line-aligned parallel sets (XNLI dev/test) the same
index in two languages is a translation pair. ``id`` is ``"{lang}/{split}/{index}"`` and is what manifests store.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SentenceExample:
    id: str
    lang: str
    index: int
    texts: tuple[str, ...]  # one or two segments (premise, hypothesis)
    label: int | None  # index into TaskSpec.labels; None for unlabelled text


@dataclass(frozen=True)
class TokenExample:
    id: str
    lang: str
    index: int
    words: tuple[str, ...]
    tags: tuple[int, ...] | None  # indices into TaskSpec.labels (IOB2 after normalisation); None if unlabelled


Example = SentenceExample | TokenExample
