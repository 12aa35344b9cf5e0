"""`xltune lang-module`: train language modules (adapters, prefixes, LoRA) on a language's text; list them.

    xltune lang-module train --model M --kind adapter --lang sw --text ntrex128 sib200 --out modules/
    xltune lang-module list modules/

A run uses them with ``method: {name: mad_x, language_modules: modules/}`` (lang_prefix for prefixes, lang_lora for
LoRA); see docs/methods.md.
"""

from __future__ import annotations

import argparse
import dataclasses

from ..langmod import KINDS
from ..langmod.text import CORPORA


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("lang-module", help="train / list language modules (MAD-X adapters, language "
                                                 "prefixes, LoRA) on unlabelled text", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="lang_module_command", metavar="ACTION")
    t = sub.add_parser("train", help="train one language's module by (masked or causal) language modelling",
                       description="Causal LM for decoders, masked LM for encoders; only the module trains. "
                                   "Resumable: rerun the same command after an interruption. Writes OUT/LANG/ "
                                   "(manifest.json + module.safetensors).")
    t.add_argument("--model", required=True, help="hub id or local model directory")
    t.add_argument("--kind", choices=KINDS, default="adapter", help="adapter (MAD-X) | prefix | lora")
    t.add_argument("--lang", required=True, help="the language code the module is for (as the task names it)")
    t.add_argument("--text", required=True, nargs="+", metavar="FILE|CORPUS",
                   help=f"text files (one line per example; .gz; a TSV with a 'text' column) or corpora for --lang: "
                        f"{', '.join(CORPORA)}")
    t.add_argument("--data-root", default="../shared/data", help="folder holding ntrex128/ and sib200/ "
                                                                "(default ../shared/data)")
    t.add_argument("--out", required=True, help="folder collecting modules (the module goes to OUT/LANG/)")
    t.add_argument("--fresh", action="store_true", help="discard what OUT/LANG holds (a finished or unfinished "
                                                        "module) and train anew")
    from ..langmod.config import ModuleTrainConfig

    for f in dataclasses.fields(ModuleTrainConfig):
        if f.name == "kind":
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        help_ = f"{f.metadata.get('help', '')} (default {default})"
        if isinstance(default, bool):
            t.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_)
        elif isinstance(default, list):
            t.add_argument(flag, dest=f.name, nargs="+", default=None, help=help_)
        else:
            kind = int if f.type in ("int", "int | None") else float if "float" in str(f.type) else str
            t.add_argument(flag, dest=f.name, type=kind, default=None, help=help_)
    t.set_defaults(func=train)
    ls = sub.add_parser("list", help="the modules a folder holds, with their text, steps and dev loss")
    ls.add_argument("folder", help="a folder of modules (or one module folder)")
    ls.set_defaults(func=list_modules)
    p.set_defaults(func=lambda args: p.print_help() or 1)
    return p


def train(args: argparse.Namespace) -> int:
    from ..config import ModelConfig
    from ..langmod.text import resolve_text
    from ..langmod.train import ModuleTrainConfig, train_language_module

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(ModuleTrainConfig)
              if f.name != "kind" and getattr(args, f.name, None) is not None}
    cfg = ModuleTrainConfig(kind=args.kind, **values)
    files = resolve_text(args.text, args.lang, args.data_root)
    print(f"{args.lang}: {args.kind} module on {', '.join(str(f) for f in files)}")
    folder = train_language_module(ModelConfig(name_or_path=args.model), args.lang, files, args.out, cfg,
                                   fresh=args.fresh)
    print(folder)
    return 0


def list_modules(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..errors import XLTuneError
    from ..langmod.modules import MANIFEST, read_module

    root = Path(args.folder)
    folders = [root] if (root / MANIFEST).is_file() else sorted(p for p in root.glob("*") if (p / MANIFEST).is_file())
    if not folders:
        raise XLTuneError(f"{root}: no language modules here (no {MANIFEST})")
    print(f"{'lang':<8}{'kind':<9}{'steps':>7}{'tokens':>11}{'seconds':>9}  {'dev loss (without -> with)':<28}text")
    for f in folders:
        m = read_module(f, "lang-module list")
        tr = m.manifest.get("train", {})
        dev = tr.get("dev_loss", {})
        texts = ", ".join(Path(t["path"]).name for t in m.manifest.get("text", []))
        loss = f"{dev.get('without_module')} -> {dev.get('with_module')}"
        print(f"{m.lang:<8}{m.kind:<9}{tr.get('steps', '?'):>7}{tr.get('tokens_seen', 0):>11,}"
              f"{tr.get('seconds', 0):>9.0f}  {loss:<28}{texts}")
    return 0
