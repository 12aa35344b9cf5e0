"""Experiment configuration: dataclasses with help text (field metadata) and validation (``__post_init__``).

Loaded from YAML, overridden with ``--set key.sub=value``; the resolved config (every field, defaults filled in)
is stored with each run and can be re-run from the store alone (``ExperimentConfig.from_dict(run["config"])``).
Paths in a config file are resolved relative to the current directory (the project root when you follow the
README); ``resolve_paths`` makes them absolute before a run so the stored config is self-contained.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

from .errors import XLTuneError, unknown_name, yaml_error


def _f(default: Any = dataclasses.MISSING, help: str = "", **kw) -> Any:
    if isinstance(default, (list, dict)):
        value = default
        return field(default_factory=lambda: type(value)(value), metadata={"help": help}, **kw)
    return field(default=default, metadata={"help": help}, **kw)


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
class MethodConfig:
    name: str = _f("deep_prompt", "finetune | deep_prompt | prompt | lora (see `xltune methods`)")
    prefix_length: int = _f(16, "deep_prompt: key/value prefix length per layer; prompt: number of soft tokens")
    prefix_projection: bool = _f(False, "deep_prompt: reparameterise prefixes through a 2-layer MLP (P-tuning v2 option)")
    prefix_hidden_size: int = _f(512, "deep_prompt: hidden size of the reparameterisation MLP")
    prefix_positions: str = _f("shift", "deep_prompt: shift (input positions start after the prefix, as peft and "
                                        "P-tuning v2) | keep (input positions start at 0, as in pretraining)")
    prompt_dropout: float = _f(0.0, "dropout on prompt/prefix vectors")
    prompt_init: str = _f("random", "prompt: random | vocab (initialise soft tokens from random vocabulary embeddings)")
    lora_r: int = _f(8, "lora: rank")
    lora_alpha: int = _f(16, "lora: scaling alpha")
    lora_dropout: float = _f(0.1, "lora: dropout")
    lora_target_modules: list[str] = _f([], "lora: module names to adapt (empty: peft's default for the architecture)")
    demonstrations: str = _f("source", "in_context: source (the same source-language demonstrations everywhere) | translated (same indices of each target language's file)")

    def __post_init__(self) -> None:
        _positive("method.prefix_length", self.prefix_length)
        _positive("method.prefix_hidden_size", self.prefix_hidden_size)
        _choice("method.prefix_positions", self.prefix_positions, ("shift", "keep"))
        _unit("method.prompt_dropout", self.prompt_dropout)
        _choice("method.prompt_init", self.prompt_init, ("random", "vocab"))
        _positive("method.lora_r", self.lora_r)
        _unit("method.lora_dropout", self.lora_dropout)
        _choice("method.demonstrations", self.demonstrations, ("source", "translated"))


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
    label_alignment: str = _f("first", "tagging: label the first sub-word of each word (first) or all sub-words (all)")
    template: str | None = _f(None, "verbalizer / in_context: a template YAML file or a shipped name (null: the task's own, e.g. xnli = the lm-evaluation-harness prompt)")


@dataclass
class DevConfig:
    policy: str = _f("source", "model selection: source (source-language dev split) | none (last epoch)")
    split: str = _f("dev", "split used for model selection")
    patience: int = _f(5, "early stopping: evaluations without improvement before stopping (0: never stop early)")
    max_examples: int = _f(2000, "cap on dev examples per language used for selection (0: all)")

    def __post_init__(self) -> None:
        _choice("train.dev.policy", self.policy, ("source", "none"))


@dataclass
class TrainConfig:
    languages: list[str] = _f(["en"], "source language(s) of the few-shot training examples")
    split: str = _f("train", "split the few-shot pool is drawn from")
    shots: Shots = _f(16, "examples per class (sentence tasks) / mentions per type (NER) / sentences per tag (POS); 'all' takes the whole pool")
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
    dev: DevConfig = _f(dataclasses.MISSING, "model selection and early stopping", default_factory=DevConfig)

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


@dataclass
class EvalConfig:
    split: str = _f("test", "split evaluated in every target language")
    languages: list[str] | str = _f("all", "target languages, or 'all' (every declared language that has a file)")
    batch_size: int = _f(64, "evaluation batch size (results do not depend on it)")
    max_examples: int = _f(0, "cap on examples per language (0: all); for quick looks, never for reported numbers")
    save_predictions: bool = _f(True, "store per-example predictions (needed for paired bootstrap tests)")

    def __post_init__(self) -> None:
        if isinstance(self.languages, str) and self.languages != "all":
            raise XLTuneError(f"eval.languages must be a list of languages or 'all', got {self.languages!r}")
        _positive("eval.batch_size", self.batch_size)


@dataclass
class ObjectiveConfig:
    translation_contrast: float = _f(0.0, "weight of the translation contrastive loss (0: off)")
    label_contrast: float = _f(0.0, "weight of the label contrastive loss (0: off)")
    temperature: float = _f(0.1, "temperature of both contrastive losses")
    translation_languages: list[str] = _f([], "languages whose line-aligned translations of the shots are used for translation contrast")
    exclude_o: bool = _f(True, "tagging: leave 'O' tokens out of the label contrast")
    parallel_file: str | None = _f(None, "TSV source<TAB>translation[<TAB>...] whose source column equals a shot's text (pair tasks: segments joined by ' ||| '; tagging: words joined by spaces): more translations of the shots")
    projected_ce: float = _f(1.0, "tagging with translations: weight of cross-entropy on translations labelled by tag projection (translate-train)")

    def __post_init__(self) -> None:
        if self.translation_contrast < 0 or self.label_contrast < 0 or self.projected_ce < 0:
            raise XLTuneError("objective weights must be >= 0")
        if self.temperature <= 0:
            raise XLTuneError(f"objective.temperature must be > 0, got {self.temperature}")

    def tag(self) -> str:
        """Short name stored with runs: 'none', 'tcl', 'lcl' or 'tcl+lcl'."""
        parts = [n for n, w in (("tcl", self.translation_contrast), ("lcl", self.label_contrast)) if w > 0]
        return "+".join(parts) or "none"


@dataclass
class ExperimentConfig:
    model: ModelConfig = _f(dataclasses.MISSING, "the backbone", default_factory=ModelConfig)
    method: MethodConfig = _f(dataclasses.MISSING, "the tuning method", default_factory=MethodConfig)
    task: TaskConfig = _f(dataclasses.MISSING, "the task and its data", default_factory=TaskConfig)
    train: TrainConfig = _f(dataclasses.MISSING, "few-shot training", default_factory=TrainConfig)
    eval: EvalConfig = _f(dataclasses.MISSING, "evaluation in the target languages", default_factory=EvalConfig)
    objective: ObjectiveConfig = _f(dataclasses.MISSING, "extra training objectives", default_factory=ObjectiveConfig)
    seeds: list[int] = _f([1], "one run per seed (seed drives sampling, initialisation and data order)")
    store: str = _f("results.sqlite", "SQLite results store")
    output_dir: str = _f("runs", "checkpoints (trainable parameters only) go to OUTPUT_DIR/RUN_ID/")
    save_checkpoint: bool = _f(True, "keep the trainable parameters of the selected model")

    def __post_init__(self) -> None:
        if not self.seeds:
            raise XLTuneError("seeds must list at least one seed")
        if not self.model.name_or_path:
            raise XLTuneError("model.name_or_path is required (a hub id or a local model directory)")
        if self.train.shots == 0 and self.method.name != "in_context":
            raise XLTuneError("train.shots must be a positive integer or 'all' (0 only with method in_context), got 0")

    # -- (de)serialisation -------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict, source: str = "config") -> ExperimentConfig:
        return _build(cls, data, source, "")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def run_key(self, seed: int) -> str:
        """Stable id of one run: hash of the resolved config (seeds, store and output dir excluded) and the seed."""
        d = self.to_dict()
        for k in ("seeds", "store", "output_dir", "save_checkpoint"):
            d.pop(k)
        d["eval"].pop("batch_size")  # results do not depend on it
        blob = json.dumps({"config": d, "seed": seed}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


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
        if loaded is None:
            raise XLTuneError(f"{path}: the config file is empty")
        if not isinstance(loaded, dict):
            raise XLTuneError(f"{path}: expected a mapping of sections (model, method, task, ...), got {type(loaded).__name__}")
        data.update(loaded)
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


def resolve_paths(cfg: ExperimentConfig, base: Path | None = None) -> ExperimentConfig:
    """Make local paths absolute (relative to ``base``, default cwd) so the stored config re-runs anywhere."""
    base = Path.cwd() if base is None else base

    def absolute(p: str) -> str:
        q = Path(p).expanduser()
        return str(q if q.is_absolute() else (base / q).resolve())

    if cfg.task.data_dir:
        cfg.task.data_dir = absolute(cfg.task.data_dir)
    if cfg.task.template and ("/" in cfg.task.template or cfg.task.template.endswith((".yaml", ".yml"))):
        cfg.task.template = absolute(cfg.task.template)  # a file; a bare name is a shipped template
    if cfg.objective.parallel_file:
        cfg.objective.parallel_file = absolute(cfg.objective.parallel_file)
    mp = Path(cfg.model.name_or_path).expanduser()
    if mp.is_absolute() or (base / mp).exists() or cfg.model.name_or_path.startswith((".", "~")):
        cfg.model.name_or_path = absolute(cfg.model.name_or_path)
    cfg.store = absolute(cfg.store)
    cfg.output_dir = absolute(cfg.output_dir)
    return cfg


def describe(cls: type = ExperimentConfig, prefix: str = "") -> list[tuple[str, str, str]]:
    """(key, default, help) for every field, for `xltune config --help-keys` and the docs."""
    rows = []
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(f.type if isinstance(f.type, type) else None) or f.name in _SECTIONS.get(cls, {}):
            rows.extend(describe(_SECTIONS[cls][f.name], key + "."))
            continue
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else "")
        rows.append((key, json.dumps(default), f.metadata.get("help", "")))
    return rows


# -- building dataclasses from dicts with clear errors -----------------------------------------------------------
_SECTIONS: dict[type, dict[str, type]] = {
    ExperimentConfig: {"model": ModelConfig, "method": MethodConfig, "task": TaskConfig, "train": TrainConfig,
                       "eval": EvalConfig, "objective": ObjectiveConfig},
    TrainConfig: {"dev": DevConfig},
}


def _build(cls: type, data: Any, source: str, prefix: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise XLTuneError(f"{source}: {prefix.rstrip('.') or 'config'} must be a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            raise unknown_name("config key", f"{prefix}{key}", [f"{prefix}{k}" for k in fields], source)
        sub = _SECTIONS.get(cls, {}).get(key)
        if sub is not None:
            kwargs[key] = _build(sub, value, source, f"{prefix}{key}.")
        else:
            kwargs[key] = coerce_field(value, hints[key], f"{prefix}{key}", source)
    try:
        return cls(**kwargs)
    except XLTuneError as e:
        raise XLTuneError(f"{source}: {e}") from None


def coerce_field(value: Any, hint: Any, key: str, source: str) -> Any:
    """Check ``value`` against a dataclass field's type hint (``key`` and ``source`` name it in errors); ints are
    accepted for floats, YAML 1.1's ``1e-2`` strings too; 'all' for Shots."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (Union, types.UnionType):
        errors = []
        for a in args:
            try:
                return coerce_field(value, a, key, source)
            except XLTuneError as e:
                errors.append(e)
        names = " or ".join(_type_name(a) for a in args)
        raise XLTuneError(f"{source}: {key} must be {names}, got {value!r}")
    if hint is type(None):
        if value is None:
            return None
        raise XLTuneError(f"{source}: {key} must be null, got {value!r}")
    if origin is list:
        if not isinstance(value, list):
            raise XLTuneError(f"{source}: {key} must be a list, got {value!r}")
        (inner,) = args
        return [coerce_field(v, inner, f"{key}[{i}]", source) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise XLTuneError(f"{source}: {key} must be a mapping, got {value!r}")
        k_hint, v_hint = args
        return {coerce_field(k, k_hint, f"{key} key", source): coerce_field(v, v_hint, f"{key}[{k}]", source)
                for k, v in value.items()}
    if hint is float:
        if isinstance(value, str):  # PyYAML (YAML 1.1) reads 1e-2 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise XLTuneError(f"{source}: {key} must be a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise XLTuneError(f"{source}: {key} must be an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise XLTuneError(f"{source}: {key} must be true or false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise XLTuneError(f"{source}: {key} must be a string, got {value!r}")
        return value
    return value


def _type_name(t: Any) -> str:
    if t is type(None):
        return "null"
    if typing.get_origin(t) is list:
        return "a list"
    return {int: "an integer", float: "a number", str: "a string", bool: "a boolean"}.get(t, str(t))


def _choice(key: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise unknown_name(f"value for {key}", value, valid)


def _positive(key: str, value: int) -> None:
    if value <= 0:
        raise XLTuneError(f"{key} must be > 0, got {value}")


def _unit(key: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise XLTuneError(f"{key} must be in [0, 1], got {value}")
