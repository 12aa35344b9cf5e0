"""``xltune predict``: a stored run's labels and probabilities for the examples of a file, as JSONL or TSV.

Inputs (``input_format``; ``auto`` picks by the file's suffix):

* ``task``: a file in the run's task format, read by the task's own reader (XNLI TSV with or without its label
  column, CoNLL, XTREME token files, ...); labels or tags in it are kept as ``gold``;
* ``text``: one example per line; sentence-pair tasks separate the two texts with a tab, token tasks the words
  with spaces; blank lines are skipped (each output names its input ``line``);
* ``jsonl``: one object per line with the task's text fields as keys (``premise``/``hypothesis`` for XNLI; ``text``
  for a one-field task; ``tokens`` -- a list -- or ``text`` for token tasks); the label key, when present, is kept
  as ``gold``, and every other key (an ``id``) is copied to the output.

Outputs: JSONL (one object per example: ``label`` and ``probs`` {label: probability}; token tasks ``tokens``,
``labels`` and per-word ``probs``) or TSV (a header; one row per example, or per word for token tasks, with a
``p:LABEL`` column per label). Predictions are the ones the run's evaluation makes (same encoding and heads; a word
the tokenizer gives no sub-word gets no label, and the evaluation scores it as 'O'). Written to a temporary file,
then renamed: never half a file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .data.records import SentenceExample, TokenExample
from .errors import XLTuneError, unknown_name, where

INPUT_FORMATS = ("auto", "task", "text", "jsonl")
OUTPUT_FORMATS = ("auto", "jsonl", "tsv")


@dataclass
class Inputs:
    examples: list
    lines: list[int | None]  # the input line of each example (text / jsonl), None for task files
    extra: list[dict] = field(default_factory=list)  # other keys of JSONL objects, copied to the output


def input_format_of(path: Path, fmt: str) -> str:
    if fmt not in INPUT_FORMATS:
        raise unknown_name("input format", fmt, INPUT_FORMATS, "--input-format")
    if fmt != "auto":
        return fmt
    name = path.name.lower().removesuffix(".gz")
    if name.endswith((".jsonl", ".json")):
        return "jsonl"
    if name.endswith(".txt"):
        return "text"
    return "task"


def output_format_of(path: Path, fmt: str) -> str:
    if fmt not in OUTPUT_FORMATS:
        raise unknown_name("output format", fmt, OUTPUT_FORMATS, "--format")
    if fmt != "auto":
        return fmt
    return "tsv" if path.name.lower().endswith((".tsv", ".tab")) else "jsonl"


def language_of(path: Path, spec) -> str:
    """The language a task file is for, from its name and the task's file pattern (``test-de.tsv.gz`` with
    ``{split}-{lang}.tsv.gz``: de); "" when the name does not say."""
    import re

    if not spec.file_pattern or "{lang}" not in spec.file_pattern:
        return ""
    pattern = re.escape(spec.file_pattern).replace(r"\{split\}", "[^/]+").replace(r"\{lang\}", "(?P<lang>[^/]+?)")
    pattern = pattern.replace(r"\*", "[^/]*")
    name = path.as_posix()
    if name.endswith(".gz") and not spec.file_pattern.endswith(".gz"):
        name = name[:-3]
    elif spec.file_pattern.endswith(".gz") and not name.endswith(".gz"):
        name += ".gz"
    m = re.search(r"(?:^|/)" + pattern + "$", name)
    return m.group("lang") if m and m.group("lang") in spec.languages else ""


def read_inputs(path: Path, spec, fmt: str = "auto", lang: str = "") -> Inputs:
    """The examples of ``path`` for task ``spec`` (labels kept where the file has them)."""
    from .data.readers import READERS, json_object, numbered_lines, read_text

    if not path.is_file():
        raise XLTuneError(f"--input {path} does not exist")
    fmt = input_format_of(path, fmt)
    if fmt == "task":
        # the reader reads the language where the format carries it (XTREME's "de:word" prefixes)
        examples = READERS[spec.format](spec, path, "input", lang or "input", False)
        return Inputs(examples, [None] * len(examples), [{} for _ in examples])
    token = spec.kind == "token"
    fields = list(spec.text_columns)
    labels = {name: i for i, name in enumerate(spec.labels)}
    raw_labels = spec.raw_to_label
    examples, lines, extra = [], [], []
    for n, line in numbered_lines(read_text(path, spec.encoding)):
        if not line.strip():
            continue
        i = len(examples)
        ex_id = f"{lang or 'input'}/input/{i}"
        if fmt == "text":
            if token:
                examples.append(TokenExample(ex_id, lang, i, tuple(line.split()), None))
            else:
                texts = tuple(line.split("\t"))
                if len(texts) != len(fields):
                    raise XLTuneError(f"{where(path, n)}: task {spec.name} takes {len(fields)} tab-separated text "
                                      f"field(s) per line ({', '.join(fields)}), got {len(texts)}")
                examples.append(SentenceExample(ex_id, lang, i, texts, None))
            lines.append(n)
            extra.append({})
            continue
        obj = json_object(line, path, n)
        used = set()
        if token:
            key = next((k for k in ("tokens", "words", "text") if k in obj), None)
            if key is None:
                raise XLTuneError(f"{where(path, n)}: needs 'tokens' (a list of words) or 'text' (keys: "
                                  f"{', '.join(obj)})")
            value = obj[key]
            words = tuple(value.split()) if isinstance(value, str) else tuple(str(w) for w in value)
            used.add(key)
            gold = _gold_tags(obj, spec, labels, path, n, used)
            if gold is not None and len(gold) != len(words):
                raise XLTuneError(f"{where(path, n)}: {len(words)} word(s) but {len(gold)} tag(s); give one tag per "
                                  f"word, or none")
            examples.append(TokenExample(ex_id, lang, i, words, gold))
        else:
            keys = fields if all(k in obj for k in fields) else (["text"] if len(fields) == 1 and "text" in obj
                                                                 else None)
            if keys is None or not all(isinstance(obj[k], str) for k in keys):
                raise XLTuneError(f"{where(path, n)}: needs the text key(s) {', '.join(fields)} as strings "
                                  f"(keys: {', '.join(obj)})")
            used.update(keys)
            gold = None
            if spec.label_column and spec.label_column in obj and obj[spec.label_column] is not None:
                raw = str(obj[spec.label_column])
                name = raw_labels.get(raw, raw)
                if name not in labels:
                    raise XLTuneError(f"{where(path, n)}: label {raw!r} is not one of {', '.join(spec.labels)}")
                gold = labels[name]
                used.add(spec.label_column)
            examples.append(SentenceExample(ex_id, lang, i, tuple(obj[k] for k in keys), gold))
        lines.append(n)
        extra.append({k: v for k, v in obj.items() if k not in used})
    if not examples:
        raise XLTuneError(f"{path}: no examples (the file is empty)")
    return Inputs(examples, lines, extra)


def _gold_tags(obj: dict, spec, labels: dict, path: Path, n: int, used: set) -> tuple[int, ...] | None:
    key = next((k for k in ("tags", "labels", "ner_tags") if k in obj), None)
    if key is None:
        return None
    used.add(key)
    out = []
    for t in obj[key]:
        if str(t) not in labels:
            raise XLTuneError(f"{where(path, n)}: tag {t!r} is not one of {', '.join(spec.labels)}")
        out.append(labels[str(t)])
    return tuple(out)


@dataclass
class PredictSummary:
    n: int
    out: Path
    fmt: str
    score: dict | None = None  # metrics when every input example has a gold label
    lang: str = ""  # the inputs' language (given, or read from a task file's name)


def read_file(input_path: str | Path, spec, input_format: str = "auto", lang: str = "") -> tuple[Inputs, str]:
    """The inputs of ``input_path`` and their language (given, or read from a task file's name)."""
    input_path = Path(input_path)
    if not lang and input_path.is_file() and input_format_of(input_path, input_format) == "task":
        lang = language_of(input_path, spec)
    return read_inputs(input_path, spec, input_format, lang), lang


def check_output(out_path: str | Path, output_format: str = "auto") -> str:
    """The output format, or an error before any work when ``out_path`` cannot be written."""
    out_path = Path(out_path)
    if out_path.is_dir():
        raise XLTuneError(f"--out {out_path} is a folder; give a file name (e.g. predictions.jsonl)")
    blocker = next((p for p in out_path.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise XLTuneError(f"--out {out_path}: {blocker} is a file, not a folder")
    return output_format_of(out_path, output_format)


def predict_file(run, input_path: str | Path, out_path: str | Path, *, input_format: str = "auto",
                 output_format: str = "auto", lang: str = "", batch_size: int = 64,
                 inputs: Inputs | None = None) -> PredictSummary:
    """Predict every example of ``input_path`` with ``run`` (a :class:`~xltune.runs.stored.StoredRun`) and write
    labels and probabilities to ``out_path`` (``inputs``: the file already read, see :func:`read_file`)."""
    input_path, out_path = Path(input_path), Path(out_path)
    fmt = check_output(out_path, output_format)
    if inputs is None:
        inputs, lang = read_file(input_path, run.spec, input_format, lang)
    scores = run.scores(inputs.examples, batch_size)
    rows = _rows(run, inputs, scores)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            if fmt == "jsonl":
                for r in rows:
                    f.write(json.dumps(r, ensure_ascii=False) + "\n")
            else:
                _write_tsv(f, run, rows)
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)
    score = None
    if all(_has_gold(e) for e in inputs.examples):
        score = _score(run, inputs.examples, scores)
    return PredictSummary(len(rows), out_path, fmt, score, lang)


def _has_gold(e) -> bool:
    return (e.tags if isinstance(e, TokenExample) else e.label) is not None


def _score(run, examples, scores) -> dict:
    from .kinds import NO_SUBWORD, score

    preds = []
    for s in scores:
        if s.dim() == 1:
            preds.append(int(s.argmax()))
        else:
            preds.append([NO_SUBWORD if bool(row.isnan().any()) else int(row.argmax()) for row in s])
    return score(run.spec, examples, preds, "input", "input", run.cfg.eval.ner_mode).metrics


def _rows(run, inputs: Inputs, scores) -> list[dict]:
    import torch

    labels = run.labels
    rows = []
    for k, (e, s) in enumerate(zip(inputs.examples, scores)):
        row: dict = {"index": e.index}
        if inputs.lines[k] is not None:
            row["line"] = inputs.lines[k]
        row.update(inputs.extra[k] if k < len(inputs.extra) else {})
        if isinstance(e, TokenExample):
            tags, probs = [], []
            for r in s:
                if bool(torch.isnan(r).any()):
                    tags.append(None)
                    probs.append(None)
                else:
                    tags.append(labels[int(r.argmax())])
                    probs.append({lab: _round(p) for lab, p in zip(labels, torch.softmax(r, -1).tolist())})
            row.update({"tokens": list(e.words), "labels": tags, "probs": probs})
            if e.tags is not None:
                row["gold"] = [labels[t] for t in e.tags]
        else:
            p = torch.softmax(s, -1).tolist()
            row["label"] = labels[int(s.argmax())]
            row["probs"] = {lab: _round(x) for lab, x in zip(labels, p)}
            if e.label is not None:
                row["gold"] = labels[e.label]
            row.update(dict(zip(run.spec.text_columns, e.texts)))
        rows.append(row)
    return rows


def _round(p: float) -> float:
    return float(f"{p:.6g}")


def _cell(x) -> str:
    if x is None:
        return ""
    return str(x).replace("\t", " ").replace("\r", " ").replace("\n", " ")


def _write_tsv(f, run, rows: list[dict]) -> None:
    labels = run.labels
    probs = [f"p:{lab}" for lab in labels]
    if run.spec.kind == "token":
        gold = any("gold" in r for r in rows)
        f.write("\t".join(["index", "word_index", "word", "label", *probs, *(["gold"] if gold else [])]) + "\n")
        for r in rows:
            for j, word in enumerate(r["tokens"]):
                p = r["probs"][j]
                probs_j = [p[lab] for lab in labels] if p else [""] * len(labels)
                cells = [r["index"], j, word, r["labels"][j], *probs_j]
                if gold:
                    cells.append(r["gold"][j] if "gold" in r else "")
                f.write("\t".join(_cell(c) for c in cells) + "\n")
        return
    fields = list(run.spec.text_columns)
    gold = any("gold" in r for r in rows)
    f.write("\t".join(["index", "label", *probs, *(["gold"] if gold else []), *fields]) + "\n")
    for r in rows:
        cells = [r["index"], r["label"], *(r["probs"][lab] for lab in labels), *([r.get("gold")] if gold else []),
                 *(r.get(c) for c in fields)]
        f.write("\t".join(_cell(c) for c in cells) + "\n")
