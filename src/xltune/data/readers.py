"""Readers: task files (TSV, JSONL, CoNLL, CoNLL-U, XTREME token TSV, MasakhaNER) or the hub -> example records.

Every reader returns :class:`SentenceExample` / :class:`TokenExample` records with labels as indices into
``spec.labels``; bad input fails with ``file:line`` and what was expected. gzip is detected by magic bytes, a UTF-8
BOM is dropped, CRLF line ends are accepted. Lines are split on '\\n' only: ``str.splitlines`` would also split on
U+2028/U+0085, which occur inside real sentences.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import socket
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlparse

from ..errors import XLTuneError, unknown_name, where
from .records import Example, SentenceExample, TokenExample
from .tags import PREFIXES, entity_types, is_valid_tag, to_iob2
from .tasks import TaskSpec, task_file

log = logging.getLogger(__name__)


def load_examples(spec: TaskSpec, data_dir: str | Path | None, split: str, lang: str, *,
                  labelled: bool = True) -> list[Example]:
    """All examples of one (split, language): from ``data_dir`` files, or from the hub when ``data_dir`` is None.

    ``labelled=False`` accepts files without a label/tag column (labels then are None), e.g. for distillation.
    """
    if lang not in spec.languages:
        raise unknown_name("language", lang, spec.languages, f"task {spec.name!r}")
    if data_dir is None:
        return load_hub(spec, split, lang, labelled=labelled)
    path = task_file(spec, data_dir, split, lang)
    if not path.is_file():
        raise XLTuneError(f"no {split} file for language {lang!r} of task {spec.name!r}: {path} does not exist "
                          f"(task.file_pattern {spec.file_pattern!r} under {data_dir})")
    reader = READERS[spec.format]
    return reader(spec, path, split, lang, labelled)


# -- text ---------------------------------------------------------------------------------------------------------
def read_text(path: Path, encoding: str = "utf-8") -> str:
    """Whole file as text: gunzipped when gzip (magic bytes), BOM dropped; non-UTF-8 bytes reported with the fix."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise XLTuneError(f"cannot read {path}: {e.strerror}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise XLTuneError(f"{path}: corrupt gzip file ({e})") from None
    utf8 = encoding.lower().replace("_", "-") in ("utf-8", "utf8")
    try:
        return raw.decode("utf-8-sig" if utf8 else encoding)
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        fix = "set `task.encoding: latin-1` (or the file's real encoding)" if utf8 else "set `task.encoding` to the file's real encoding"
        raise XLTuneError(f"{where(path, line)}: {path.name} is not {'UTF-8' if utf8 else encoding} "
                          f"(byte 0x{raw[e.start]:02x} at line {line}); {fix}") from None
    except LookupError:
        raise unknown_name("encoding", encoding, ["utf-8", "latin-1", "cp1252", "utf-16"], "task.encoding") from None


def numbered_lines(text: str) -> Iterator[tuple[int, str]]:
    """(1-based line number, line without '\\r\\n')."""
    for i, line in enumerate(text.split("\n"), 1):
        yield i, line.rstrip("\r")


def _empty(path: Path) -> XLTuneError:
    return XLTuneError(f"{path}: no examples (the file is empty)")


# -- sentence files -----------------------------------------------------------------------------------------------
class _Labeller:
    """Raw label value -> index into spec.labels, with the error message the user needs."""

    def __init__(self, spec: TaskSpec):
        self.index = {name: i for i, name in enumerate(spec.labels)}
        self.raw = spec.raw_to_label
        self.labels = spec.labels

    def __call__(self, raw: object, path: Path, line: int) -> int:
        key = str(raw).strip() if not isinstance(raw, bool) else str(int(raw))
        name = self.raw.get(key, key)
        try:
            return self.index[name]
        except KeyError:
            raise XLTuneError(f"{where(path, line)}: label {key!r} is not one of {', '.join(self.labels)}") from None


def _no_labels(path: Path, column: str, found: list[str]) -> XLTuneError:
    return XLTuneError(f"{path}: no {column!r} column (columns: {', '.join(found)}); this file is unlabelled "
                       f"(XTREME strips test labels) -- use a labelled split, or read it with labelled=False")


def read_tsv(spec: TaskSpec, path: Path, split: str, lang: str, labelled: bool = True) -> list[SentenceExample]:
    """Tab-separated, no quoting (XNLI text contains quotes); first row is the header unless spec.columns is given."""
    rows = [(n, line) for n, line in numbered_lines(read_text(path, spec.encoding)) if line.strip()]
    if not rows:
        raise _empty(path)
    first = rows[0][1].split("\t")
    named = {c.strip() for c in first}
    # A header row is also accepted in header-less tasks (e.g. PAWS-X's hf_labeled files: id, sentence1, ...).
    if spec.columns is None or {*spec.text_columns, spec.label_column} <= named:
        header_line = rows[0][0]
        columns, rows = [c.strip() for c in first], rows[1:]
        for need in (*spec.text_columns, *([spec.label_column] if labelled else [])):
            if need not in columns:
                if need == spec.label_column:
                    raise _no_labels(path, need, columns)
                raise XLTuneError(f"{where(path, header_line)}: missing column {need!r} in the header "
                                  f"(header: {', '.join(columns)}; expected {', '.join(spec.text_columns)}, "
                                  f"{spec.label_column})")
    else:
        columns = list(spec.columns)
        # XTREME test files drop the trailing label column: such a file is unlabelled, not malformed.
        if len(first) == len(columns) - 1 and columns[-1] == spec.label_column:
            columns = columns[:-1]
            if labelled:
                raise _no_labels(path, spec.label_column, columns)
    if not rows:
        raise _empty(path)
    text_idx = [columns.index(c) for c in spec.text_columns]
    label_idx = columns.index(spec.label_column) if spec.label_column in columns else None
    to_label = _Labeller(spec)
    out: list[SentenceExample] = []
    for i, (n, line) in enumerate(rows):
        fields = line.split("\t")
        if len(fields) != len(columns):
            raise XLTuneError(f"{where(path, n)}: expected {len(columns)} tab-separated columns "
                              f"({', '.join(columns)}), got {len(fields)}")
        label = to_label(fields[label_idx], path, n) if label_idx is not None else None
        out.append(SentenceExample(f"{lang}/{split}/{i}", lang, i, tuple(fields[j] for j in text_idx), label))
    return out


def json_object(line: str, path: Path, n: int) -> dict:
    """One JSON-lines line as an object; anything else is an error naming the file and line."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise XLTuneError(f"{where(path, n)}: not valid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(obj, dict):
        raise XLTuneError(f"{where(path, n)}: expected a JSON object, got {type(obj).__name__}")
    return obj


def read_jsonl(spec: TaskSpec, path: Path, split: str, lang: str, labelled: bool = True) -> list[SentenceExample]:
    """One JSON object per line with the text columns and the label column as keys."""
    to_label = _Labeller(spec)
    out: list[SentenceExample] = []
    for n, line in numbered_lines(read_text(path, spec.encoding)):
        if not line.strip():
            continue
        obj = json_object(line, path, n)
        for key in spec.text_columns:
            if not isinstance(obj.get(key), str):
                raise XLTuneError(f"{where(path, n)}: missing text key {key!r} (keys: {', '.join(obj)})")
        raw = obj.get(spec.label_column)
        if raw is None and labelled:
            raise XLTuneError(f"{where(path, n)}: missing label key {spec.label_column!r} (keys: {', '.join(obj)}); "
                              f"every line of a labelled split needs one (API: labelled=False reads unlabelled text)")
        label = to_label(raw, path, n) if raw is not None else None
        i = len(out)
        out.append(SentenceExample(f"{lang}/{split}/{i}", lang, i, tuple(obj[k] for k in spec.text_columns), label))
    if not out:
        raise _empty(path)
    return out


# -- token files --------------------------------------------------------------------------------------------------
class _TagChecker:
    """Validates raw tags against the declared set and normalises each sentence to IOB2 indices."""

    def __init__(self, spec: TaskSpec):
        self.spec = spec
        self.spans = spec.uses_prefixes
        self.types = set(entity_types(spec.labels))
        self.index = {t: i for i, t in enumerate(spec.labels)}
        self.repairs = 0

    def check(self, tag: str, path: Path, line: int) -> None:
        ok = is_valid_tag(tag, self.types, self.spec.tag_scheme) if self.spans else tag in self.index
        if not ok:
            extra = f" (tag_scheme {self.spec.tag_scheme}: prefixes {'/'.join(PREFIXES[self.spec.tag_scheme])})" \
                if self.spans else ""
            raise XLTuneError(f"{where(path, line)}: tag {tag!r} is not one of {', '.join(self.spec.labels)}{extra}")

    def indices(self, tags: list[str]) -> tuple[int, ...]:
        if self.spans:
            tags, n = to_iob2(tags, self.spec.tag_scheme)
            self.repairs += n
        return tuple(self.index[t] for t in tags)


def _read_token_file(spec: TaskSpec, path: Path, split: str, lang: str, labelled: bool, *,
                     separator: str | None, token_col: int, tag_col: int,
                     skip: Callable[[str], bool], width: int | None = None,
                     strip_prefix: bool = False, skipped_is_content: bool = False) -> list[TokenExample]:
    """Shared loop of the column formats: one token per line, blank line between sentences."""
    checker = _TagChecker(spec)
    out: list[TokenExample] = []
    words: list[str] = []
    tags: list[str] = []
    had_lines = False  # the current block had non-blank lines (comments, DOCSTART, ...) -> an empty sentence
    empty_sentences = 0
    file_width = width
    has_tags: bool | None = None
    prefix = f"{lang}:"

    def flush() -> None:
        nonlocal words, tags, had_lines, empty_sentences
        if words:
            i = len(out)
            out.append(TokenExample(f"{lang}/{split}/{i}", lang, i, tuple(words),
                                    checker.indices(tags) if has_tags else None))
        elif had_lines:
            empty_sentences += 1
        words, tags, had_lines = [], [], False

    for n, line in numbered_lines(read_text(path, spec.encoding)):
        if not line.strip():
            flush()
            continue
        if skip(line):
            # CoNLL-U comments belong to a sentence (a block of only comments is an empty sentence); -DOCSTART- does not.
            had_lines = had_lines or skipped_is_content
            continue
        fields = line.split(separator) if separator else line.split()
        if file_width is None:
            file_width = len(fields)
        if len(fields) != file_width:
            raise XLTuneError(f"{where(path, n)}: expected {file_width} columns "
                              f"({'tab' if separator == chr(9) else 'whitespace'}-separated), got {len(fields)}")
        if has_tags is None:
            has_tags = file_width > 1
            if not has_tags and labelled:
                raise XLTuneError(f"{path}: has only a token column, no tags (XTREME strips PAN-X test tags) -- "
                                  f"use a labelled split, or read it with labelled=False")
            for col, name in ((token_col, "task.token_column"), (tag_col, "task.tag_column")):
                if has_tags and not -file_width <= col < file_width:
                    raise XLTuneError(f"{where(path, n)}: {name} {col} is out of range for {file_width} columns")
        if skip_node(fields, spec.format):
            had_lines = True
            continue
        word = fields[token_col if has_tags else 0]
        if strip_prefix and word.startswith(prefix) and len(word) > len(prefix):
            word = word[len(prefix):]
        words.append(word)
        if has_tags:
            tag = fields[tag_col].strip()
            checker.check(tag, path, n)
            tags.append(tag)
        had_lines = True
    flush()
    if not out:
        raise _empty(path)
    if checker.repairs:
        warnings.warn(f"{path}: {checker.repairs} I- tag(s) without an opening B- were read as B- (IOB2 repair)",
                      stacklevel=4)
    if empty_sentences:
        warnings.warn(f"{path}: skipped {empty_sentences} empty sentence(s)", stacklevel=4)
    return out


def skip_node(fields: list[str], fmt: str | None) -> bool:
    """CoNLL-U multiword-token ranges ('1-2') and empty nodes ('1.1') carry no UPOS of their own word."""
    return fmt == "conllu" and ("-" in fields[0] or "." in fields[0])


def read_conll(spec: TaskSpec, path: Path, split: str, lang: str, labelled: bool = True) -> list[TokenExample]:
    return _read_token_file(spec, path, split, lang, labelled, separator=spec.separator,
                            token_col=spec.token_column, tag_col=spec.tag_column,
                            skip=lambda line: line.startswith("-DOCSTART-"))


def read_xtreme_tokens(spec: TaskSpec, path: Path, split: str, lang: str, labelled: bool = True) -> list[TokenExample]:
    """XTREME's PAN-X/udpos files: ``word<TAB>TAG`` (test: ``word``), optionally ``lang:word`` (XTREME raw)."""
    return _read_token_file(spec, path, split, lang, labelled, separator=spec.separator or "\t",
                            token_col=0, tag_col=-1, skip=lambda line: False, strip_prefix=True)


def read_conllu(spec: TaskSpec, path: Path, split: str, lang: str, labelled: bool = True) -> list[TokenExample]:
    """CoNLL-U: FORM and UPOS columns (1 and 3 unless overridden); comments, ranges and empty nodes skipped."""
    tag_col = spec.tag_column if spec.tag_column != -1 else 3
    token_col = spec.token_column if spec.token_column != 0 else 1
    return _read_token_file(spec, path, split, lang, labelled, separator="\t", token_col=token_col,
                            tag_col=tag_col, skip=lambda line: line.startswith("#"), width=10,
                            skipped_is_content=True)


READERS: dict[str, Callable[..., list]] = {
    "tsv": read_tsv, "jsonl": read_jsonl, "conll": read_conll, "masakhaner": read_conll,
    "xtreme_tokens": read_xtreme_tokens, "conllu": read_conllu,
}


# -- hub ----------------------------------------------------------------------------------------------------------
def _hub_reachable(timeout: float = 3.0) -> bool:
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _offline_mode() -> bool:
    return any(os.environ.get(k, "").lower() in ("1", "true", "yes", "on") for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def load_hub(spec: TaskSpec, split: str, lang: str, *, labelled: bool = True) -> list[Example]:
    """Load through ``datasets.load_dataset`` and convert to the same records as the file readers."""
    hub = spec.hub
    if hub is None:
        raise XLTuneError(f"task {spec.name!r} has no hub dataset; set task.data_dir to the folder with its files")
    config = hub.config_name(lang)
    name = f"{hub.path}" + (f" ({config})" if config else "")
    # Without this probe, datasets retries for ~25 s before failing when the hub cannot be reached.
    if not _offline_mode() and not _hub_reachable():
        raise XLTuneError(f"the Hugging Face hub is not reachable, cannot load {name}; set task.data_dir to a folder "
                          f"with the task's files (pattern {spec.file_pattern!r}), or HF_HUB_OFFLINE=1 to use the cache")
    import datasets  # slow import; only on the hub path

    try:
        ds = datasets.load_dataset(hub.path, config, split=hub.split_name(split))
    except Exception as e:  # datasets raises many types (ConnectionError, FileNotFoundError, ValueError ...)
        raise XLTuneError(f"cannot load {name} split {hub.split_name(split)!r} from the hub: {e}; "
                          f"or set task.data_dir to local files") from None
    source = Path(f"hub:{name}/{hub.split_name(split)}")
    if spec.is_token:
        return _hub_tokens(spec, ds, source, split, lang, labelled)
    return _hub_sentences(spec, ds, source, split, lang, labelled)


def _class_names(feature: object) -> list[str] | None:
    inner = getattr(feature, "feature", feature)  # Sequence(ClassLabel) or List(ClassLabel)
    return list(inner.names) if hasattr(inner, "names") else None


def _hub_sentences(spec: TaskSpec, ds, source: Path, split: str, lang: str, labelled: bool) -> list[SentenceExample]:
    hub = spec.hub
    label_col = hub.column(spec.label_column)
    names = _class_names(ds.features.get(label_col)) if label_col in ds.features else None
    to_label = _Labeller(spec)
    out = []
    for i, row in enumerate(ds):
        raw = row.get(label_col)
        label = None
        if raw is not None and raw != -1:  # -1: hub placeholder for hidden test labels
            value = names[raw] if names and names[raw] in spec.labels else raw
            label = to_label(value, source, i + 1)
        elif labelled:
            raise XLTuneError(f"{source}: example {i} has no label; read with labelled=False for unlabelled text")
        texts = tuple(row[hub.column(c)] for c in spec.text_columns)
        out.append(SentenceExample(f"{lang}/{split}/{i}", lang, i, texts, label))
    return out


def _hub_tokens(spec: TaskSpec, ds, source: Path, split: str, lang: str, labelled: bool) -> list[TokenExample]:
    hub = spec.hub
    tok_col, tag_col = hub.column("tokens"), hub.column("tags")
    names = _class_names(ds.features.get(tag_col)) if tag_col in ds.features else None
    checker = _TagChecker(spec)
    out = []
    for row in ds:
        words, tags = [], []
        raw_tags = row.get(tag_col) if tag_col in row else None
        for j, w in enumerate(row[tok_col]):
            tag = None
            if raw_tags is not None:
                tag = names[raw_tags[j]] if names else str(raw_tags[j])
                if tag == "_":  # universal_dependencies: multiword-token rows have no UPOS of their own
                    continue
                checker.check(tag, source, len(out) + 1)
            words.append(w)
            tags.append(tag)
        if not words:
            continue
        if raw_tags is None and labelled:
            raise XLTuneError(f"{source}: no {tag_col!r} column; read with labelled=False for unlabelled text")
        i = len(out)
        out.append(TokenExample(f"{lang}/{split}/{i}", lang, i, tuple(words),
                                checker.indices(tags) if raw_tags is not None else None))
    return out
