"""Tasks as data: each benchmark is one declared :class:`TaskSpec` (labels, languages, file layout, hub path).

A user's ``task:`` config section names a declared task and may override any of its fields; ``custom`` and
``custom_tagging`` declare nothing and take everything from the config. Languages, columns, label spellings and file
layouts below were checked against the real files and their SOURCE.md in ``../shared/data``.
"""

from __future__ import annotations

import dataclasses
import glob
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import XLTuneError, unknown_name
from ..registry import Registry

FORMATS = ("tsv", "jsonl", "conll", "conllu", "xtreme_tokens", "masakhaner")
SENTENCE_FORMATS = ("tsv", "jsonl")
TOKEN_FORMATS = ("conll", "conllu", "xtreme_tokens", "masakhaner")
TAG_SCHEMES = ("IOB1", "IOB2", "BIOES")


@dataclass(frozen=True)
class HubSpec:
    """Where ``datasets.load_dataset`` finds the task on the Hugging Face hub.

    ``config`` is a pattern with ``{lang}`` (e.g. ``"{lang}"`` for xnli); ``configs`` overrides it per language
    (universal_dependencies names treebanks, not languages). ``splits`` maps our split names to the hub's;
    ``columns`` maps our column names (``text_columns``/``label_column``, or ``tokens``/``tags``) to the hub's.
    """

    path: str
    config: str | None = "{lang}"
    configs: tuple[tuple[str, str], ...] = ()
    splits: tuple[tuple[str, str], ...] = (("train", "train"), ("dev", "validation"), ("test", "test"))
    columns: tuple[tuple[str, str], ...] = ()

    def config_name(self, lang: str) -> str | None:
        per_lang = dict(self.configs)
        if lang in per_lang:
            return per_lang[lang]
        return self.config.format(lang=lang) if self.config is not None else None

    def split_name(self, split: str) -> str:
        return dict(self.splits).get(split, split)

    def column(self, name: str) -> str:
        return dict(self.columns).get(name, name)


@dataclass(frozen=True)
class TaskSpec:
    name: str
    kind: str  # "sequence" | "token"
    labels: tuple[str, ...] = ()  # class names; for token tasks the full IOB2 tag list incl. "O" (or UPOS tags)
    languages: tuple[str, ...] = ()
    format: str | None = None
    file_pattern: str | None = None  # relative to data_dir, with {split} and {lang}; may hold '/' and a '*' glob
    text_columns: tuple[str, ...] = ()
    label_column: str | None = None
    # Column names of header-less TSV files (XNLI and PAWS-X from XTREME have no header); None: first row is a header.
    columns: tuple[str, ...] | None = None
    metric: str = "accuracy"  # "accuracy" | "span_f1"
    encoding: str = "utf-8"
    tag_scheme: str = "IOB2"  # scheme of the files; readers normalise to IOB2
    token_column: int = 0
    tag_column: int = -1
    separator: str | None = None  # None: any whitespace (conll/masakhaner), tab (xtreme_tokens, conllu)
    label_map: tuple[tuple[str, str], ...] = ()  # raw value in the file -> label name
    hub: HubSpec | None = None
    description: str = ""
    # splits whose files are line-aligned translations across languages (line i of en = line i of de): the only
    # splits line-aligned translations of the shots are read from (PAN-X train files are not parallel)
    parallel_splits: tuple[str, ...] = ()

    @property
    def is_token(self) -> bool:
        return self.kind == "token"

    @property
    def raw_to_label(self) -> dict[str, str]:
        return dict(self.label_map)

    @property
    def uses_prefixes(self) -> bool:
        """True for span tag sets (B-/I- tags, NER); False for plain tag sets (UPOS)."""
        return any(t[:2] in ("B-", "I-") for t in self.labels)


TASKS: Registry[TaskSpec] = Registry("task")


def _iob2(*types: str) -> tuple[str, ...]:
    return ("O",) + tuple(f"{p}-{t}" for t in types for p in ("B", "I"))


UPOS = ("ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN", "PUNCT",
        "SCONJ", "SYM", "VERB", "X")

XNLI_LANGS = ("ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh")
PAWSX_LANGS = ("de", "en", "es", "fr", "ja", "ko", "zh")
# Every language with a PAN-X file in ../shared/data/panx (XTREME's 40 plus az gu lt pa pl qu ro uk).
PANX_LANGS = ("af", "ar", "az", "bg", "bn", "de", "el", "en", "es", "et", "eu", "fa", "fi", "fr", "gu", "he", "hi",
              "hu", "id", "it", "ja", "jv", "ka", "kk", "ko", "lt", "ml", "mr", "ms", "my", "nl", "pa", "pl", "pt",
              "qu", "ro", "ru", "sw", "ta", "te", "th", "tl", "tr", "uk", "ur", "vi", "yo", "zh")
MASAKHANER_LANGS = ("amh", "hau", "ibo", "kin", "lug", "luo", "pcm", "swa", "wol", "yor")
# Every language with an XTREME udpos file in ../shared/data/udpos_xtreme.
UDPOS_LANGS = ("af", "ar", "bg", "de", "el", "en", "es", "et", "eu", "fa", "fi", "fr", "he", "hi", "hu", "id", "it",
               "ja", "kk", "ko", "mr", "nl", "pt", "ru", "ta", "te", "th", "tl", "tr", "ur", "vi", "yo", "zh")
SIB200_LANGS = tuple("""
    ace_Arab ace_Latn acm_Arab acq_Arab aeb_Arab afr_Latn ajp_Arab aka_Latn als_Latn amh_Ethi
    apc_Arab arb_Arab arb_Latn ars_Arab ary_Arab arz_Arab asm_Beng ast_Latn awa_Deva ayr_Latn
    azb_Arab azj_Latn bak_Cyrl bam_Latn ban_Latn bel_Cyrl bem_Latn ben_Beng bho_Deva bjn_Arab
    bjn_Latn bod_Tibt bos_Latn bug_Latn bul_Cyrl cat_Latn ceb_Latn ces_Latn cjk_Latn ckb_Arab
    crh_Latn cym_Latn dan_Latn deu_Latn dik_Latn dyu_Latn dzo_Tibt ell_Grek eng_Latn epo_Latn
    est_Latn eus_Latn ewe_Latn fao_Latn fij_Latn fin_Latn fon_Latn fra_Latn fur_Latn fuv_Latn
    gaz_Latn gla_Latn gle_Latn glg_Latn grn_Latn guj_Gujr hat_Latn hau_Latn heb_Hebr hin_Deva
    hne_Deva hrv_Latn hun_Latn hye_Armn ibo_Latn ilo_Latn ind_Latn isl_Latn ita_Latn jav_Latn
    jpn_Jpan kab_Latn kac_Latn kam_Latn kan_Knda kas_Arab kas_Deva kat_Geor kaz_Cyrl kbp_Latn
    kea_Latn khk_Cyrl khm_Khmr kik_Latn kin_Latn kir_Cyrl kmb_Latn kmr_Latn knc_Arab knc_Latn
    kon_Latn kor_Hang lao_Laoo lij_Latn lim_Latn lin_Latn lit_Latn lmo_Latn ltg_Latn ltz_Latn
    lua_Latn lug_Latn luo_Latn lus_Latn lvs_Latn mag_Deva mai_Deva mal_Mlym mar_Deva min_Arab
    min_Latn mkd_Cyrl mlt_Latn mni_Beng mos_Latn mri_Latn mya_Mymr nld_Latn nno_Latn nob_Latn
    npi_Deva nqo_Nkoo nso_Latn nus_Latn nya_Latn oci_Latn ory_Orya pag_Latn pan_Guru pap_Latn
    pbt_Arab pes_Arab plt_Latn pol_Latn por_Latn prs_Arab quy_Latn ron_Latn run_Latn rus_Cyrl
    sag_Latn san_Deva sat_Olck scn_Latn shn_Mymr sin_Sinh slk_Latn slv_Latn smo_Latn sna_Latn
    snd_Arab som_Latn sot_Latn spa_Latn srd_Latn srp_Cyrl ssw_Latn sun_Latn swe_Latn swh_Latn
    szl_Latn tam_Taml taq_Latn taq_Tfng tat_Cyrl tel_Telu tgk_Cyrl tgl_Latn tha_Thai tir_Ethi
    tpi_Latn tsn_Latn tso_Latn tuk_Latn tum_Latn tur_Latn twi_Latn tzm_Tfng uig_Arab ukr_Cyrl
    umb_Latn urd_Arab uzn_Latn vec_Latn vie_Latn war_Latn wol_Latn xho_Latn ydd_Hebr yor_Latn
    yue_Hant zho_Hans zho_Hant zsm_Latn zul_Latn
""".split())  # FLORES-200 codes (ISO 639-3 + script)
SIB200_TOPICS = ("science/technology", "travel", "politics", "sports", "health", "entertainment", "geography")
# universal_dependencies hub configs are treebanks; one main treebank per language (XTREME merges several).
UD_TREEBANKS = (("af", "af_afribooms"), ("ar", "ar_padt"), ("bg", "bg_btb"), ("de", "de_gsd"), ("el", "el_gdt"),
                ("en", "en_ewt"), ("es", "es_gsd"), ("et", "et_edt"), ("eu", "eu_bdt"), ("fa", "fa_seraji"),
                ("fi", "fi_tdt"), ("fr", "fr_gsd"), ("he", "he_htb"), ("hi", "hi_hdtb"), ("hu", "hu_szeged"),
                ("id", "id_gsd"), ("it", "it_isdt"), ("ja", "ja_gsd"), ("kk", "kk_ktb"), ("ko", "ko_gsd"),
                ("mr", "mr_ufal"), ("nl", "nl_alpino"), ("pt", "pt_bosque"), ("ru", "ru_syntagrus"),
                ("ta", "ta_ttb"), ("te", "te_mtg"), ("th", "th_pud"), ("tl", "tl_trg"), ("tr", "tr_imst"),
                ("ur", "ur_udtb"), ("vi", "vi_vtb"), ("yo", "yo_ytb"), ("zh", "zh_gsd"))

TASKS.add("xnli", TaskSpec(
    name="xnli", kind="sequence", labels=("entailment", "neutral", "contradiction"), languages=XNLI_LANGS,
    format="tsv", file_pattern="{split}-{lang}.tsv", text_columns=("premise", "hypothesis"), label_column="label",
    columns=("premise", "hypothesis", "label"), metric="accuracy",
    # The hub's ClassLabel ids are 0 entailment, 1 neutral, 2 contradiction.
    label_map=(("0", "entailment"), ("1", "neutral"), ("2", "contradiction")),
    hub=HubSpec("xnli"), description="XNLI natural language inference (XTREME dev/test TSVs, no header)",
    # dev/test: human translations of the same items; train: the same MNLI items machine-translated
    parallel_splits=("train", "dev", "test")))

TASKS.add("pawsx", TaskSpec(
    name="pawsx", kind="sequence", labels=("not_paraphrase", "paraphrase"), languages=PAWSX_LANGS,
    format="tsv", file_pattern="{split}-{lang}.tsv", text_columns=("sentence1", "sentence2"), label_column="label",
    columns=("sentence1", "sentence2", "label"), metric="accuracy",
    label_map=(("0", "not_paraphrase"), ("1", "paraphrase")),
    hub=HubSpec("paws-x"), description="PAWS-X paraphrase identification (XTREME TSVs; test files are unlabelled)",
    parallel_splits=("dev", "test")))  # human translations of the same English dev/test pairs

TASKS.add("sib200", TaskSpec(
    name="sib200", kind="sequence", labels=SIB200_TOPICS, languages=SIB200_LANGS, format="tsv",
    file_pattern="{lang}/{split}.tsv", text_columns=("text",), label_column="category", metric="accuracy",
    hub=HubSpec("Davlan/sib200"),
    description="SIB-200 topic classification: 7 topics, 205 language varieties (FLORES-200 codes), FLORES sentences",
    # every split holds the same FLORES sentences in the same order in every language
    parallel_splits=("train", "dev", "test")))

TASKS.add("custom", TaskSpec(name="custom", kind="sequence", metric="accuracy",
                             description="your own sentence(-pair) classification files (TSV with header, or JSONL)"))

TASKS.add("panx", TaskSpec(
    name="panx", kind="token", labels=_iob2("PER", "ORG", "LOC"), languages=PANX_LANGS, format="xtreme_tokens",
    file_pattern="{split}-{lang}.tsv.gz", metric="span_f1",
    hub=HubSpec("wikiann", columns=(("tokens", "tokens"), ("tags", "ner_tags"))),
    description="WikiANN / PAN-X NER (XTREME files; test files are unlabelled)"))

TASKS.add("masakhaner", TaskSpec(
    name="masakhaner", kind="token", labels=_iob2("PER", "ORG", "LOC", "DATE"), languages=MASAKHANER_LANGS,
    format="masakhaner", file_pattern="{lang}/{split}.txt", metric="span_f1",
    hub=HubSpec("masakhaner", columns=(("tokens", "tokens"), ("tags", "ner_tags"))),
    description="MasakhaNER 1.0 (10 African languages; point data_dir at .../masakhaner/v1)"))

TASKS.add("conll", TaskSpec(
    name="conll", kind="token", labels=_iob2("PER", "ORG", "LOC", "MISC"), format="conll", metric="span_f1",
    description="CoNLL-2002/2003 style NER files (give file_pattern, languages; encoding/tag_scheme if needed)"))

TASKS.add("udpos", TaskSpec(
    name="udpos", kind="token", labels=UPOS, languages=UDPOS_LANGS, format="xtreme_tokens",
    file_pattern="{split}-{lang}.tsv.gz", metric="accuracy",
    hub=HubSpec("universal_dependencies", config=None, configs=UD_TREEBANKS,
                columns=(("tokens", "tokens"), ("tags", "upos"))),
    description="Universal Dependencies UPOS (XTREME udpos files; CoNLL-U with format: conllu)"))

TASKS.add("custom_tagging", TaskSpec(name="custom_tagging", kind="token", metric="span_f1",
                                     description="your own tagging files (CoNLL / CoNLL-U / token TSV)"))


# -- resolution ----------------------------------------------------------------------------------------------------
_LIST_FIELDS = ("text_columns", "labels", "languages", "parallel_splits")
_OVERRIDES = ("format", "file_pattern", "text_columns", "label_column", "labels", "languages", "encoding",
              "tag_scheme", "token_column", "tag_column", "separator", "parallel_splits")


def resolve_task(task_cfg: Any) -> TaskSpec:
    """The declared spec with the config's non-None overrides applied, validated."""
    spec = TASKS.get(task_cfg.name, "task.name")
    changes: dict[str, Any] = {}
    for key in _OVERRIDES:
        value = getattr(task_cfg, key, None)
        if value is None:
            continue
        changes[key] = tuple(value) if key in _LIST_FIELDS else value
    if "labels" in changes and spec.label_map:
        # The declared raw->label map names the declared labels; user labels are spelled as in the files.
        changes["label_map"] = ()
    if spec.kind == "token" and changes.get("labels"):
        # Span tag sets (B-/I-) are scored by span F1, plain tag sets (POS) per token.
        spans = any(t[:2] in ("B-", "I-") for t in changes["labels"])
        changes["metric"] = "span_f1" if spans else "accuracy"
    spec = dataclasses.replace(spec, **changes)
    validate(spec, getattr(task_cfg, "data_dir", None))
    return spec


def validate(spec: TaskSpec, data_dir: str | Path | None) -> None:
    """Check a resolved spec; one error listing every missing field, named as config keys."""
    missing = []
    if not spec.format:
        missing.append("task.format")
    if not spec.labels:
        missing.append("task.labels")
    if not spec.languages:
        missing.append("task.languages")
    if spec.kind == "sequence":
        if not spec.text_columns:
            missing.append("task.text_columns")
        if not spec.label_column:
            missing.append("task.label_column")
    if data_dir is not None and not spec.file_pattern:
        missing.append("task.file_pattern")
    if missing:
        raise XLTuneError(f"task {spec.name!r} needs {', '.join(missing)} in the config (not declared by the task)")
    if data_dir is None and spec.hub is None:
        raise XLTuneError(f"task {spec.name!r} has no hub dataset; set task.data_dir to the folder with its files")
    valid_formats = SENTENCE_FORMATS if spec.kind == "sequence" else TOKEN_FORMATS
    if spec.format not in valid_formats:
        raise unknown_name(f"format for {spec.kind} task", spec.format, valid_formats, "task.format")
    if spec.tag_scheme not in TAG_SCHEMES:
        raise unknown_name("tag scheme", spec.tag_scheme, TAG_SCHEMES, "task.tag_scheme")
    if spec.kind == "sequence" and not 1 <= len(spec.text_columns) <= 2:
        raise XLTuneError(f"task.text_columns must name 1 or 2 columns, got {list(spec.text_columns)}")
    if len(set(spec.labels)) != len(spec.labels):
        raise XLTuneError(f"task.labels has duplicates: {list(spec.labels)}")
    if spec.file_pattern and "{lang}" not in spec.file_pattern and len(spec.languages) > 1:
        raise XLTuneError(f"task.file_pattern {spec.file_pattern!r} has no {{lang}} but the task has "
                          f"{len(spec.languages)} languages")
    if spec.kind == "token" and spec.uses_prefixes:
        _check_span_labels(spec.labels)


def _check_span_labels(labels: tuple[str, ...]) -> None:
    types = {t[2:] for t in labels if t[:2] in ("B-", "I-")}
    need = ["O"] + [f"{p}-{t}" for t in sorted(types) for p in ("B", "I")]
    missing = [t for t in need if t not in labels]
    if missing:
        raise XLTuneError(f"task.labels (IOB2 tags) must include 'O' and B-/I- for every type; missing: {', '.join(missing)}")
    odd = [t for t in labels if t != "O" and t[:2] not in ("B-", "I-")]
    if odd:
        raise XLTuneError(f"task.labels mixes span tags (B-/I-) with plain tags: {', '.join(odd)}")


# -- files ---------------------------------------------------------------------------------------------------------
def task_file(spec: TaskSpec, data_dir: str | Path, split: str, lang: str) -> Path:
    """The file for (split, lang); tries the '.gz' variant (and the plain one for a '.gz' pattern) transparently.

    A '*' in the pattern is a glob (UD folders: ``UD_*/{lang}_*-ud-{split}.conllu``) that must match one file.
    Both variants present (``dev-en.tsv`` and ``dev-en.tsv.gz``) is an error naming both: they may differ, and a
    silent pick would make results depend on which one we happened to try first.
    Returns the first candidate path even when nothing exists, so callers can name it in an error.
    """
    if not spec.file_pattern:
        raise XLTuneError(f"task {spec.name!r} needs task.file_pattern to read files from {data_dir}")
    rel = spec.file_pattern.format(split=split, lang=lang)
    base = Path(data_dir) / rel
    candidates = [base, Path(str(base) + ".gz")]
    if base.suffix == ".gz":
        candidates.append(base.with_suffix(""))
    found: list[Path] = []
    for c in candidates:
        if "*" in str(c):
            hits = sorted(glob.glob(str(c)))
            if len(hits) > 1:
                raise XLTuneError(f"task.file_pattern {spec.file_pattern!r} matches {len(hits)} files for "
                                  f"{lang}/{split}: {', '.join(hits[:4])}; make it match one")
            found.extend(Path(h) for h in hits)
        elif c.is_file():
            found.append(c)
    if len(found) > 1:
        raise XLTuneError(f"two files for {lang}/{split} of task {spec.name!r}: {', '.join(map(str, found))}; "
                          f"remove or rename one of them")
    return found[0] if found else base


def available_languages(spec: TaskSpec, data_dir: str | Path, split: str) -> list[str]:
    """Declared languages whose file for ``split`` exists under ``data_dir``, in declared order."""
    return [lang for lang in spec.languages if task_file(spec, data_dir, split, lang).is_file()]
