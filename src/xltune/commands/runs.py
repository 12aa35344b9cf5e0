"""`xltune runs --store S`: the stored runs, one line each (id, variant, task, method, seed, date, average)."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("runs", help="list the runs of a results store",
                       description="One line per stored run: its id (what predict / eval / export take), variant "
                                   "label, task, method, seed, date (UTC), language average of its headline metric "
                                   "(%), languages and evaluations (`xltune eval`).")
    p.add_argument("--store", required=True, help="results store (SQLite file written by `xltune run`)")
    add_selection(p)
    p.add_argument("--format", default="table", choices=("table", "csv", "json", "md"), help="output format")
    p.set_defaults(func=main)


def add_selection(p) -> None:
    p.add_argument("--where", action="append", default=[], metavar="KEY=VALUE",
                   help="only runs whose config (or run column) has this value, e.g. train.lr=0.03, method.name=lora "
                        "(repeatable: all must hold)")
    p.add_argument("--variant", action="append", default=[], metavar="LABEL",
                   help="only this variant (its label, id or config name; repeatable)")


def open_selection(args, examples: bool = False):
    from pathlib import Path

    from ..analysis.results import select
    from ..errors import XLTuneError
    from ..store import Store

    if not Path(args.store).is_file():
        raise XLTuneError(f"results store {args.store} does not exist (run `xltune run` first, or check --store)")
    with Store(args.store) as s:
        return select(s, args.where, args.variant, examples=examples)


def main(args) -> int:
    import csv
    import json
    import sys

    from ..analysis.aggregate import markdown_table
    from ..analysis.results import run_table, text_table

    header, body = run_table(open_selection(args))
    if args.format == "table":
        print(text_table(header, body))
    elif args.format == "md":
        print(markdown_table(header, body), end="")
    elif args.format == "csv":
        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(header)
        w.writerows(body)
    else:
        print(json.dumps([dict(zip(header, row)) for row in body], indent=2, ensure_ascii=False))
    return 0
