"""`xltune store merge SHARD... --into STORE`: copy runs from other stores (a sweep's job shards) into one."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("store", help="results stores: merge shards into a store",
                       description="Operations on SQLite results stores.")
    ops = p.add_subparsers(dest="op", metavar="OP", required=True)
    m = ops.add_parser("merge", help="copy the runs of shard stores into a store (idempotent)",
                       description="Copies every run (metrics, predictions) that STORE lacks; a run already there is "
                                   "compared, never written twice, so merging twice changes nothing. A shard holding "
                                   "a run whose metrics differ from the store's copy is reported and not merged "
                                   "(exit status 2).")
    m.add_argument("shards", nargs="+", metavar="SHARD", help="stores to merge (e.g. results.sqlite.shards/*.sqlite)")
    m.add_argument("--into", required=True, metavar="STORE", help="the store to merge into (created if absent)")
    p.set_defaults(func=main)


def main(args) -> int:
    import sys

    from ..store import Store

    refused = 0
    with Store(args.into) as store:
        for shard in args.shards:
            result = store.merge(shard)
            print(result.line(), file=sys.stderr if result.conflicts else sys.stdout)
            refused += bool(result.conflicts)
    if refused:
        print(f"xltune: error: {refused} shard(s) not merged: their runs differ from the copies in {args.into}",
              file=sys.stderr)
        return 2
    return 0
