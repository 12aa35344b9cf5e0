"""Reusing trained runs and getting results out: the self-describing run folder, `xltune predict`, `xltune eval`
(stored linked to its run, never a seed), `xltune runs` and `xltune results`, on tiny models and tiny files."""

from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3

import pytest

from xltune.api import run_experiment
from xltune.cli import main as cli_main
from xltune.config import load_config
from xltune.runs.stored import load_run, load_stored_run
from xltune.store import Store

from tiny_data import LABELS, write_panx_like, write_xnli_like  # noqa: E402  (tests/ is on sys.path)

QUIET = {"log": lambda *_: None}


def _config(model, data, root, task="xnli", method="deep_prompt", seeds="[1, 2]", **sets):
    split = "dev" if task == "xnli" else "train"
    return load_config(None, [
        f"model.name_or_path={model}", f"method.name={method}", "method.prefix_length=4", f"task.name={task}",
        f"task.data_dir={data}", f"train.split={split}", "train.shots=4", "train.epochs=2", "train.batch_size=4",
        "train.lr=3e-2", "eval.split=test", f"seeds={seeds}", f"store={root / 'results.sqlite'}",
        f"output_dir={root / 'runs'}", *(f"{k}={v}" for k, v in sets.items())])


@pytest.fixture(scope="module")
def xnli_runs(tiny_xglm_dir, tmp_path_factory):
    """Two seeds of deep prompts on a tiny XGLM (a decoder, sentence pairs)."""
    root = tmp_path_factory.mktemp("xnli-runs")
    data = write_xnli_like(root / "xnli")
    results = run_experiment(_config(tiny_xglm_dir, data, root), **QUIET)
    return root, data, [r.run_id for r in results]


@pytest.fixture(scope="module")
def ner_run(tiny_xlmr_dir, tmp_path_factory):
    """LoRA on a tiny XLM-R (an encoder, NER)."""
    root = tmp_path_factory.mktemp("ner-run")
    data = write_panx_like(root / "panx")
    (res,) = run_experiment(_config(tiny_xlmr_dir, data, root, task="panx", method="lora", seeds="[1]"), **QUIET)
    return root, data, res.run_id


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = cli_main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# -- the run folder ---------------------------------------------------------------------------------------------
def test_run_folder_describes_itself_and_moves_with_its_project(tiny_xlmr_dir, tmp_path, capsys):
    """run.json: labels, tokenizer reference, metrics; config.json paths relative to the folder; a project folder
    moved as a whole (store, runs, model, data) still loads, by store and by folder, with the same predictions."""
    project = tmp_path / "a"
    model = shutil.copytree(tiny_xlmr_dir, project / "model")
    data = write_xnli_like(project / "xnli")
    cfg = _config(model, data, project, method="lora", seeds="[1]", **{"train.epochs": 1})
    logged = []
    (res,) = run_experiment(cfg, log=logged.append)
    folder = project / "runs" / res.run_id
    assert any(f"{res.run_id}/ (run.json describes it)" in line and "xltune predict --store" in line
               for line in logged)  # the run says where it is and how to reuse it
    desc = json.loads((folder / "run.json").read_text())
    config = json.loads((folder / "config.json").read_text())
    assert desc["task"]["labels"] == LABELS and desc["task"]["metric"] == "accuracy"
    assert desc["tokenizer"]["name_or_path"] == config["model"]["name_or_path"] == "../../model"
    assert config["task"]["data_dir"] == "../../xnli" and config["store"] == "../../results.sqlite"
    with Store(project / "results.sqlite") as s:
        stored = {m["lang"]: m["value"] for m in s.metrics(run_id=res.run_id)}
    assert {lang: v["accuracy"] for lang, v in desc["metrics"]["languages"].items()} == stored
    assert desc["metrics"]["unit"] == "fraction" and desc["env"]["torch"]
    texts = [("der mann läuft", "die frau schläft"), ("a dog", "the cat is happy")]
    before = load_stored_run(res.run_id, project / "results.sqlite").predict_proba(texts)

    moved = tmp_path / "b"
    project.rename(moved)  # nothing is left at the absolute paths written at run time
    by_store = load_stored_run(res.run_id, moved / "results.sqlite")
    by_folder = load_run(moved / "runs" / res.run_id)
    assert by_store.predict_proba(texts) == by_folder.predict_proba(texts) == before
    assert by_folder.cfg.model.name_or_path == str(moved / "model")
    code, out, _ = cli(capsys, "runs", "--store", moved / "results.sqlite")
    assert code == 0 and res.run_id in out


def test_rerun_prints_the_stored_table(xnli_runs, tiny_xglm_dir):
    root, data, ids = xnli_runs
    logged = []
    again = run_experiment(_config(tiny_xglm_dir, data, root), log=logged.append)
    assert all(r.skipped for r in again) and [r.run_id for r in again] == ids
    text = "\n".join(logged)
    assert "skipped" in text and all(f"{lang:<8}" in text for lang in ("de", "en", "sw")) and "avg" in text
    with Store(root / "results.sqlite") as s:
        de = next(m["value"] for m in s.metrics(run_id=ids[0], lang="de"))
    assert f"{100 * de:>8.2f}%" in text


# -- predict ------------------------------------------------------------------------------------------------------
def test_predict_gives_the_runs_own_predictions_in_every_input_format(xnli_runs, tmp_path, capsys):
    root, data, ids = xnli_runs
    store = root / "results.sqlite"
    with Store(store) as s:
        gold_run = s.predictions(ids[0], "de", "test")
    code, out, _ = cli(capsys, "predict", "--store", store, "--run", ids[0][:6], "--input", data / "test-de.tsv",
                       "--out", tmp_path / "p.jsonl")
    assert code == 0 and "wrote 12 predictions" in out and "accuracy" in out  # the file has gold labels
    rows = read_jsonl(tmp_path / "p.jsonl")
    assert [(r["index"], r["gold"], r["label"]) for r in rows] == gold_run  # what the run's evaluation stored
    assert all(abs(sum(r["probs"].values()) - 1) < 1e-5 and r["label"] == max(r["probs"], key=r["probs"].get)
               for r in rows)
    # the same examples as plain text (premise TAB hypothesis) and as JSONL: the same labels and probabilities
    lines = [line.split("\t") for line in (data / "test-de.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    (tmp_path / "in.txt").write_text("\n".join(f"{p}\t{h}" for p, h, _ in lines) + "\n", encoding="utf-8")
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"id": f"x{i}", "premise": p, "hypothesis": h}) + "\n"
                                               for i, (p, h, _) in enumerate(lines)), encoding="utf-8")
    assert cli(capsys, "predict", "--store", store, "--run", ids[0], "--input", tmp_path / "in.txt", "--out",
               tmp_path / "t.tsv")[0] == 0
    assert cli(capsys, "predict", "--store", store, "--run", ids[0], "--input", tmp_path / "in.jsonl", "--out",
               tmp_path / "j.jsonl")[0] == 0
    tsv = list(csv.DictReader(io.StringIO((tmp_path / "t.tsv").read_text()), delimiter="\t"))
    assert [r["label"] for r in tsv] == [r["label"] for r in rows]
    assert [float(r[f"p:{lab}"]) for r in tsv for lab in LABELS] == [r["probs"][lab] for r in rows for lab in LABELS]
    assert tsv[0]["premise"] == lines[0][0] and "gold" not in tsv[0]
    jrows = read_jsonl(tmp_path / "j.jsonl")
    assert [r["label"] for r in jrows] == [r["label"] for r in rows] and jrows[3]["id"] == "x3"
    # the run folder alone (no store) predicts the same
    run = load_run(root / "runs" / ids[0])
    assert run.predict([(p, h) for p, h, _ in lines]) == [r["label"] for r in rows]


def test_predict_token_task_tags_every_word_as_the_evaluation_did(ner_run, tmp_path, capsys):
    root, data, run_id = ner_run
    store = root / "results.sqlite"
    with Store(store) as s:
        stored = s.predictions(run_id, "de", "test")
    code, out, _ = cli(capsys, "predict", "--store", store, "--run", run_id, "--input", data / "test-de.tsv.gz",
                       "--out", tmp_path / "p.jsonl")
    assert code == 0 and "tags per word" in out and "f1" in out
    rows = read_jsonl(tmp_path / "p.jsonl")
    assert [(r["index"], json.dumps(r["gold"], ensure_ascii=False), json.dumps(r["labels"], ensure_ascii=False))
            for r in rows] == stored
    assert all(len(r["tokens"]) == len(r["labels"]) == len(r["probs"]) for r in rows)
    # plain text (words separated by spaces) -> one TSV row per word
    (tmp_path / "in.txt").write_text("\n".join(" ".join(r["tokens"]) for r in rows) + "\n", encoding="utf-8")
    assert cli(capsys, "predict", "--store", store, "--run", run_id, "--input", tmp_path / "in.txt", "--out",
               tmp_path / "p.tsv")[0] == 0
    tsv = list(csv.DictReader(io.StringIO((tmp_path / "p.tsv").read_text()), delimiter="\t"))
    assert [r["label"] for r in tsv] == [t for r in rows for t in r["labels"]]
    assert len(tsv) == sum(len(r["tokens"]) for r in rows) and tsv[0]["word"] == rows[0]["tokens"][0]


def test_predict_errors_are_one_line_and_leave_no_file(xnli_runs, tmp_path, capsys):
    root, data, ids = xnli_runs
    store = root / "results.sqlite"
    bad = tmp_path / "bad.txt"
    bad.write_text("only one field\n", encoding="utf-8")
    cases = [
        (["--run", "nope", "--input", data / "test-de.tsv"], "run 'nope' is not in"),
        (["--run", ids[0], "--input", tmp_path / "missing.tsv"], "missing.tsv does not exist"),
        (["--run", ids[0], "--input", bad], "bad.txt:1: task xnli takes 2 tab-separated text field(s)"),
    ]
    for extra, message in cases:
        code, _, err = cli(capsys, "predict", "--store", store, *extra, "--out", tmp_path / "out.jsonl")
        assert code == 2 and message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
        assert not (tmp_path / "out.jsonl").exists() and not list(tmp_path.glob(".out.jsonl.tmp*"))


def test_predict_token_input_with_a_tag_per_word_or_none(ner_run, tmp_path, capsys):
    root, _, run_id = ner_run
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"tokens": ["Anna", "went", "home"], "tags": ["B-PER", "O"]}) + "\n", encoding="utf-8")
    code, _, err = cli(capsys, "predict", "--store", root / "results.sqlite", "--run", run_id, "--input", bad,
                       "--out", tmp_path / "out.jsonl")
    assert code == 2 and "bad.jsonl:1: 3 word(s) but 2 tag(s)" in err and "Traceback" not in err
    assert not (tmp_path / "out.jsonl").exists()


# -- eval ---------------------------------------------------------------------------------------------------------
def test_eval_on_the_runs_own_data_reproduces_its_stored_results(xnli_runs, capsys):
    root, data, ids = xnli_runs
    store = root / "results.sqlite"
    with Store(store) as s:
        n_metrics = len(s.metrics())
        own = {(m["lang"], m["metric"]): m["value"] for m in s.metrics(run_id=ids[0])}
    code, out, _ = cli(capsys, "eval", "--store", store, "--run", ids[0])
    assert code == 0 and "stored evaluation ev-" in out and "not a seed" in out
    with Store(store) as s:
        (ev,) = s.evaluations(run_id=ids[0])
        got = {(m["lang"], m["metric"]): m["value"] for m in s.eval_metrics(eval_id=ev["eval_id"])}
        assert got == own  # exactly: the same loop over the same rebuilt model
        assert s.eval_predictions(ev["eval_id"], "sw", "test") == s.predictions(ids[0], "sw", "test")
        assert len(s.metrics()) == n_metrics  # nothing added to the runs' own results
    code, out, _ = cli(capsys, "eval", "--store", store, "--run", ids[0])
    assert code == 0 and "already in" in out and "skipped" in out


def test_eval_on_other_data_is_linked_to_its_run_and_never_pooled(xnli_runs, tmp_path, capsys):
    root, data, ids = xnli_runs
    store = root / "results.sqlite"
    other = write_xnli_like(tmp_path / "other", n_test=9, seed=5)
    def own_rows() -> list[str]:
        return [line for line in cli(capsys, "results", "--store", store, "--format", "csv")[1].splitlines()
                if line.startswith("run,")]

    before = own_rows()
    code, out, _ = cli(capsys, "eval", "--store", store, "--run", ",".join(ids), "--data-dir", other,
                       "--languages", "de,sw")
    assert code == 0 and out.count("stored evaluation") == 2 and "language average over 2 run(s)" in out
    # shots come from dev: evaluating dev leaves them (and, dev being parallel, their translations) out
    code, out, _ = cli(capsys, "eval", "--store", store, "--run", ids[0], "--split", "dev", "--languages", "sw")
    assert code == 0 and "left out" in out
    with Store(store) as s:
        evs = s.evaluations()
        dev = next(e for e in evs if e["split"] == "dev")
        assert s.eval_metrics(eval_id=dev["eval_id"])[0]["n"] == 30 - 12
        assert {e["data"] for e in evs if e["split"] == "test" and e["run_id"] == ids[1]} == {str(other)}
    assert own_rows() == before  # the runs' own results are untouched
    csv_rows = list(csv.DictReader(io.StringIO(cli(capsys, "results", "--store", store, "--format", "csv")[1])))
    other_rows = [r for r in csv_rows if r["kind"] == "evaluation" and r["data"] == str(other)]
    assert {r["lang"] for r in other_rows} == {"de", "sw", "avg"} and {r["n"] for r in other_rows} == {"2"}
    md = cli(capsys, "results", "--store", store)[1]
    assert "## Evaluations of stored runs" in md and str(other) in md
    # a redone run is a new model: its evaluations go with the old one (on a copy of the store)
    copy = tmp_path / "copy.sqlite"
    with Store(store) as s, sqlite3.connect(copy) as dst:
        s.conn.backup(dst)
    with Store(copy) as s:
        assert s.evaluations(run_id=ids[1])
        with s.conn:
            s.conn.execute("DELETE FROM runs WHERE run_id=?", (ids[1],))
        assert s.evaluations(run_id=ids[1]) == [] and s.eval_metrics(run_id=ids[1]) == []


def test_eval_refuses_what_it_cannot_do(ner_run, xnli_runs, capsys):
    root, data, ids = xnli_runs
    store = root / "results.sqlite"
    for extra, message in [
        (["--task", "pawsx"], "does not match what run"),
        (["--set", "model.max_length=8"], "--set model.max_length: an evaluation changes only task.* and eval.*"),
        (["--languages", "xx"], "unknown target language 'xx'"),
    ]:
        code, _, err = cli(capsys, "eval", "--store", store, "--run", ids[0], *extra)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


# -- runs and results ---------------------------------------------------------------------------------------------
def test_runs_and_results_per_run_and_per_variant(xnli_runs, ner_run, capsys):
    root, _, ids = xnli_runs
    store = root / "results.sqlite"
    with Store(store) as s:
        values = {(m["run_id"], m["lang"]): m["value"] for m in s.metrics()}
    code, out, _ = cli(capsys, "runs", "--store", store)
    lines = out.strip().splitlines()
    assert code == 0 and lines[0].split()[:4] == ["run", "variant", "task", "method"]
    for rid in ids:
        line = next(x for x in lines if x.startswith(rid))
        avg = sum(v for (r, _), v in values.items() if r == rid) / 3
        assert f"{100 * avg:.2f}" in line and " deep_prompt " in line
    per_run = list(csv.DictReader(io.StringIO(cli(capsys, "results", "--store", store, "--format", "csv",
                                                  "--per-run", "--units", "fraction")[1])))
    own = [r for r in per_run if r["kind"] == "run" and r["lang"] != "avg"]
    assert {(r["run_id"], r["lang"]): float(r["value"]) for r in own} == values
    assert {r["unit"] for r in per_run} == {"fraction"}
    doc = json.loads(cli(capsys, "results", "--store", store, "--format", "json")[1])
    assert doc["unit"] == "percent" and doc["higher_is_better"]["accuracy"] is True
    (variant,) = [v for v in doc["variants"] if v["task"] == "xnli"]
    de = [values[(rid, "de")] for rid in ids]
    assert variant["results"]["xnli_de"]["accuracy"] == pytest.approx(100 * sum(de) / 2)
    assert variant["results"]["xnli_de"]["n_seeds"] == 2 and variant["seeds"] == [1, 2]
    assert variant["n-shot"] == {"xnli": 4} and variant["group_subtasks"]["xnli"] == ["xnli_de", "xnli_en", "xnli_sw"]
    assert variant["n-samples"]["xnli_de"] == {"original": 12, "effective": 12}
    assert variant["configs"]["xnli"]["method"]["name"] == "deep_prompt" and variant["versions"]["torch"]
    md = cli(capsys, "results", "--store", store, "--per-run", "--where", "method.name=deep_prompt")[1]
    assert "## xnli · test · accuracy" in md and "## Per run" in md and all(rid in md for rid in ids)
    code, _, err = cli(capsys, "results", "--store", store, "--variant", "nothing-like-this")
    assert code == 2 and "matches no run" in err
    # per example: the stored predictions, one row each (no SQL needed)
    examples = list(csv.DictReader(io.StringIO(cli(capsys, "results", "--store", store, "--format", "csv",
                                                   "--per-example")[1])))
    with Store(store) as s:
        stored = s.predictions(ids[0], "de", "test")
    assert [(int(r["idx"]), r["gold"], r["pred"]) for r in examples
            if r["kind"] == "run" and r["id"] == ids[0] and r["lang"] == "de"] == stored
    lines = cli(capsys, "results", "--store", store, "--format", "json", "--per-example")[1].splitlines()
    assert len(lines) == len(examples) and json.loads(lines[0])["gold"] in LABELS
    assert cli(capsys, "results", "--store", store, "--per-example")[0] == 2  # md: refused, one line
    # the NER run's store: span F1 first, precision and recall too
    ner_csv = cli(capsys, "results", "--store", ner_run[0] / "results.sqlite", "--format", "csv")[1]
    assert {r["metric"] for r in csv.DictReader(io.StringIO(ner_csv))} == {"f1", "precision", "recall"}


def test_store_of_the_previous_version_gains_the_evaluation_tables(tmp_path):
    path = tmp_path / "old.sqlite"
    Store(path).close()
    conn = sqlite3.connect(path)  # as version 2 left it: no evaluation tables
    conn.executescript("DROP TABLE eval_predictions; DROP TABLE eval_metrics; DROP TABLE evaluations; "
                       "PRAGMA user_version=2;")
    conn.close()
    with Store(path) as s:
        assert s.evaluations() == [] and s.conn.execute("PRAGMA user_version").fetchone()[0] == 3


def test_run_folders_know_every_path_a_config_holds(tmp_path, monkeypatch):
    """The keys a run folder writes relative to itself are exactly those resolve_paths makes absolute."""
    import copy

    from xltune.config import resolve_paths
    from xltune.runs.folder import path_slots

    monkeypatch.chdir(tmp_path)
    (tmp_path / "m").mkdir()
    (tmp_path / "mt").mkdir()
    cfg = load_config(None, [
        "model.name_or_path=./m", "task.data_dir=data", "task.template=t.yaml",
        "train.translations.parallel_file=p.tsv", "store=s.sqlite", "output_dir=out",
        "train.translate.by=mt", "train.translate.model=./mt", "train.logging_dir=logs",
        "objectives=[{name: cross_entropy}, {name: distillation, teacher: abc, teacher_store: t.sqlite, "
        "text: {de: de.txt}}]"])
    before, after = cfg.to_dict(), resolve_paths(copy.deepcopy(cfg)).to_dict()

    def leaves(d, prefix=""):
        if isinstance(d, dict):
            return {k: v for key, x in d.items() for k, v in leaves(x, f"{prefix}{key}.").items()}
        if isinstance(d, list):
            return {k: v for i, x in enumerate(d) for k, v in leaves(x, f"{prefix[:-1]}[{i}].").items()}
        return {prefix[:-1]: d}

    changed = {k for k, v in leaves(after).items() if leaves(before).get(k) != v}
    assert changed == {name for name, _, _ in path_slots(after)}
    assert len(changed) == 10
    for modules in ("mods", "{sw: mods/sw, de: mods/de}"):  # a method's own paths: one folder, or one per language
        cfg = load_config(None, ["model.name_or_path=./m", "method.name=mad_x", f"method.language_modules={modules}"])
        before, after = cfg.to_dict(), resolve_paths(copy.deepcopy(cfg)).to_dict()
        changed = {k for k, v in leaves(after).items() if leaves(before).get(k) != v}
        assert {k for k in changed if k.startswith("method.")} == \
            {name for name, _, _ in path_slots(after) if name.startswith("method.")} != set()


def test_runs_without_a_model_to_reuse_say_why(tiny_xglm_dir, tmp_path, capsys):
    data = write_xnli_like(tmp_path / "xnli", n_dev=12, n_test=3)
    runs = {}
    for name, sets in (("no_checkpoint", {"save_checkpoint": "false"}),
                       ("in_context", {"method.name": "in_context", "train.shots": 0})):
        root = tmp_path / name
        cfg = _config(tiny_xglm_dir, data, root, seeds="[1]", **{"train.epochs": 1, **sets})
        runs[name] = (root, run_experiment(cfg, **QUIET)[0].run_id)
        assert not (root / "runs" / runs[name][1]).exists()  # nothing trained or kept: no folder
    capsys.readouterr()
    for name, message in (("no_checkpoint", "has no checkpoint (trainable.safetensors not in"),
                          ("in_context", "is an in-context run: nothing was trained")):
        root, run_id = runs[name]
        for command in (["predict", "--input", data / "test-de.tsv", "--out", tmp_path / "p.jsonl"], ["eval"],
                        ["export", "--out", tmp_path / "ex"]):
            code, _, err = cli(capsys, command[0], "--store", root / "results.sqlite", "--run", run_id, *command[1:])
            assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (command, err)
    assert not (tmp_path / "p.jsonl").exists() and not (tmp_path / "ex").exists()
