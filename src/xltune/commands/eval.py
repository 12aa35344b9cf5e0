"""`xltune eval --store S --run RUN_ID [--data-dir DIR] [--split S] [--languages a,b]`: score stored runs on another
dataset, split or language without training; the scores are stored linked to each run (never as a seed of it)."""

from __future__ import annotations

from .predict import add_run_arguments, device_of


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="score stored runs on other data or languages (no training); stored per run",
                       description="Rebuild each stored run's model and evaluate it on the data the options name "
                                   "(by default the run's own task, data and languages). The scores are stored "
                                   "linked to the run, apart from its own results: `xltune results` and "
                                   "`xltune report` show them as evaluations, never as seeds. Several runs: "
                                   "--run A,B, --variant LABEL or --where KEY=VALUE.")
    add_run_arguments(p)
    p.add_argument("--where", action="append", default=[], metavar="KEY=VALUE",
                   help="or every run whose config has this value (as in `xltune report`; repeatable)")
    p.add_argument("--variant", action="append", default=[], metavar="LABEL",
                   help="or every run (seed) of this variant (repeatable)")
    p.add_argument("--task", metavar="NAME", help="another task with the same labels (task.name)")
    p.add_argument("--data-dir", metavar="DIR", help="folder with the data to score on (task.data_dir)")
    p.add_argument("--split", metavar="SPLIT", help="split to score (eval.split)")
    p.add_argument("--languages", metavar="LANGS", help="comma-separated languages, or all (eval.languages)")
    p.add_argument("--max-examples", type=int, metavar="N", help="first N examples per language (eval.max_examples)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="any task.* or eval.* setting, e.g. --set task.file_pattern={split}.{lang}.tsv")
    p.add_argument("--force", action="store_true", help="redo evaluations that are already stored")
    p.add_argument("--no-store", action="store_true", help="print the scores, store nothing")
    p.set_defaults(func=main)


def overrides_of(args) -> list[str]:
    import json

    out = []
    if args.task:
        out.append(f"task.name={args.task}")
    if args.data_dir:
        out.append(f"task.data_dir={json.dumps(args.data_dir)}")
    if args.split:
        out.append(f"eval.split={args.split}")
    if args.languages:
        langs = [x.strip() for x in args.languages.split(",") if x.strip()]
        out.append("eval.languages=all" if langs == ["all"] else f"eval.languages={json.dumps(langs)}")
    if args.max_examples is not None:
        out.append(f"eval.max_examples={args.max_examples}")
    return out + list(args.overrides)


def run_ids(args) -> list[str]:
    from pathlib import Path

    from ..analysis.select import select_runs
    from ..errors import XLTuneError
    from ..runs.stored import stored_row
    from ..store import Store

    if not args.store:
        raise XLTuneError("say which store: --store PATH (with --run RUN_ID, --variant LABEL or --where KEY=VALUE)")
    ids = [stored_row(r, args.store)["run_id"] for r in (args.run.split(",") if args.run else [])]
    if args.where or args.variant:
        if not Path(args.store).is_file():
            raise XLTuneError(f"results store {args.store} does not exist (check --store)")
        with Store(args.store) as s:
            chosen = select_runs(s.runs(), args.where, args.variant)
        ids += [r["run_id"] for r in chosen if r["run_id"] not in ids]
    if not ids:
        raise XLTuneError("say which run(s): --run RUN_ID[,RUN_ID...], --variant LABEL or --where KEY=VALUE "
                          "(`xltune runs --store PATH` lists them)")
    return ids


def main(args) -> int:
    from ..analysis.aggregate import mean_std
    from ..runs.reeval import evaluate_stored

    from ..runs.stored import stored_config

    overrides = overrides_of(args)
    done = []
    ids = run_ids(args)
    for rid in ids:  # every run checked before any is evaluated: a bad one stops the batch before it writes
        stored_config(rid, args.store)
    for rid in ids:
        ev = evaluate_stored(args.store, rid, overrides, device=device_of(args.device), force=args.force,
                             save=not args.no_store)
        done.append(ev)
        if ev.stored and not ev.skipped:
            print(f"stored evaluation {ev.eval_id} of run {rid} in {args.store} (linked to the run, not a seed of it; "
                  f"`xltune results --store {args.store}` lists it under evaluations)")
    if len(done) > 1:  # seeds of one variant together, never two variants (a label alone may name several)
        by_variant: dict[tuple[str, str], list[float]] = {}
        for ev in done:
            if ev.results:
                by_variant.setdefault((ev.variant, ev.label), []).append(
                    sum(r.headline for r in ev.results) / len(ev.results))
        labels = [label for _, label in by_variant]
        for (variant, label), avgs in by_variant.items():
            label = label if labels.count(label) == 1 else f"{label} [variant {variant[:8]}]"
            m, s = mean_std(avgs)
            print(f"{label}: language average over {len(avgs)} run(s) {100 * m:.2f} ± "
                  f"{'–' if s != s else f'{100 * s:.2f}'} %")
    return 0
