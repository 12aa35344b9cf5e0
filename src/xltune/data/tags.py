"""Tag schemes: normalise IOB1 / IOB2 / BIOES tag sequences to IOB2, counting repairs.

Hand-written because seqeval converts between schemes only implicitly while scoring; readers need the normalised
sequence itself (to train on) and the number of ill-formed tags it repaired (to warn about).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

PREFIXES = {"IOB1": ("B", "I"), "IOB2": ("B", "I"), "BIOES": ("B", "I", "E", "S")}


def split_tag(tag: str) -> tuple[str, str]:
    """'B-PER' -> ('B', 'PER'); 'O' -> ('O', ''). Types may contain '-' (only the first one splits)."""
    if tag == "O":
        return "O", ""
    prefix, _, typ = tag.partition("-")
    return prefix, typ


def entity_types(labels: Iterable[str]) -> list[str]:
    """Entity types of a span tag set, in order of first appearance: (O, B-PER, I-PER, B-ORG, ...) -> [PER, ORG]."""
    seen: dict[str, None] = {}
    for t in labels:
        if t[:2] in ("B-", "I-", "E-", "S-"):
            seen.setdefault(t[2:], None)
    return list(seen)


def is_valid_tag(tag: str, types: Iterable[str], scheme: str) -> bool:
    """Whether ``tag`` is 'O' or PREFIX-TYPE with a prefix of ``scheme`` and a declared type."""
    if tag == "O":
        return True
    prefix, typ = split_tag(tag)
    return prefix in PREFIXES[scheme] and typ in set(types)


def to_iob2(tags: Sequence[str], scheme: str = "IOB2") -> tuple[list[str], int]:
    """Normalise one sentence's tags to IOB2. Returns (tags, repairs).

    IOB1: an I-X that starts a chunk (after O or another type) becomes B-X; that is IOB1's meaning, not a repair.
    IOB2: an I-X with no opening B-X/I-X just before it is ill-formed; it becomes B-X and counts as a repair
    (the same reading conlleval and seqeval's default mode give it).
    BIOES: S-X -> B-X, E-X -> I-X; an I-/E- with no opening tag becomes B-X (a repair).
    """
    out: list[str] = []
    repairs = 0
    prev_type = ""  # type of the chunk open at the previous token ('' when none)
    for tag in tags:
        prefix, typ = split_tag(tag)
        if prefix == "O":
            out.append("O")
            prev_type = ""
            continue
        if prefix == "S":
            prefix = "B"
        elif prefix == "E":
            prefix = "I"
        if prefix == "I" and prev_type != typ:
            prefix = "B"
            if scheme != "IOB1":
                repairs += 1
        out.append(f"{prefix}-{typ}")
        prev_type = typ
    return out, repairs


def mentions(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """(type, start, end_exclusive) spans of a well-formed IOB2 sequence (a mention opens at each B-)."""
    spans: list[tuple[str, int, int]] = []
    start, typ = -1, ""
    for i, tag in enumerate(list(tags) + ["O"]):
        prefix, t = split_tag(tag)
        if start >= 0 and (prefix != "I" or t != typ):
            spans.append((typ, start, i))
            start = -1
        if prefix == "B" or (prefix == "I" and start < 0):
            start, typ = i, t
    return spans
