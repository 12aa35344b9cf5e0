"""`xltune tiny-model`: write a tiny random XGLM / XLM-R with a tokenizer trained on your text (tests, demos)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..models.tiny import ARCHS


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("tiny-model", help="build a tiny random model + trained multilingual tokenizer",
                              description=__doc__)
    p.add_argument("--arch", required=True, choices=ARCHS, help="architecture")
    p.add_argument("--text", required=True, nargs="+", type=Path, help="text / TSV / .gz files to train the tokenizer on")
    p.add_argument("--out", required=True, type=Path, help="output model directory")
    p.add_argument("--vocab-size", type=int, default=2000, help="tokenizer vocabulary size (at most)")
    p.add_argument("--hidden", type=int, default=64, help="hidden size")
    p.add_argument("--layers", type=int, default=2, help="number of layers")
    p.add_argument("--heads", type=int, default=4, help="attention heads")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    p.set_defaults(func=main)
    return p


def main(args: argparse.Namespace) -> int:
    from ..models.tiny import make_tiny_model

    out = make_tiny_model(args.arch, args.text, args.out, vocab_size=args.vocab_size, hidden=args.hidden,
                          layers=args.layers, heads=args.heads, seed=args.seed)
    print(out)
    return 0
