"""Text for language modules: files a user names, or a corpus by name resolved for a language code.

``--text`` takes paths (plain text, one sentence or document per line; ``.gz``; a TSV whose header has a ``text``
column reads that column) or corpus names:

* ``ntrex128`` — NTREX-128 (news, 1,997 sentences per language) under ``DATA_ROOT/ntrex128``;
* ``sib200`` — SIB-200's FLORES-200 sentences (train + dev + test, 1,004 per language) under ``DATA_ROOT/sib200``;
* ``synthetic`` — the synthetic world's corpus of that language (the demo's default world, built or reused from the
  cache).

Language codes: the benchmarks' two-letter codes (XNLI, PAWS-X, PAN-X) are mapped to the corpora's own codes by the
table below (XNLI ``sw`` is NTREX ``swa`` and FLORES ``swh_Latn``); a corpus's own code works as well.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
from pathlib import Path

from ..errors import XLTuneError

CORPORA = ("ntrex128", "sib200", "synthetic")

# benchmark code -> (NTREX-128 file code, FLORES-200 code as SIB-200 names its folders)
CODES: dict[str, tuple[str, str]] = {
    "ar": ("arb", "arb_Arab"), "bg": ("bul", "bul_Cyrl"), "de": ("deu", "deu_Latn"), "el": ("ell", "ell_Grek"),
    "en": ("eng", "eng_Latn"), "es": ("spa", "spa_Latn"), "fr": ("fra", "fra_Latn"), "hi": ("hin", "hin_Deva"),
    "ru": ("rus", "rus_Cyrl"), "sw": ("swa", "swh_Latn"), "th": ("tha", "tha_Thai"), "tr": ("tur", "tur_Latn"),
    "ur": ("urd", "urd_Arab"), "vi": ("vie", "vie_Latn"), "zh": ("zho-CN", "zho_Hans"), "ja": ("jpn", "jpn_Jpan"),
    "ko": ("kor", "kor_Hang"), "yo": ("yor", "yor_Latn"), "af": ("afr", "afr_Latn"), "fa": ("fas", "pes_Arab"),
    "he": ("heb", "heb_Hebr"), "id": ("ind", "ind_Latn"), "it": ("ita", "ita_Latn"), "pt": ("por", "por_Latn"),
    "ta": ("tam", "tam_Taml"), "te": ("tel", "tel_Telu"), "mr": ("mar", "mar_Deva"), "bn": ("ben", "ben_Beng"),
    "swa": ("swa", "swh_Latn"),  # MasakhaNER's code
}


def resolve_text(items: list[str], lang: str, data_root: str | Path) -> list[Path]:
    """Paths of the text files ``items`` name for ``lang`` (paths as given; corpus names resolved)."""
    root = Path(data_root).expanduser()
    out: list[Path] = []
    for item in items:
        if item in CORPORA:
            out.extend(corpus_files(item, lang, root))
            continue
        path = Path(item).expanduser()
        if not path.is_file():
            raise XLTuneError(f"--text {item}: no such file (give text files, or a corpus: {', '.join(CORPORA)})")
        out.append(path)
    if not out:
        raise XLTuneError("--text: no text given")
    return out


def corpus_files(corpus: str, lang: str, root: Path) -> list[Path]:
    if corpus == "synthetic":
        from ..data.synthetic import WorldConfig, ensure_world_and_model

        data_dir, _, _ = ensure_world_and_model(WorldConfig())
        path = Path(data_dir) / "corpus" / f"{lang}.txt"
        if not path.is_file():
            langs = sorted(p.stem for p in (Path(data_dir) / "corpus").glob("*.txt"))
            raise XLTuneError(f"--text synthetic: the synthetic world has no language {lang!r} "
                              f"(its languages: {', '.join(langs)})")
        return [path]
    folder = root / corpus
    if not folder.is_dir():
        raise XLTuneError(f"--text {corpus}: {folder} not found; pass --data-root DIR (the folder holding "
                          f"{corpus}/)")
    ntrex, flores = CODES.get(lang, (lang, lang))
    if corpus == "ntrex128":
        name = "newstest2019-src.eng.txt.gz" if ntrex == "eng" else f"newstest2019-ref.{ntrex}.txt.gz"
        path = folder / name
        if not path.is_file():
            raise XLTuneError(f"--text ntrex128: no file for language {lang!r} ({path} missing); give NTREX's own "
                              f"code (see {folder / 'LANGUAGES.tsv'}) or a file")
        return [path]
    if not (folder / flores).is_dir():  # a three-letter code: its one script variant
        matches = sorted(p.name for p in folder.glob(f"{flores}_*") if p.is_dir())
        if len(matches) != 1:
            raise XLTuneError(f"--text sib200: no folder for language {lang!r} under {folder}"
                              + (f" (several: {', '.join(matches)}; name one)" if matches else
                                 "; give its FLORES-200 code (e.g. swh_Latn) or a file"))
        flores = matches[0]
    # train and dev only: a module trained on SIB-200's test sentences would have seen the inputs the sib200 task
    # is scored on
    return [folder / flores / f"{split}.tsv.gz" for split in ("train", "dev")
            if (folder / flores / f"{split}.tsv.gz").is_file()]


def read_lines(path: Path) -> list[str]:
    """Non-empty lines of a text file (``.gz`` too); a TSV whose header names a ``text`` column gives that column."""
    try:
        raw = gzip.open(path, "rb").read() if str(path).endswith(".gz") else Path(path).read_bytes()
    except OSError as e:
        raise XLTuneError(f"cannot read text file {path}: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise XLTuneError(f"{path}: not UTF-8 text (byte {e.start}); convert it to UTF-8") from None
    lines = text.splitlines()
    if lines and ".tsv" in Path(path).name and "text" in lines[0].split("\t"):
        rows = csv.DictReader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE)
        return [r["text"].strip() for r in rows if (r.get("text") or "").strip()]
    return [line.strip() for line in lines if line.strip()]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
