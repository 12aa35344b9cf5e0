"""The bad-input catalogue: every malformed input, end to end through ``xltune run`` (``xltune.cli.main``).

Each failing case must give exit status 2, exactly one ``xltune: error: ...`` line on stderr (no traceback) naming
what and where (file:line when there is one), and leave no run in the store and no checkpoint behind. Inputs that are
merely unusual (BOM, CRLF, a missing dev split, an I- tag without B-) must run and store a correct run.
docs/errors.md lists every case with its message and fix.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from xltune.cli import main as cli_main

LABELS = ["entailment", "neutral", "contradiction"]
WORDS = {
    "en": "the a man woman dog cat runs sleeps is not happy big small house city".split(),
    "de": "der die mann frau hund katze läuft schläft ist nicht glücklich groß klein haus stadt".split(),
    "sw": "mtu mwanamke mbwa paka anakimbia analala ni si furaha kubwa ndogo nyumba mji".split(),
}
NER_SENTENCE = [("John", "B-PER"), ("lives", "O"), ("in", "O"), ("New", "B-LOC"), ("York", "I-LOC"),
                ("at", "O"), ("Acme", "B-ORG"), (".", "O")]


# -- a tiny world per test: XNLI-style files, a config file, a store -------------------------------------------------
@dataclass
class World:
    root: Path
    data: Path
    config: Path
    store: Path
    runs: Path


def write_xnli(folder: Path, n_dev: int = 9, n_test: int = 6, langs=("en", "de", "sw")) -> Path:
    """Header + premise/hypothesis/label rows; 3 dev examples per class (shots up to 3)."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("dev", n_dev), ("test", n_test)):
        for lang in langs:
            r = random.Random(f"{split}-{lang}")
            rows = ["premise\thypothesis\tlabel"]
            for i in range(n):
                p = " ".join(r.choice(WORDS[lang]) for _ in range(r.randint(3, 7)))
                h = " ".join(r.choice(WORDS[lang]) for _ in range(r.randint(2, 5)))
                rows.append(f"{p}\t{h}\t{LABELS[i % 3]}")
            (folder / f"{split}-{lang}.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


def write_config(w: World, model_dir: Path, task: str | None = None) -> None:
    task = task or f"{{name: xnli, data_dir: {w.data}}}"
    w.config.write_text(
        f"model: {{name_or_path: {model_dir}}}\n"
        "method: {name: deep_prompt, prefix_length: 2}\n"
        f"task: {task}\n"
        "train: {split: dev, shots: 1, epochs: 1, batch_size: 3, dev: {policy: none}}\n"
        "eval: {split: test}\n"
        f"seeds: [1]\nstore: {w.store}\noutput_dir: {w.runs}\n", encoding="utf-8")


@pytest.fixture()
def world(tmp_path, tiny_xglm_dir) -> World:
    w = World(tmp_path, write_xnli(tmp_path / "data"), tmp_path / "exp.yaml", tmp_path / "results.sqlite",
              tmp_path / "runs")
    write_config(w, tiny_xglm_dir)
    return w


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    # no test here may touch the network; the hub cases set their own variables
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def xltune(w: World, capsys, *sets: str, config: Path | None = None) -> tuple[int, str]:
    argv = ["run", str(config or w.config)] + [a for s in sets for a in ("--set", s)]
    capsys.readouterr()
    rc = cli_main(argv)
    return rc, capsys.readouterr().err


def stored_runs(store: Path) -> int:
    if not store.exists():
        return 0
    with sqlite3.connect(store) as db:
        return db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]


def fails(w: World, rc: int, err: str, *fragments: str) -> str:
    """Exit 2, one error line (the last on stderr) holding every fragment, no traceback, nothing stored."""
    assert rc == 2, err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("xltune: error: ")]
    assert len(lines) == 1 and err.rstrip().splitlines()[-1] == lines[0], err
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    assert stored_runs(w.store) == 0
    assert not w.runs.exists() or not list(w.runs.rglob("*.safetensors"))  # no checkpoint either
    _record(w, lines[0])
    return lines[0]


def _record(w: World, line: str) -> None:
    """XLTUNE_ERROR_CATALOGUE=FILE appends (test, message) as JSON lines: how docs/errors.md was written."""
    out = os.environ.get("XLTUNE_ERROR_CATALOGUE")
    if out:
        with open(out, "a", encoding="utf-8") as f:
            test = os.environ.get("PYTEST_CURRENT_TEST", "").split("::")[-1].rsplit(" ", 1)[0]  # drop " (call)"
            f.write(json.dumps({"test": test, "line": line.replace(str(w.root), "<dir>")}) + "\n")


def runs_ok(w: World, rc: int, err: str) -> dict:
    assert rc == 0, err
    assert "xltune: error" not in err and "Traceback" not in err
    with sqlite3.connect(w.store) as db:
        assert db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 1
        return {lang: n for lang, n in db.execute("SELECT lang, n FROM metrics WHERE metric='accuracy'")}


# == configuration =====================================================================================================
def test_string_for_an_int(world, capsys):
    fails(world, *xltune(world, capsys, "train.epochs=two"), "exp.yaml", "train.epochs must be an integer", "'two'")


def test_list_for_a_string(world, capsys):
    fails(world, *xltune(world, capsys, "method.name=[lora, finetune]"), "method.name must be a string",
          "['lora', 'finetune']")


def test_unknown_config_key_suggests_the_closest(world, capsys):
    world.config.write_text(world.config.read_text().replace("epochs: 1", "epoch: 1"), encoding="utf-8")
    line = fails(world, *xltune(world, capsys), "unknown config key 'train.epoch'", "exp.yaml")
    assert line.split("valid: ")[1].startswith("train.epochs,")


def test_unknown_section_suggests_the_closest(world, capsys):
    line = fails(world, *xltune(world, capsys, "trian.epochs=1"), "unknown config key 'trian'")
    assert line.split("valid: ")[1].startswith("train,")


@pytest.mark.parametrize("key, value, closest", [
    ("task.name", "xnil", "xnli"), ("method.name", "lorra", "lora"), ("model.kind", "decodr", "decoder"),
])
def test_unknown_name_suggests_the_closest(world, capsys, key, value, closest):
    line = fails(world, *xltune(world, capsys, f"{key}={value}"), f"{value!r}", key)
    assert line.split("valid: ")[1].startswith(closest + ",")


@pytest.mark.parametrize("key, value, kind", [("train.languages", "[eng]", "source"),
                                              ("eval.languages", "[en, deu]", "target")])
def test_unknown_language(world, capsys, key, value, kind):
    line = fails(world, *xltune(world, capsys, f"{key}={value}"), f"unknown {kind} language", "task xnli")
    assert line.split("valid: ")[1].startswith(("en,", "de,"))


def test_empty_config_file(world, capsys):
    # an empty file is an empty mapping (every key from the command line); without a model, that is what it says
    world.config.write_text("# nothing yet\n\n", encoding="utf-8")
    fails(world, *xltune(world, capsys), f"{world.config}: model.name_or_path is required")


def test_yaml_syntax_error_names_the_line(world, capsys):
    lines = world.config.read_text().splitlines()
    lines[2] = "task: {name: xnli, data_dir: [oops"  # line 3; PyYAML notices at the next line's ':'
    world.config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    fails(world, *xltune(world, capsys), f"{world.config}:4: not valid YAML",
          "flow sequence started at line 3", "expected ',' or ']'")


def test_missing_config_file(world, capsys):
    fails(world, *xltune(world, capsys, config=world.root / "nope.yaml"), "cannot read config", "nope.yaml",
          "No such file")


def test_list_item_of_the_wrong_type_shows_the_list_form(world, capsys):
    fails(world, *xltune(world, capsys, "seeds=1,2,x"), "seeds must be a list of integers, e.g. seeds=[1, 2, 3]",
          "(or 1,2,3 on the command line)", "got '1,2,x'")


def test_config_path_written_for_the_working_directory(world, capsys, monkeypatch):
    """Paths in a config are relative to its folder; one that exists only relative to the working directory (a
    config written before) is an error that gives the path to write."""
    sub = world.root / "configs"
    sub.mkdir()
    config = sub / "exp.yaml"
    config.write_text(world.config.read_text().replace(f"data_dir: {world.data}", "data_dir: data"), encoding="utf-8")
    monkeypatch.chdir(world.root)
    fails(world, *xltune(world, capsys, config=config), f"{config}: task.data_dir 'data' is relative to the config "
          f"file's folder ({sub})", "write '../data'")


def test_run_without_a_config_or_a_model(world, capsys):
    capsys.readouterr()
    rc = cli_main(["run", "--task", "xnli", "--shots", "2"])
    fails(world, rc, capsys.readouterr().err, "xltune run needs a config file or the experiment as flags",
          "--model", "--targets all")


def test_set_without_equals(world, capsys):
    fails(world, *xltune(world, capsys, "train.lr"), "--set expects key.sub=value", "'train.lr'")


def test_batch_size_not_divisible_by_grad_accum(world, capsys):
    fails(world, *xltune(world, capsys, "train.batch_size=3", "train.grad_accum=2"),
          "train.batch_size (3) must be a multiple of train.grad_accum (2)")


@pytest.mark.parametrize("value", ["0", "many", "-2"])
def test_bad_shots(world, capsys, value):
    fails(world, *xltune(world, capsys, f"train.shots={value}"), "train.shots must be a positive integer or 'all'")


# == data files ========================================================================================================
def test_data_dir_that_is_not_a_folder(world, capsys):
    fails(world, *xltune(world, capsys, f"task.data_dir={world.root / 'no-such-data'}"),
          "task.data_dir", "no-such-data", "is not a folder")


@pytest.mark.parametrize("content", ["", "premise\thypothesis\tlabel\n"])
def test_empty_data_file(world, capsys, content):
    (world.data / "test-de.tsv").write_text(content, encoding="utf-8")
    fails(world, *xltune(world, capsys), f"{world.data / 'test-de.tsv'}: no examples")


def test_bom_is_read_fine(world, capsys):
    path = world.data / "test-de.tsv"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    # the header is still recognised (BOM dropped), so all 6 rows are examples
    assert runs_ok(world, *xltune(world, capsys, "eval.languages=[de]")) == {"de": 6}


def test_crlf_is_read_fine(world, capsys):
    for split in ("dev", "test"):  # training shots and evaluation both from CRLF files
        path = world.data / f"{split}-en.tsv"
        path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    assert runs_ok(world, *xltune(world, capsys, "eval.languages=[en]")) == {"en": 6}
    with sqlite3.connect(world.store) as db:
        gold = [g for (g,) in db.execute("SELECT gold FROM predictions ORDER BY idx")]
    assert gold == [LABELS[i % 3] for i in range(6)]  # no '\r' left on the label column


def test_latin1_bytes_in_a_utf8_file_name_the_line_and_the_fix(world, capsys):
    path = world.data / "test-de.tsv"
    lines = path.read_bytes().split(b"\n")
    lines[4] = "Grüße aus Köln\tder hund\tneutral".encode("latin-1")  # line 5: one Latin-1 line in UTF-8
    path.write_bytes(b"\n".join(lines))
    fails(world, *xltune(world, capsys), f"{path}:5:", "not UTF-8", "byte 0xfc", "task.encoding: latin-1")


def test_unknown_encoding(world, capsys):
    fails(world, *xltune(world, capsys, "task.encoding=latin-2x"), "unknown encoding 'latin-2x'", "task.encoding")


def test_duplicate_language_files_are_an_error_naming_both(world, capsys):
    plain = world.data / "dev-en.tsv"
    (world.data / "dev-en.tsv.gz").write_bytes(gzip.compress(plain.read_bytes()))
    fails(world, *xltune(world, capsys), "two files for en/dev", str(plain), f"{plain}.gz", "remove or rename")


def test_corrupt_gzip(world, capsys):
    path = world.data / "test-de.tsv"
    path.unlink()
    (world.data / "test-de.tsv.gz").write_bytes(gzip.compress(b"premise\thypothesis\tlabel\n" * 50)[:30])
    fails(world, *xltune(world, capsys), "test-de.tsv.gz: corrupt gzip file")


def test_wrong_column_count_names_file_and_line(world, capsys):
    path = world.data / "test-sw.tsv"
    lines = path.read_text(encoding="utf-8").split("\n")
    lines[3] = lines[3].rsplit("\t", 1)[0]  # line 4 loses its label
    path.write_text("\n".join(lines), encoding="utf-8")
    fails(world, *xltune(world, capsys), f"{path}:4:", "expected 3 tab-separated columns", "got 2")


def test_label_outside_the_set(world, capsys):
    path = world.data / "dev-en.tsv"
    lines = path.read_text(encoding="utf-8").split("\n")
    lines[6] = lines[6].rsplit("\t", 1)[0] + "\tmaybe"
    path.write_text("\n".join(lines), encoding="utf-8")
    fails(world, *xltune(world, capsys), f"{path}:7:", "label 'maybe' is not one of entailment, neutral, contradiction")


def test_header_less_task_given_an_unlabelled_file(world, capsys, tmp_path):
    # XTREME strips test labels: a 2-column XNLI file is unlabelled, not malformed; training needs labels
    path = world.data / "dev-en.tsv"
    rows = path.read_text(encoding="utf-8").split("\n")[1:]
    path.write_text("\n".join(r.rsplit("\t", 1)[0] for r in rows if r), encoding="utf-8")
    fails(world, *xltune(world, capsys), f"{path}: no 'label' column", "unlabelled")


def test_shots_larger_than_the_pool_names_class_count_and_k(world, capsys):
    fails(world, *xltune(world, capsys, "train.shots=5"),
          "class 'entailment' has 3 examples in the pool en/dev, fewer than shots=5", "lower train.shots")


def test_missing_dev_split_warns_and_falls_back(world, capsys):
    (world.data / "dev-en.tsv").rename(world.data / "train-en.tsv")
    rc, err = xltune(world, capsys, "train.split=train", "train.dev.policy=source", "eval.languages=[de]")
    assert "no 'dev' split for en; model selection falls back to the last epoch" in err
    assert runs_ok(world, rc, err) == {"de": 6}


def test_missing_test_file_for_an_explicit_language(world, capsys):
    (world.data / "test-sw.tsv").unlink()
    fails(world, *xltune(world, capsys, "eval.languages=[en, sw]"),
          "no test file for language 'sw'", str(world.data / "test-sw.tsv"), "task.file_pattern")


def test_missing_train_split(world, capsys):
    fails(world, *xltune(world, capsys, "train.split=train"), "no train file for language 'en'",
          str(world.data / "train-en.tsv"))


def test_no_files_for_the_eval_split(world, capsys):
    fails(world, *xltune(world, capsys, "eval.split=validation"), "no 'validation' files for task xnli")


# == results store =====================================================================================================
def test_store_under_a_file(world, capsys):
    blocker = world.root / "not-a-folder"
    blocker.write_text("x", encoding="utf-8")
    fails(world, *xltune(world, capsys, f"store={blocker / 'results.sqlite'}"), "cannot open results store",
          str(blocker / "results.sqlite"))


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_store_in_a_read_only_folder(world, capsys):
    ro = world.root / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        fails(world, *xltune(world, capsys, f"store={ro / 'results.sqlite'}"), "cannot open results store",
              "writable")
    finally:
        ro.chmod(0o755)


# == models ============================================================================================================
def test_hub_model_id_while_offline_fails_fast(world, capsys):
    start = time.monotonic()
    fails(world, *xltune(world, capsys, "model.name_or_path=facebook/xglm-564M"), "'facebook/xglm-564M'",
          "HF_HUB_OFFLINE", "local model directory")
    assert time.monotonic() - start < 10


def test_hub_model_id_with_the_hub_unreachable_fails_fast(world, capsys, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.invalid")  # .invalid never resolves (RFC 2606)
    start = time.monotonic()
    fails(world, *xltune(world, capsys, "model.name_or_path=facebook/xglm-564M"), "not reachable",
          "HF_HUB_OFFLINE=1", "local model directory")
    assert time.monotonic() - start < 10


def test_hub_dataset_while_offline_fails_fast(world, capsys, monkeypatch):
    import datasets
    import huggingface_hub.constants

    # huggingface_hub/datasets read HF_HUB_OFFLINE once at import; a user sets it before starting xltune, so the
    # process sees it there too: set the module values the way that process would have them.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    start = time.monotonic()
    fails(world, *xltune(world, capsys, "task.data_dir=null"), "cannot load xnli (en)", "task.data_dir")
    assert time.monotonic() - start < 10


def _copy_model(src: Path, dst: Path, names: tuple[str, ...]) -> Path:
    dst.mkdir()
    for n in names:
        (dst / n).write_bytes((src / n).read_bytes())
    return dst


def test_mistyped_absolute_model_folder_is_a_missing_folder_not_the_hub(world, capsys, monkeypatch, tiny_xglm_dir):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.invalid")  # were the hub asked, it would not be reachable
    typo = tiny_xglm_dir.parent / (tiny_xglm_dir.name + "l")
    line = fails(world, *xltune(world, capsys, f"model.name_or_path={typo}"), f"no model folder at {typo}",
                 "it does not exist", f"did you mean {tiny_xglm_dir}?")
    assert "reachable" not in line


def test_model_folder_without_tokenizer(world, capsys, tiny_xglm_dir):
    model = _copy_model(tiny_xglm_dir, world.root / "no-tok", ("config.json", "model.safetensors"))
    fails(world, *xltune(world, capsys, f"model.name_or_path={model}"), f"{model} has no tokenizer files",
          "tokenizer.json", "save_pretrained")


def test_model_folder_without_weights(world, capsys, tiny_xglm_dir):
    model = _copy_model(tiny_xglm_dir, world.root / "no-weights", ("config.json", "tokenizer.json",
                                                                    "tokenizer_config.json"))
    line = fails(world, *xltune(world, capsys, f"model.name_or_path={model}"), "model.safetensors", "save_pretrained")
    assert "hub" not in line  # a local folder: nothing to do with the hub


def test_empty_model_folder(world, capsys):
    (world.root / "empty-model").mkdir()
    fails(world, *xltune(world, capsys, f"model.name_or_path={world.root / 'empty-model'}"),
          "model_type", "save_pretrained")


def test_architecture_without_a_layer_layout_for_prefixes(world, capsys, tiny_xglm_dir):
    """Mamba has layers but no attention heads: no key/value prefixes; the error names the other methods."""
    from transformers import AutoTokenizer, MambaConfig, MambaModel

    model = world.root / "mamba"
    MambaModel(MambaConfig(vocab_size=400, hidden_size=32, num_hidden_layers=2, state_size=4, expand=2,
                           architectures=["MambaForCausalLM"])).save_pretrained(model)
    AutoTokenizer.from_pretrained(tiny_xglm_dir).save_pretrained(model)
    fails(world, *xltune(world, capsys, f"model.name_or_path={model}"), "method deep_prompt",
          "cannot read the layer layout", "kv heads=None", "use another method (finetune, prompt, lora)")


# == token tasks =======================================================================================================
def write_ner(folder: Path, n: int = 4) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("dev", "test"):
        for lang in ("en", "de"):
            block = "\n".join(f"{w}\t{t}" for w, t in NER_SENTENCE)
            (folder / f"{split}-{lang}.tsv").write_text("\n\n".join([block] * n) + "\n", encoding="utf-8")
    return folder


@pytest.fixture()
def ner(world, tiny_xglm_dir) -> World:
    """PAN-X layout (word<TAB>tag, blank line between sentences), plain .tsv instead of .tsv.gz."""
    data = write_ner(world.root / "ner")
    w = World(world.root, data, world.root / "ner.yaml", world.store, world.runs)
    write_config(w, tiny_xglm_dir, f"{{name: panx, data_dir: {data}, file_pattern: '{{split}}-{{lang}}.tsv'}}")
    return w


def _edit_line(path: Path, number: int, text: str) -> None:
    lines = path.read_text(encoding="utf-8").split("\n")
    lines[number - 1] = text
    path.write_text("\n".join(lines), encoding="utf-8")


def test_i_tag_without_b_is_repaired_counted_and_runs(ner, capsys):
    path = ner.data / "test-de.tsv"
    _edit_line(path, 1, "John\tI-PER")  # sentence 1 opens with I-PER
    with pytest.warns(UserWarning, match=r"test-de\.tsv: 1 I- tag\(s\) without an opening B- were read as B-"):
        rc, err = xltune(ner, capsys, "eval.languages=[de]")
    assert rc == 0, err
    with sqlite3.connect(ner.store) as db:
        gold = json.loads(db.execute("SELECT gold FROM predictions WHERE idx=0").fetchone()[0])
        n = db.execute("SELECT n FROM metrics WHERE lang='de' AND metric='f1'").fetchone()[0]
    assert gold[0] == "B-PER" and n == 4


def test_token_line_with_the_wrong_number_of_columns(ner, capsys):
    path = ner.data / "test-de.tsv"
    _edit_line(path, 3, "in\tO\tNN")
    fails(ner, *xltune(ner, capsys), f"{path}:3:", "expected 2 columns (tab-separated), got 3")


def test_tag_outside_the_declared_set(ner, capsys):
    path = ner.data / "dev-en.tsv"
    _edit_line(path, 3, "in\tB-MISC")
    fails(ner, *xltune(ner, capsys), f"{path}:3:", "tag 'B-MISC' is not one of O, B-PER, I-PER")


def test_tagging_shots_larger_than_the_pool(ner, capsys):
    fails(ner, *xltune(ner, capsys, "train.shots=9"), "cannot give shots=9", "'PER' (4 mentions)",
          "lower train.shots")


def test_declared_entity_type_absent_from_the_files_names_task_labels(ner, capsys):
    """CoNLL-2003's label set has MISC; files without any MISC cannot give K MISC mentions at any K: the fix is the
    label set, not fewer shots."""
    write_config(ner, ner.config.read_text().split("model: {name_or_path: ")[1].split("}")[0],
                 f"{{name: conll, data_dir: {ner.data}, file_pattern: '{{split}}-{{lang}}.tsv', languages: [en, de]}}")
    line = fails(ner, *xltune(ner, capsys), "the pool en/dev has no mentions of 'MISC' (declared by task conll)",
                 "set task.labels to the labels they use: task.labels=[O, B-PER, I-PER, B-ORG, I-ORG, B-LOC, I-LOC]")
    assert "lower train.shots" not in line


def test_token_train_file_without_tags(ner, capsys):
    path = ner.data / "dev-en.tsv"
    path.write_text("\n".join(ln.split("\t")[0] for ln in path.read_text(encoding="utf-8").split("\n")),
                    encoding="utf-8")
    fails(ner, *xltune(ner, capsys), f"{path}: has only a token column, no tags")


# == custom tasks ======================================================================================================
def test_custom_task_missing_required_fields(world, capsys):
    fails(world, *xltune(world, capsys, "task.name=custom"), "task 'custom' needs task.format, task.labels, "
          "task.languages, task.text_columns, task.label_column, task.file_pattern")


def test_custom_tagging_labels_without_o(world, capsys):
    fails(world, *xltune(world, capsys, "task.name=custom_tagging", "task.format=conll", "task.languages=[en]",
                         "task.file_pattern={split}-{lang}.tsv", "task.labels=[B-PER, I-PER]"),
          "task.labels (IOB2 tags) must include 'O'", "missing: O")


def _jsonl_task(world: World, rows: dict[str, list[str]]) -> list[str]:
    folder = world.root / "jsonl"
    folder.mkdir()
    for split, lines in rows.items():
        (folder / f"{split}-en.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return ["task.name=custom", f"task.data_dir={folder}", "task.format=jsonl",
            "task.file_pattern={split}-{lang}.jsonl", "task.text_columns=[text]", "task.label_column=label",
            "task.labels=[pos, neg]", "task.languages=[en]"]


def _rows(n: int = 4) -> list[str]:
    return [json.dumps({"text": f"sentence {i}", "label": ["pos", "neg"][i % 2]}) for i in range(n)]


def test_jsonl_line_that_is_not_json(world, capsys):
    test = _rows()
    test[2] = '{"text": "broken", "label": pos}'
    sets = _jsonl_task(world, {"dev": _rows(), "test": test})
    fails(world, *xltune(world, capsys, *sets), str(world.root / "jsonl" / "test-en.jsonl") + ":3:", "not valid JSON")


def test_jsonl_line_without_the_label_key(world, capsys):
    dev = _rows()
    dev[1] = json.dumps({"text": "no label here"})
    sets = _jsonl_task(world, {"dev": dev, "test": _rows()})
    fails(world, *xltune(world, capsys, *sets), "dev-en.jsonl:2:", "missing label key 'label'")


def test_custom_tsv_header_without_a_text_column(world, capsys):
    sets = ["task.name=custom", "task.text_columns=[premise, hypo]", "task.label_column=label",
            f"task.labels=[{', '.join(LABELS)}]", "task.languages=[en]", "task.format=tsv",
            "task.file_pattern={split}-{lang}.tsv"]
    fails(world, *xltune(world, capsys, *sets), "dev-en.tsv:1:", "missing column 'hypo' in the header",
          "header: premise, hypothesis, label")


# == in-context ========================================================================================================
def test_in_context_demonstrations_beyond_the_position_table_name_the_key(world, capsys, tiny_xglm_dir):
    """K demonstrations per class + the input must fit the model's position table (max_position_embeddings in its
    config.json); model.max_length does not change that table, so the message says which key limits."""
    short = world.root / "short-xglm"
    short.mkdir()
    for f in tiny_xglm_dir.iterdir():
        (short / f.name).write_bytes(f.read_bytes())
    cfg = json.loads((short / "config.json").read_text())
    cfg["max_position_embeddings"] = 48  # XGLM's positions are sinusoidal: only the declared limit changes
    (short / "config.json").write_text(json.dumps(cfg))
    fails(world, *xltune(world, capsys, f"model.name_or_path={short}", "method.name=in_context", "train.shots=3"),
          "examples (first: ", "need more than 48 tokens", "K=3 demonstrations per class + input",
          f"the limit is max_position_embeddings = 48 in the config of {short}, which model.max_length does not raise",
          "lower train.shots (K demonstrations per class) or use shorter ones")
