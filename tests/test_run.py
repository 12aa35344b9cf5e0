"""End to end: `xltune run` on tiny models and tiny XNLI-style files written here.

These prove that the whole path runs and is deterministic and honest about its inputs; whether transfer is *real*
is shown on a real model (see README: multilingual-e5-small) and in the synthetic demo world.
"""

from __future__ import annotations

import sqlite3

import pytest

from xltune.api import run_experiment
from xltune.cli import main as cli_main
from xltune.config import load_config
from xltune.store import Store

from tiny_data import LANGS, write_xnli_like  # noqa: E402  (tests/ is on sys.path)


@pytest.fixture()
def xnli_dir(tmp_path):
    return write_xnli_like(tmp_path / "xnli")


def config(model_dir, data_dir, tmp_path, method="deep_prompt", **sets):
    overrides = [
        f"model.name_or_path={model_dir}", f"method.name={method}", "method.prefix_length=4",
        "task.name=xnli", f"task.data_dir={data_dir}",
        "train.split=dev", "train.shots=4", "train.epochs=2", "train.batch_size=4", "train.lr=1e-2",
        "eval.split=test", "seeds=[1, 2]", f"store={tmp_path / 'results.sqlite'}", f"output_dir={tmp_path / 'runs'}",
    ] + [f"{k}={v}" for k, v in sets.items()]
    return load_config(None, overrides)


def stored(tmp_path):
    with Store(tmp_path / "results.sqlite") as s:
        return s.metrics(metric="accuracy")


@pytest.mark.parametrize("method", ["deep_prompt", "finetune", "prompt", "lora"])
def test_every_method_runs_and_stores_every_language(tiny_xglm_dir, xnli_dir, tmp_path, method):
    results = run_experiment(config(tiny_xglm_dir, xnli_dir, tmp_path, method), log=lambda *_: None)
    assert [r.seed for r in results] == [1, 2]
    rows = stored(tmp_path)
    # the tiny test set has all three languages; each seed stores accuracy for each
    assert sorted((r["seed"], r["lang"]) for r in rows) == sorted((s, lang) for s in (1, 2) for lang in LANGS)
    assert all(r["n"] == 12 and 0.0 <= r["value"] <= 1.0 for r in rows)
    with Store(tmp_path / "results.sqlite") as s:
        run = s.runs(seed=1)[0]
        assert run["method"] == method and run["config"]["method"]["name"] == method
        ids = run["manifest"]["languages"]["en"]["ids"]
        assert len(ids) == 12 and all(i.startswith("en/dev/") for i in ids)  # 4 per class x 3 classes
        assert len(s.predictions(run["run_id"], "de", "test")) == 12
        assert run["env"]["torch"] and run["trainable_params"] <= run["total_params"]


def test_encoder_runs(tiny_xlmr_dir, xnli_dir, tmp_path):
    run_experiment(config(tiny_xlmr_dir, xnli_dir, tmp_path, "deep_prompt", seeds="[1]"), log=lambda *_: None)
    assert {r["lang"] for r in stored(tmp_path)} == set(LANGS)


def test_same_seed_gives_identical_metrics_and_rerun_skips(tiny_xglm_dir, xnli_dir, tmp_path):
    cfg = config(tiny_xglm_dir, xnli_dir, tmp_path, "finetune", seeds="[3]")
    first = run_experiment(cfg, log=lambda *_: None)[0]
    again = run_experiment(cfg, log=lambda *_: None)[0]
    assert again.skipped and len(stored(tmp_path)) == 3
    redo = run_experiment(cfg, force=True, log=lambda *_: None)[0]
    assert [r.metrics for r in redo.results] == [r.metrics for r in first.results]
    assert [r.predictions for r in redo.results] == [r.predictions for r in first.results]


def test_eval_batch_size_does_not_change_results(tiny_xglm_dir, xnli_dir, tmp_path):
    preds = []
    for bs in (1, 7, 64):
        cfg = config(tiny_xglm_dir, xnli_dir, tmp_path / str(bs), "deep_prompt", seeds="[1]", **{"eval.batch_size": bs})
        (res,) = run_experiment(cfg, log=lambda *_: None)
        preds.append([r.predictions for r in res.results])
    assert preds[0] == preds[1] == preds[2]


def test_cli_run_prints_table(tiny_xglm_dir, xnli_dir, tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text(
        f"model: {{name_or_path: {tiny_xglm_dir}}}\n"
        "method: {name: deep_prompt, prefix_length: 4}\n"
        f"task: {{name: xnli, data_dir: {xnli_dir}}}\n"
        "train: {languages: [en], split: dev, shots: 2, epochs: 1, lr: 1.0e-2, batch_size: 6}\n"
        "eval: {split: test, languages: all}\n"
        f"seeds: [1]\nstore: {tmp_path / 'cli.sqlite'}\noutput_dir: {tmp_path / 'runs'}\n",
        encoding="utf-8",
    )
    assert cli_main(["run", str(path)]) == 0
    out = capsys.readouterr().out
    assert "lang" in out and "avg" in out and all(f"\n{lang} " in out for lang in LANGS)


@pytest.mark.parametrize("sets, expected", [
    (["task.name=xnlii"], "unknown task 'xnlii'"),
    (["method.name=deep_promt"], "unknown method 'deep_promt'"),
    (["train.languages=[xx]"], "unknown source language 'xx'"),
    (["eval.languages=[en, qq]"], "unknown target language 'qq'"),
    (["train.shots=50"], "fewer than"),
])
def test_bad_input_exits_2_with_a_clear_line(tiny_xglm_dir, xnli_dir, tmp_path, capsys, sets, expected):
    path = tmp_path / "c.yaml"
    path.write_text(f"model: {{name_or_path: {tiny_xglm_dir}}}\ntask: {{name: xnli, data_dir: {xnli_dir}}}\n"
                    f"train: {{split: dev}}\nstore: {tmp_path / 'bad.sqlite'}\n", encoding="utf-8")
    argv = ["run", str(path)] + [x for s in sets for x in ("--set", s)]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("xltune: error: ") and expected in err and "Traceback" not in err


def test_malformed_line_names_file_and_line_and_leaves_no_run(tiny_xglm_dir, xnli_dir, tmp_path):
    bad = xnli_dir / "test-de.tsv"
    lines = bad.read_text(encoding="utf-8").splitlines()
    lines[5] = lines[5].rsplit("\t", 1)[0] + "\tneutrall"
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    from xltune.errors import XLTuneError

    with pytest.raises(XLTuneError) as e:
        run_experiment(config(tiny_xglm_dir, xnli_dir, tmp_path), log=lambda *_: None)
    assert "test-de.tsv" in str(e.value) and "6" in str(e.value) and "neutrall" in str(e.value)
    db = tmp_path / "results.sqlite"
    assert not db.exists() or sqlite3.connect(db).execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 0


def test_a_run_from_flags_alone_is_the_run_its_yaml_describes(tiny_xglm_dir, xnli_dir, tmp_path, capsys, monkeypatch):
    """`xltune run --model M --task xnli --method deep_prompt --shots K --seeds 1,2 --source en --targets all`
    without a YAML stores the runs; the same experiment as a YAML file is the same runs (skipped, not redone)."""
    monkeypatch.chdir(tmp_path)  # flags' paths are relative to the working directory
    store = tmp_path / "flags.sqlite"
    flags = ["run", "--model", str(tiny_xglm_dir), "--task", "xnli", "--data-dir", "xnli", "--method", "deep_prompt",
             "--shots", "2", "--seeds", "1,2", "--source", "en", "--targets", "all", "--store", "flags.sqlite",
             "--set", "train.split=dev", "--set", "train.epochs=1", "--set", "method.prefix_length=4",
             "--set", "output_dir=runs"]
    assert cli_main(flags) == 0
    out = capsys.readouterr().out
    assert "mean ± std over 2 seeds" in out
    with Store(store) as s:
        runs = s.runs()
        assert sorted(r["seed"] for r in runs) == [1, 2]
        assert runs[0]["config"]["task"]["data_dir"] == str(xnli_dir)  # made absolute before the run key
        assert runs[0]["config"]["eval"]["languages"] == "all" and runs[0]["source_langs"] == "en"
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "c.yaml").write_text(
        f"model: {{name_or_path: {tiny_xglm_dir}}}\nmethod: {{name: deep_prompt, prefix_length: 4}}\n"
        "task: {name: xnli, data_dir: ../xnli}\ntrain: {languages: [en], split: dev, shots: 2, epochs: 1}\n"
        "seeds: [1, 2]\nstore: ../flags.sqlite\n", encoding="utf-8")
    assert cli_main(["run", "exp/c.yaml"]) == 0
    assert capsys.readouterr().out.count("already in") == 2


def test_run_without_config_or_model_says_how(capsys):
    assert cli_main(["run", "--task", "xnli"]) == 2
    err = capsys.readouterr().err
    assert "xltune run needs a config file or the experiment as flags, e.g. xltune run --model" in err
