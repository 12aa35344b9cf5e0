"""`xltune export`: encoder runs on token tasks reload with transformers / peft -- independently of xltune -- and tag
every word as the run's own evaluation did; runs without an exact equivalent become xltune's folder, which
`xltune.load_run` reloads with the same predictions; each export has a model card with the run's results."""

from __future__ import annotations

import json

import pytest
import torch

import xltune
from xltune.api import run_experiment
from xltune.cli import main as cli_main
from xltune.config import load_config
from xltune.data.readers import load_examples
from xltune.data.tasks import TASKS
from xltune.store import Store

from tiny_data import write_panx_like, write_xnli_like  # noqa: E402  (tests/ is on sys.path)

PANX = TASKS.get("panx")


@pytest.fixture(scope="module")
def panx_dir(tmp_path_factory):
    return write_panx_like(tmp_path_factory.mktemp("panx") / "panx")


def train(model, data, root, method, task="panx", **sets) -> str:
    split = "train" if task == "panx" else "dev"
    cfg = load_config(None, [
        f"model.name_or_path={model}", f"method.name={method}", f"task.name={task}", f"task.data_dir={data}",
        f"train.split={split}", "train.shots=4", "train.epochs=1", "train.batch_size=4", "train.lr=3e-2",
        "eval.split=test", "seeds=[1]", f"store={root / 'r.sqlite'}", f"output_dir={root / 'runs'}",
        *(f"{k}={v}" for k, v in sets.items())])
    (res,) = run_experiment(cfg, log=lambda *_: None)
    return res.run_id


def export(capsys, root, run_id, out, *extra) -> str:
    code = cli_main(["export", "--store", str(root / "r.sqlite"), "--run", run_id, "--out", str(out), *extra])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


def stored_tags(root, run_id, lang="de") -> list[list[str]]:
    with Store(root / "r.sqlite") as s:
        return [json.loads(pred) for _, _, pred in s.predictions(run_id, lang, "test")]


def tags_with_transformers(model, tokenizer, sentences, labels, virtual=0) -> list[list[str]]:
    """Word tags the plain transformers way: one sentence at a time, each word read at its first sub-word."""
    out = []
    for words in sentences:
        enc = tokenizer(list(words), is_split_into_words=True, return_tensors="pt")
        with torch.no_grad():
            logits = model(**enc).logits[0, virtual:]
        first = {w: i for i, w in reversed(list(enumerate(enc.word_ids()))) if w is not None}
        out.append([labels[int(logits[first[w]].argmax())] for w in range(len(words))])
    return out


@pytest.mark.parametrize("method, sets, virtual", [
    ("lora", {}, 0), ("finetune", {"train.lr": 1e-3}, 0), ("ia3", {}, 0), ("prompt", {"method.length": 4}, 4)])
def test_encoder_export_reloads_with_transformers_and_peft_and_tags_as_the_run_did(
        tiny_xlmr_dir, panx_dir, tmp_path, capsys, method, sets, virtual):
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    run_id = train(tiny_xlmr_dir, panx_dir, tmp_path, method, **sets)
    out = export(capsys, tmp_path, run_id, tmp_path / "export")
    labels = list(PANX.labels)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "export")
    if method == "finetune":
        assert "a transformers model" in out
        model = AutoModelForTokenClassification.from_pretrained(tmp_path / "export").eval()
        assert [model.config.id2label[i] for i in range(len(labels))] == labels
    else:
        from peft import PeftModel

        assert "a peft adapter" in out
        adapter = json.loads((tmp_path / "export" / "adapter_config.json").read_text())
        assert adapter["base_model_name_or_path"] == str(tiny_xlmr_dir) and adapter["task_type"] == "TOKEN_CLS"
        base = AutoModelForTokenClassification.from_pretrained(
            tiny_xlmr_dir, num_labels=len(labels), id2label=dict(enumerate(labels)),
            label2id={lab: i for i, lab in enumerate(labels)})
        model = PeftModel.from_pretrained(base, tmp_path / "export").eval()
    sentences = [e.words for e in load_examples(PANX, panx_dir, "test", "de")]
    assert tags_with_transformers(model, tokenizer, sentences, labels, virtual) == stored_tags(tmp_path, run_id)
    card = (tmp_path / "export" / "README.md").read_text()
    with Store(tmp_path / "r.sqlite") as s:
        f1 = {m["lang"]: m for m in s.metrics(run_id=run_id, metric="f1")}
    assert f"| de | {f1['de']['n']} | {100 * f1['de']['value']:.1f} |" in card and "same predictions" in card
    assert json.loads((tmp_path / "export" / "xltune_run.json").read_text())["run_id"] == run_id


@pytest.mark.parametrize("case", ["deep_prompt_encoder", "sentence_task", "decoder"])
def test_runs_without_an_exact_equivalent_export_as_xltunes_folder(
        case, tiny_xlmr_dir, tiny_xglm_dir, panx_dir, tmp_path, capsys):
    if case == "sentence_task":
        data = write_xnli_like(tmp_path / "xnli")
        run_id = train(tiny_xlmr_dir, data, tmp_path, "lora", task="xnli")
        why, texts = "sentence head", [("der mann läuft", "die frau schläft"), ("a dog", "a cat")]
    else:
        model = tiny_xlmr_dir if case == "deep_prompt_encoder" else tiny_xglm_dir
        run_id = train(model, panx_dir, tmp_path, "deep_prompt", **{"method.prefix_length": 4})
        why = "past key values" if case == "deep_prompt_encoder" else "decoders"
        texts = [e.words for e in load_examples(PANX, panx_dir, "test", "de")]
    out = export(capsys, tmp_path, run_id, tmp_path / "export")
    assert "xltune's own folder" in out and why in out
    loaded = xltune.load_run(tmp_path / "export")
    if case != "sentence_task":
        assert loaded.predict(texts) == stored_tags(tmp_path, run_id)
    from xltune.runs.stored import load_stored_run

    assert loaded.predict_proba(texts) == load_stored_run(run_id, tmp_path / "r.sqlite").predict_proba(texts)
    card = (tmp_path / "export" / "README.md").read_text()
    assert "xltune.load_run" in card and why in card and "| de |" in card
    # the folder is the run's, relative to where it is now: it moves with the base model's relative place
    assert json.loads((tmp_path / "export" / "config.json").read_text())["model"]["name_or_path"].startswith("..")


def test_export_never_overwrites_without_force(tiny_xlmr_dir, panx_dir, tmp_path, capsys):
    run_id = train(tiny_xlmr_dir, panx_dir, tmp_path, "lora")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    capsys.readouterr()
    code = cli_main(["export", "--store", str(tmp_path / "r.sqlite"), "--run", run_id, "--out",
                     str(tmp_path / "taken")])
    err = capsys.readouterr().err
    assert code == 2 and "exists and is not empty; --force replaces it" in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "taken" / "keep.txt").read_text() == "mine"
    export(capsys, tmp_path, run_id, tmp_path / "taken", "--force", "--as", "xltune")
    assert not (tmp_path / "taken" / "keep.txt").exists() and (tmp_path / "taken" / "run.json").is_file()
    assert not list(tmp_path.glob(".taken.*"))  # no temporary folder left behind
