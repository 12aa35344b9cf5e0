"""Tiny task files that tests write for themselves (no ../shared needed)."""

from __future__ import annotations

import gzip
import random

LABELS = ["entailment", "neutral", "contradiction"]
LANGS = ["en", "de", "sw"]
WORDS = {
    "en": "the a man woman dog cat runs sleeps is not happy big small house city".split(),
    "de": "der die mann frau hund katze läuft schläft ist nicht glücklich groß klein haus stadt".split(),
    "sw": "mtu mwanamke mbwa paka anakimbia analala ni si furaha kubwa ndogo nyumba mji".split(),
}


def write_xnli_like(folder, n_dev=30, n_test=12, seed=0):
    """Line-aligned (same label per line across languages) premise/hypothesis/label files."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("dev", n_dev), ("test", n_test)):
        labels = [LABELS[i % 3] for i in range(n)]
        rng.shuffle(labels)
        for lang in LANGS:
            r = random.Random(f"{seed}-{split}-{lang}")
            lines = ["premise\thypothesis\tlabel"]
            for lab in labels:
                p = " ".join(r.choice(WORDS[lang]) for _ in range(r.randint(3, 9)))
                h = " ".join(r.choice(WORDS[lang]) for _ in range(r.randint(2, 6)))
                lines.append(f"{p}\t{h}\t{lab}")
            (folder / f"{split}-{lang}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def method_with_prompt(name: str, length: int, **kw):
    """A method's settings with its prompt length set where it has one (deep_prompt.prefix_length, prompt.length)."""
    from xltune.methods import method_settings

    key = {"deep_prompt": "prefix_length", "prompt": "length"}.get(name)
    return method_settings(name, **({key: length} if key else {}), **kw)


def tiny_m2m(folder):
    """A tiny random M2M-100 translation model with a real sentencepiece vocabulary (needs sentencepiece)."""
    import io
    import json

    import sentencepiece
    import torch
    from transformers import M2M100Config, M2M100ForConditionalGeneration, M2M100Tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    corpus = ["the cat sat on the mat", "der Hund lief schnell", "a small test sentence", "ein kleiner Satz"] * 4
    sentencepiece.SentencePieceTrainer.train(sentence_iterator=iter(corpus), model_writer=buf, vocab_size=40,
                                             hard_vocab_limit=False, minloglevel=2)
    (folder / "sp.model").write_bytes(buf.getvalue())
    sp = sentencepiece.SentencePieceProcessor(model_file=str(folder / "sp.model"))
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for i in range(sp.get_piece_size()):
        vocab.setdefault(sp.id_to_piece(i), len(vocab))
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    M2M100Tokenizer(str(folder / "vocab.json"), str(folder / "sp.model")).save_pretrained(folder)
    torch.manual_seed(0)
    M2M100ForConditionalGeneration(M2M100Config(
        vocab_size=256, d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=64,
        pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2)).save_pretrained(folder)
    return folder


# PAN-X-like tagging files (XTREME token format, gzip): names, places and organisations in three languages
NAMES = {"en": ["Anna", "Bob", "Carla"], "de": ["Jürgen", "Heike", "Uwe"], "sw": ["Juma", "Amina", "Baraka"]}
PLACES = {"en": ["London", "Paris"], "de": ["Berlin", "Köln"], "sw": ["Nairobi", "Mombasa"]}
ORGS = {"en": ["Acme", "Unesco"], "de": ["Siemens", "Bahn"], "sw": ["Safaricom", "Tanesco"]}
FILL = {"en": "went to the with and saw".split(), "de": "ging nach dem mit und sah".split(),
        "sw": "alienda kwa na pamoja aliona".split()}


def write_panx_like(folder, n=(40, 20, 15)):
    folder.mkdir(parents=True, exist_ok=True)
    for split, count in zip(("train", "dev", "test"), n):
        for lang in ("en", "de", "sw"):
            r = random.Random(f"{split}{lang}")
            lines = []
            for _ in range(count):
                sent = []
                for _ in range(r.randint(2, 4)):
                    kind = r.choice(["PER", "LOC", "ORG", "O", "O"])
                    if kind == "O":
                        sent.append((r.choice(FILL[lang]), "O"))
                    else:
                        pool = {"PER": NAMES, "LOC": PLACES, "ORG": ORGS}[kind][lang]
                        sent.append((r.choice(pool), f"B-{kind}"))
                        if r.random() < 0.3:
                            sent.append((r.choice(pool), f"I-{kind}"))
                lines += [f"{lang}:{w}\t{t}" for w, t in sent] + [""]
            with gzip.open(folder / f"{split}-{lang}.tsv.gz", "wt", encoding="utf-8") as f:
                f.write("\n".join(lines) + "\n")
    return folder
