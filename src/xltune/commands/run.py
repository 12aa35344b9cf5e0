"""`xltune run [CONFIG] [--model M --task T ...] [--set key=value ...]`: train and evaluate one experiment (one run
per seed), from a YAML config, from flags, or both (flags, then --set, override the file)."""

from __future__ import annotations

# flag -> config key: the common keys as flags, so an experiment needs no YAML (any key: --set key=value)
FLAGS = (
    ("--model", "model.name_or_path", "M", "hub id or local model folder"),
    ("--task", "task.name", "TASK", "a task (`xltune tasks`)"),
    ("--data-dir", "task.data_dir", "DIR", "folder with the task's files (default: load from the hub)"),
    ("--method", "method.name", "METHOD", "a method (`xltune methods`)"),
    ("--shots", "train.shots", "K", "examples per class (mentions per type for NER), or 'all'"),
    ("--seeds", "seeds", "S1,S2", "one run per seed, e.g. 1,2,3"),
    ("--source", "train.languages", "LANGS", "source language(s) of the shots, e.g. en or en,de"),
    ("--targets", "eval.languages", "LANGS", "target languages, e.g. all or de,sw"),
    ("--store", "store", "FILE", "results store (SQLite)"),
)


def add_parser(sub) -> None:
    p = sub.add_parser("run", help="train and evaluate one experiment (a YAML config and/or flags)",
                       description="Train on K shots per class in the source language(s) and evaluate in every "
                                   "target language; one run per seed, written to the results store. The experiment "
                                   "comes from CONFIG, from flags (xltune run --model M --task xnli --method "
                                   "deep_prompt --shots 16 --seeds 1,2,3 --source en --targets all), or both: flags "
                                   "and then --set override the file. Paths in CONFIG are relative to its folder; "
                                   "paths in flags and --set to the working directory.")
    p.add_argument("config", nargs="?", help="YAML experiment config (see configs/ and `xltune config-keys`)")
    for flag, key, metavar, help_ in FLAGS:
        p.add_argument(flag, dest=key, metavar=metavar, help=f"{help_} (= --set {key}=...)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set method.name=finetune --set train.shots=32")
    p.add_argument("--force", action="store_true", help="redo runs that are already in the store")
    p.add_argument("--processes", type=int, default=1, metavar="N",
                   help="data-parallel processes (one per GPU; gloo on CPU); same as `accelerate launch`/torchrun")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("--dry-run", action="store_true",
                   help="check the config and read its data files (pools, dev, test, K shots), list its runs; "
                        "build no model, train nothing")
    p.set_defaults(func=main)


def main(args) -> int:
    import os
    import subprocess
    import sys

    import yaml

    from ..config import load_config, resolve_paths

    cfg = load_config(args.config, overrides(args))
    if args.print_config:
        print(yaml.safe_dump(resolve_paths(cfg).to_dict(), sort_keys=False, allow_unicode=True))
        return 0
    if args.dry_run:
        return dry_run(cfg)
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


def overrides(args) -> list[str]:
    """The flags as --set items (before the --set items themselves); without a config, the model is required."""
    from ..errors import XLTuneError

    sets = [f"{key}={getattr(args, key)}" for _, key, _, _ in FLAGS if getattr(args, key) is not None]
    given = sets + list(args.overrides)
    if args.config is None and not any(s.split("=", 1)[0].strip() == "model.name_or_path" for s in given):
        raise XLTuneError("xltune run needs a config file or the experiment as flags, e.g. xltune run --model "
                          "runs/tiny-xglm --task xnli --data-dir ../shared/data/xnli --method deep_prompt --shots 16 "
                          "--seeds 1,2,3 --source en --targets all")
    return given


def dry_run(cfg) -> int:
    from pathlib import Path

    from .. import variants
    from ..config import resolve_paths
    from ..runs.prepare import check_data
    from ..store import Store

    cfg = resolve_paths(cfg)
    print(f"variant   {variants.label(cfg)}  ({variants.variant_id(cfg)})")
    print(f"data      {check_data(cfg)}")
    done = set()
    if Path(cfg.store).is_file():
        with Store(cfg.store) as s:
            done = {seed for seed in cfg.seeds if s.has_run(cfg.run_key(seed))}
    for seed in cfg.seeds:
        print(f"seed {seed:<4} run {cfg.run_key(seed)}  {'done' if seed in done else 'pending'}")
    return 0
