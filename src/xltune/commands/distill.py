"""`xltune distill --teacher RUN_ID (--text LANG=FILE ... | --split SPLIT --languages L ...)`: distil a stored run
into a student on unlabelled target-language text; the student is evaluated and stored with objective "kd".
(The same as a run whose objectives list the distillation objective: see docs/objectives.md.)"""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("distill", help="distil a stored run (teacher) into a student on unlabelled target text",
                       description="The teacher's temperature-softened predictions on unlabelled target-language "
                                   "text train the student (any method); the student is evaluated like any run and "
                                   "stored with objective 'kd' and the teacher's run id.")
    p.add_argument("config", nargs="?", help="student YAML config (default: the teacher's own config)")
    p.add_argument("--teacher", required=True, metavar="RUN_ID", help="run id of the teacher in the store")
    p.add_argument("--teacher-store", metavar="PATH", help="store holding the teacher (default: the student's store)")
    p.add_argument("--text", action="append", default=[], metavar="LANG=FILE",
                   help="plain-text file (one sentence per line, .gz fine) of unlabelled LANG text; repeatable")
    p.add_argument("--split", help="use the unlabelled side of this task split (labels dropped) for --languages")
    p.add_argument("--languages", nargs="+", default=[], metavar="LANG", help="languages for --split")
    p.add_argument("--temperature", type=float, default=2.0, help="softmax temperature T (loss scaled by T^2)")
    p.add_argument("--max-examples", type=int, default=1000, help="unlabelled examples per language (0: all)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a student config value, e.g. --set method.name=lora")
    p.add_argument("--force", action="store_true", help="redo runs that are already in the store")
    p.set_defaults(func=main)


def parse_sources(texts: list[str], split: str | None, languages: list[str]):
    from ..distill import UnlabelledSource
    from ..errors import XLTuneError

    sources = []
    for item in texts:
        lang, sep, path = item.partition("=")
        if not sep or not lang or not path:
            raise XLTuneError(f"--text expects LANG=FILE, got {item!r}")
        sources.append(UnlabelledSource(lang.strip(), path=path.strip()))
    if languages and not split:
        raise XLTuneError("--languages needs --split (which task split's unlabelled side to use)")
    sources += [UnlabelledSource(lang, split=split) for lang in languages]
    if not sources:
        raise XLTuneError("give unlabelled text: --text LANG=FILE (repeatable) or --split SPLIT --languages LANG ...")
    langs = [s.lang for s in sources]
    if len(set(langs)) != len(langs):
        raise XLTuneError(f"each language once, please: got {', '.join(langs)}")
    return sources


def main(args) -> int:
    from ..config import load_config
    from ..distill import distill, load_stored_run_config

    sources = parse_sources(args.text, args.split, args.languages)
    if args.config:
        cfg = load_config(args.config, args.overrides)
    else:
        if not args.teacher_store:
            from ..errors import XLTuneError

            raise XLTuneError("without a student config, --teacher-store must name the store of the teacher")
        teacher = load_stored_run_config(args.teacher, args.teacher_store)
        cfg = load_config(None, args.overrides, base=teacher.to_dict())
    distill(args.teacher, sources, cfg, teacher_store=args.teacher_store, temperature=args.temperature,
            max_examples=args.max_examples, force=args.force)
    return 0
