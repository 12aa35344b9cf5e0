"""`xltune demo`: the whole comparison offline, on a laptop CPU, in minutes.

Builds (or reuses from the cache) the synthetic multilingual world and its pretrained tiny XGLM
(:mod:`xltune.data.synthetic`), then runs each method with K shots per class in the high-resource source
language over several seeds, evaluates every language, prints the per-language table (mean ± std, resource
level, fertility) and writes the report. Runs go to an ordinary results store, so `xltune report` and
`xltune claims` read them like any other runs.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import coerce_field, load_config
from .errors import XLTuneError, unknown_name

# method variants the demo knows: name -> config overrides (P-tuning v2-style lr for prompts, small lr for FT).
# Deep prompts keep the input positions from 0 (method.prefix_positions=keep): the tiny world model compares premise
# and hypothesis by position, and shifting every position by the prefix length breaks that (docs/synthetic.md).
_DEEP = ["method.name=deep_prompt", "method.prefix_length=8", "method.prefix_positions=keep", "train.lr=1e-2"]
_DCL = ["objectives=[{name: cross_entropy}, {name: translation_contrast, weight: 0.5}, "
        "{name: label_contrast, weight: 0.5}]"]
VARIANTS: dict[str, list[str]] = {
    "finetune": ["method.name=finetune", "train.lr=1e-3"],
    "deep_prompt": _DEEP,
    "deep_prompt+tcl+lcl": _DEEP + _DCL,
    # contrastive learning without prompts: with the two above, claim C9 (combined beats either alone) is testable
    "finetune+tcl+lcl": ["method.name=finetune", "train.lr=1e-3"] + _DCL,
    "prompt": ["method.name=prompt", "method.length=8", "train.lr=1e-2"],
    "lora": ["method.name=lora", "train.lr=3e-3"],
    # Language modules (docs/methods.md), each trained on its language's corpus of the world and cached with it;
    # "adapter" and "lora" are the same task parts without language modules (the ablations).
    "mad_x": ["method.name=mad_x", "train.lr=3e-3"],
    "adapter": ["method.name=mad_x", "train.lr=3e-3"],
    "lang_prefix": ["method.name=lang_prefix", "method.prefix_length=8", "method.prefix_positions=keep",
                    "train.lr=1e-2"],
    "lang_lora": ["method.name=lang_lora", "train.lr=3e-3"],
}


def module_settings():
    """Variant -> how its language modules are trained on the world's corpus (None: no modules)."""
    from .langmod.train import ModuleTrainConfig

    common = {"steps": 200, "batch_size": 32, "max_length": 48, "dev_lines": 200, "save_every": 50}
    return {"mad_x": ModuleTrainConfig(kind="adapter", **common),
            "lang_prefix": ModuleTrainConfig(kind="prefix", prefix_length=8, prefix_positions="keep", **common),
            "lang_lora": ModuleTrainConfig(kind="lora", **common)}


@dataclass
class DemoConfig:
    # 256 per class (the whole source train split) and 8 epochs: with 64 shots the seed spread on the other languages
    # was so wide that only 1-2 of 6 had mean - 2 std above chance; at 256 it is 6 of 6 (docs/synthetic.md).
    shots: int = 256
    seeds: list[int] = field(default_factory=lambda: [1, 2, 3])
    methods: list[str] = field(default_factory=lambda: ["finetune", "deep_prompt", "deep_prompt+tcl+lcl"])
    epochs: int = 8
    batch_size: int = 16
    source: str | None = None  # source language (default: the one with the highest resource level)
    store: str = "xltune-demo.sqlite"
    report_dir: str | None = "xltune-demo-report"
    fresh: bool = False
    extra: list[str] = field(default_factory=list)  # --set overrides of the run config
    # transfer settings (train.setting): the world is parallel by construction, so translate-train / -test use its
    # own translations (an oracle: human-quality translations, as named in the tables)
    settings: list[str] = field(default_factory=lambda: ["zero_shot"])
    module: dict = field(default_factory=dict)  # --module overrides of the language modules' training

    def __post_init__(self) -> None:
        from .config import SETTINGS

        if not 1 <= self.shots <= 256:
            raise XLTuneError(f"demo shots must be in 1..256 per class, got {self.shots}")
        for m in self.methods:
            if m not in VARIANTS:
                raise unknown_name("demo method", m, VARIANTS)
        for st in self.settings:
            if st not in SETTINGS:
                raise unknown_name("demo setting", st, SETTINGS)


def run_configs(data_dir: Path, model_dir: Path, langs: list[str], source: str, demo: DemoConfig,
                method: str, translation_langs: list[str]) -> list[str]:
    sets = [
        f"model.name_or_path={model_dir}", "model.head_dropout=0.1",
        "task.name=custom", f"task.data_dir={Path(data_dir) / 'nli'}", "task.format=tsv",
        "task.file_pattern={split}-{lang}.tsv", "task.text_columns=[premise, hypothesis]", "task.label_column=label",
        "task.labels=[entailment, neutral, contradiction]", f"task.languages=[{', '.join(langs)}]",
        "task.parallel_splits=[train, dev, test]",  # rendered from shared meanings: parallel by construction
        f"train.languages=[{source}]", "train.split=train", f"train.shots={demo.shots}",
        f"train.epochs={demo.epochs}", f"train.batch_size={demo.batch_size}", "train.dev.patience=4",
        "eval.split=test", f"seeds=[{', '.join(map(str, demo.seeds))}]", f"store={demo.store}",
        "save_checkpoint=false",
    ] + VARIANTS[method]
    if _DCL[0] in VARIANTS[method]:
        sets.append(f"train.translations.languages=[{', '.join(translation_langs)}]")
    return sets + demo.extra


def run_demo(demo: DemoConfig, world_overrides: dict | None = None, log=print, pretrain=None) -> dict:
    """Build/reuse the world, run every method, print the table; returns timings and per-language results.

    ``world_overrides``: :class:`WorldConfig` fields; ``pretrain``: a :class:`PretrainConfig` (default: the
    documented one)."""
    from .api import run_experiment
    from .data.synthetic import WorldConfig, ensure_world_and_model

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    world_cfg = WorldConfig(**(world_overrides or {}))
    langs = [lang.code for lang in world_cfg.languages]
    source = source_language(demo, world_cfg.languages)  # a bad source fails before any build
    data_dir, model_dir, facts = ensure_world_and_model(world_cfg, fresh=demo.fresh, pretrain_cfg=pretrain)
    timings["world + pretraining"] = time.perf_counter() - t0
    for k, v in (facts.get("timings") or {}).items():
        log(f"   {k}: {v}")
    others = [x for x in langs if x != source]
    log(f"world: {len(langs)} languages, source {source}; data {data_dir}; model {model_dir}")

    results: dict[str, dict[str, list[float]]] = {}
    run_ids: dict[str, list[str]] = {}
    for method, setting in [(m, st) for m in demo.methods for st in demo.settings]:
        t = time.perf_counter()
        name = method if setting == "zero_shot" else f"{method} [{setting}]"
        if method in module_settings() and setting != "zero_shot":
            log(f"{name}: skipped (language modules are swapped per target language in zero-shot transfer only)")
            continue
        sets = run_configs(data_dir, model_dir, langs, source, demo, method, others[:3])
        if method in module_settings():
            mcfg = dataclasses.replace(module_settings()[method], **demo.module)
            folder = ensure_world_modules(data_dir, model_dir, langs, mcfg, log=_indent(log))
            sets.append(f"method.language_modules={folder}")
            timings[f"{name} modules"] = time.perf_counter() - t
        cfg = load_config(None, sets + ([f"train.setting={setting}"] if setting != "zero_shot" else []))
        runs = run_experiment(cfg, log=_indent(log))
        timings[name] = time.perf_counter() - t
        per_lang: dict[str, list[float]] = {}
        for r in runs:
            for lr in r.results:
                per_lang.setdefault(lr.lang, []).append(lr.headline)
        if any(r.skipped for r in runs):
            per_lang = _from_store(demo.store, [r.run_id for r in runs])
        results[name] = per_lang
        run_ids[name] = [r.run_id for r in runs]
    log(table(results, langs, world_cfg, facts, source))
    gains = module_gains(demo.store, run_ids, world_cfg, source)
    if gains:
        log(gains)
    log(versions())  # the numbers above depend on them (docs/synthetic.md gives the set its table was made with)
    stem = str(Path(demo.store).with_suffix(""))
    resources = write_resource_table(facts, world_cfg, Path(stem + "-resources.tsv"))
    tokstats = write_tokstats(data_dir, model_dir, langs, Path(stem + "-tokstats.csv"))
    log(f"resource table: {resources}; tokenization table: {tokstats} (for `xltune report` / `xltune claims`: "
        "--resources, --tokstats)")
    if demo.report_dir:
        t = time.perf_counter()
        from .report import build_report

        build_report(demo.store, demo.report_dir, resources=resources, tokstats=tokstats, progress=False)
        timings["report"] = time.perf_counter() - t
        log(f"report: {Path(demo.report_dir) / 'report.html'}")
    timings["total"] = time.perf_counter() - t0
    log("stage times: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    log(f"runs are in {Path(demo.store).resolve()} (read them with `xltune report --store {demo.store} --out DIR`)")
    return {"timings": timings, "results": results, "source": source, "languages": langs, "facts": facts,
            "resources": resources, "tokstats": tokstats}


VERSIONED = ("torch", "transformers", "tokenizers", "peft", "accelerate", "numpy", "scipy")


def versions() -> str:
    """'versions: xltune 0.1.0, python 3.11.7, torch 2.13.0+cpu, ...': what this demo ran with."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    from . import __version__

    parts = [f"xltune {__version__}", f"python {platform.python_version()}"]
    for name in VERSIONED:
        try:
            parts.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            parts.append(f"{name} (not installed)")
    return "versions: " + ", ".join(parts)


def ensure_world_modules(data_dir: Path, model_dir: Path, langs: list[str], cfg, log=print) -> Path:
    """Language modules of every language, each trained on its corpus of the world, cached with the world (beside
    its data and model, one folder per module setting); modules already there are reused."""
    import dataclasses
    import hashlib
    import json

    from .config import ModelConfig
    from .langmod.train import train_language_module

    key = hashlib.sha256(json.dumps(dataclasses.asdict(cfg), sort_keys=True).encode()).hexdigest()[:10]
    folder = Path(data_dir).parent / "modules" / f"{cfg.kind}-{key}"
    t = time.perf_counter()
    for lang in langs:
        train_language_module(ModelConfig(name_or_path=str(model_dir)), lang,
                              [Path(data_dir) / "corpus" / f"{lang}.txt"], folder, cfg,
                              log=lambda msg: log(msg) if " module for " in msg else None)
    log(f"{cfg.kind} language modules ({len(langs)} languages): {folder} ({time.perf_counter() - t:.1f} s)")
    return folder


# (variant with language modules, the variant it is compared with): its own ablation first, then finetune
MODULE_PAIRS = [("mad_x", "adapter"), ("lang_prefix", "deep_prompt"), ("lang_lora", "lora"), ("mad_x", "finetune"),
                ("lang_prefix", "finetune"), ("lang_lora", "finetune")]


def module_gains(store: str, run_ids: dict[str, list[str]], world_cfg, source: str, n_resamples: int = 1000) -> str:
    """Do language modules help low-resource languages more? For each pair of MODULE_PAIRS the demo ran: the gain
    (points) per target language and averaged over the high- and low-resource targets (high: more than an equal
    share of the pretraining corpus), with two-level paired-bootstrap 95 % CIs (matched seeds, then test
    examples), and the contrast low - high on the same resamples. Empty when no pair ran."""
    from .analysis.significance import group_gains, language_bootstraps, summarize
    from .store import Store

    pairs = [(a, b) for a, b in MODULE_PAIRS if a in run_ids and b in run_ids]
    if not pairs:
        return ""
    total = sum(lang.resource for lang in world_cfg.languages)
    share = {lang.code: lang.resource / total for lang in world_cfg.languages}
    targets = [c for c in share if c != source]
    groups = {"high": [c for c in targets if share[c] > 1 / len(share)],
              "low": [c for c in targets if share[c] <= 1 / len(share)]}
    groups = {k: v for k, v in groups.items() if v}

    def fmt(d: float, lo: float, hi: float) -> str:
        return f"{100 * d:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"

    lines = [f"Gains of language modules (points; two-level paired bootstrap 95 % CI over matched seeds and test "
             f"examples; targets only, source {source}); "
             + "; ".join(f"{g}: {', '.join(langs)}" for g, langs in groups.items())]
    per_lang = {}
    with Store(store) as s:
        variant = {m: s.runs(run_id=ids[0])[0]["variant"] for m, ids in run_ids.items() if ids}
        for i, (a, b) in enumerate(pairs):
            # one bootstrap per pair: the group intervals and the per-language ones share its resamples
            boot = language_bootstraps(s, variant[a], variant[b], langs=targets, n_resamples=n_resamples)
            res = group_gains(boot, groups)
            if i == 0:
                lines.append(f"{'':<26}" + "".join(f"{r.group:>22}" for r in res))
            lines.append(f"{a + ' - ' + b:<26}" + "".join(f"{fmt(r.diff, r.ci_low, r.ci_high):>22}" for r in res))
            per_lang[a, b] = {lg: (obs, *summarize(obs, d)[:2]) for lg, (obs, d, _) in boot.langs.items()}
    lines.append("per target language:")
    lines.append(f"{'':<26}" + "".join(f"{lg:>22}" for lg in targets))
    for (a, b), g in per_lang.items():
        lines.append(f"{a + ' - ' + b:<26}" + "".join(f"{fmt(*g[lg]) if lg in g else '–':>22}" for lg in targets))
    return "\n".join(lines)


def write_tokstats(data_dir: Path, model_dir: Path, langs: list[str], path: Path) -> Path:
    """Tokenization statistics (fertility, ...) of the world's tokenizer on each language's NLI test pairs, which
    are parallel by construction, as `xltune tokstats` writes them. Computed once per cached world (about 4 s)
    and kept beside its data; each demo copies it beside its store."""
    import os
    import shutil

    from .analysis.tokstats import load_tokenizer, tokstats_table, write_tokstats_csv

    cached = Path(data_dir) / "tokstats.csv"  # one per world: ``langs`` are the world's languages
    if not cached.is_file():
        texts = {}
        for lang in langs:
            rows = (Path(data_dir) / "nli" / f"test-{lang}.tsv").read_text(encoding="utf-8").splitlines()[1:]
            texts[lang] = [side for row in rows for side in row.split("\t")[:2]]
        tmp = cached.with_name(f"{cached.name}.tmp{os.getpid()}")
        write_tokstats_csv(tokstats_table(load_tokenizer(str(model_dir)), texts, progress=False), tmp)
        tmp.replace(cached)  # atomic: a concurrent demo never reads half a table
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cached, path)
    return path


def write_resource_table(facts: dict, world_cfg, path: Path) -> Path:
    """The world's pretraining tokens per language as a resource table (lang<TAB>tokens), so the report and the
    claims group the synthetic languages by their own data: high = more than an equal share of the corpus."""
    lang_facts = facts.get("languages", {}) if isinstance(facts, dict) else {}
    rows = []
    for lang in world_cfg.languages:
        f = lang_facts.get(lang.code, {})
        tokens = f.get("corpus_tokens", f.get("corpus_words"))  # worlds cached before corpus_tokens: words
        if tokens is None:
            raise XLTuneError(f"world facts lack the corpus size of {lang.code}; rebuild with --fresh")
        rows.append(f"{lang.code}\t{tokens}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# synthetic world {facts.get('key', '')}: pretraining tokens per language\n"
                    f"# high_share: {1 / len(rows):.4f}\nlang\ttokens\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def source_language(demo: DemoConfig, languages: list) -> str:
    """``demo.source``, checked against the world's languages, or the language with the highest resource level."""
    codes = [lang.code for lang in languages]
    if demo.source is not None and demo.source not in codes:
        raise unknown_name("demo source language", demo.source, codes)
    return demo.source or max(languages, key=lambda lang: lang.resource).code


def table(results: dict, langs: list[str], world_cfg, facts: dict, source: str) -> str:
    """Per-language accuracy, mean ± std over seeds, with resource share and fertility. ``*``: clearly above
    chance (mean - 2 std > chance); the last line counts such languages among the non-source ones per method."""
    chance = 100 / 3
    lang_facts = facts.get("languages", {}) if isinstance(facts, dict) else {}
    total = sum(lang.resource for lang in world_cfg.languages)
    w = max([23] + [len(m) + 2 for m in results])
    head = f"{'lang':<7}{'resource':>9}{'fertility':>10}" + "".join(f"{m:>{w}}" for m in results)
    lines = [f"NLI accuracy (%), mean ± std over seeds; chance {chance:.1f}; source {source}", head]
    clear = dict.fromkeys(results, 0)
    for cfg_lang in world_cfg.languages:
        lang = cfg_lang.code
        fert = lang_facts.get(lang, {}).get("fertility")
        row = f"{lang:<7}{100 * cfg_lang.resource / total:>8.1f}%{fert if fert is None else f'{fert:.2f}':>10}"
        for m, per_lang in results.items():
            v = np.array(per_lang.get(lang, [])) * 100
            if not len(v):
                row += f"{'–':>{w}}"
                continue
            sd = v.std(ddof=1) if len(v) > 1 else math.nan
            above = v.mean() - 2 * sd > chance
            clear[m] += above and lang != source
            row += f"{f'{v.mean():.1f} ± {sd:.1f}' + ('*' if above else ' '):>{w}}"
        lines.append(row)
    others = len(world_cfg.languages) - 1
    lines.append("* mean - 2 std above chance; other languages clearly above chance: "
                 + ", ".join(f"{m} {n}/{others}" for m, n in clear.items()))
    return "\n".join(lines)


def _from_store(store: str, run_ids: list[str]) -> dict[str, list[float]]:
    from .store import Store

    out: dict[str, list[float]] = {}
    with Store(store) as s:
        for r in s.metrics(run_id=run_ids, metric="accuracy"):
            out.setdefault(r["lang"], []).append(r["value"])
    return out


def _indent(log):
    return lambda msg="", *a, **k: log("   " + str(msg).replace("\n", "\n   "), *a, **k)


def parse_knobs(items: list[str], cls: type, flag: str) -> dict:
    """``KEY=VALUE`` items (values read as YAML: ``steps=300``, ``nli_sizes={train: 300, dev: 30, test: 150}``)
    as keyword arguments of the dataclass ``cls``, type-checked as config files are; an unknown key or a bad value
    is a clear error."""
    import typing

    import yaml

    hints = {k: v for k, v in typing.get_type_hints(cls).items() if k != "languages"}
    out: dict = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep:
            raise XLTuneError(f"{flag} expects KEY=VALUE, got {item!r}")
        if key not in hints:
            raise unknown_name(f"{flag} key", key, hints)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as e:
            raise XLTuneError(f"{flag} {key}: cannot read {raw!r} as a value: {e}") from None
        out[key] = coerce_field(value, hints[key], key, flag)
    try:
        cls(**out)  # validates the values now, before any build
    except TypeError as e:
        raise XLTuneError(f"{flag}: {e}") from None
    return out


def select_languages(codes: list[str], languages: list) -> list:
    """The default languages restricted to ``codes`` (in their default order); at least two."""
    known = [lang.code for lang in languages]
    for code in codes:
        if code not in known:
            raise unknown_name("demo language", code, known)
    chosen = [lang for lang in languages if lang.code in codes]
    if len(chosen) < 2:
        raise XLTuneError(f"--languages needs at least two languages, got {codes}")
    return chosen


def parse_resources(items: list[str], world_cfg_languages) -> list:
    """``code=level`` overrides of the languages' resource levels."""
    langs = [dataclasses.replace(lang) for lang in world_cfg_languages]
    for item in items:
        if "=" not in item:
            raise XLTuneError(f"--resource expects CODE=LEVEL, got {item!r}")
        code, level = item.split("=", 1)
        match = [lang for lang in langs if lang.code == code]
        if not match:
            raise unknown_name("demo language", code, [lang.code for lang in langs])
        try:
            match[0].resource = float(level)
        except ValueError:
            raise XLTuneError(f"--resource {code}: expected a number, got {level!r}") from None
        if not match[0].resource > 0:
            raise XLTuneError(f"--resource {code}: the level must be > 0, got {level!r}")
    return langs


def resource_sweep(demo: DemoConfig, languages: list, spec: str, log=print, world_overrides: dict | None = None,
                   pretrain=None, pretrain_seeds: list[int] | None = None) -> dict[float, dict]:
    """Rebuild the world with ``LANG`` at each level (everything else fixed) and report its transfer accuracy.

    Each level is its own world and pretrained model (cached). The other languages keep exactly their documents
    (``WorldConfig.docs_per_level``, per-language random streams), so the corpora differ only in LANG's documents.
    The pretraining still sees them in another order, and whether the tiny model learns the comparison within
    its steps varies with that order; ``pretrain_seeds`` pretrains each level several times, and the table pools
    the runs of all of them. Returns level -> {"share", "fertility", method: [accuracy per run]}."""
    from .data.synthetic import PretrainConfig, WorldConfig

    code, levels = parse_sweep(spec)
    parse_resources([f"{code}={levels[0]}"], languages)  # an unknown language fails before any build
    # The source stays the one of the unswept world, even when a level lifts LANG above it.
    source = source_language(demo, languages)
    if code == source:
        raise XLTuneError(f"--resource-sweep: {code} is the source language; sweep a target language")
    pretrain = pretrain or PretrainConfig()
    pretrain_seeds = pretrain_seeds or [pretrain.seed]
    # Every other language keeps its documents: counts per unit of level fixed at the unswept world's.
    world_overrides = dict(world_overrides or {})
    if world_overrides.get("docs_per_level") is None:
        corpus_docs = world_overrides.get("corpus_docs", WorldConfig.corpus_docs)
        world_overrides["docs_per_level"] = corpus_docs / sum(lang.resource for lang in languages)
    out: dict[float, dict] = {}
    for level in levels:
        langs = parse_resources([f"{code}={level}"], languages)
        row: dict = {"share": level / sum(lang.resource for lang in langs), **{m: [] for m in demo.methods}}
        for ps in pretrain_seeds:
            tag = f"-{code}-{level:g}" + (f"-p{ps}" if len(pretrain_seeds) > 1 else "")
            sub = dataclasses.replace(demo, store=str(Path(demo.store).with_suffix("")) + f"{tag}.sqlite",
                                      report_dir=None, source=source)
            log(f"== {code} at resource level {level:g}" + (f", pretraining seed {ps}" if len(pretrain_seeds) > 1 else ""))
            res = run_demo(sub, {**world_overrides, "languages": langs}, log=_indent(log),
                           pretrain=dataclasses.replace(pretrain, seed=ps))
            row["fertility"] = res["facts"].get("languages", {}).get(code, {}).get("fertility")
            for m, v in res["results"].items():
                row[m] += list(v.get(code, []))
        out[level] = row
    log(sweep_table(code, out, demo.methods, runs=f"{len(pretrain_seeds)} pretraining x {len(demo.seeds)} seeds"))
    return out


def parse_sweep(spec: str) -> tuple[str, list[float]]:
    """``LANG=L1,L2,L3`` -> (LANG, [levels]); levels are positive numbers, at least two."""
    code, sep, raw = spec.partition("=")
    try:
        levels = [float(x) for x in raw.split(",") if x.strip()]
    except ValueError:
        levels = []
    if not sep or not code or len(levels) < 2 or any(not (x > 0) for x in levels):
        raise XLTuneError(f"--resource-sweep expects LANG=L1,L2,... with two or more positive levels, got {spec!r}")
    return code, levels


def sweep_table(code: str, out: dict[float, dict], methods: list[str], runs: str = "seeds") -> str:
    """Accuracy of ``code`` per level (mean ± std over seeds), with its corpus share and fertility, and the Spearman
    correlation of accuracy with the level per method (+1: accuracy rises with every step up)."""
    from scipy.stats import spearmanr

    levels = list(out)
    lines = [f"{code}: transfer accuracy (%) by resource level (mean ± std over {runs})",
             f"{'level':>8}{'share':>8}{'fertility':>10}" + "".join(f"{m:>22}" for m in methods)]
    for level in levels:
        row = out[level]
        fert = row.get("fertility")
        line = f"{level:>8g}{100 * row['share']:>7.1f}%{fert if fert is None else f'{fert:.2f}':>10}"
        for m in methods:
            v = np.array(row.get(m, [])) * 100
            line += f"{f'{v.mean():.1f} ± {v.std(ddof=1) if len(v) > 1 else math.nan:.1f}':>22}" if len(v) else f"{'–':>22}"
        lines.append(line)
    if len(levels) > 2:
        rho = {m: spearmanr(levels, [float(np.mean(out[x].get(m) or [math.nan])) for x in levels]).statistic
               for m in methods}
        lines.append(f"{'spearman':>26}" + "".join(f"{r:>22.2f}" for r in rho.values()))
    return "\n".join(lines)
