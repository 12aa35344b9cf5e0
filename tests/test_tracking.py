"""Experiment trackers (train.report_to) through accelerate: a run writes TensorBoard event files that read back as
the run's own numbers -- the loss every step, the dev scores of model selection, the test score per language, the
variant's label -- and tracking changes neither the run's key nor its results."""

from __future__ import annotations

import importlib.util
import sqlite3

import pytest

from xltune.api import run_experiment
from xltune.cli import main as cli_main
from xltune.config import load_config
from xltune.store import Store

from tiny_data import LANGS, write_xnli_like


def config(model_dir, data_dir, tmp_path, *more):
    return load_config(None, [
        f"model.name_or_path={model_dir}", "method.name=deep_prompt", "method.prefix_length=4", "task.name=xnli",
        f"task.data_dir={data_dir}", "train.split=dev", "train.shots=4", "train.epochs=3", "train.batch_size=4",
        "train.dev.max_examples=12", "seeds=[1]", f"store={tmp_path / 'r.sqlite'}", f"output_dir={tmp_path / 'runs'}",
        "name=tracked deep prompt", *more])


def read_events(folder):
    """Every scalar and text the TensorBoard event files under ``folder`` hold: {tag: [(step, value)]}."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, list] = {}
    for events in sorted(folder.rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0, "tensors": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            out.setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))
        for tag in acc.Tags()["tensors"]:  # add_text: string tensors
            out.setdefault(tag, []).extend((e.step, e.tensor_proto.string_val[0].decode()) for e in acc.Tensors(tag)
                                           if e.tensor_proto.string_val)
    return out


def test_tensorboard_events_hold_the_runs_loss_dev_and_test_scores_and_label(tiny_xglm_dir, tmp_path):
    pytest.importorskip("tensorboard", reason="the tensorboard package (pip install -e '.[test]')")
    data = write_xnli_like(tmp_path / "xnli")
    logs = tmp_path / "tb"
    tracked = config(tiny_xglm_dir, data, tmp_path, "train.report_to=tensorboard", f"train.logging_dir={logs}")
    assert tracked.run_key(1) == config(tiny_xglm_dir, data, tmp_path).run_key(1)  # not part of the variant
    (res,) = run_experiment(tracked, log=lambda *_: None)
    events = read_events(logs / res.run_id)  # LOGGING_DIR/RUN_ID/
    with Store(tmp_path / "r.sqlite") as s:
        (run,) = s.runs()
        metrics = {m["lang"]: m["value"] for m in s.metrics(run_id=run["run_id"], metric="accuracy")}
    history = run["extra"]["train"]["history"]

    loss = events["train/loss"]
    assert [step for step, _ in loss] == list(range(1, res.train.steps + 1))  # every optimizer step
    assert all(0.0 < v < 10.0 for _, v in loss)  # cross-entropy over 3 classes: finite, positive
    assert len(events["train/lr"]) == res.train.steps
    assert [(step, round(v, 5)) for step, v in events["dev/score"]] == \
        [(h["step"], round(h["dev"], 5)) for h in history] and len(history) == 3  # one per epoch
    test = {tag.split("/", 1)[1]: points for tag, points in events.items() if tag.startswith("test/")}
    assert all(len(points) == 1 and points[0][0] == res.train.steps for points in test.values())  # once, at the end
    test = {lang: points[0][1] for lang, points in test.items()}
    assert set(test) == set(LANGS) | {"average"}
    assert all(test[lang] == pytest.approx(metrics[lang], abs=1e-6) for lang in LANGS)
    assert [v for _, v in events["variant/text_summary"]] == [run["variant_label"]] == ["tracked deep prompt"]


def test_the_same_run_with_and_without_a_tracker_gives_the_same_results(tiny_xglm_dir, tmp_path):
    pytest.importorskip("tensorboard", reason="the tensorboard package (pip install -e '.[test]')")
    data = write_xnli_like(tmp_path / "xnli")
    plain = run_experiment(config(tiny_xglm_dir, data, tmp_path / "a"), log=lambda *_: None)[0]
    tracked = run_experiment(config(tiny_xglm_dir, data, tmp_path / "b", "train.report_to=[tensorboard]"),
                             log=lambda *_: None)[0]
    assert plain.run_id == tracked.run_id
    assert [r.predictions for r in plain.results] == [r.predictions for r in tracked.results]
    assert list((tmp_path / "b" / "runs" / tracked.run_id).rglob("events.out.tfevents.*"))  # default: output_dir


def test_unknown_tracker_suggests_the_closest(tmp_path, capsys):
    assert cli_main(["run", "--model", "m", "--set", "train.report_to=tensorbord"]) == 2
    err = capsys.readouterr().err
    assert "unknown value for train.report_to 'tensorbord'; valid: tensorboard," in err


@pytest.mark.parametrize("name", ["swanlab", "trackio", "aim"])
def test_a_tracker_that_is_not_installed_fails_before_any_work(tiny_xglm_dir, tmp_path, name):
    if importlib.util.find_spec(name) is not None:
        pytest.skip(f"{name} is installed here")
    from xltune.errors import XLTuneError

    data = write_xnli_like(tmp_path / "xnli")
    with pytest.raises(XLTuneError, match=f"train.report_to: {name} needs the {name} package "
                                          f"\\(pip install {name}\\), which is not installed"):
        run_experiment(config(tiny_xglm_dir, data, tmp_path, f"train.report_to=[{name}]"), log=lambda *_: None)
    assert not (tmp_path / "r.sqlite").exists() or \
        sqlite3.connect(tmp_path / "r.sqlite").execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 0
