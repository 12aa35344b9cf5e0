"""Tokenization statistics per language: fertility, split share, unknown rate, characters per token.

Words are whitespace-separated chunks. Scripts written without spaces between words (Han, Hiragana, Katakana, Thai,
Lao, Khmer, Myanmar, Tibetan) have no such words: a language whose letters are mostly (> 30 %) in those scripts, or
whose code is zh/ja/th/lo/km/my/bo/dz/yue, is marked ``segmentation=char`` and measured per character instead
(fertility = tokens per non-space character, split share not defined). The table says which unit each row uses.

Word-level counts use the tokenizer's own pre-tokenized mode (``is_split_into_words`` + ``word_ids()``, as label
alignment for tagging does), so each word is tokenized as it would be inside its sentence.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from importlib import resources as importlib_resources
from pathlib import Path

from tqdm.auto import tqdm

from ..errors import XLTuneError, where

# (first, last) code points of scripts written without spaces between words
SPACELESS_RANGES = {
    "Han": [(0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0xF900, 0xFAFF)],
    "Hiragana": [(0x3040, 0x309F)],
    "Katakana": [(0x30A0, 0x30FF)],
    "Thai": [(0x0E00, 0x0E7F)],
    "Lao": [(0x0E80, 0x0EFF)],
    "Tibetan": [(0x0F00, 0x0FFF)],
    "Myanmar": [(0x1000, 0x109F)],
    "Khmer": [(0x1780, 0x17FF)],
}
SPACELESS_LANGS = {"zh", "ja", "th", "lo", "km", "my", "bo", "dz", "yue"}
SPACELESS_SHARE = 0.3
BATCH = 256


@dataclass
class TokStats:
    lang: str
    n_sentences: int
    n_words: int  # whitespace-separated chunks
    n_chars: int  # non-space characters
    n_tokens: int
    segmentation: str  # "word" or "char" (whitespace-free script; fertility is per character)
    script: str  # dominant whitespace-free script, "" when none
    fertility: float  # tokens per word, or per character when segmentation == "char"
    split_share: float  # share of words split into 2+ tokens (NaN for char segmentation)
    unk_rate: float  # unknown tokens / tokens
    chars_per_token: float  # non-space characters per token


def spaceless_script(text: str) -> tuple[str, float]:
    """The most frequent whitespace-free script in ``text`` and the share of letters in such scripts."""
    counts = dict.fromkeys(SPACELESS_RANGES, 0)
    letters = 0
    for ch in text:
        if not ch.isalpha():
            continue
        letters += 1
        cp = ord(ch)
        for name, ranges in SPACELESS_RANGES.items():
            if any(lo <= cp <= hi for lo, hi in ranges):
                counts[name] += 1
                break
    total = sum(counts.values())
    best = max(counts, key=counts.get)  # type: ignore[arg-type]
    return (best if counts[best] else ""), (total / letters if letters else 0.0)


def _word_piece_counts(tokenizer, sents: list[list[str]]) -> list[int]:
    """Tokens per word (in context) for a batch of pre-split sentences."""
    try:
        enc = tokenizer(sents, is_split_into_words=True, add_special_tokens=False)
        out = []
        for i, words in enumerate(sents):
            per = [0] * len(words)
            for w in enc.word_ids(i):
                if w is not None:
                    per[w] += 1
            out.extend(per)
        return out
    except (ValueError, TypeError, AssertionError):
        # byte-level BPE without add_prefix_space refuses pre-split input: tokenize words alone, with a leading
        # space so they get their in-sentence form
        flat = [(" " if j else "") + w for words in sents for j, w in enumerate(words)]
        return [len(ids) for ids in tokenizer(flat, add_special_tokens=False)["input_ids"]]


def compute_tokstats(tokenizer, lang: str, sentences: Sequence[str], progress: bool = True) -> TokStats:
    """Statistics of ``tokenizer`` (a transformers tokenizer) on one language's sentences."""
    sentences = [s.strip() for s in sentences if s.strip()]
    if not sentences:
        raise XLTuneError(f"no text for language {lang!r}")
    script, share = spaceless_script("".join(sentences[:200]))
    base = lang.replace("_", "-").split("-")[0].lower()
    by_char = base in SPACELESS_LANGS or share > SPACELESS_SHARE
    unk = tokenizer.unk_token_id
    n_tokens = n_unk = n_words = n_split = n_chars = 0
    bar = tqdm(range(0, len(sentences), BATCH), desc=f"tokstats {lang}", unit="batch", disable=not progress, leave=False)
    for start in bar:
        batch = sentences[start : start + BATCH]
        for ids in tokenizer(batch, add_special_tokens=False)["input_ids"]:
            n_tokens += len(ids)
            n_unk += sum(1 for t in ids if t == unk) if unk is not None else 0
        n_chars += sum(len(re.sub(r"\s", "", s)) for s in batch)
        split = [s.split() for s in batch]
        n_words += sum(len(w) for w in split)
        if not by_char:
            pieces = _word_piece_counts(tokenizer, split)
            n_split += sum(1 for p in pieces if p >= 2)
    return TokStats(
        lang=lang, n_sentences=len(sentences), n_words=n_words, n_chars=n_chars, n_tokens=n_tokens,
        segmentation="char" if by_char else "word", script=script if by_char else "",
        fertility=n_tokens / (n_chars if by_char else max(n_words, 1)),
        split_share=math.nan if by_char else n_split / max(n_words, 1),
        unk_rate=n_unk / max(n_tokens, 1), chars_per_token=n_chars / max(n_tokens, 1),
    )


# -- reading text files ---------------------------------------------------------------------------------------
def iso_map() -> dict[str, str]:
    """ISO 639-3 (with NTREX-style suffixes) -> short result-language code (packaged data)."""
    text = importlib_resources.files("xltune.resources").joinpath("iso639_3_to_short.tsv").read_text(encoding="utf-8")
    rows = [line.split("\t") for line in text.splitlines() if line and not line.startswith("#")]
    return {a: b for a, b in rows[1:]}


def lang_from_filename(path: str | Path, mapping: dict[str, str] | None = None) -> str:
    """``newstest2019-ref.zho-CN.txt.gz`` -> ``zh``: the last dot-part before .txt/.gz, mapped to a short code."""
    name = Path(path).name
    for ext in (".gz", ".txt", ".tsv"):
        name = name.removesuffix(ext)
    code = name.rsplit(".", 1)[-1]
    mapping = iso_map() if mapping is None else mapping
    return mapping.get(code, code)


def read_lines(path: str | Path) -> list[str]:
    p = Path(path)
    try:
        raw = p.read_bytes()
        if p.suffix == ".gz":
            raw = gzip.decompress(raw)
        return raw.decode("utf-8").splitlines()
    except (OSError, EOFError) as e:
        raise XLTuneError(f"cannot read text file {p}: {e}") from None
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise XLTuneError(f"{where(p, line)}: not UTF-8 text") from None


def texts_by_language(paths: Iterable[str | Path], lang_from_name: bool = True) -> dict[str, tuple[Path, list[str]]]:
    """Language -> (file, lines). Without ``lang_from_name`` the file stem is the language."""
    mapping = iso_map()
    out: dict[str, tuple[Path, list[str]]] = {}
    for path in paths:
        p = Path(path)
        lang = lang_from_filename(p, mapping) if lang_from_name else p.name.split(".")[0]
        if lang in out:
            raise XLTuneError(f"{out[lang][0]} and {p} both map to language {lang!r}; pass only one of them")
        out[lang] = (p, read_lines(p))
    if not out:
        raise XLTuneError("no text files given")
    return out


def tokstats_table(tokenizer, texts: dict[str, Sequence[str]], progress: bool = True) -> list[TokStats]:
    langs = sorted(texts)
    return [compute_tokstats(tokenizer, lg, texts[lg], progress) for lg in tqdm(langs, desc="languages", disable=not progress)]


def write_tokstats_csv(rows: Sequence[TokStats], path: str | Path | None = None) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([f.name for f in fields(TokStats)])
    for r in rows:
        w.writerow([f"{v:.6g}" if isinstance(v, float) else v for v in asdict(r).values()])
    text = buf.getvalue()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text, encoding="utf-8")
    return text


def read_tokstats_csv(path: str | Path) -> dict[str, TokStats]:
    """Language -> stats from a CSV that :func:`write_tokstats_csv` wrote."""
    p = Path(path)
    try:
        rows = list(csv.DictReader(p.read_text(encoding="utf-8").splitlines()))
    except OSError as e:
        raise XLTuneError(f"cannot read tokstats CSV {p}: {e.strerror}") from None
    types = {f.name: f.type for f in fields(TokStats)}
    out = {}
    for lineno, r in enumerate(rows, 2):
        try:
            vals = {k: (int(v) if types[k] == "int" else float(v) if types[k] == "float" else v) for k, v in r.items()}
            out[r["lang"]] = TokStats(**vals)
        except (KeyError, TypeError, ValueError):
            raise XLTuneError(f"{where(p, lineno)}: not a tokstats row (expected columns {', '.join(types)})") from None
    return out


def load_tokenizer(name_or_dir: str):
    """A transformers tokenizer from a hub id or a local directory."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name_or_dir)
    except (OSError, ValueError) as e:
        raise XLTuneError(f"cannot load tokenizer {name_or_dir!r}: {str(e).splitlines()[0]}") from None
