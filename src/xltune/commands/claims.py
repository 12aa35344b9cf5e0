"""`xltune claims`: check the study's claims (or your own claims file) against the runs in a results store."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..analysis import N_RESAMPLES


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "claims", help="check published claims against stored runs (supported / contradicted / inconclusive / "
                       "not testable)",
        description="Each claim (xltune/resources/claims.yaml, or --claims FILE) names a check kind and its "
                    "thresholds; each check reads the store and prints its statistic, the runs it used and a verdict.")
    p.add_argument("--store", help="results store (SQLite file written by `xltune run` / `xltune sweep`)")
    p.add_argument("--task", action="append", default=None, metavar="TASK",
                   help="only runs of this task (repeatable; default: all tasks in the store)")
    p.add_argument("--claims", default=None, help="claims YAML (default: the study's claims, packaged)")
    p.add_argument("--markdown", default=None, metavar="OUT", help="also write the verdicts as Markdown to OUT")
    p.add_argument("--tokstats", default=None, help="CSV from `xltune tokstats` (needed for fertility claims)")
    p.add_argument("--resources", default=None,
                   help="pretraining-size table, TSV lang<TAB>tokens (default: XGLM's CC100-XL table, packaged)")
    p.add_argument("--resamples", type=int, default=N_RESAMPLES, help="paired-bootstrap resamples")
    p.add_argument("--where", action="append", default=[], metavar="KEY=VALUE",
                   help="only runs whose config (or run column) has this value, e.g. train.lr=0.03, method.name=lora, "
                        "task=xnli (repeatable: all must hold)")
    p.add_argument("--variant", action="append", default=[], metavar="LABEL",
                   help="only this variant (its label, id or config name; repeatable). Runs of different variants "
                        "are never pooled; these choose which are compared")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap / permutation generator")
    p.add_argument("--list-checks", action="store_true", help="list the check kinds and their parameters, then exit")
    p.set_defaults(func=main)
    return p


def main(args: argparse.Namespace) -> int:
    from ..claims import CHECKS, check_claims, format_verdicts
    from ..errors import XLTuneError

    if args.list_checks:
        for name in CHECKS.names():
            kind = CHECKS.get(name)
            print(f"{name}: {kind.doc}")
            for k, v in kind.defaults.items():
                print(f"    {k}: {v}")
        return 0
    if not args.store:
        raise XLTuneError("xltune claims needs --store FILE (a results store)")
    verdicts = check_claims(args.store, claims=args.claims, tasks=args.task, tokstats=args.tokstats,
                            resources=args.resources, n_resamples=args.resamples, seed=args.seed,
                            where=args.where, variants=args.variant)
    print(format_verdicts(verdicts), end="")
    if args.markdown:
        out = Path(args.markdown)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(format_verdicts(verdicts, markdown=True), encoding="utf-8")
        print(f"wrote {out}")
    return 0
