"""`xltune tokstats`: per-language tokenization statistics of a tokenizer on (parallel) text files."""

from __future__ import annotations

import argparse
import math



def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "tokstats",
        help="fertility, split share, unknown rate, characters per token per language",
        description="Per-language tokenization statistics. Whitespace-free scripts (Han, kana, Thai, Lao, Khmer, "
        "Myanmar, Tibetan) are measured per character: their fertility is tokens per character (segmentation=char).",
    )
    p.add_argument("--tokenizer", required=True, help="hub id or local directory of a transformers tokenizer")
    p.add_argument("--text", nargs="+", required=True, help="text files, one sentence per line (.gz allowed)")
    p.add_argument("--lang-from-filename", action="store_true",
                   help="language = last dot-part of the name (newstest2019-ref.deu.txt.gz -> de, ISO 639-3 mapped "
                   "to 2-letter codes); default: the part before the first dot")
    p.add_argument("--out", required=True, help="CSV to write")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=main)
    return p


def main(args: argparse.Namespace) -> int:
    from ..analysis.tokstats import load_tokenizer, texts_by_language, tokstats_table, write_tokstats_csv

    tok = load_tokenizer(args.tokenizer)
    texts = {lang: lines for lang, (_, lines) in texts_by_language(args.text, args.lang_from_filename).items()}
    rows = tokstats_table(tok, texts, progress=not args.no_progress)
    write_tokstats_csv(rows, args.out)
    chars = [r.lang for r in rows if r.segmentation == "char"]
    print(f"wrote {args.out}: {len(rows)} languages")
    if chars:
        print(f"measured per character (whitespace-free script; fertility = tokens per character): {', '.join(chars)}")
    for r in rows:
        split = "  –  " if math.isnan(r.split_share) else f"{r.split_share:5.3f}"
        print(f"  {r.lang:8s} fertility {r.fertility:5.2f}/{r.segmentation:4s} split {split} "
              f"unk {r.unk_rate:.4f} chars/token {r.chars_per_token:4.2f}")
    return 0
