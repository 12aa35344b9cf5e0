"""Translation pairs for the translation contrastive loss, and unlabelled target-language text.

Three sources of pairs:

* line-aligned benchmark splits (XNLI dev/test: row i of every language file translates row i of English) —
  :func:`aligned_translations` maps chosen source examples to their translations by ``index``;
* a user's parallel TSV (``source<TAB>translation[<TAB>more translations]``) — :func:`read_parallel_tsv`;
* machine translation through any transformers seq2seq model (Marian, M2M-100, NLLB, mBART) — :func:`translate`,
  for users with internet (offline, point it at a local model directory).

:func:`read_plain_text` reads one-sentence-per-line text (e.g. NTREX-128), gzip transparent.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import XLTuneError, where
from .records import Example, SentenceExample


# ---------------------------------------------------------------- line-aligned splits


def aligned_translations(
    examples: Sequence[Example],
    load_translations: Callable[[], Sequence[Example]],
    *,
    source_size: int | None = None,
    check_labels: bool = True,
    context: str = "",
) -> list[Example]:
    """The translation of each of ``examples`` from a line-aligned split of another language.

    ``load_translations()`` returns the other language's whole split in file order (``index`` = position), e.g.
    ``lambda: read_split("xnli", "de", "dev")``. ``source_size`` is the number of examples in the source split: when
    given, files of different lengths are an error (they cannot be line-aligned). With ``check_labels`` a labelled
    pair whose labels differ is an error too — for human translations of one split the labels are shared, so a
    mismatch means the files are not aligned. Returns one translation per example, in the order of ``examples``.
    """
    translations = list(load_translations())
    ctx = f" ({context})" if context else ""
    if source_size is not None and source_size != len(translations):
        raise XLTuneError(
            f"parallel files have different line counts{ctx}: source has {source_size} examples, translation has "
            f"{len(translations)}; line-aligned translation pairs need files of equal length"
        )
    out: list[Example] = []
    for ex in examples:
        if not 0 <= ex.index < len(translations):
            raise XLTuneError(
                f"example {ex.id} has index {ex.index} but the translation file has {len(translations)} examples{ctx}"
            )
        tr = translations[ex.index]
        if tr.index != ex.index:
            raise XLTuneError(
                f"translation loader returned example {tr.id} at position {ex.index}{ctx}; expected examples in "
                f"file order (index == position)"
            )
        if check_labels and _label(ex) is not None and _label(tr) is not None and _label(ex) != _label(tr):
            raise XLTuneError(
                f"translation {tr.id} has label {_label(tr)!r} but its source {ex.id} has {_label(ex)!r}{ctx}; "
                f"the files do not look line-aligned"
            )
        out.append(tr)
    return out


def _label(ex: Example) -> int | None:
    # Only sentence labels are comparable: a translated sentence's tags differ in length and order.
    return ex.label if isinstance(ex, SentenceExample) else None


# ---------------------------------------------------------------- files


@dataclass(frozen=True)
class ParallelPair:
    line: int  # 1-based line in the file, for messages
    source: str
    translations: tuple[str, ...]


def _iter_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, text without line ending); gzip by magic bytes; decode errors name file:line."""
    path = Path(path)
    if not path.is_file():
        raise XLTuneError(f"file not found: {path}")
    with open(path, "rb") as fh:
        gzipped = fh.read(2) == b"\x1f\x8b"
    opener = gzip.open if gzipped else open
    with opener(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise XLTuneError(f"{where(path, lineno)}: not UTF-8 text ({e.reason} at byte {e.start})") from None
            yield lineno, text.rstrip("\r\n")


def read_parallel_tsv(path: str | Path, max_lines: int | None = None) -> list[ParallelPair]:
    """Read ``source<TAB>translation[<TAB>translation...]`` lines (blank lines skipped; gzip transparent).

    Every line must have the same number of columns (>= 2) and no empty field; errors name ``file:line``.
    """
    pairs: list[ParallelPair] = []
    n_cols: int | None = None
    first_line = 0
    for lineno, text in _iter_lines(path):
        if max_lines is not None and len(pairs) >= max_lines:
            break
        if not text.strip():
            continue
        cols = text.split("\t")
        if len(cols) < 2:
            raise XLTuneError(f"{where(path, lineno)}: expected source<TAB>translation, found no tab")
        if n_cols is None:
            n_cols, first_line = len(cols), lineno
        elif len(cols) != n_cols:
            raise XLTuneError(
                f"{where(path, lineno)}: {len(cols)} columns, but line {first_line} has {n_cols}; "
                f"every line needs the same number of translations"
            )
        for k, col in enumerate(cols, start=1):
            if not col.strip():
                raise XLTuneError(f"{where(path, lineno)}: column {k} is empty")
        pairs.append(ParallelPair(lineno, cols[0], tuple(cols[1:])))
    return pairs


def read_plain_text(path: str | Path, max_lines: int | None = None, skip_blank: bool = False) -> list[str]:
    """One sentence per line (gzip transparent), line endings stripped.

    Lines are kept one-for-one by default so that line-aligned files (NTREX-128, FLORES) stay aligned;
    ``skip_blank`` drops empty lines. ``max_lines`` stops after that many lines are returned.
    """
    if max_lines is not None and max_lines < 0:
        raise XLTuneError(f"max_lines must be >= 0, got {max_lines}")
    out: list[str] = []
    for _, text in _iter_lines(path):
        if max_lines is not None and len(out) >= max_lines:
            break
        if skip_blank and not text.strip():
            continue
        out.append(text)
    return out


# ---------------------------------------------------------------- machine translation


def translate(
    texts: Sequence[str],
    model_name_or_path: str,
    src_lang: str,
    tgt_lang: str,
    batch_size: int = 16,
    *,
    max_new_tokens: int = 256,
    max_input_length: int = 512,
    num_beams: int = 1,
    device: str | None = None,
) -> list[str]:
    """Translate ``texts`` with a transformers seq2seq model (``AutoModelForSeq2SeqLM.generate``), greedy by default.

    Language codes are the model's own: ``en``/``de`` for M2M-100 (``tokenizer.get_lang_id``), ``eng_Latn``/
    ``deu_Latn`` for NLLB, ``en_XX``/``de_DE`` for mBART-50 (target forced as the first generated token); for
    multi-target Marian models whose vocabulary has ``>>tgt<<`` tokens that prefix is added to each input; a
    bilingual Marian model (``Helsinki-NLP/opus-mt-en-de``) ignores both codes. Inputs longer than
    ``max_input_length`` tokens are truncated. Deterministic for a fixed model (no sampling).
    """
    # Imported here: torch/transformers are heavy and only this function needs them in this module.
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    if batch_size < 1:
        raise XLTuneError(f"translate: batch_size must be >= 1, got {batch_size}")
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_name_or_path)
        model = AutoModelForSeq2SeqLM.from_pretrained(model_name_or_path)
    except (OSError, ValueError) as e:
        raise XLTuneError(f"cannot load translation model {model_name_or_path!r}: {str(e).splitlines()[0]}") from None
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device).eval()

    if hasattr(tokenizer, "src_lang"):
        tokenizer.src_lang = src_lang
    forced_bos, prefix = _target_language(tokenizer, tgt_lang)
    gen_kwargs = {"max_new_tokens": max_new_tokens, "num_beams": num_beams, "do_sample": False}
    if forced_bos is not None:
        gen_kwargs["forced_bos_token_id"] = forced_bos

    # Language-code tokens are not always registered as special (M2M-100's "__de__" in this transformers), so
    # skip_special_tokens alone can leave the forced target code at the start of every translation.
    lang_ids = set(getattr(tokenizer, "lang_token_to_id", {}).values()) | ({forced_bos} if forced_bos is not None else set())
    out: list[str] = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = [prefix + t for t in texts[start : start + batch_size]]
            enc = tokenizer(batch, return_tensors="pt", padding=True, truncation=True, max_length=max_input_length)
            generated = model.generate(**enc.to(device), **gen_kwargs)
            rows = [[i for i in row if i not in lang_ids] for row in generated.tolist()]
            out.extend(tokenizer.batch_decode(rows, skip_special_tokens=True))
    return out


def _target_language(tokenizer, tgt_lang: str) -> tuple[int | None, str]:
    """(forced BOS token id or None, text prefix) that selects ``tgt_lang`` for this tokenizer's model family."""
    if hasattr(tokenizer, "get_lang_id"):  # M2M-100: "__de__" tokens
        try:
            return tokenizer.get_lang_id(tgt_lang), ""
        except KeyError:
            raise XLTuneError(f"translate: target language {tgt_lang!r} is not one of the model's language codes") from None
    vocab = tokenizer.get_vocab()
    if f">>{tgt_lang}<<" in vocab:  # multi-target Marian
        return None, f">>{tgt_lang}<< "
    if tgt_lang in vocab:  # NLLB / mBART language-code tokens
        return vocab[tgt_lang], ""
    return None, ""  # bilingual model: the language pair is the model
