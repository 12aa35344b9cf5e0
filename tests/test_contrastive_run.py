"""Dual contrastive objectives (TCL + LCL) and projected-tag training wired into real runs on tiny models."""

from __future__ import annotations

import random

import pytest
import torch

from xltune.api import run_experiment
from xltune.config import load_config
from xltune.data.fewshot import sample_shots
from xltune.data.readers import load_examples
from xltune.data.tasks import resolve_task
from xltune.errors import XLTuneError
from xltune.store import Store

from tiny_data import LANGS, write_xnli_like  # noqa: E402  (tests/ is on sys.path)

QUIET = {"log": lambda *_: None}


def config(model_dir, data_dir, tmp_path, method="deep_prompt", **sets):
    overrides = [
        f"model.name_or_path={model_dir}", f"method.name={method}", "method.prefix_length=4",
        "task.name=xnli", f"task.data_dir={data_dir}",
        "train.split=dev", "train.shots=4", "train.epochs=2", "train.batch_size=6", "train.lr=1e-2",
        "eval.split=test", "seeds=[1]", f"store={tmp_path / 'results.sqlite'}", f"output_dir={tmp_path / 'runs'}",
        dcl(0.5, 0.5), "train.translations.languages=[de, sw]",
    ] + [f"{k}={v}" for k, v in sets.items()]
    return load_config(None, overrides)


def dcl(tcl: float, lcl: float) -> str:
    """The objectives override for cross-entropy + translation contrast + label contrast."""
    return (f"objectives=[{{name: cross_entropy}}, {{name: translation_contrast, weight: {tcl}}}, "
            f"{{name: label_contrast, weight: {lcl}}}]")


@pytest.fixture()
def xnli_dir(tmp_path):
    return write_xnli_like(tmp_path / "xnli", n_test=9)


@pytest.mark.parametrize("method", ["deep_prompt", "finetune"])
def test_tcl_lcl_run_completes_and_is_tagged(tiny_xglm_dir, xnli_dir, tmp_path, method):
    (res,) = run_experiment(config(tiny_xglm_dir, xnli_dir, tmp_path, method), **QUIET)
    assert res.train.steps == 4  # 12 shots / batch 6 x 2 epochs
    with Store(tmp_path / "results.sqlite") as s:
        (run,) = s.runs()
        assert run["objective"] == "tcl+lcl" and run["method"] == method
        info = run["extra"]["objective"]
        # 4 shots x 3 classes, each with a line-aligned translation in de and in sw
        assert info["pairs"] == {"de": 12, "sw": 12} and info["shots_with_translation"] == 12
        assert info["translation_sources"] == ["de", "sw"]
        assert {m["lang"] for m in s.metrics(metric="accuracy")} == set(LANGS)


def test_contrastive_terms_change_training(tiny_xglm_dir, xnli_dir, tmp_path):
    """The same run with and without TCL+LCL ends with different predictions or dev history (the terms do act)."""
    base = config(tiny_xglm_dir, xnli_dir, tmp_path / "a", objectives="[{name: cross_entropy}]")
    with_obj = config(tiny_xglm_dir, xnli_dir, tmp_path / "b", objectives=dcl(5.0, 5.0).split("=", 1)[1])
    (a,) = run_experiment(base, **QUIET)
    (b,) = run_experiment(with_obj, **QUIET)
    with Store(tmp_path / "a" / "results.sqlite") as s:
        assert s.runs()[0]["objective"] == "none"
    from safetensors.torch import load_file

    pa = load_file(str(tmp_path / "a" / "runs" / a.run_id / "trainable.safetensors"))
    pb = load_file(str(tmp_path / "b" / "runs" / b.run_id / "trainable.safetensors"))
    assert pa.keys() == pb.keys()
    assert any(not torch.equal(pa[k], pb[k]) for k in pa)


def test_tcl_without_translations_is_a_clear_error(tiny_xglm_dir, xnli_dir, tmp_path):
    cfg = config(tiny_xglm_dir, xnli_dir, tmp_path, **{"train.translations.languages": "[]"})
    with pytest.raises(XLTuneError, match="train.translations.languages"):
        run_experiment(cfg, **QUIET)


def test_token_task_translations_need_a_declared_parallel_source(tiny_xlmr_dir, tmp_path):
    """PAN-X files are not translations of each other: line-aligned 'translations' of them are refused."""
    data = write_ner_like(tmp_path / "panx")
    cfg = load_config(None, [
        f"model.name_or_path={tiny_xlmr_dir}", "task.name=panx", f"task.data_dir={data}", "task.languages=[en, de]",
        "train.split=dev", "train.shots=2", "train.epochs=1", "eval.split=test", f"store={tmp_path / 'r.sqlite'}",
        "objectives=[{name: cross_entropy}, {name: projected_cross_entropy}]", "train.translations.languages=[de]"])
    with pytest.raises(XLTuneError, match="task panx declares no parallel split.*parallel_file"):
        run_experiment(cfg, **QUIET)


def test_the_older_objective_section_still_works(tiny_xglm_dir, xnli_dir, tmp_path, capsys):
    """Configs of xltune 0.1 had one objective section of weights: same objectives, same run key, a note."""
    old = load_config(None, [f"model.name_or_path={tiny_xglm_dir}", "objective.translation_contrast=0.5",
                             "objective.label_contrast=0.5", "objective.translation_languages=[de, sw]"])
    new = load_config(None, [f"model.name_or_path={tiny_xglm_dir}", dcl(0.5, 0.5),
                             "train.translations.languages=[de, sw]"])
    assert old.objectives == new.objectives and old.train.translations == new.train.translations
    assert old.run_key(1) == new.run_key(1) and old.objective_tag == "tcl+lcl"
    assert "objectives list" in capsys.readouterr().err


def test_deep_prompt_with_tcl_lcl_leaves_backbone_bit_identical(tiny_xglm_dir, xnli_dir, tmp_path):
    from xltune.config import resolve_paths
    from xltune.data.encode import collate
    from xltune.objectives.base import prepare_objectives
    from xltune.runs.context import build_context
    from xltune.runs.prepare import prepare
    from xltune.train import train

    cfg = resolve_paths(config(tiny_xglm_dir, xnli_dir, tmp_path, **{"train.epochs": 3}))
    prep = prepare(cfg)
    shots, _ = sample_shots(prep.pool["en"], prep.spec, 4, seed=1)
    ctx = build_context(prep, 1, "test", QUIET["log"])
    model, backbone = ctx.model, ctx.backbone
    before = {k: v.detach().clone() for k, v in model.backbone.state_dict().items()}
    prompt_before = {k: v.detach().clone() for k, v in model.deep_prompt.state_dict().items()}
    objectives = prepare_objectives(ctx, shots)
    assert objectives.tag == "tcl+lcl" and objectives.info()["pairs"] == {"de": 12, "sw": 12}

    # the contrastive terms alone send gradient to the prompt and none to the frozen backbone
    objectives.per_label = []
    enc = ctx.encode_train(shots)
    part = list(range(6))
    batch = collate([enc.features[i] for i in part], backbone.pad_token_id, ctx.padding_side, False)
    out = model(batch["input_ids"], batch["attention_mask"])
    loss = objectives(model, out, batch, part, label_scale=1.0, batch_scale=1.0)
    assert loss.item() > 0
    loss.backward()
    assert all(p.grad is None for p in model.backbone.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.deep_prompt.parameters())
    model.zero_grad(set_to_none=True)

    objectives = prepare_objectives(ctx, shots)
    train(model, enc, cfg.train, seed=1, token_task=False, pad_id=backbone.pad_token_id,
          padding_side=ctx.padding_side, accelerator=ctx.acc, loss=objectives, **QUIET)
    after = model.backbone.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert any(not torch.equal(prompt_before[k], v) for k, v in model.deep_prompt.state_dict().items())


# ---------------------------------------------------------------- tagging with projected labels

NER_WORDS = {
    "en": (["Anna", "Berlin", "Siemens", "Paris", "Maria"], "the visited in works for and lives".split()),
    "de": (["Anna", "Berlin", "Siemens", "Paris", "Maria"], "die besuchte in arbeitet für und lebt".split()),
}
NER_TYPES = {"Anna": "PER", "Maria": "PER", "Berlin": "LOC", "Paris": "LOC", "Siemens": "ORG"}


def write_ner_like(folder, n=24, seed=0):
    """XTREME token files (word<TAB>TAG), line-aligned across en/de: sentence i has the same entities."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    plans = [[rng.randrange(5) for _ in range(rng.randint(1, 2))] for _ in range(n)]
    for split in ("dev", "test"):
        for lang, (names, fill) in NER_WORDS.items():
            r = random.Random(f"{split}-{lang}")
            blocks = []
            for plan in plans:
                lines = []
                for e in plan:
                    lines += [f"{r.choice(fill)}\tO" for _ in range(r.randint(1, 3))]
                    lines.append(f"{names[e]}\tB-{NER_TYPES[names[e]]}")
                lines.append(f"{r.choice(fill)}\tO")
                blocks.append("\n".join(lines))
            (folder / f"{split}-{lang}.tsv").write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    return folder


def test_ner_with_projected_labels_completes(tiny_xlmr_dir, tmp_path):
    data = write_ner_like(tmp_path / "panx")
    cfg = load_config(None, [
        f"model.name_or_path={tiny_xlmr_dir}", "method.name=deep_prompt", "method.prefix_length=4",
        "task.name=panx", f"task.data_dir={data}", "task.languages=[en, de]",
        "task.parallel_splits=[dev, test]",  # these files are line-aligned by construction; real PAN-X files are not
        "train.split=dev", "train.shots=2", "train.epochs=2", "train.batch_size=4",
        "eval.split=test", "eval.languages=[en, de]", "seeds=[1]",
        f"store={tmp_path / 'r.sqlite'}", f"output_dir={tmp_path / 'runs'}",
        "objectives=[{name: cross_entropy}, {name: translation_contrast, weight: 0.3}, "
        "{name: projected_cross_entropy}, {name: label_contrast, weight: 0.3}]", "train.translations.languages=[de]",
    ])
    (res,) = run_experiment(cfg, **QUIET)
    assert res.train.steps > 0
    with Store(tmp_path / "r.sqlite") as s:
        (run,) = s.runs()
        assert run["objective"] == "tcl+proj+lcl"  # projected cross-entropy is part of the stored objective
        info = run["extra"]["objective"]
        n_shots = len(run["manifest"]["languages"]["en"]["ids"])
        assert info["pairs"] == {"de": n_shots} and info["projection"]["sentences"] == n_shots
        assert info["projection"]["aligned_links"] > 0
        assert {"name": "projected_cross_entropy", "weight": 1.0} in info["objectives"]
        assert {m["lang"] for m in s.metrics(metric="f1")} == {"en", "de"}


# ---------------------------------------------------------------- real XNLI


@pytest.mark.slow
@pytest.mark.shared
def test_real_xnli_deep_prompt_tcl_lcl(shared_data, tmp_path):
    from xltune.models.tiny import make_tiny_model

    xnli = shared_data / "xnli"
    text = tmp_path / "text.txt"  # 400 lines per language: enough for a tokenizer, fast to train
    text.write_text("\n".join(line for lang in ("en", "de", "sw", "zh")
                              for line in (xnli / f"dev-{lang}.tsv").read_text(encoding="utf-8").splitlines()[:400]),
                    encoding="utf-8")
    model_dir = make_tiny_model("xglm", [text], tmp_path / "tiny", vocab_size=4000, hidden=32, layers=2, heads=4,
                                seed=0)
    cfg = load_config(None, [
        f"model.name_or_path={model_dir}", "method.name=deep_prompt", "method.prefix_length=4",
        "model.max_length=128", "task.name=xnli", f"task.data_dir={xnli}",
        "train.split=dev", "train.shots=16", "train.epochs=1", "train.batch_size=16", "train.dev.max_examples=48",
        "eval.split=test", "eval.languages=[en, de, sw, zh]", "eval.max_examples=50", "seeds=[1]",
        f"store={tmp_path / 'r.sqlite'}", f"output_dir={tmp_path / 'runs'}", "save_checkpoint=false",
        dcl(0.5, 0.5), "train.translations.languages=[de, sw, zh]",
    ])
    (res,) = run_experiment(cfg, **QUIET)
    assert res.train.steps == 3  # 48 shots / 16
    with Store(tmp_path / "r.sqlite") as s:
        (run,) = s.runs()
        assert run["objective"] == "tcl+lcl"
        assert run["extra"]["objective"]["pairs"] == {"de": 48, "sw": 48, "zh": 48}
        rows = s.metrics(metric="accuracy")
        assert {r["lang"] for r in rows} == {"en", "de", "sw", "zh"} and all(r["n"] == 50 for r in rows)


def test_parallel_tsv_translations_keyed_by_shot_text(tiny_xglm_dir, xnli_dir, tmp_path):
    """train.translations.parallel_file: rows whose source equals a shot's 'premise ||| hypothesis' give its translations."""
    en = (xnli_dir / "dev-en.tsv").read_text(encoding="utf-8").splitlines()[1:]
    de = (xnli_dir / "dev-de.tsv").read_text(encoding="utf-8").splitlines()[1:]
    rows = [f"{e.split(chr(9))[0]} ||| {e.split(chr(9))[1]}\t{d.split(chr(9))[0]} ||| {d.split(chr(9))[1]}"
            for e, d in zip(en, de)]
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("\n".join(rows) + "\n", encoding="utf-8")
    cfg = config(tiny_xglm_dir, xnli_dir, tmp_path, **{"train.translations.languages": "[]",
                                                        "train.translations.parallel_file": str(tsv)})
    run_experiment(cfg, **QUIET)
    with Store(tmp_path / "results.sqlite") as s:
        info = s.runs()[0]["extra"]["objective"]
        assert info["pairs"] == {"tsv1": 12} and info["translation_sources"] == ["tsv1"]
    bad = tmp_path / "bad.tsv"
    bad.write_text("\n".join(r.rsplit(" ||| ", 1)[0] for r in rows) + "\n", encoding="utf-8")  # de: 1 segment
    cfg = config(tiny_xglm_dir, xnli_dir, tmp_path / "b", **{"train.translations.languages": "[]",
                                                              "train.translations.parallel_file": str(bad)})
    with pytest.raises(XLTuneError, match=r"bad.tsv:\d+: column 2 has 1 segment"):
        run_experiment(cfg, **QUIET)
