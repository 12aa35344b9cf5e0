"""``xltune export``: a stored run as what the ecosystem loads, with a model card -- checked to predict exactly as
xltune does before it is written.

* Encoders with a transformers task class whose head is xltune's (token tasks: dropout + one linear layer per
  token, ``*ForTokenClassification``):
  - a method whose backbone trains whole (finetune): ``save_pretrained`` of the task model (weights, config with
    ``id2label``, tokenizer): ``AutoModelForTokenClassification.from_pretrained(DIR)``;
  - a method with a peft equivalent (:attr:`MethodSpec.peft <xltune.methods.base.MethodSpec>`: LoRA, IA3, prompt
    tuning, deep prompts with shifted positions): a peft adapter with the head in ``modules_to_save``:
    ``PeftModel.from_pretrained(AutoModelForTokenClassification.from_pretrained(BASE, num_labels=...), DIR)``.
* Everything else -- decoders, sentence tasks (xltune's sentence head pools (mean / first / last token) into one
  linear layer; transformers' sequence-classification heads add a dense + tanh layer on the first token, or pool
  the last token without a bias), the verbalizer head, methods without an exact peft equivalent -- is exported as
  xltune's own folder (the run folder's format: ``trainable.safetensors``, ``config.json``, ``run.json``), which
  ``xltune.load_run(DIR)`` turns into a model with ``.predict(texts)``. The card says why.

Correctness first: after writing a transformers / peft export, it is loaded back the way its card says, fresh from
disk, and its logits are compared with xltune's on examples of the run's own data (or built-in sentences); any
difference beyond float32 rounding (1e-4), or any error, falls back to xltune's folder with the reason. The export
is written to a temporary folder beside ``out`` and renamed: never half an export.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .errors import XLTuneError

TOLERANCE = 1e-4  # largest |logit difference| accepted as float32 rounding
VERIFY_EXAMPLES = 16
HEAD_NAMES = ("classifier", "score")  # the task head of transformers' *ForTokenClassification models
FALLBACK_TEXTS = (
    "The quick brown fox jumps over the lazy dog .",
    "Le renard brun rapide saute par-dessus le chien paresseux .",
    "Der schnelle braune Fuchs springt über den faulen Hund .",
    "Mbweha mwepesi wa kahawia anaruka juu ya mbwa mvivu .",
    "敏捷的 棕色 狐狸 跳过 了 懒狗 。",
    "Быстрая коричневая лиса прыгает через ленивую собаку .",
)


@dataclass
class Exported:
    out: Path
    kind: str  # transformers | peft | xltune
    reason: str = ""  # why xltune's own folder
    verified: dict | None = None  # {"examples", "positions", "max_abs_diff", "same_predictions"}
    virtual: int = 0  # peft prompt tuning: positions before the input in the export's outputs


class NoEquivalent(Exception):
    """The run has no exact transformers / peft form (the message says why)."""


# -- the plan ---------------------------------------------------------------------------------------------------------
def hf_plan(run) -> tuple[str, Any]:
    """("transformers", None) or ("peft", PeftExport) for a run with an exact ecosystem form; NoEquivalent else."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES

    from .methods.base import method_spec

    model_type = getattr(run.backbone.model.config, "model_type", "")
    if run.is_decoder:
        raise NoEquivalent("decoders: xltune's heads (a linear layer on the last token, or label words scored by the "
                           "LM head) are not those of transformers' task classes")
    if run.templates is not None:
        raise NoEquivalent("the verbalizer head has no transformers task class")
    if run.spec.kind != "token":
        raise NoEquivalent(f"xltune's sentence head ({run.model.pooling} pooling + one linear layer) is not "
                           f"transformers' sequence-classification head (a dense + tanh layer on the first token, "
                           f"then the classifier)")
    if model_type not in MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES:
        raise NoEquivalent(f"transformers has no token-classification class for model type {model_type!r}")
    spec = method_spec(run.cfg.method.name)
    if not spec.frozen_backbone:
        return "transformers", None
    if spec.peft is None:
        raise NoEquivalent(f"method {spec.name} has no peft equivalent")
    pe = spec.peft(run.backbone, run.cfg.method)
    if isinstance(pe, str):
        raise NoEquivalent(pe)
    return "peft", pe


def _task_model(run):
    from transformers import AutoModelForTokenClassification

    labels = run.labels
    model = AutoModelForTokenClassification.from_pretrained(
        run.cfg.model.name_or_path, num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={lab: i for i, lab in enumerate(labels)}, dtype=torch.float32)
    head = next((n for n in HEAD_NAMES if isinstance(getattr(model, n, None), torch.nn.Linear)), None)
    if head is None or getattr(model, head).out_features != len(labels):
        raise NoEquivalent(f"{type(model).__name__}'s head is not one linear layer")
    return model, head


# -- writing ----------------------------------------------------------------------------------------------------------
def write_transformers(run, folder: Path) -> None:
    """The whole fine-tuned model as a transformers task model (save_pretrained) and its tokenizer."""
    model, head = _task_model(run)
    prefix = model.base_model_prefix
    state = {}
    for k, v in run.model.state_dict_trainable().items():
        if k.startswith("backbone."):
            state[f"{prefix}.{k[len('backbone.'):]}"] = v
        elif k.startswith("head.linear."):
            state[f"{head}.{k[len('head.linear.'):]}"] = v
        else:
            raise NoEquivalent(f"parameter {k} has no place in {type(model).__name__}")
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or missing:
        raise NoEquivalent(f"{type(model).__name__} does not take the run's parameters (missing {missing[:3]}, "
                           f"unexpected {unexpected[:3]})")
    model.save_pretrained(folder)
    run.tokenizer.save_pretrained(folder)


def write_peft(run, pe, folder: Path) -> None:
    """A peft adapter (the method's parts, the head in modules_to_save) and the tokenizer."""
    from peft import get_peft_model

    model, head = _task_model(run)
    prefix = model.base_model_prefix
    changes: dict = {"task_type": "TOKEN_CLS", "base_model_name_or_path": run.cfg.model.name_or_path}
    if any(f.name == "modules_to_save" for f in dataclasses.fields(pe.config)):
        changes["modules_to_save"] = [head]
    config = dataclasses.replace(pe.config, **changes)
    with warnings.catch_warnings():  # deprecation notices of transformers' APIs that peft calls
        warnings.simplefilter("ignore", FutureWarning)
        pm = get_peft_model(model, config)
    named = dict(pm.named_parameters())
    trainable = {n for n, p in named.items() if p.requires_grad}
    filled = set()
    with torch.no_grad():
        for k, v in run.model.state_dict_trainable().items():
            target = _peft_name(k, pe, prefix, head, named)
            if named[target].shape != v.shape:
                raise NoEquivalent(f"{k} {tuple(v.shape)} does not fit peft's {target} {tuple(named[target].shape)}")
            named[target].copy_(v)
            filled.add(target)
    if trainable - filled:
        raise NoEquivalent(f"peft's adapter has parameters the run did not train: {sorted(trainable - filled)[:3]}")
    pm.save_pretrained(folder)
    run.tokenizer.save_pretrained(folder)


def _peft_name(name: str, pe, prefix: str, head: str, named: dict) -> str:
    for ours, theirs in pe.rename.items():
        if name.startswith(ours):
            target = theirs + name[len(ours):]
            if target in named:
                return target
            raise NoEquivalent(f"{name}: peft has no {target}")
    if name.startswith("head.linear."):
        suffix = f"{head}.modules_to_save.default.{name[len('head.linear.'):]}"
    elif name.startswith("backbone."):
        suffix = f"{prefix}.{name[len('backbone.'):]}"
    else:
        raise NoEquivalent(f"parameter {name} has no place in the peft adapter")
    hits = [n for n in named if n == suffix or n.endswith("." + suffix)]
    if len(hits) != 1:
        raise NoEquivalent(f"{name}: {'no' if not hits else len(hits)} peft parameter(s) named *{suffix}")
    return hits[0]


# -- checking ---------------------------------------------------------------------------------------------------------
def verification_examples(run, n: int = VERIFY_EXAMPLES) -> list:
    """Examples of the run's own evaluation data (its first target language), else built-in sentences."""
    from .data.readers import load_examples
    from .data.tasks import available_languages

    cfg, spec = run.cfg, run.spec
    if cfg.task.data_dir and Path(cfg.task.data_dir).is_dir():
        try:
            langs = available_languages(spec, cfg.task.data_dir, cfg.eval.split)
            if langs:
                return load_examples(spec, cfg.task.data_dir, cfg.eval.split, langs[0], labelled=False)[:n]
        except XLTuneError:
            pass
    if spec.kind == "token":
        return run.examples(list(FALLBACK_TEXTS))
    k = len(spec.text_columns)
    return run.examples([tuple(FALLBACK_TEXTS[(i + j) % len(FALLBACK_TEXTS)] for j in range(k))
                         for i in range(len(FALLBACK_TEXTS))])


@torch.no_grad()
def verify(run, kind: str, pe, folder: Path, examples: list) -> dict:
    """Load ``folder`` as its card says (fresh, from disk) and compare its logits with xltune's on ``examples``,
    position by position (every real token, not only those that carry a word's label)."""
    from transformers import AutoModelForTokenClassification

    if kind == "transformers":
        theirs = AutoModelForTokenClassification.from_pretrained(folder, dtype=torch.float32)
        virtual = 0
    else:
        from peft import PeftModel

        labels = run.labels
        base = AutoModelForTokenClassification.from_pretrained(
            run.cfg.model.name_or_path, num_labels=len(labels), id2label=dict(enumerate(labels)),
            label2id={lab: i for i, lab in enumerate(labels)}, dtype=torch.float32)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            theirs = PeftModel.from_pretrained(base, folder)
        virtual = pe.virtual_tokens
    theirs.to(run.device).eval()
    encoded = run.encode(examples)
    ours = run._feature_logits(encoded, batch_size=64, autocast=False)  # both in float32 (a GPU run autocasts)
    worst, same, positions = 0.0, True, 0
    for f, mine in zip(encoded.features, ours):
        ids = torch.tensor([f.input_ids], device=run.device)
        out = theirs(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0, virtual:].float().cpu()
        if out.shape != mine.shape:
            raise NoEquivalent(f"the export's logits have shape {tuple(out.shape)}, xltune's {tuple(mine.shape)}")
        worst = max(worst, float((out - mine).abs().max()))
        same = same and bool((out.argmax(-1) == mine.argmax(-1)).all())
        positions += out.shape[0]
    return {"examples": len(examples), "positions": positions, "max_abs_diff": worst, "same_predictions": same}


# -- the export -------------------------------------------------------------------------------------------------------
def export_run(run, out: str | Path, *, results: dict | None = None, evaluations: list | None = None,
               force: bool = False, xltune_only: bool = False, log=print) -> Exported:
    """Write ``run`` (a :class:`~xltune.runs.stored.StoredRun`) to ``out``. ``results``: its per-language metrics
    ({"split", "languages": {lang: {metric: value, "n": n}}}) for the card; ``evaluations``: its evaluations on
    other data (store rows with "metrics")."""
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise XLTuneError(f"--out {out} is a file; give a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise XLTuneError(f"--out {out} exists and is not empty; --force replaces it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    results = results or (run.description.get("metrics") or {})
    try:
        done = _write(run, tmp, out, xltune_only, log, results)
        card = model_card(run, done, results, evaluations or [])
        (tmp / "README.md").write_text(card, encoding="utf-8")
        if done.kind != "xltune":  # the run's description beside the ecosystem's files (provenance)
            desc = _description(run, results)
            desc["export"] = _export_facts(done)
            (tmp / "xltune_run.json").write_text(json.dumps(desc, indent=2, ensure_ascii=False, default=str) + "\n",
                                                 encoding="utf-8")
        mask = os.umask(0)
        os.umask(mask)
        for f in tmp.iterdir():  # safetensors writes owner-only files; an export is for sharing
            if f.is_file():
                os.chmod(f, 0o666 & ~mask)
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if done.kind == "xltune":
        done.verified = _verify_folder(run, out)
    done.out = out
    return done


def _write(run, tmp: Path, out: Path, xltune_only: bool, log, results: dict) -> Exported:
    reason = "asked for xltune's own folder (--as xltune)" if xltune_only else ""
    if not xltune_only:
        try:
            kind, pe = hf_plan(run)
            if kind == "transformers":
                write_transformers(run, tmp)
            else:
                write_peft(run, pe, tmp)
            checked = verify(run, kind, pe, tmp, verification_examples(run))
            if checked["max_abs_diff"] <= TOLERANCE and checked["same_predictions"]:
                return Exported(out, kind, verified=checked, virtual=pe.virtual_tokens if pe is not None else 0)
            reason = (f"the {kind} export did not reproduce xltune's logits (max |difference| "
                      f"{checked['max_abs_diff']:.3g} on {checked['examples']} examples)")
        except NoEquivalent as e:
            reason = str(e)
        except Exception as e:  # noqa: BLE001 - transformers / peft refusing the model: say so, fall back
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            reason = f"{type(e).__name__} from transformers/peft: {first[:200]}"
        for child in tmp.iterdir():
            shutil.rmtree(child) if child.is_dir() else child.unlink()
        log(f"note: no exact transformers/peft form for run {run.run_id}: {reason}; writing xltune's own folder "
            f"(xltune.load_run)")
    from .runs.folder import write_run_folder

    desc = _description(run, results)
    desc["export"] = {"kind": "xltune", "reason": reason}
    write_run_folder(tmp, run.model, run.cfg, desc, anchor=out)
    return Exported(out, "xltune", reason)


def _verify_folder(run, out: Path) -> dict:
    """xltune's folder, loaded back as a user would, predicts as the run does (the same logits)."""
    from .runs.stored import load_run

    examples = verification_examples(run)
    again = load_run(out, device=run.device)
    mine, theirs = run.scores(examples), again.scores(examples)
    worst = max((float((a - b).nan_to_num().abs().max()) for a, b in zip(mine, theirs) if a.numel()), default=0.0)
    if worst > TOLERANCE:
        raise XLTuneError(f"the export in {out} does not reproduce run {run.run_id} (max |difference| {worst:.3g}); "
                          f"please report this")
    return {"examples": len(examples), "max_abs_diff": worst, "same_predictions": True}


def _description(run, results: dict) -> dict:
    from .runs.folder import describe
    from .runs.pipeline import environment

    desc = describe(run.run_id, run.row.get("seed") or run.description.get("seed"), run.cfg, run.spec, run.backbone,
                    run.model, run.padding_side, results or {}, environment())
    for key in ("variant", "variant_label", "created"):
        if run.row.get(key) or run.description.get(key):
            desc[key] = run.row.get(key) or run.description.get(key)
    return desc


def _export_facts(done: Exported) -> dict:
    return {"kind": done.kind, "reason": done.reason, "verified": done.verified,
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


# -- the model card ---------------------------------------------------------------------------------------------------
def model_card(run, done: Exported, results: dict, evaluations: list) -> str:
    from .version import __version__
    from .kinds import task_kind

    cfg, spec = run.cfg, run.spec
    headline = task_kind(spec).headline(spec)
    base = cfg.model.name_or_path
    local_base = Path(base).expanduser().is_absolute()
    langs = results.get("languages") or {}
    tags = ["xltune", spec.name, cfg.method.name, "token-classification" if spec.kind == "token" else
            "text-classification", "cross-lingual-transfer"]
    library = {"peft": "peft", "transformers": "transformers"}.get(done.kind, "xltune")
    front = ["---", f"library_name: {library}"]
    if not local_base:
        front.append(f"base_model: {base}")
    front.append("tags:\n" + "\n".join(f"- {t}" for t in tags))
    if langs:
        front.append("language:\n" + "\n".join(f"- {lang}" for lang in sorted(langs)))
    front.append("---")
    shots = cfg.train.shots
    unit = ("examples per class" if spec.kind == "sequence" else "mentions per entity type"
            if spec.metric == "span_f1" else "sentences per tag")
    title = f"{spec.name} · {cfg.method.name} · {Path(base).name if local_base else base}"
    lines = ["\n".join(front), "", f"# {title}", "",
             f"xltune run `{run.run_id}`"
             + (f" (variant *{run.row.get('variant_label')}*)" if run.row.get("variant_label") else "")
             + f": {cfg.method.name} on {spec.name}, trained on {shots} {unit} in "
               f"{', '.join(cfg.train.languages)} ({cfg.train.split} split), seed {run.row.get('seed')}; "
               f"{_transfer_setting(cfg)}. Exported by xltune {__version__} on {time.strftime('%Y-%m-%d')}.", ""]
    lines += ["## Results", ""]
    if langs:
        split = results.get("split", cfg.eval.split)
        lines.append(f"{headline} on the {split} split, in % (n: examples):")
        lines.append("")
        lines.append(f"| language | n | {headline} |")
        lines.append("|---|---|---|")
        vals = []
        for lang, m in langs.items():
            if headline in m:
                vals.append(m[headline])
                lines.append(f"| {lang} | {m.get('n', '')} | {100 * m[headline]:.1f} |")
        if vals:
            lines.append(f"| **average** | | **{100 * sum(vals) / len(vals):.1f}** |")
        lines.append("")
        lines.append("One seed: for mean ± std over seeds and comparisons, see `xltune results` / `xltune report` "
                     "on the store.")
    else:
        lines.append("(no stored results were available when this was exported)")
    if evaluations:
        lines += ["", "Evaluations of this run on other data (`xltune eval`, no training):", "",
                  "| data | split | language | n | " + headline + " |", "|---|---|---|---|---|"]
        for ev in evaluations:
            for m in ev["metrics"]:
                if m["metric"] == headline:
                    lines.append(f"| {ev['data']} | {m['split']} | {m['lang']} | {m['n']} | {100 * m['value']:.1f} |")
    lines += ["", "## Use", ""] + _usage(run, done) + [""]
    lines += ["## What it predicts", "",
              f"- labels ({len(spec.labels)}, in this order): {', '.join(f'`{x}`' for x in spec.labels)}"]
    if spec.kind == "token":
        from .data.encode import resolve_alignment

        at = resolve_alignment(cfg.task.label_alignment, run.is_decoder)
        lines.append(f"- one tag per word, read at the word's {'last' if at == 'last' else 'first'} sub-word "
                     f"(words pre-split; `is_split_into_words=True`); span F1 counted as "
                     f"{cfg.eval.ner_mode}" if spec.metric == "span_f1" else
                     f"- one tag per word, read at the word's {'last' if at == 'last' else 'first'} sub-word")
    else:
        lines.append(f"- text fields: {', '.join(spec.text_columns)} (a pair goes through the tokenizer's pair "
                     f"template)")
    lines.append(f"- inputs longer than {cfg.model.max_length} tokens were "
                 f"{'windowed' if spec.kind == 'token' else 'truncated'} in training and evaluation")
    lines += ["", "## Export", ""]
    if done.kind == "xltune":
        lines.append(f"xltune's own folder (`trainable.safetensors`: the trained parameters; `config.json`: the run's "
                     f"config, paths relative to this folder; `run.json`: what the run is). No transformers/peft "
                     f"form: {done.reason}.")
        lines.append(f"It needs the base model `{base}` (and its tokenizer) where `config.json` points.")
    else:
        v = done.verified or {}
        lines.append(f"Checked when exported: loaded back from this folder as shown above, it gave the same "
                     f"predictions as xltune on {v.get('examples')} examples ({v.get('positions')} token positions; "
                     f"largest |logit difference| {v.get('max_abs_diff', 0):.2g}). `xltune_run.json` describes the "
                     f"run.")
        if local_base:
            lines.append(f"The base model is a local folder (`{base}`): copy it along, and point "
                         f"`base_model_name_or_path` / the code above at it.")
    lines += ["", "## Training configuration", "", "```json",
              json.dumps({k: v for k, v in cfg.to_dict().items() if k not in ("store", "output_dir")}, indent=2,
                         ensure_ascii=False), "```", ""]
    return "\n".join(lines)


def _usage(run, done: Exported) -> list[str]:
    labels = run.labels
    base = run.cfg.model.name_or_path
    example = "'Angela Merkel visited Paris'.split()" if run.spec.kind == "token" else (
        "('A man is sleeping.', 'Nobody sleeps.')" if len(run.spec.text_columns) == 2 else "'A text.'")
    if done.kind == "xltune":
        return ["```python", "import xltune", "", "model = xltune.load_run('PATH/TO/THIS/FOLDER')",
                f"model.predict([{example}])        # labels",
                f"model.predict_proba([{example}])  # probabilities per label", "```", "",
                "or `xltune predict --run-dir PATH/TO/THIS/FOLDER --input FILE --out predictions.jsonl`."]
    load = ["```python", "import torch", "from transformers import AutoModelForTokenClassification, AutoTokenizer"]
    if done.kind == "peft":
        load += ["from peft import PeftModel", "",
                 f"labels = {labels!r}",
                 f"base = AutoModelForTokenClassification.from_pretrained({base!r}, num_labels=len(labels),",
                 "    id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)})",
                 "model = PeftModel.from_pretrained(base, 'PATH/TO/THIS/FOLDER').eval()"]
    else:
        load += ["", "model = AutoModelForTokenClassification.from_pretrained('PATH/TO/THIS/FOLDER').eval()"]
    from .data.encode import resolve_alignment

    virtual = done.virtual
    last = resolve_alignment(run.cfg.task.label_alignment, run.is_decoder) == "last"
    load += ["tokenizer = AutoTokenizer.from_pretrained('PATH/TO/THIS/FOLDER')", "",
             "words = 'Angela Merkel visited Paris'.split()",
             "enc = tokenizer(words, is_split_into_words=True, return_tensors='pt')",
             "with torch.no_grad():",
             "    logits = model(**enc).logits[0]" + (f"[{virtual}:]  # the prompt's {virtual} positions come first"
                                                     if virtual else ""),
             ("at = {w: i for i, w in enumerate(enc.word_ids()) if w is not None}  # each word's last sub-word"
              if last else
              "at = {w: i for i, w in reversed(list(enumerate(enc.word_ids()))) if w is not None}  # first sub-word"),
             "tags = [model.config.id2label[int(logits[at[w]].argmax())] for w in range(len(words))]" if
             done.kind == "transformers" else
             "tags = [labels[int(logits[at[w]].argmax())] for w in range(len(words))]",
             "```"]
    return load


def _transfer_setting(cfg) -> str:
    """What the card says the model knew of the target languages (train.setting, train.dev.policy)."""
    setting, policy = cfg.train.setting, cfg.train.dev.policy
    if setting == "zero_shot":
        said = "evaluated in every target language without target-language training data (zero-shot transfer)"
    elif setting == "translate_train_all":
        said = (f"trained also on the shots' translations into the target languages (translate-train-all; "
                f"translations: {'human (an oracle)' if cfg.train.translate.by == 'oracle' else cfg.train.translate.model})")
    else:
        said = f"transfer setting {setting}"
    if policy == "target_oracle":
        said += "; the checkpoint was selected on the target languages' labelled dev sets (an oracle)"
    return said

