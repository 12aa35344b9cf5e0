"""`xltune report`: Markdown + self-contained HTML report (tables, plots, significance) from a results store."""

from __future__ import annotations

import argparse

from ..analysis import N_RESAMPLES


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "report",
        help="write report.md and report.html from a results store",
        description="Per-language tables (mean ± std over seeds), plots, resource groups, gain correlations, "
        "paired-bootstrap significance and the environment manifest.",
    )
    p.add_argument("--store", required=True, help="results store (SQLite file written by `xltune run`)")
    p.add_argument("--out", required=True, help="folder for report.md, report.html, results.csv, figures/")
    p.add_argument("--resources", default=None,
                   help="pretraining-size table, TSV lang<TAB>tokens (default: XGLM's CC100-XL table, packaged)")
    p.add_argument("--tokstats", default=None, help="CSV from `xltune tokstats` for gain-vs-fertility plots")
    p.add_argument("--baseline", default=None, help="method that gains and tests compare against (default: finetune)")
    p.add_argument("--resamples", type=int, default=N_RESAMPLES, help="paired-bootstrap resamples")
    p.add_argument("--where", action="append", default=[], metavar="KEY=VALUE",
                   help="only runs whose config (or run column) has this value, e.g. train.lr=0.03, method.name=lora, "
                        "task=xnli (repeatable: all must hold)")
    p.add_argument("--variant", action="append", default=[], metavar="LABEL",
                   help="only this variant (its label, id or config name; repeatable). Runs of different variants "
                        "are never pooled; these choose which are compared")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap's random generator")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=main)
    return p


def main(args: argparse.Namespace) -> int:
    from ..report import build_report  # matplotlib is imported only when a report is made

    paths = build_report(args.store, args.out, resources=args.resources, tokstats=args.tokstats,
                         baseline=args.baseline, n_resamples=args.resamples, seed=args.seed,
                         progress=not args.no_progress, where=args.where, variants=args.variant)
    for kind, path in paths.items():
        print(f"wrote {path} ({kind})")
    return 0
