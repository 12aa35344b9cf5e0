"""NLI and NER task files, rendered in every language from the same meanings (parallel by construction).

Layouts match the real data the readers already handle:
- NLI: ``nli/{split}-{lang}.tsv`` with header ``premise\\thypothesis\\tlabel`` (XNLI's columns; labels
  entailment | contradiction | neutral, balanced). Row i of every language is the same meaning.
- NER: ``ner/{split}-{lang}.tsv`` in the XTREME PAN-X token layout: ``word\\tTAG`` per line (IOB2 over PER/LOC/ORG),
  a blank line after each sentence. Sentence i of every language is the same meaning.
"""

from __future__ import annotations

import random
from pathlib import Path

from .render import NLI_LABELS, Language, render, text

SPLITS = ("train", "dev", "test")
NER_LABELS = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG")


def _balanced_labels(rng: random.Random, n: int) -> list[str]:
    labels = [NLI_LABELS[i % 3] for i in range(n)]
    rng.shuffle(labels)
    return labels


def write_tasks(cfg, langs: dict[str, Language], sampler, root: Path) -> dict[str, Path]:
    nli_dir, ner_dir = root / "nli", root / "ner"
    nli_dir.mkdir(parents=True, exist_ok=True)
    ner_dir.mkdir(parents=True, exist_ok=True)
    ents = sampler.entities
    for split in SPLITS:
        rng = random.Random(f"{cfg.seed}/nli/{split}")
        items = [(sampler.nli(rng, label), label) for label in _balanced_labels(rng, cfg.nli_sizes[split])]
        for code, lang in langs.items():
            rows = ["premise\thypothesis\tlabel"]
            for (premise, hyp), label in items:
                p = " ".join(text(render(m, lang, ents)) for m in premise)
                rows.append(f"{p}\t{text(render(hyp, lang, ents))}\t{label}")
            (nli_dir / f"{split}-{code}.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")

        rng = random.Random(f"{cfg.seed}/ner/{split}")
        sents = [sampler.ner_sentence(rng) for _ in range(cfg.ner_sizes[split])]
        for code, lang in langs.items():
            lines = []
            for meanings in sents:
                lines.extend(f"{w}\t{t}" for m in meanings for w, t in render(m, lang, ents))
                lines.append("")
            (ner_dir / f"{split}-{code}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"nli": nli_dir, "ner": ner_dir}
