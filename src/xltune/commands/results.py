"""`xltune results --store S --format csv|json|md [--per-run]`: the results of a store, per variant (mean ± std over
seeds) or per run, per language, units stated; evaluations of stored runs as their own rows."""

from __future__ import annotations

from .runs import add_selection


def add_parser(sub) -> None:
    p = sub.add_parser("results", help="export results per variant or per run (CSV, JSON, Markdown)",
                       description="Per-language results of the chosen runs: per variant (mean ± sample std over its "
                                   "seeds; variants never pooled) or, with --per-run, one row per run and language. "
                                   "Values in percent unless --units fraction; CSV rows carry a unit column, JSON a "
                                   "unit key (JSON: lm-evaluation-harness's results schema per variant, with configs "
                                   "and versions). Evaluations of stored runs (`xltune eval`) come as their own rows.")
    p.add_argument("--store", required=True, help="results store (SQLite file written by `xltune run`)")
    p.add_argument("--format", default="md", choices=("csv", "json", "md"), help="output format (default md)")
    p.add_argument("--per-run", action="store_true", help="one row per run and language (instead of per variant)")
    p.add_argument("--per-example", action="store_true",
                   help="one row per stored prediction (run or evaluation, language, example index, gold, "
                        "predicted); csv or json (JSON lines)")
    p.add_argument("--units", default="percent", choices=("percent", "fraction"),
                   help="unit of CSV/JSON values (Markdown is always in percent)")
    p.add_argument("--out", metavar="FILE", help="write to FILE (default: standard output)")
    add_selection(p)
    p.set_defaults(func=main)


def main(args) -> int:
    import os
    import sys
    from pathlib import Path

    from ..analysis import results
    from .runs import open_selection

    from ..errors import XLTuneError

    if args.per_example and args.format == "md":
        raise XLTuneError("--per-example writes csv or json (JSON lines), not md: add --format csv or --format json")
    sel = open_selection(args, examples=args.per_example)
    if args.per_example:
        text = results.examples_csv(sel) if args.format == "csv" else results.examples_jsonl(sel)
    elif args.format == "csv":
        text = results.to_csv(sel, per_run=args.per_run, units=args.units)
    elif args.format == "json":
        text = results.to_json(sel, per_run=args.per_run, units=args.units)
    else:
        text = results.to_markdown(sel, per_run=args.per_run)
    if not args.out:
        sys.stdout.write(text)
        return 0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, out)
    what = "per example" if args.per_example else "per run" if args.per_run else "per variant"
    print(f"wrote {out} ({args.format}, {what}{'' if args.format == 'md' or args.per_example else ', ' + args.units})")
    return 0
