"""Experiment configuration: dataclasses with help text (field metadata) and validation (``__post_init__``).

Loaded from YAML, overridden with ``--set key.sub=value``; the resolved config (every field, defaults filled in)
is stored with each run and can be re-run from the store alone (``ExperimentConfig.from_dict(run["config"])``).
A path is relative to where it is written: paths in a config file to the file's folder (``load_config`` makes them
absolute as it reads the file), paths given on the command line (``--set``, flags) and the defaults (``store:
results.sqlite``, ``output_dir: runs``) to the working directory (``resolve_paths``, before a run). Either way the
stored config holds absolute paths, so it re-runs anywhere and a run's key does not depend on the directory it was
started from.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import yaml

from .errors import XLTuneError, note, quiet_notes, yaml_error
from .methods.base import MethodSettings, build_method_settings, method_spec
from .objectives.base import ObjectiveSettings, build_objective_list, default_objectives, objective_tag
from .settings import SECTIONS, build, check_choice, check_positive, check_unit, coerce_field, describe as _describe
from .settings import section, setting

_f = setting
_choice, _positive, _unit = check_choice, check_positive, check_unit


Shots = Union[int, str]  # an int, or "all"


@dataclass
class ModelConfig:
    name_or_path: str = _f("", "hub id (e.g. facebook/xglm-564M) or local directory of a transformers model")
    kind: str = _f("auto", "auto | decoder | encoder (auto: from the config's architecture)")
    dtype: str = _f("auto", "auto | float32 | bfloat16 | float16 (auto: float32 on CPU, bfloat16 frozen weights on GPU)")
    attn_implementation: str = _f("sdpa", "sdpa | eager | flash_attention_2")
    pooling: str = _f("auto", "sequence representation: auto | last | first | mean (auto: last for decoders, mean for encoders)")
    padding_side: str = _f("auto", "auto | left | right (auto: the tokenizer's own)")
    max_length: int = _f(256, "longest input in tokens (prompt/prefix tokens excluded); longer inputs are an error for sentence tasks, windowed for token tasks")
    gradient_checkpointing: bool = _f(False, "recompute activations in backward to save memory (works with deep prompts)")
    head_dropout: float = _f(0.1, "dropout before the task head")
    head: str = _f("classifier", "classifier (linear head on the pooled state) | verbalizer (decoders: label words scored by the LM head, see docs/baselines.md)")

    def __post_init__(self) -> None:
        _choice("model.kind", self.kind, ("auto", "decoder", "encoder"))
        _choice("model.dtype", self.dtype, ("auto", "float32", "bfloat16", "float16"))
        _choice("model.attn_implementation", self.attn_implementation, ("sdpa", "eager", "flash_attention_2"))
        _choice("model.pooling", self.pooling, ("auto", "last", "first", "mean"))
        _choice("model.padding_side", self.padding_side, ("auto", "left", "right"))
        _positive("model.max_length", self.max_length)
        _unit("model.head_dropout", self.head_dropout)
        _choice("model.head", self.head, ("classifier", "verbalizer"))


@dataclass
class TaskConfig:
    name: str = _f("xnli", "a declared task (see `xltune tasks`) or custom / custom_tagging")
    data_dir: str | None = _f(None, "folder with the task's files; null: load from the hub through `datasets`")
    # Overrides of the declared task (required for custom / custom_tagging):
    format: str | None = _f(None, "tsv | jsonl | conll | conllu | xtreme_tokens | masakhaner")
    file_pattern: str | None = _f(None, "file name under data_dir with {split} and {lang}, e.g. '{split}-{lang}.tsv'")
    text_columns: list[str] | None = _f(None, "sentence tasks: the text column names (TSV header / JSON keys), 1 or 2")
    label_column: str | None = _f(None, "sentence tasks: the label column name")
    labels: list[str] | None = _f(None, "the label set (tag set for tagging tasks, IOB2 names)")
    languages: list[str] | None = _f(None, "languages the task declares")
    encoding: str | None = _f(None, "file encoding (default utf-8), e.g. latin-1 for CoNLL-2002")
    tag_scheme: str | None = _f(None, "tagging: IOB1 | IOB2 | BIOES (normalised to IOB2)")
    token_column: int | None = _f(None, "CoNLL: 0-based column of the word")
    tag_column: int | None = _f(None, "CoNLL: 0-based column of the tag (-1: last)")
    separator: str | None = _f(None, "CoNLL: column separator (default: any whitespace)")
    parallel_splits: list[str] | None = _f(None, "splits whose files are line-aligned translations across languages "
                                                 "(declared for xnli, pawsx; set it for your own parallel files)")
    label_alignment: str = _f("auto", "tagging: the sub-word of each word that carries its label and prediction: auto "
                                      "(last for decoders, which see a word whole only at its last piece; first for "
                                      "encoders) | first | last | all (every sub-word trains; read at the first)")
    template: str | None = _f(None, "verbalizer / in_context: a template YAML file or a shipped name (null: the task's own, e.g. xnli = the lm-evaluation-harness prompt)")


@dataclass
class DevConfig:
    policy: str = _f("source", "model selection: source (source-language dev split) | last (the last epoch) | "
                               "target_oracle (the targets' labelled dev splits: an ORACLE, marked so wherever it is "
                               "shown) | checkpoint_average (trainable weights averaged over the last average_last "
                               "evaluations) | run_average (the last epoch; plus the seeds' logits averaged: its own "
                               "variant)")
    split: str = _f("dev", "split used for model selection")
    patience: int = _f(5, "early stopping: evaluations without improvement before stopping (0: never stop early)")
    max_examples: int = _f(2000, "cap on dev examples per language used for selection (0: all)")
    average_last: int = _f(3, "checkpoint_average: how many of the last evaluations' weights are averaged")

    def __post_init__(self) -> None:
        if self.policy == "none":  # the name of "last" before xltune 0.2
            self.policy = "last"
        _choice("train.dev.policy", self.policy, DEV_POLICIES)
        _positive("train.dev.average_last", self.average_last)


DEV_POLICIES = ("source", "last", "target_oracle", "checkpoint_average", "run_average")
SETTINGS = ("zero_shot", "few_shot_target", "translate_train", "translate_train_all", "translate_test")


@dataclass
class TranslateConfig:
    by: str = _f("oracle", "where the settings' translations come from: oracle (the same lines of the other language's "
                           "file: human translations, for splits the task declares parallel; shown as an oracle) | mt "
                           "(a seq2seq model: translate.model)")
    model: str | None = _f(None, "mt: hub id or folder of a seq2seq translation model (NLLB, M2M-100, Marian, mBART)")
    codes: dict[str, str] = _f({}, "mt: the model's code for a task language, e.g. {en: eng_Latn} for NLLB (default: "
                                   "the task's own code)")
    batch_size: int = _f(16, "mt: sentences per generation batch")
    max_new_tokens: int = _f(256, "mt: longest translation in tokens")

    def __post_init__(self) -> None:
        _choice("train.translate.by", self.by, ("oracle", "mt"))
        if self.by == "mt" and not self.model:
            raise XLTuneError("train.translate.by: mt needs train.translate.model (a seq2seq model's hub id or folder)")


@dataclass
class TranslationsConfig:
    languages: list[str] = _f([], "languages whose line-aligned split (train.split) holds translations of the shots "
                                  "(objectives that read translations: translation_contrast, label_contrast, "
                                  "projected_cross_entropy)")
    parallel_file: str | None = _f(None, "TSV source<TAB>translation[<TAB>...] whose source column equals a shot's "
                                         "text (pair tasks: segments joined by ' ||| '; tagging: words joined by "
                                         "spaces): more translations of the shots")


@dataclass
class TrainConfig:
    languages: list[str] = _f(["en"], "source language(s) of the few-shot training examples")
    split: str = _f("train", "split the few-shot pool is drawn from")
    shots: Shots = _f(16, "examples per class (sentence tasks) / mentions per type (NER) / sentences per tag (POS); 'all' takes the whole pool")
    shot_seed: int | None = _f(None, "seed of the few-shot sample (null: the run's seed, which then drives sampling "
                                     "and initialisation together). Like seeds, not part of the variant: runs that "
                                     "differ in it are seeds of one experiment, and the report splits their variance "
                                     "into shot-set and initialisation parts")
    epochs: int = _f(20, "training epochs")
    max_steps: int = _f(0, "stop after this many optimizer steps (0: no limit)")
    lr: float = _f(1e-2, "peak learning rate (AdamW)")
    head_lr: float | None = _f(None, "learning rate of the task head (null: same as lr)")
    weight_decay: float = _f(0.0, "AdamW weight decay")
    warmup_ratio: float = _f(0.1, "share of steps with linear warmup, then linear decay to 0")
    batch_size: int = _f(16, "examples per optimizer step (before gradient accumulation split)")
    grad_accum: int = _f(1, "gradient accumulation steps (micro-batch = batch_size / grad_accum)")
    max_grad_norm: float = _f(1.0, "gradient clipping (0: none)")
    mixed_precision: str = _f("auto", "auto | no | bf16 | fp16 (auto: bf16 on a GPU that supports it, else no)")
    eval_every: int = _f(0, "evaluate on dev every N steps (0: every epoch)")
    setting: str = _f("zero_shot", "zero_shot (train on the source shots, evaluate every target) | few_shot_target "
                                   "(then K labelled shots of each target: one model per target) | translate_train "
                                   "(the shots translated into each target: one model per target) | "
                                   "translate_train_all (one model on the shots and all their translations) | "
                                   "translate_test (each target's test set translated into the source language)")
    target_shots: Shots | None = _f(None, "few_shot_target: shots per class of each target (null: train.shots)")
    translate: TranslateConfig = section(TranslateConfig, "translations for the translate_* settings")
    dev: DevConfig = section(DevConfig, "model selection and early stopping")
    translations: TranslationsConfig = section(TranslationsConfig, "translations of the shots, for the objectives "
                                                                   "that read them")
    report_to: list[str] = _f([], "experiment trackers (accelerate's): tensorboard, wandb, mlflow, comet_ml, aim, "
                                  "clearml, dvclive, swanlab, trackio; each run logs its loss and learning rate per "
                                  "step, dev scores, test scores per language and its variant label (docs: "
                                  "xltune.tracking; offline: TensorBoard files, WANDB_MODE=offline)")
    logging_dir: str | None = _f(None, "where file-based trackers write, one folder per run (TensorBoard: "
                                       "LOGGING_DIR/RUN_ID/); null: output_dir")

    def __post_init__(self) -> None:
        if isinstance(self.shots, str) and self.shots != "all":
            raise XLTuneError(f"train.shots must be a positive integer or 'all', got {self.shots!r}")
        if isinstance(self.shots, int) and self.shots < 0:  # 0 only for in_context (checked in ExperimentConfig)
            raise XLTuneError(f"train.shots must be a positive integer or 'all', got {self.shots}")
        if not self.languages:
            raise XLTuneError("train.languages must name at least one source language")
        _positive("train.epochs", self.epochs)
        _positive("train.batch_size", self.batch_size)
        _positive("train.grad_accum", self.grad_accum)
        if self.batch_size % self.grad_accum:
            raise XLTuneError(f"train.batch_size ({self.batch_size}) must be a multiple of train.grad_accum ({self.grad_accum})")
        if self.lr <= 0:
            raise XLTuneError(f"train.lr must be > 0, got {self.lr}")
        _unit("train.warmup_ratio", self.warmup_ratio)
        _choice("train.mixed_precision", self.mixed_precision, ("auto", "no", "bf16", "fp16"))
        _choice("train.setting", self.setting, SETTINGS)
        if isinstance(self.target_shots, str) and self.target_shots != "all":
            raise XLTuneError(f"train.target_shots must be a positive integer or 'all', got {self.target_shots!r}")
        from .tracking import TRACKERS

        for name in self.report_to:
            _choice("train.report_to", name, tuple(TRACKERS))
        if len(set(self.report_to)) != len(self.report_to):
            raise XLTuneError(f"train.report_to names a tracker twice: {self.report_to}")


@dataclass
class EvalConfig:
    split: str = _f("test", "split evaluated in every target language")
    languages: list[str] | str = _f("all", "target languages, or 'all' (every declared language that has a file)")
    batch_size: int = _f(64, "evaluation batch size (results do not depend on it)")
    max_examples: int = _f(0, "cap on examples per language (0: all); for quick looks, never for reported numbers")
    save_predictions: bool = _f(True, "store per-example predictions (needed for paired bootstrap tests)")
    ner_mode: str = _f("conlleval", "span F1 for NER: conlleval (seqeval's default mode = conlleval.pl, as XTREME and "
                                    "P-tuning v2 report) | strict (seqeval strict IOB2: a lone I- is no entity); used "
                                    "by the headline, dev selection, tables, bootstrap and claims alike")

    def __post_init__(self) -> None:
        if isinstance(self.languages, str) and self.languages != "all":
            self.languages = [self.languages]  # one language (--targets de), as train.languages takes one
        _positive("eval.batch_size", self.batch_size)
        _choice("eval.ner_mode", self.ner_mode, ("conlleval", "strict"))


@dataclass
class ExperimentConfig:
    model: ModelConfig = section(ModelConfig, "the backbone")
    method: MethodSettings = _f(dataclasses.MISSING, "the tuning method: {name: ..., its own keys} (`xltune methods`)",
                                default_factory=lambda: build_method_settings({}))
    task: TaskConfig = section(TaskConfig, "the task and its data")
    train: TrainConfig = section(TrainConfig, "few-shot training")
    eval: EvalConfig = section(EvalConfig, "evaluation in the target languages")
    objectives: list[ObjectiveSettings] = _f(dataclasses.MISSING, "training objectives, each {name, weight, its own "
                                             "keys} (`xltune objectives`)", default_factory=default_objectives)
    name: str | None = _f(None, "a label for this configuration in tables (default: derived from what differs "
                                "from the defaults); not part of the run's identity")
    seeds: list[int] = _f([1], "one run per seed (seed drives sampling, initialisation and data order)")
    store: str = _f("results.sqlite", "SQLite results store")
    output_dir: str = _f("runs", "checkpoints (trainable parameters only) go to OUTPUT_DIR/RUN_ID/")
    save_checkpoint: bool = _f(True, "keep the trainable parameters of the selected model")

    def __post_init__(self) -> None:
        if not self.seeds:
            raise XLTuneError("seeds must list at least one seed")
        if not self.model.name_or_path:
            raise XLTuneError("model.name_or_path is required (a hub id or a local model directory)")
        if self.train.shots == 0 and not method_spec(self.method.name).zero_shot:
            zero = [m for m in _methods() if method_spec(m).zero_shot]
            raise XLTuneError(f"train.shots must be a positive integer or 'all' (0 only with method "
                              f"{' or '.join(zero)}), got 0")

    @property
    def objective_tag(self) -> str:
        """'none', 'tcl+lcl', 'kd', ...: the objectives beyond plain cross-entropy."""
        return objective_tag(self.objectives)

    # -- (de)serialisation -------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict, source: str = "config") -> ExperimentConfig:
        return build(cls, upgrade(data, source), source, "")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def run_key(self, seed: int) -> str:
        """Stable id of one run: hash of the configuration's variant (see :mod:`xltune.variants`) and the seed."""
        from .variants import run_key

        return run_key(self, seed)


def _methods() -> list[str]:
    from .methods.base import METHODS

    return METHODS.names()


SECTIONS[(ExperimentConfig, "method")] = lambda v, source, key: build_method_settings(v, source, key)
SECTIONS[(ExperimentConfig, "objectives")] = lambda v, source, key: build_objective_list(v, source, key)


# -- configs written for older versions --------------------------------------------------------------------------
LEGACY_OBJECTIVE_KEYS = ("translation_contrast", "label_contrast", "temperature", "translation_languages",
                         "exclude_o", "parallel_file", "projected_ce")


def upgrade(data: dict, source: str = "config") -> dict:
    """A config mapping in today's shape. Older configs had one ``objective:`` section of weights (now the
    ``objectives:`` list, with ``train.translations`` for where translations come from); they are converted with a
    one-line note. Method keys renamed since are mapped by the method itself (see ``MethodSpec.renamed``)."""
    if not isinstance(data, dict) or "objective" not in data:
        return data
    data = dict(data)
    old = data.pop("objective")
    if old is None:
        old = {}
    if not isinstance(old, dict):
        raise XLTuneError(f"{source}: objective must be a mapping, got {old!r}")
    for k in old:
        if k not in LEGACY_OBJECTIVE_KEYS:
            from .errors import unknown_name

            raise unknown_name("config key", f"objective.{k}", [f"objective.{x}" for x in LEGACY_OBJECTIVE_KEYS],
                               source)
    if "objectives" in data:
        raise XLTuneError(f"{source}: give either objectives (a list) or the older objective section, not both")
    note(f"{source}: the objective section is now an objectives list, e.g. objectives: [{{name: cross_entropy}}, "
         f"{{name: label_contrast, weight: 0.5}}], and train.translations (the old keys still work)")
    temp = old.get("temperature", 0.1)
    tcl, lcl = old.get("translation_contrast", 0.0) or 0.0, old.get("label_contrast", 0.0) or 0.0
    langs, parallel = old.get("translation_languages") or [], old.get("parallel_file")
    objectives: list[dict] = [{"name": "cross_entropy"}]
    if _number(tcl) > 0:
        objectives.append({"name": "translation_contrast", "weight": tcl, "temperature": temp})
    if (langs or parallel) and _number(old.get("projected_ce", 1.0)) > 0 and _is_token_task(data.get("task")):
        # tagging with translations trained on them with projected tags (on by default then)
        objectives.append({"name": "projected_cross_entropy", "weight": old.get("projected_ce", 1.0)})
    if _number(lcl) > 0:
        objectives.append({"name": "label_contrast", "weight": lcl, "temperature": temp,
                           "exclude_o": old.get("exclude_o", True)})
    data["objectives"] = objectives
    if langs or parallel:
        train = dict(data.get("train") or {})
        tr = dict(train.get("translations") or {})
        if langs:
            tr["languages"] = langs
        if parallel:
            tr["parallel_file"] = parallel
        train["translations"] = tr
        data["train"] = train
    return data


def _number(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return 0.0


def _is_token_task(task: Any) -> bool:
    from .data.tasks import resolve_task

    try:
        with quiet_notes():
            return resolve_task(build(TaskConfig, task or {}, "config", "task.")).kind == "token"
    except XLTuneError:
        return False


def load_config(path: str | Path | None, overrides: list[str] | None = None, base: dict | None = None) -> ExperimentConfig:
    """YAML file (or ``base`` dict) + ``key.sub=value`` overrides -> validated :class:`ExperimentConfig`."""
    data: dict = dict(base or {})
    source = "config"
    if path is not None:
        path = Path(path)
        source = str(path)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except OSError as e:
            raise XLTuneError(f"cannot read config {path}: {e.strerror}") from None
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise yaml_error(e, path) from None
        if loaded is None:  # empty, or only comments: every key from the command line (and the defaults)
            loaded = {}
        if not isinstance(loaded, dict):
            raise XLTuneError(f"{path}: expected a mapping of sections (model, method, task, ...), got {type(loaded).__name__}")
        data.update(rebase_paths(upgrade(loaded, source), path.resolve().parent, source))
    for item in overrides or []:
        apply_override(data, item)
    return ExperimentConfig.from_dict(data, source)


def apply_override(data: dict, item: str) -> None:
    """Apply ``a.b.c=value`` (value parsed as YAML: numbers, booleans, lists ``[a, b]``) to a nested dict."""
    if "=" not in item:
        raise XLTuneError(f"--set expects key.sub=value, got {item!r}")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    parts = key.strip().split(".")
    node = data
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise XLTuneError(f"--set {key}: {p!r} is not a section")
    node[parts[-1]] = value


# -- paths ----------------------------------------------------------------------------------------------------------
def _is_local_path(value: str, base: Path) -> bool:
    """model.name_or_path is a folder (not a hub id) when it is absolute, starts with . or ~, or exists there."""
    q = Path(value).expanduser()
    return q.is_absolute() or value.startswith((".", "~")) or (base / q).exists()


def _absolute(value: str, base: Path) -> str:
    q = Path(value).expanduser()
    return str(q if q.is_absolute() else (base / q).resolve())


def path_slots(data: dict) -> list[tuple[dict, str, str, str]]:
    """(mapping, key, dotted name, kind) of every path a config mapping holds. kind: 'in' (read: must exist),
    'model' (a folder or a hub id), 'template' (a file, or a shipped template's name), 'out' (written)."""
    slots: list[tuple[dict, str, str, str]] = []

    def section(*keys: str) -> dict | None:
        node: Any = data
        for k in keys:
            node = node.get(k) if isinstance(node, dict) else None
        return node if isinstance(node, dict) else None

    if (m := section("model")) is not None:
        slots.append((m, "name_or_path", "model.name_or_path", "model"))
    if (t := section("task")) is not None:
        slots += [(t, "data_dir", "task.data_dir", "in"), (t, "template", "task.template", "template")]
    if (tr := section("train", "translations")) is not None:
        slots.append((tr, "parallel_file", "train.translations.parallel_file", "in"))
    if (tn := section("train")) is not None:
        slots.append((tn, "logging_dir", "train.logging_dir", "out"))
    if (tt := section("train", "translate")) is not None:
        slots.append((tt, "model", "train.translate.model", "model"))
    if (me := section("method")) is not None:  # language modules: one folder, or one per language
        modules = me.get("language_modules")
        if isinstance(modules, dict):
            slots += [(modules, lang, f"method.language_modules.{lang}", "in") for lang in modules]
        else:
            slots.append((me, "language_modules", "method.language_modules", "in"))
    slots += [(data, "store", "store", "out"), (data, "output_dir", "output_dir", "out")]
    objectives = data.get("objectives")
    for i, o in enumerate(objectives if isinstance(objectives, list) else []):
        if not isinstance(o, dict):
            continue
        if isinstance(o.get("text"), dict):  # files an objective reads (distillation's unlabelled text)
            slots += [(o["text"], lang, f"objectives[{i}].text.{lang}", "in") for lang in o["text"]]
        slots.append((o, "teacher_store", f"objectives[{i}].teacher_store", "in"))
    return [(node, k, name, kind) for node, k, name, kind in slots if isinstance(node.get(k), str) and node[k]]


def rebase_paths(data: dict, base: Path, source: str = "config") -> dict:
    """The relative paths of a config mapping made absolute against ``base`` (the folder of the file they are
    written in); returns a copy. A path that is not there but is there relative to the working directory -- a config
    written when paths were relative to it -- is an error that gives the path to write instead."""
    import copy

    data = copy.deepcopy(data)
    for node, key, name, kind in path_slots(data):
        value = node[key]
        if Path(value).expanduser().is_absolute():
            continue
        if kind == "model" and not _is_local_path(value, base):
            if (Path.cwd() / value).exists():
                _moved(source, name, value, base)
            continue  # a hub id
        if kind == "template" and not ("/" in value or value.endswith((".yaml", ".yml"))):
            continue  # a shipped template's name
        if kind in ("in", "model", "template") and not (base / value).exists() and (Path.cwd() / value).exists() \
                and (base / value).resolve() != (Path.cwd() / value).resolve():
            _moved(source, name, value, base)
        node[key] = _absolute(value, base)
    return data


def _moved(source: str, name: str, value: str, base: Path) -> None:
    import os

    fix = os.path.relpath(Path.cwd() / value, base)
    raise XLTuneError(f"{source}: {name} {value!r} is relative to the config file's folder ({base}), where it does "
                      f"not exist; it exists relative to the working directory: write {fix!r} (paths in a config file "
                      f"are relative to the file)")


def rebase_override(item: str, base: Path, source: str = "config") -> str:
    """A ``key=value`` override written in a file (a sweep plan's ``set:``) with its path made absolute against the
    file's folder; other overrides unchanged."""
    data: dict = {}
    apply_override(data, item)
    rebased = rebase_paths(data, base, source)
    if rebased == data:
        return item
    key = item.split("=", 1)[0].strip()
    node: Any = rebased
    for part in key.split("."):
        node = node[part]
    return f"{key}={json.dumps(node)}"  # JSON is YAML: the value reads back as written


def resolve_paths(cfg: ExperimentConfig, base: Path | None = None) -> ExperimentConfig:
    """Make the paths still relative (defaults, command-line values; a config file's own were made absolute as it
    was read) absolute against ``base`` (default: the working directory), so the stored config re-runs anywhere."""
    base = Path.cwd() if base is None else base

    def absolute(p: str) -> str:
        return _absolute(p, base)

    if cfg.task.data_dir:
        cfg.task.data_dir = absolute(cfg.task.data_dir)
    if cfg.task.template and ("/" in cfg.task.template or cfg.task.template.endswith((".yaml", ".yml"))):
        cfg.task.template = absolute(cfg.task.template)  # a file; a bare name is a shipped template
    if cfg.train.translations.parallel_file:
        cfg.train.translations.parallel_file = absolute(cfg.train.translations.parallel_file)
    if cfg.train.translate.model and _is_local_path(cfg.train.translate.model, base):
        cfg.train.translate.model = absolute(cfg.train.translate.model)
    cfg.method.resolve_paths(absolute)  # files a method reads (e.g. language modules)
    for o in cfg.objectives:  # files an objective reads (e.g. distillation's unlabelled text)
        for k, v in getattr(o, "text", {}).items():
            o.text[k] = absolute(v)
        if getattr(o, "teacher_store", None):
            o.teacher_store = absolute(o.teacher_store)
    if _is_local_path(cfg.model.name_or_path, base):
        cfg.model.name_or_path = absolute(cfg.model.name_or_path)
    cfg.store = absolute(cfg.store)
    cfg.output_dir = absolute(cfg.output_dir)
    if cfg.train.logging_dir:
        cfg.train.logging_dir = absolute(cfg.train.logging_dir)
    return cfg


def describe(cls: type = ExperimentConfig, prefix: str = "") -> list[tuple[str, str, str]]:
    """(key, default, help) for every field, for `xltune config-keys` and the docs; each method's own keys and
    each objective's are listed as ``method.KEY`` / ``objectives[].KEY`` with the method or objective named."""
    from .methods.base import METHODS
    from .objectives.base import OBJECTIVES

    rows = []
    for key, default, help_ in _describe(cls, prefix):
        rows.append((key, default, help_))
        if key == "method":
            for m in METHODS.names():
                for k, d, h in _describe(METHODS.get(m).settings, "method."):
                    if k != "method.name":
                        rows.append((k, d, f"{m}: {h}"))
        if key == "objectives":
            for o in OBJECTIVES.names():
                for k, d, h in _describe(OBJECTIVES.get(o).settings, "objectives[]."):
                    if k != "objectives[].name" and (k != "objectives[].weight" or o == "cross_entropy"):
                        rows.append((k, d, f"{o}: {h}"))
    return rows


def _build(cls: type, data: Any, source: str, prefix: str) -> Any:
    return build(cls, data, source, prefix)
