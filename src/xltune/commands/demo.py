"""`xltune demo`: the whole comparison offline in minutes, on a synthetic multilingual world."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="run finetune vs deep_prompt (+ contrastive) offline on a synthetic world",
                       description="Builds (or reuses) a synthetic multilingual world and a tiny pretrained XGLM, "
                                   "then runs each method over several seeds and prints per-language accuracy.")
    p.add_argument("--shots", type=int, default=64, help="examples per class in the source language (1..256)")
    p.add_argument("--seeds", default="1,2,3", help="comma-separated seeds (default 1,2,3)")
    p.add_argument("--methods", default="finetune,deep_prompt,deep_prompt+tcl+lcl",
                   help="comma-separated: finetune, deep_prompt, deep_prompt+tcl+lcl, prompt, lora")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--store", default="xltune-demo.sqlite", help="results store (default: ./xltune-demo.sqlite)")
    p.add_argument("--out", default="xltune-demo-report", help="report folder")
    p.add_argument("--no-report", action="store_true", help="skip the report")
    p.add_argument("--fresh", action="store_true", help="rebuild the world and the pretrained model")
    p.add_argument("--resource", action="append", default=[], metavar="LANG=LEVEL",
                   help="override a language's resource level (share of the pretraining corpus, relative)")
    p.add_argument("--resource-sweep", metavar="LANG=L1,L2,L3",
                   help="rebuild the world at each resource level of LANG and show its transfer accuracy")
    p.add_argument("--claims", action="store_true", help="check the published claims on the demo's runs")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any run config key (e.g. train.lr=5e-3)")
    p.set_defaults(func=main)


def main(args) -> int:
    from ..data.synthetic import WorldConfig
    from ..demo import DemoConfig, parse_resources, resource_sweep, run_demo

    demo = DemoConfig(shots=args.shots, seeds=[int(s) for s in args.seeds.split(",") if s.strip()],
                      methods=[m.strip() for m in args.methods.split(",") if m.strip()], epochs=args.epochs,
                      store=args.store, report_dir=None if args.no_report else args.out, fresh=args.fresh,
                      extra=args.overrides)
    languages = parse_resources(args.resource, WorldConfig().languages)
    if args.resource_sweep:
        resource_sweep(demo, languages, args.resource_sweep)
        return 0
    run_demo(demo, {"languages": languages})
    if args.claims:
        from ..claims import check_claims, format_verdicts

        print(format_verdicts(check_claims(demo.store)))
    return 0
