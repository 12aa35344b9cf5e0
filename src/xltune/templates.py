"""Templates and verbalizers as data: how a sentence-task example becomes text a decoder can score.

A template file (YAML, shipped under ``xltune/resources/templates/{task}.yaml`` or any path in ``task.template``)
holds one template string with the example's text fields (``{premise}``, ``{hypothesis}``, or ``{text1}``,
``{text2}``), extra words (``{question}``) and one ``{slot}`` for the label word; a label word per label; and
per-language overrides of the words, the label words or the template (English, the top level, by default).

The slot splits the filled text as the lm-evaluation-harness splits a multiple-choice request: the *context* is
the text before the slot (its trailing whitespace moves to the continuation, the harness's target delimiter) and
the *continuation* of label ``l`` is its label word plus whatever follows the slot. ``scoring`` says how a
continuation is scored (see :mod:`xltune.models.verbalizer`):

* ``slot``  - the template ends with the slot: mean log-probability of the label word's tokens (length-normalised,
  so multi-token words are not penalised for their length);
* ``whole`` - the slot is followed by more text (XNLI: "premise, right? Yes, hypothesis"): summed log-likelihood of
  the whole continuation, one forward per label (the harness's ``acc``).
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from .data.records import SentenceExample
from .data.tasks import TaskSpec
from .errors import XLTuneError, yaml_error

SCORINGS = ("slot", "whole")
SLOT = "{slot}"


@dataclass(frozen=True)
class Filled:
    """One example made text: the shared context and one continuation per label (in the task's label order)."""

    context: str
    continuations: tuple[str, ...]


@dataclass(frozen=True)
class LangTemplate:
    template: str
    words: dict[str, str]
    labels: tuple[str, ...]  # label word per label, in TaskSpec.labels order


@dataclass(frozen=True)
class TemplateSet:
    task: str
    scoring: str
    default: LangTemplate
    per_lang: dict[str, LangTemplate]
    fields: tuple[str, ...]  # the task's text column names, in order
    demo_separator: str
    source: str  # the file it was read from

    def for_lang(self, lang: str) -> LangTemplate:
        return self.per_lang.get(lang, self.default)

    def fill(self, example: SentenceExample) -> Filled:
        """Context and per-label continuations of ``example`` in its own language's template."""
        lt = self.for_lang(example.lang)
        before, after = lt.template.split(SLOT, 1)
        values = self._values(example, lt)
        context = before.format_map(values)
        stripped = context.rstrip()
        delimiter = context[len(stripped):]  # whitespace before the slot goes with the label word (harness style)
        rest = after.format_map(values)
        return Filled(stripped, tuple(delimiter + word + rest for word in lt.labels))

    def demonstration(self, example: SentenceExample) -> str:
        """The example's text with its gold label word in the slot (an in-context demonstration)."""
        if example.label is None:
            raise XLTuneError(f"demonstration {example.id} has no label")
        f = self.fill(example)
        return f.context + f.continuations[example.label]

    def _values(self, example: SentenceExample, lt: LangTemplate) -> dict[str, str]:
        values = dict(lt.words)
        for i, text in enumerate(example.texts):
            values[f"text{i + 1}"] = text
            if i < len(self.fields):
                values[self.fields[i]] = text
        return values


def load_templates(spec: TaskSpec, ref: str | None = None) -> TemplateSet:
    """The template set of ``spec``: ``ref`` is a YAML path, a shipped name, or None for the task's own default."""
    if spec.kind != "sequence":
        raise XLTuneError(f"verbalizer templates are for sentence tasks; task {spec.name} is a {spec.kind} task")
    path = _locate(spec, ref)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise XLTuneError(f"cannot read template file {path}: {e.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise yaml_error(e, path) from None
    if not isinstance(data, dict):
        raise XLTuneError(f"{path}: a template file is a mapping (template, labels, ...)")
    return parse_templates(data, spec, str(path))


def parse_templates(data: dict, spec: TaskSpec, source: str = "templates") -> TemplateSet:
    known = {"task", "scoring", "template", "words", "labels", "languages", "demo_separator"}
    extra = sorted(set(data) - known)
    if extra:
        raise XLTuneError(f"{source}: unknown key(s) {extra}; expected {sorted(known)}")
    template = data.get("template")
    # not given: slot scoring when the template ends with the slot, whole otherwise
    scoring = data.get("scoring") or ("slot" if isinstance(template, str) and template.endswith(SLOT) else "whole")
    if scoring not in SCORINGS:
        raise XLTuneError(f"{source}: scoring must be one of {SCORINGS}, got {scoring!r}")
    fields = tuple(spec.text_columns) or tuple(f"text{i + 1}" for i in range(2))
    default = _lang_template(data, None, spec, fields, scoring, f"{source}")
    per_lang = {}
    for lang, over in (data.get("languages") or {}).items():
        if not isinstance(over, dict):
            raise XLTuneError(f"{source}: languages.{lang} must be a mapping (words, labels, template)")
        per_lang[str(lang)] = _lang_template(over, default, spec, fields, scoring, f"{source} languages.{lang}")
    return TemplateSet(spec.name, scoring, default, per_lang, fields, str(data.get("demo_separator", "\n\n")), source)


def _locate(spec: TaskSpec, ref: str | None) -> Path:
    shipped = resources.files("xltune") / "resources" / "templates"
    if ref is None or ("/" not in ref and not ref.endswith((".yaml", ".yml"))):
        name = ref or spec.name
        path = Path(str(shipped / f"{name}.yaml"))
        if not path.is_file():
            have = sorted(p.name[:-5] for p in Path(str(shipped)).glob("*.yaml"))
            raise XLTuneError(f"no shipped template {name!r} for task {spec.name} (shipped: {', '.join(have)}); "
                              f"set task.template to a YAML file (see docs/baselines.md)")
        return path
    path = Path(ref).expanduser()
    if not path.is_file():
        raise XLTuneError(f"task.template: no such file {path}")
    return path


def _lang_template(d: dict, base: LangTemplate | None, spec: TaskSpec, fields: tuple[str, ...], scoring: str,
                   where: str) -> LangTemplate:
    template = d.get("template", base.template if base else None)
    if not isinstance(template, str) or template.count(SLOT) != 1:
        raise XLTuneError(f"{where}: template must be a string with exactly one {SLOT}, got {template!r}")
    if scoring == "slot" and not template.endswith(SLOT):
        raise XLTuneError(f"{where}: scoring 'slot' needs the template to end with {SLOT} (use scoring: whole)")
    words = dict(base.words) if base else {}
    words.update({str(k): str(v) for k, v in (d.get("words") or {}).items()})
    names = {n for _, n, _, _ in string.Formatter().parse(template.replace(SLOT, "")) if n}
    allowed = set(fields) | {f"text{i + 1}" for i in range(len(fields))} | set(words)
    unknown = sorted(names - allowed)
    if unknown:
        raise XLTuneError(f"{where}: template field(s) {unknown} are neither text fields {list(fields)} nor words "
                          f"{sorted(words)}")
    label_words = dict(zip(spec.labels, base.labels)) if base else {}
    given = d.get("labels") or {}
    if not isinstance(given, dict):
        raise XLTuneError(f"{where}: labels must map each label of {spec.name} to its word, got {given!r}")
    bad = sorted(set(given) - set(spec.labels))
    if bad:
        raise XLTuneError(f"{where}: unknown label(s) {bad}; {spec.name} labels are {list(spec.labels)}")
    label_words.update({str(k): str(v) for k, v in given.items()})
    missing = [lab for lab in spec.labels if not label_words.get(lab)]
    if missing:
        raise XLTuneError(f"{where}: no label word for {missing}")
    words_in_order = tuple(label_words[lab] for lab in spec.labels)
    if len(set(words_in_order)) < len(words_in_order):
        raise XLTuneError(f"{where}: two labels share a label word {list(words_in_order)}")
    return LangTemplate(template, words, words_in_order)
