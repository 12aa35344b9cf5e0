"""Distillation from a stored teacher run into a student on unlabelled target-language text; `xltune translate`."""

from __future__ import annotations

import argparse
import gzip
import random

import pytest
import torch

from xltune.api import run_experiment
from xltune.config import load_config
from xltune.distill import UnlabelledSource, distill
from xltune.errors import XLTuneError
from xltune.store import Store

from tiny_data import LANGS, write_xnli_like  # noqa: E402  (tests/ is on sys.path)

QUIET = {"log": lambda *_: None}


def base_overrides(model_dir, tmp_path):
    return [f"model.name_or_path={model_dir}", "method.prefix_length=4", "train.split=dev", "train.epochs=1",
            "train.batch_size=6", "eval.split=test", "seeds=[1]", f"store={tmp_path / 'r.sqlite'}",
            f"output_dir={tmp_path / 'runs'}"]


@pytest.fixture()
def xnli_teacher(tiny_xglm_dir, tmp_path):
    data = write_xnli_like(tmp_path / "xnli", n_dev=24, n_test=9)
    cfg = load_config(None, base_overrides(tiny_xglm_dir, tmp_path) + [
        "method.name=deep_prompt", "task.name=xnli", f"task.data_dir={data}", "train.shots=2"])
    (res,) = run_experiment(cfg, **QUIET)
    return cfg, res.run_id


def test_xnli_student_distils_from_stored_teacher_on_two_languages(xnli_teacher, tmp_path):
    teacher_cfg, teacher_id = xnli_teacher
    student = load_config(None, overrides=["method.name=finetune", "train.epochs=2", "seeds=[1]"],
                          base=teacher_cfg.to_dict())
    sources = [UnlabelledSource("de", split="dev"), UnlabelledSource("sw", split="dev")]
    (res,) = distill(teacher_id, sources, student, temperature=2.0, max_examples=12, **QUIET)
    assert res.train.steps == 2 * 4  # 24 unlabelled pairs / batch 6, 2 epochs
    with Store(teacher_cfg.store) as s:
        kd = s.runs(objective="kd")
        assert len(kd) == 1 and kd[0]["run_id"] == res.run_id != teacher_id
        run = kd[0]
        kd_info = run["extra"]["objective"]["distillation"]
        assert run["method"] == "finetune" and kd_info["teacher_run_id"] == teacher_id
        assert kd_info["sources"] == {"de": {"from": "dev split (labels dropped)", "examples": 12},
                                      "sw": {"from": "dev split (labels dropped)", "examples": 12}}
        assert run["config"]["objectives"][0]["teacher"] == teacher_id  # the teacher is part of the variant
        assert run["manifest"]["shots"] == 0 and "distillation" in run["manifest"]["note"]  # no shots trained on
        assert {m["lang"] for m in s.metrics(run_id=res.run_id, metric="accuracy")} == set(LANGS)
    # stored: a second call is skipped
    (again,) = distill(teacher_id, sources, student, temperature=2.0, max_examples=12, **QUIET)
    assert again.skipped


def test_distillation_with_verbalizer_heads_runs(tiny_xglm_dir, tmp_path):
    """Teacher and student both score label words through the LM head (model.head: verbalizer): the one pipeline
    gives the student the verbalizer head, and the teacher is rebuilt with its own."""
    data = write_xnli_like(tmp_path / "xnli", n_dev=24, n_test=6)
    cfg = load_config(None, base_overrides(tiny_xglm_dir, tmp_path) + [
        "method.name=deep_prompt", "model.head=verbalizer", "task.name=xnli", f"task.data_dir={data}",
        "train.shots=2"])
    (teacher,) = run_experiment(cfg, **QUIET)
    student = load_config(None, ["method.name=prompt", "method.length=2"], base=cfg.to_dict())
    (res,) = distill(teacher.run_id, [UnlabelledSource("de", split="dev")], student, max_examples=6, **QUIET)
    assert not res.skipped and res.train.steps == 1 and {r.lang for r in res.results} == set(LANGS)
    with Store(cfg.store) as s:
        (run,) = s.runs(objective="kd")
        assert run["config"]["model"]["head"] == "verbalizer" and run["method"] == "prompt"
        assert run["extra"]["objective"]["distillation"]["teacher_method"] == "deep_prompt"


def test_plain_text_for_a_pair_task_is_a_clear_error(xnli_teacher, tmp_path):
    cfg, teacher_id = xnli_teacher
    text = tmp_path / "de.txt"
    text.write_text("ein Satz\n", encoding="utf-8")
    with pytest.raises(XLTuneError, match="sentence pairs"):
        distill(teacher_id, [UnlabelledSource("de", path=str(text))], cfg, **QUIET)


def test_unknown_teacher_is_a_clear_error(xnli_teacher):
    cfg, _ = xnli_teacher
    with pytest.raises(XLTuneError, match="not in"):
        distill("0000nope", [UnlabelledSource("de", split="dev")], cfg, **QUIET)


# ---------------------------------------------------------------- tagging: plain text, different tokenizers

NAMES = {"Anna": "PER", "Berlin": "LOC", "Siemens": "ORG", "Maria": "PER", "Paris": "LOC"}
FILL = "the visited in works for and lives".split()


def write_ner(folder):
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("dev", "test"):
        for lang in ("en", "de"):
            r = random.Random(f"{split}-{lang}")
            blocks = []
            for _ in range(16):
                name = r.choice(list(NAMES))
                blocks.append("\n".join([f"{r.choice(FILL)}\tO", f"{name}\tB-{NAMES[name]}", f"{r.choice(FILL)}\tO"]))
            (folder / f"{split}-{lang}.tsv").write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    return folder


def test_ner_student_with_another_tokenizer_distils_on_plain_text(tiny_xglm_dir, tiny_xlmr_dir, tmp_path):
    data = write_ner(tmp_path / "panx")
    teacher_cfg = load_config(None, base_overrides(tiny_xglm_dir, tmp_path) + [
        "method.name=deep_prompt", "task.name=panx", f"task.data_dir={data}", "task.languages=[en, de, sw]",
        "train.shots=2", "eval.languages=[en, de]"])
    (teacher,) = run_experiment(teacher_cfg, **QUIET)
    de = tmp_path / "de.txt.gz"
    with gzip.open(de, "wt", encoding="utf-8") as fh:
        fh.write("Anna besuchte Berlin\n\nMaria arbeitet für Siemens in Paris\n")
    sw = tmp_path / "sw.txt"
    sw.write_text("Anna anakimbia Berlin\nMaria ni Siemens\nmtu Paris\n", encoding="utf-8")
    student = load_config(None, [f"model.name_or_path={tiny_xlmr_dir}", "method.name=lora", "train.epochs=2",
                                 "train.batch_size=2"], base=teacher_cfg.to_dict())
    sources = [UnlabelledSource("de", path=str(de)), UnlabelledSource("sw", path=str(sw))]
    (res,) = distill(teacher.run_id, sources, student, temperature=1.0, max_examples=0, **QUIET)
    assert res.train.steps == 2 * 3  # 2 + 3 non-blank lines / batch 2, 2 epochs
    with Store(teacher_cfg.store) as s:
        (run,) = s.runs(objective="kd")
        kd_info = run["extra"]["objective"]["distillation"]
        assert run["method"] == "lora" and kd_info["teacher_run_id"] == teacher.run_id
        assert kd_info["sources"]["de"]["examples"] == 2
        assert {m["lang"] for m in s.metrics(run_id=run["run_id"], metric="f1")} == {"en", "de"}


def test_token_targets_sit_on_first_subwords_and_kd_is_zero_on_the_teacher_itself():
    from types import SimpleNamespace

    from xltune.data.encode import Encoded, Feature
    from xltune.objectives.base import Step
    from xltune.objectives.distillation import Distillation, DistillationSettings

    # word 0 -> tokens 1,2; word 1 -> token 3; specials at 0 and 4
    feat = Feature([5, 6, 7, 8, 9], [0] * 5, 0, 0, [None, 0, 0, 1, None])
    kd = Distillation(DistillationSettings(teacher="t", text={"de": "x"}, temperature=2.0))
    kd.token_task, kd.num_labels, kd.padding_side, kd.examples = True, 3, "right", range(0, 1)
    kd.soft = [torch.tensor([[1.0, 0.0, -1.0], [0.0, 2.0, 0.0]])]
    kd.on_encoded(Encoded([feat], 1))
    (t,) = kd.targets
    assert torch.equal(t[1], kd.soft[0][0]) and torch.equal(t[3], kd.soft[0][1])
    assert torch.isnan(t[[0, 2, 4]]).all()

    def step(logits):
        return Step(None, SimpleNamespace(logits=logits), {}, [0], None)

    assert abs(kd.loss(step(torch.nan_to_num(t).unsqueeze(0).requires_grad_())).item()) < 1e-6
    logits = torch.zeros(1, 5, 3, requires_grad=True)
    loss = kd.loss(step(logits))
    loss.backward()
    assert loss.item() > 0 and (logits.grad[0, [0, 2, 4]] == 0).all() and logits.grad[0, 1].abs().sum() > 0


# ---------------------------------------------------------------- commands


def _cli(module, argv):
    parser = argparse.ArgumentParser()
    module.add_parser(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


def test_distill_command(xnli_teacher, capsys):
    from xltune.commands import distill as cmd

    cfg, teacher_id = xnli_teacher
    assert _cli(cmd, ["distill", "--teacher", teacher_id, "--teacher-store", cfg.store, "--split", "dev",
                      "--languages", "de", "sw", "--max-examples", "6", "--set", "train.epochs=1"]) == 0
    with Store(cfg.store) as s:
        assert len(s.runs(objective="kd")) == 1
    with pytest.raises(XLTuneError, match="LANG=FILE"):
        _cli(cmd, ["distill", "--teacher", teacher_id, "--teacher-store", cfg.store, "--text", "de"])


def test_translate_command_keeps_lines_aligned(tmp_path):
    pytest.importorskip("sentencepiece")
    from tiny_data import tiny_m2m

    from xltune.commands import translate as cmd

    d = tiny_m2m(tmp_path / "m2m")
    src = tmp_path / "in.txt"
    src.write_text("the cat sat\n\na small test\n", encoding="utf-8")
    out = tmp_path / "out.txt"
    assert _cli(cmd, ["translate", "--model", str(d), "--src", "en", "--tgt", "de", "--in", str(src),
                      "--out", str(out), "--max-new-tokens", "5"]) == 0
    lines = out.read_text(encoding="utf-8").split("\n")
    assert len(lines) == 4 and lines[1] == "" and lines[3] == ""  # 3 lines + final newline, blank kept blank
    tsv = tmp_path / "pairs.tsv"
    _cli(cmd, ["translate", "--model", str(d), "--src", "en", "--tgt", "de", "--in", str(src), "--out", str(tsv),
               "--tsv", "--max-new-tokens", "5"])
    from xltune.data.parallel import read_parallel_tsv

    rows = tsv.read_text(encoding="utf-8").splitlines()
    assert [r.split("\t")[0] for r in rows] == ["the cat sat", "a small test"]
    if all(r.split("\t")[1].strip() for r in rows):  # a random model may emit nothing; the TSV is then not valid
        assert len(read_parallel_tsv(tsv)) == 2
