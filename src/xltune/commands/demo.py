"""`xltune demo`: the whole comparison offline in minutes, on a synthetic multilingual world."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="run finetune vs deep_prompt (+ contrastive) offline on a synthetic world",
                       description="Builds (or reuses) a synthetic multilingual world and a tiny pretrained XGLM, "
                                   "then runs each method over several seeds and prints per-language accuracy.")
    p.add_argument("--shots", type=int, default=256,
                   help="examples per class in the source language (1..256; default 256, the whole source train split)")
    p.add_argument("--seeds", default="1,2,3", help="comma-separated seeds (default 1,2,3)")
    p.add_argument("--methods", default="finetune,deep_prompt,deep_prompt+tcl+lcl",
                   help="comma-separated: finetune, deep_prompt, deep_prompt+tcl+lcl, finetune+tcl+lcl, prompt, lora, "
                        "mad_x, adapter, lang_prefix, lang_lora (language modules are trained on the world's "
                        "corpus and cached with it)")
    p.add_argument("--settings", default="zero_shot",
                   help="comma-separated transfer settings: zero_shot, translate_train, translate_test, "
                        "translate_train_all, few_shot_target (translations: the world's own, an oracle)")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--store", default="xltune-demo.sqlite", help="results store (default: ./xltune-demo.sqlite)")
    p.add_argument("--out", default="xltune-demo-report", help="report folder")
    p.add_argument("--no-report", action="store_true", help="skip the report")
    p.add_argument("--fresh", action="store_true", help="rebuild the world and the pretrained model")
    p.add_argument("--languages", metavar="CODES",
                   help="comma-separated subset of the world's languages (default: all seven; the source is the "
                        "one with the highest resource level)")
    p.add_argument("--world", action="append", default=[], metavar="KEY=VALUE",
                   help="override a world knob, e.g. corpus_docs=6000, seed=1, anchor_share=0.2, "
                        "'nli_sizes={train: 300, dev: 60, test: 300}' (docs/synthetic.md)")
    p.add_argument("--pretrain", action="append", default=[], metavar="KEY=VALUE",
                   help="override a pretraining knob, e.g. steps=300, d_model=32, threads=1 (docs/synthetic.md)")
    p.add_argument("--module", action="append", default=[], metavar="KEY=VALUE",
                   help="override how the language modules of mad_x / lang_prefix / lang_lora are trained, e.g. "
                        "steps=100, lr=3e-3 (the keys of `xltune lang-module train`)")
    p.add_argument("--source", help="source language (default: the one with the highest resource level)")
    p.add_argument("--resource", action="append", default=[], metavar="LANG=LEVEL",
                   help="override a language's resource level (share of the pretraining corpus, relative)")
    p.add_argument("--resource-sweep", metavar="LANG=L1,L2,L3",
                   help="rebuild the world at each resource level of LANG and show its transfer accuracy")
    p.add_argument("--pretrain-seeds", metavar="S1,S2,...",
                   help="with --resource-sweep: pretrain each level with each of these seeds and pool the runs "
                        "(the tiny model's pretraining outcome varies with its seed; default: one pretraining)")
    p.add_argument("--claims", action="store_true", help="check the published claims on the demo's runs")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any run config key (e.g. train.lr=5e-3)")
    p.set_defaults(func=main)


def main(args) -> int:
    from ..data.synthetic import PretrainConfig, WorldConfig
    from ..demo import (DemoConfig, parse_knobs, parse_resources, parse_sweep, resource_sweep, run_demo,
                        select_languages)

    demo = DemoConfig(shots=args.shots, seeds=_ints(args.seeds, "--seeds"),
                      methods=[m.strip() for m in args.methods.split(",") if m.strip()], epochs=args.epochs,
                      store=args.store, report_dir=None if args.no_report else args.out, fresh=args.fresh,
                      extra=args.overrides, source=args.source,
                      settings=[st.strip() for st in args.settings.split(",") if st.strip()])
    languages = WorldConfig().languages
    if args.languages:
        languages = select_languages([c.strip() for c in args.languages.split(",") if c.strip()], languages)
    languages = parse_resources(args.resource, languages)
    world = parse_knobs(args.world, WorldConfig, "--world")
    from ..langmod.train import ModuleTrainConfig

    demo.module = parse_knobs(args.module, ModuleTrainConfig, "--module")
    pretrain = PretrainConfig(**parse_knobs(args.pretrain, PretrainConfig, "--pretrain"))
    if args.resource_sweep:
        parse_sweep(args.resource_sweep)
        seeds = _ints(args.pretrain_seeds, "--pretrain-seeds") if args.pretrain_seeds else None
        resource_sweep(demo, languages, args.resource_sweep, world_overrides=world, pretrain=pretrain,
                       pretrain_seeds=seeds)
        return 0
    res = run_demo(demo, {**world, "languages": languages}, pretrain=pretrain)
    if args.claims:
        from ..claims import check_claims, format_verdicts

        print(format_verdicts(check_claims(demo.store, resources=res["resources"], tokstats=res["tokstats"])))
    return 0


def _ints(raw: str, flag: str) -> list[int]:
    from ..errors import XLTuneError

    try:
        out = [int(x) for x in raw.split(",") if x.strip()]
    except ValueError:
        raise XLTuneError(f"{flag} expects comma-separated integers, got {raw!r}") from None
    if not out:
        raise XLTuneError(f"{flag} expects at least one integer, got {raw!r}")
    return out
