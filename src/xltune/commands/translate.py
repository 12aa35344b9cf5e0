"""`xltune translate --model M --src en --tgt de --in FILE --out FILE`: machine-translate a text file line by line
with a transformers seq2seq model (Marian, M2M-100, NLLB, mBART), e.g. to make translations of the shots for
objective.parallel_file."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("translate", help="translate a text file line by line with a seq2seq model",
                       description="One sentence per line in, one translation per line out (line-aligned; blank "
                                   "lines stay blank). Language codes are the model's own (en / eng_Latn / en_XX).")
    p.add_argument("--model", required=True, help="hub id or local directory of a seq2seq translation model")
    p.add_argument("--src", required=True, help="source language code")
    p.add_argument("--tgt", required=True, help="target language code")
    p.add_argument("--in", dest="inp", required=True, metavar="FILE", help="input text (.gz fine)")
    p.add_argument("--out", required=True, metavar="FILE", help="output text file")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--num-beams", type=int, default=1)
    p.add_argument("--max-new-tokens", type=int, default=256, help="longest translation in tokens")
    p.add_argument("--max-lines", type=int, default=None, help="translate only the first N lines")
    p.add_argument("--tsv", action="store_true",
                   help="write source<TAB>translation lines (a parallel TSV for objective.parallel_file)")
    p.set_defaults(func=main)


def main(args) -> int:
    from pathlib import Path

    from ..data.parallel import read_plain_text, translate

    lines = read_plain_text(args.inp, max_lines=args.max_lines)
    todo = [i for i, t in enumerate(lines) if t.strip()]
    done = translate([lines[i] for i in todo], args.model, args.src, args.tgt, batch_size=args.batch_size,
                     num_beams=args.num_beams, max_new_tokens=args.max_new_tokens)
    out = [""] * len(lines)
    for i, t in zip(todo, done):
        out[i] = " ".join(t.split())  # a translation with a newline or tab would break line alignment
    rows = [f"{s}\t{t}" for s, t in zip(lines, out) if s.strip()] if args.tsv else out
    Path(args.out).write_text("\n".join(rows) + ("\n" if rows else ""), encoding="utf-8")
    print(f"translated {len(todo)} line(s) {args.src} -> {args.tgt} into {args.out}")
    return 0
