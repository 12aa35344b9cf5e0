"""Per-language pretraining-data sizes as data, and the high / low / unseen grouping built on them.

The packaged default is XGLM's CC100-XL table (``resources/xglm_cc100xl.tsv``, source in its header). Users pass
their own table as TSV with at least ``lang<TAB>tokens`` ('#' lines are comments, an optional header row).

Grouping (declared, overridable): a language is **high** when its share of the corpus is >= ``HIGH_SHARE`` (1 %) or
it has >= ``HIGH_TOKENS`` (10 billion) tokens; **low** when it is in the table below both; **unseen** when the table
does not list it. With the XGLM table that gives 17 high (en ... th), 13 low (bg ... qu). A table may set its own
thresholds with comment lines ``# high_share: 0.11`` / ``# high_tokens: 1e6`` (the demo's synthetic world does:
its languages hold 5-30 % of its corpus each).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources as importlib_resources
from pathlib import Path

from ..errors import XLTuneError, where

HIGH_SHARE = 0.01
HIGH_TOKENS = 1e10
DEFAULT_TABLE = "xglm_cc100xl.tsv"
GROUPS = ("high", "low", "unseen", "unknown")  # unknown: a variety whose coverage cannot be told (FLORES codes)
FLORES = "flores_languages.tsv"


@dataclass(frozen=True)
class ResourceTable:
    """lang -> pretraining tokens; ``share`` is each language's fraction of the table's total (or as published)."""

    tokens: dict[str, float]
    share: dict[str, float]
    source: str
    # The grouping thresholds: the module defaults, or the table's own (`# high_share: 0.11` lines).
    high_share: float = HIGH_SHARE
    high_tokens: float = HIGH_TOKENS

    def lookup(self, lang: str) -> str | None:
        """The table's key for a result language: exact, then lower-case, then (FLORES-200 codes such as eng_Latn,
        as SIB-200 names its languages) the short code the variety maps to, then without a region/script suffix."""
        cands = [lang, lang.lower()]
        flores = flores_code(lang)
        if flores is not None:
            cands.append(flores)
        cands.append(lang.replace("_", "-").split("-")[0].lower())
        for cand in cands:
            if cand and cand in self.tokens:
                return cand
        return None

    def log_tokens(self, lang: str) -> float | None:
        key = self.lookup(lang)
        return None if key is None or self.tokens[key] <= 0 else math.log10(self.tokens[key])

    def group(self, lang: str, high_share: float | None = None, high_tokens: float | None = None) -> str:
        key = self.lookup(lang)
        if key is None:
            return "unknown" if flores_code(lang) == "" else "unseen"
        high_share = self.high_share if high_share is None else high_share
        high_tokens = self.high_tokens if high_tokens is None else high_tokens
        return "high" if self.share[key] >= high_share or self.tokens[key] >= high_tokens else "low"


def flores_code(lang: str) -> str | None:
    """The short code of a FLORES-200 code (``eng_Latn`` -> ``en``); '' for a variety whose coverage is unknown
    (resources/flores_languages.tsv); None for codes that are not FLORES-style."""
    parts = lang.split("_")
    if len(parts) != 2 or len(parts[0]) != 3 or len(parts[1]) != 4 or not parts[1][0].isupper():
        return None
    table = _flores()
    if lang in table:
        return table[lang]
    return _iso639_3().get(parts[0], parts[0])


_CACHE: dict[str, dict[str, str]] = {}


def _flores() -> dict[str, str]:
    if "flores" not in _CACHE:
        text = importlib_resources.files("xltune.resources").joinpath(FLORES).read_text(encoding="utf-8")
        rows = [line.split("\t") for line in text.splitlines() if line.strip() and not line.startswith("#")]
        _CACHE["flores"] = {r[0]: (r[1] if len(r) > 1 else "").strip() for r in rows[1:]}
    return _CACHE["flores"]


def _iso639_3() -> dict[str, str]:
    if "iso" not in _CACHE:
        text = importlib_resources.files("xltune.resources").joinpath("iso639_3_to_short.tsv").read_text(
            encoding="utf-8")
        rows = [line.split("\t") for line in text.splitlines() if line.strip() and not line.startswith("#")]
        _CACHE["iso"] = {r[0].split("-")[0]: r[1].strip() for r in rows[1:] if len(r) > 1}
    return _CACHE["iso"]


def load_resource_table(path: str | Path | None = None) -> ResourceTable:
    """Read a resource TSV (``None``: the packaged XGLM CC100-XL table)."""
    if path is None:
        ref = importlib_resources.files("xltune.resources").joinpath(DEFAULT_TABLE)
        text, source = ref.read_text(encoding="utf-8"), f"xltune/resources/{DEFAULT_TABLE}"
    else:
        p = Path(path)
        try:
            text, source = p.read_text(encoding="utf-8"), str(p)
        except OSError as e:
            raise XLTuneError(f"cannot read resource table {p}: {e.strerror}") from None
    return parse_resource_table(text, source)


def parse_resource_table(text: str, source: str = "<table>") -> ResourceTable:
    tokens: dict[str, float] = {}
    shares: dict[str, float] = {}
    share_col: int | None = None
    thresholds: dict[str, float] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        directive = line.lstrip("# \t").split(":", 1) if line.lstrip().startswith("#") else []
        if len(directive) == 2 and directive[0].strip() in ("high_share", "high_tokens"):
            try:
                thresholds[directive[0].strip()] = float(directive[1])
            except ValueError:
                raise XLTuneError(f"{where(source, lineno)}: {directive[0].strip()} must be a number, "
                                  f"got {directive[1].strip()!r}") from None
            continue
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        cols = [c.strip() for c in line.split("\t")]
        if cols[0].lower() == "lang":  # header row: find an optional published share column
            share_col = cols.index("share") if "share" in cols else None
            continue
        if len(cols) < 2:
            raise XLTuneError(f"{where(source, lineno)}: expected lang<TAB>tokens, got {line!r}")
        try:
            n = float(cols[1])
            if share_col is not None and share_col < len(cols):
                shares[cols[0]] = float(cols[share_col])
        except ValueError:
            raise XLTuneError(f"{where(source, lineno)}: token count must be a number, got {line!r}") from None
        if n < 0 or math.isnan(n):
            raise XLTuneError(f"{where(source, lineno)}: token count must be >= 0, got {cols[1]!r}")
        if cols[0] in tokens:
            raise XLTuneError(f"{where(source, lineno)}: language {cols[0]!r} listed twice")
        tokens[cols[0]] = n
    if not tokens:
        raise XLTuneError(f"{source}: no lang<TAB>tokens rows found")
    total = sum(tokens.values()) or 1.0
    share = {k: shares.get(k, v / total) for k, v in tokens.items()}
    return ResourceTable(tokens=tokens, share=share, source=source, **thresholds)


def group_languages(
    langs: list[str], table: ResourceTable, high_share: float | None = None, high_tokens: float | None = None
) -> dict[str, list[str]]:
    """{"high": [...], "low": [...], "unseen": [...]} in the given language order."""
    out: dict[str, list[str]] = {g: [] for g in GROUPS}
    for lang in langs:
        out[table.group(lang, high_share, high_tokens)].append(lang)
    return out
