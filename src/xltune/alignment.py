"""Word alignment from a backbone's own embeddings, and projection of entity tags through an alignment.

Alignment follows SimAlign's "argmax" method (Jalili Sabet et al. 2020, "SimAlign: High Quality Word Alignments
without Parallel Training Data"): represent each word by the mean of its sub-word vectors (hidden states of a
chosen layer, or input embeddings), take cosine similarities, and keep the pairs that are each other's best match
in both directions (the intersection of forward and backward argmax). Hand-written rather than depending on the
``simalign`` package, which pins old transformers and fetches mBERT from the hub; the method is a few lines.

Alignments are lists of ``(source word index, target word index)``; the Pharaoh text format ("0-0 1-2 ...", one
line per sentence pair, as fast_align / awesome-align / SimAlign write) is read and written here too.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from .errors import XLTuneError, where

Alignment = list[tuple[int, int]]


# ---------------------------------------------------------------- word vectors and argmax alignment


def word_vectors(token_vectors: torch.Tensor, word_ids: Sequence[int | None], n_words: int | None = None) -> torch.Tensor:
    """Mean of each word's sub-word vectors: ``[T, H]`` + per-token word index (None for special/pad) -> ``[W, H]``.

    ``word_ids`` is what a fast tokenizer's ``encoding.word_ids()`` returns. Every word in ``range(n_words)`` must
    own at least one token (a word lost to truncation cannot be aligned).
    """
    if token_vectors.dim() != 2 or token_vectors.shape[0] != len(word_ids):
        raise ValueError(f"word_vectors: {tuple(token_vectors.shape)} vectors for {len(word_ids)} word ids")
    ids = [w for w in word_ids if w is not None]
    n_words = (max(ids) + 1 if ids else 0) if n_words is None else n_words
    keep = [t for t, w in enumerate(word_ids) if w is not None]
    index = torch.tensor([word_ids[t] for t in keep], dtype=torch.long, device=token_vectors.device)
    vecs = token_vectors[keep].float()
    sums = torch.zeros(n_words, token_vectors.shape[1], device=token_vectors.device).index_add_(0, index, vecs)
    counts = torch.zeros(n_words, device=token_vectors.device).index_add_(0, index, torch.ones_like(index, dtype=torch.float))
    missing = (counts == 0).nonzero().flatten().tolist()
    if missing:
        raise ValueError(f"word_vectors: words {missing} have no sub-word token (truncated?)")
    return sums / counts[:, None]


@torch.no_grad()
def embed_words(words: Sequence[str], model, tokenizer, layer: int = 8) -> torch.Tensor:
    """Per-word vectors ``[W, H]`` from ``model``'s hidden states at ``layer`` (0 = input embeddings).

    Works for encoders and decoders (``output_hidden_states=True``); the tokenizer must be a fast tokenizer (it
    supplies ``word_ids``). SimAlign found layer 8 best for 12-layer mBERT/XLM-R; the layer is clamped to the model's
    depth so small models work unchanged.
    """
    if not words:
        return torch.zeros(0, model.config.hidden_size)
    enc = tokenizer(list(words), is_split_into_words=True, return_tensors="pt", truncation=True)
    device = next(model.parameters()).device
    out = model(**enc.to(device), output_hidden_states=True)
    hidden = out.hidden_states[min(layer, len(out.hidden_states) - 1)][0]
    return word_vectors(hidden, enc.word_ids(0), n_words=len(words))


def argmax_align(src_vectors: torch.Tensor, tgt_vectors: torch.Tensor) -> Alignment:
    """Intersection of forward and backward argmax of cosine similarity: ``[(i, j), ...]`` sorted by i.

    ``(i, j)`` is kept when target j is source i's most similar word and source i is target j's most similar word.
    Ties go to the lower index (torch.argmax). Empty inputs give an empty alignment.
    """
    if src_vectors.shape[0] == 0 or tgt_vectors.shape[0] == 0:
        return []
    if src_vectors.dim() != 2 or tgt_vectors.dim() != 2 or src_vectors.shape[1] != tgt_vectors.shape[1]:
        raise ValueError(f"argmax_align: expected [m, H] and [n, H], got {tuple(src_vectors.shape)} and {tuple(tgt_vectors.shape)}")
    sim = F.normalize(src_vectors.float(), dim=-1) @ F.normalize(tgt_vectors.float(), dim=-1).T
    forward = sim.argmax(dim=1)  # best target for each source word
    backward = sim.argmax(dim=0)  # best source for each target word
    return [(i, j) for i, j in enumerate(forward.tolist()) if backward[j].item() == i]


# ---------------------------------------------------------------- Pharaoh format


def parse_pharaoh(
    line: str, n_src: int | None = None, n_tgt: int | None = None, location: str = "alignment"
) -> Alignment:
    """``"0-0 1-2 2-1"`` -> ``[(0, 0), (1, 2), (2, 1)]`` (sorted, duplicates dropped).

    Gold-standard files mark possible links ``i?j`` or ``i p j``-style; ``i?j`` is accepted and treated as a link.
    Indices are checked against ``n_src`` / ``n_tgt`` when given; errors name ``location``.
    """
    links: set[tuple[int, int]] = set()
    for item in line.split():
        sep = "-" if "-" in item else "?" if "?" in item else None
        parts = item.split(sep) if sep else []
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise XLTuneError(f"{location}: {item!r} is not a Pharaoh link; expected SRC-TGT word indices like 0-1")
        i, j = int(parts[0]), int(parts[1])
        if n_src is not None and i >= n_src:
            raise XLTuneError(f"{location}: link {item!r} points at source word {i}, but the source has {n_src} words")
        if n_tgt is not None and j >= n_tgt:
            raise XLTuneError(f"{location}: link {item!r} points at target word {j}, but the target has {n_tgt} words")
        links.add((i, j))
    return sorted(links)


def read_pharaoh(path: str | Path) -> list[Alignment]:
    """One alignment per line (an empty line is an empty alignment); errors name ``file:line``."""
    path = Path(path)
    if not path.is_file():
        raise XLTuneError(f"alignment file not found: {path}")
    with open(path, encoding="utf-8") as fh:
        return [parse_pharaoh(line, location=where(path, n)) for n, line in enumerate(fh, start=1)]


def format_pharaoh(alignment: Alignment) -> str:
    return " ".join(f"{i}-{j}" for i, j in sorted(alignment))


# ---------------------------------------------------------------- tag projection


def _entity_spans(tags: Sequence[str], location: str) -> list[tuple[int, str] | None]:
    """Per word: (span number, entity type) or None for O. An I- that does not continue a span starts one (IOB1)."""
    out: list[tuple[int, str] | None] = []
    span, prev_type = -1, None
    for k, tag in enumerate(tags):
        if tag == "O":
            out.append(None)
            prev_type = None
            continue
        prefix, _, etype = tag.partition("-")
        if prefix not in ("B", "I") or not etype:
            raise XLTuneError(f"{location}: tag {tag!r} at word {k} is not IOB2 (expected O, B-TYPE or I-TYPE)")
        if prefix == "B" or etype != prev_type:
            span += 1
        out.append((span, etype))
        prev_type = etype
    return out


def project_tags(
    src_words: Sequence[str],
    src_tags: Sequence[str],
    tgt_words: Sequence[str],
    alignment: Alignment,
    *,
    fill_gaps: bool = False,
    location: str = "project_tags",
) -> list[str]:
    """Project IOB2 entity tags from a source sentence to its translation through a word alignment.

    Each aligned target word takes the entity type of the source word(s) it is aligned to (several: the majority
    type, ties to the lowest source index); unaligned target words, and words aligned only to 'O', get 'O'.
    The result is well-formed IOB2: a target word starts a new entity (B-) unless the previous target word belongs
    to the *same source entity* (then I-). That is the "contiguous same-type run" rule, except that two adjacent but
    distinct source entities of one type ("Paris London" -> B-LOC B-LOC) stay two entities.
    With ``fill_gaps`` an unaligned target word between two words of the same source entity joins it (I-), which
    repairs e.g. "Bank of America" -> "Banco de América" when "de" is unaligned.
    """
    if len(src_words) != len(src_tags):
        raise XLTuneError(f"{location}: {len(src_words)} source words but {len(src_tags)} tags")
    entities = _entity_spans(src_tags, location)
    # votes[j]: (source index, (span, type)) of the entity words aligned to target word j.
    votes: list[list[tuple[int, tuple[int, str]]]] = [[] for _ in tgt_words]
    for i, j in alignment:
        if not (0 <= i < len(src_words) and 0 <= j < len(tgt_words)):
            raise XLTuneError(
                f"{location}: link {i}-{j} is outside {len(src_words)} source and {len(tgt_words)} target words"
            )
        if entities[i] is not None:
            votes[j].append((i, entities[i]))

    chosen: list[tuple[int, str] | None] = []
    for vs in votes:
        if not vs:
            chosen.append(None)
            continue
        counts: dict[str, int] = {}
        for _, (_, etype) in vs:
            counts[etype] = counts.get(etype, 0) + 1
        # Majority type; ties and the span choice go to the lowest aligned source index.
        best = max(counts.values())
        chosen.append(min((i, ent) for i, ent in vs if counts[ent[1]] == best)[1])

    if fill_gaps:
        linked = {j for _, j in alignment}
        j = 0
        while j < len(chosen):
            end = j
            while end < len(chosen) and end not in linked:
                end += 1
            # Fill the unaligned run [j, end) when the same source entity is on both sides of it.
            if end > j and j > 0 and end < len(chosen) and chosen[j - 1] is not None and chosen[j - 1] == chosen[end]:
                chosen[j:end] = [chosen[end]] * (end - j)
            j = end + 1

    tags: list[str] = []
    for j, ent in enumerate(chosen):
        if ent is None:
            tags.append("O")
        elif j > 0 and chosen[j - 1] == ent:
            tags.append(f"I-{ent[1]}")
        else:
            tags.append(f"B-{ent[1]}")
    return tags
