"""`xltune run CONFIG [--set key=value ...]`: train and evaluate one experiment (one run per seed)."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("run", help="train and evaluate one experiment from a YAML config",
                       description="Train on K shots per class in the source language(s) and evaluate in every "
                                   "target language; one run per seed, written to the results store.")
    p.add_argument("config", help="YAML experiment config (see configs/ and `xltune config-keys`)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set method.name=finetune --set train.shots=32")
    p.add_argument("--force", action="store_true", help="redo runs that are already in the store")
    p.add_argument("--processes", type=int, default=1, metavar="N",
                   help="data-parallel processes (one per GPU; gloo on CPU); same as `accelerate launch`/torchrun")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.set_defaults(func=main)


def main(args) -> int:
    import os
    import subprocess
    import sys

    import yaml

    from ..config import load_config, resolve_paths

    cfg = load_config(args.config, args.overrides)
    if args.print_config:
        print(yaml.safe_dump(resolve_paths(cfg).to_dict(), sort_keys=False, allow_unicode=True))
        return 0
    if args.processes > 1 and "WORLD_SIZE" not in os.environ:
        # relaunch this command under torch's elastic launcher (what `accelerate launch` uses underneath)
        argv = [a for a in sys.argv[1:]]
        i = argv.index("--processes") if "--processes" in argv else None
        if i is not None:
            del argv[i : i + 2]
        else:
            argv = [a for a in argv if not a.startswith("--processes=")]
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.processes}",
               "-m", "xltune.cli", *argv]
        return subprocess.call(cmd)
    from ..api import run_experiment

    run_experiment(cfg, force=args.force)
    return 0
