"""`xltune sweep CONFIG --grid key=v1,v2 ...`: expand a grid into runs; skip finished ones; resume by rerunning."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("sweep", help="run a grid of configs (finished runs are skipped)",
                       description="Each --grid multiplies the runs; every run is keyed by a hash of its resolved "
                                   "config and seed, so a killed sweep resumes where it stopped when rerun.")
    p.add_argument("config", help="base YAML config")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                   help="e.g. --grid method.name=finetune,deep_prompt --grid train.shots=8,16 --grid seeds=1,2,3")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override applied to every run")
    p.add_argument("--workers", type=int, default=1, help="parallel processes (one GPU each where there are several)")
    p.add_argument("--dry-run", action="store_true", help="list the runs and whether each is done; run nothing")
    p.set_defaults(func=main)


def main(args) -> int:
    from ..sweep import run_sweep

    run_sweep(args.config, args.grid, overrides=args.overrides, workers=args.workers, dry_run=args.dry_run)
    return 0
