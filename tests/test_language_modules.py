"""Language modules (MAD-X adapters, language prefixes, LoRA language modules) on tiny models: the invertible adapter
inverts, the Pfeiffer placement computes what it says, a module trains by LM and resumes exactly, swapping a module
changes only that module's tensors, task training leaves the backbone and the language module bit-identical, and a
language without a module falls back to the source's, said in the run's table, store and report."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from xltune.api import run_experiment
from xltune.cli import main
from xltune.config import ModelConfig, load_config
from xltune.errors import XLTuneError
from xltune.langmod.modules import find_modules, slot_of
from xltune.langmod.train import ModuleTrainConfig, schedule, train_language_module
from xltune.methods import build_model, method_settings
from xltune.models.adapters import BottleneckAdapter, NiceCoupling, add_adapters, transformer_layers
from xltune.models.backbone import load_backbone
from xltune.store import Store

from conftest import TINY_TEXT
from tiny_data import write_xnli_like  # noqa: E402  (tests/ is on sys.path)

METHOD = {"adapter": "mad_x", "prefix": "lang_prefix", "lora": "lang_lora"}
SMALL = {"adapter": {"reduction_factor": 4.0}, "prefix": {"prefix_length": 2}, "lora": {"r": 2}}
LINES = [line.replace("\t", " ") for line in TINY_TEXT.splitlines()]


def quiet(*_a, **_k) -> None:
    pass


def tiny_cfg(kind: str, **kw) -> ModuleTrainConfig:
    return ModuleTrainConfig(kind=kind, steps=kw.pop("steps", 4), batch_size=3, dev_lines=0, prefix_length=2, r=2,
                             save_every=kw.pop("save_every", 50), **kw)


@pytest.fixture(scope="session")
def text_files(tmp_path_factory):
    """Two different 'languages' of text: each module learns something else."""
    root = tmp_path_factory.mktemp("text")
    (root / "a.txt").write_text("\n".join(LINES[:6]) + "\n", encoding="utf-8")
    (root / "b.txt").write_text("\n".join(LINES[6:]) + "\n", encoding="utf-8")
    return root / "a.txt", root / "b.txt"


@pytest.fixture(scope="session")
def modules(tmp_path_factory, tiny_xglm_dir, tiny_xlmr_dir, text_files):
    """modules(kind, arch) -> a folder with modules for en and sw (trained for a few steps each), cached."""
    made: dict = {}

    def make(kind: str, arch: str = "xglm"):
        if (kind, arch) not in made:
            out = tmp_path_factory.mktemp(f"mods-{kind}-{arch}")
            model = str(tiny_xglm_dir if arch == "xglm" else tiny_xlmr_dir)
            for lang, text in zip(("en", "sw"), text_files):
                train_language_module(ModelConfig(name_or_path=model), lang, [text], out, tiny_cfg(kind), log=quiet)
            made[kind, arch] = out
        return made[kind, arch]

    return make


def mad_x_config(model, modules_dir, data, tmp_path, *more: str):
    """A one-seed mad_x run on tiny XNLI-like files with the given language modules (``more``: overrides)."""
    return load_config(None, [
        f"model.name_or_path={model}", "method.name=mad_x", f"method.language_modules={modules_dir}",
        "method.reduction_factor=4", "task.name=xnli", f"task.data_dir={data}", "train.split=dev", "train.shots=2",
        "train.epochs=1", "train.batch_size=3", "train.lr=1e-2", "eval.split=test", "seeds=[1]",
        f"store={tmp_path / 'r.sqlite'}", f"output_dir={tmp_path / 'runs'}", *more])


# -- the adapters themselves -------------------------------------------------------------------------------------
def test_invertible_adapter_inverts_exactly():
    torch.manual_seed(0)
    coupling = NiceCoupling(33, reduction_factor=2)  # odd width: halves of 16 and 17
    for p in coupling.parameters():
        torch.nn.init.normal_(p, std=0.5)  # far from identity, so the test means something
    x = torch.randn(4, 7, 33)
    y = coupling(x)
    assert (y - x).abs().max() > 0.1
    assert torch.allclose(coupling.inverse(y), x, atol=1e-5, rtol=0)
    c64, x64 = coupling.double(), x.double()
    assert torch.allclose(c64.inverse(c64(x64)), x64, atol=1e-12, rtol=0)
    assert torch.allclose(c64(c64.inverse(x64)), x64, atol=1e-12, rtol=0)


def test_pfeiffer_placement_on_an_encoder_layer(tiny_xlmr_dir):
    """post-LN: h = LN(f + x); h = A(h) + f per adapter (language, then task); out = LN(h + x)."""
    backbone = load_backbone(ModelConfig(name_or_path=str(tiny_xlmr_dir)))
    layer = transformer_layers(backbone.model, backbone.num_layers)[0].output.eval()
    inter, x = torch.randn(2, 5, layer.dense.in_features), torch.randn(2, 5, backbone.hidden_size)
    before = layer(inter, x)
    add_adapters(backbone, {"lang": 2, "task": 4})
    lang, task = layer.adapters["lang"], layer.adapters["task"]
    f = layer.dense(inter)
    h = layer.LayerNorm(f + x)
    h = lang(h) + f
    h = task(h) + f
    assert torch.allclose(layer(inter, x), layer.LayerNorm(h + x), atol=1e-6)
    for a in (lang, task):  # adapters that output zero leave the layer as it was
        torch.nn.init.zeros_(a.up.weight)
        torch.nn.init.zeros_(a.up.bias)
    assert torch.allclose(layer(inter, x), before, atol=1e-6)


def test_pfeiffer_placement_on_a_decoder_layer(tiny_xglm_dir):
    """pre-LN: the layer's output h (residual stream) becomes h + A(h), adapter after adapter."""
    backbone = load_backbone(ModelConfig(name_or_path=str(tiny_xglm_dir)))
    ids = backbone.tokenizer(["a quick fox"], return_tensors="pt").input_ids
    layers = transformer_layers(backbone.model, backbone.num_layers)
    seen = []  # layer 1's input: layer 0's output after its hooks
    handle = layers[1].register_forward_pre_hook(lambda m, args, kwargs: seen.append(args[0] if args else
                                                                                      kwargs["hidden_states"]),
                                                 with_kwargs=True)
    backbone.model(input_ids=ids)
    plain = seen.pop()
    add_adapters(backbone, {"lang": 2})
    adapter = layers[0].adapters["lang"]
    backbone.model(input_ids=ids)
    handle.remove()
    assert torch.allclose(seen.pop(), plain + adapter(plain), atol=1e-6)
    assert isinstance(adapter, BottleneckAdapter) and adapter.down.out_features == backbone.hidden_size // 2


# -- training a module -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["adapter", "prefix", "lora"])
def test_a_module_trains_by_lm_and_resumes_exactly(kind, tiny_xglm_dir, tmp_path, text_files):
    model = ModelConfig(name_or_path=str(tiny_xglm_dir))
    straight = train_language_module(model, "en", [text_files[0]], tmp_path / "a", tiny_cfg(kind, steps=6),
                                     log=quiet)

    def stop(step):
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_language_module(model, "en", [text_files[0]], tmp_path / "b", tiny_cfg(kind, steps=6, save_every=1),
                              log=quiet, on_step=stop)
    assert (tmp_path / "b" / "en" / "resume.pt").is_file() and not (tmp_path / "b" / "en" / "manifest.json").exists()
    logs: list[str] = []
    resumed = train_language_module(model, "en", [text_files[0]], tmp_path / "b",
                                    tiny_cfg(kind, steps=6, save_every=1), log=logs.append)
    assert any("resuming at step 3" in line for line in logs)
    a, b = (find_modules(str(f), kind)["en"] for f in (straight, resumed))
    assert a.tensors().keys() == b.tensors().keys() and a.tensors()
    for k in a.tensors():
        assert torch.equal(a.tensors()[k], b.tensors()[k]), k
    m = a.manifest
    assert m["kind"] == kind and m["lang"] == "en" and m["objective"] == "causal LM"
    assert m["text"][0]["sha256"] and m["text"][0]["lines"] == 6 and len(m["text_sha256"]) == 64
    assert m["train"]["steps"] == 6 and m["train"]["tokens_seen"] > 0 and m["train"]["loss_curve"][-1][0] == 6
    assert a.manifest["train"]["loss_curve"] == b.manifest["train"]["loss_curve"]
    assert not (tmp_path / "b" / "en" / "resume.pt").exists()
    # the same command again: skipped; other settings into the same folder: refused
    logs.clear()
    train_language_module(model, "en", [text_files[0]], tmp_path / "a", tiny_cfg(kind, steps=6), log=logs.append)
    assert "already trained" in logs[0]
    with pytest.raises(XLTuneError, match="trained differently.*config.steps.*--fresh"):
        train_language_module(model, "en", [text_files[0]], tmp_path / "a", tiny_cfg(kind, steps=7), log=quiet)


def test_masked_lm_module_on_an_encoder_and_a_fresh_mlm_head(tiny_xlmr_dir, tmp_path, text_files):
    """An encoder without its MLM head (saved as a bare XLMRobertaModel) gets a fresh one, said in the manifest."""
    from transformers import AutoModel, AutoTokenizer

    bare = tmp_path / "bare"
    AutoModel.from_pretrained(tiny_xlmr_dir).save_pretrained(bare)
    AutoTokenizer.from_pretrained(tiny_xlmr_dir).save_pretrained(bare)
    logs: list[str] = []
    folder = train_language_module(ModelConfig(name_or_path=str(bare)), "sw", [text_files[1]], tmp_path / "m",
                                   tiny_cfg("adapter", steps=5, head_steps=2), log=logs.append)
    m = json.loads((folder / "manifest.json").read_text())
    assert m["objective"] == "masked LM" and m["lm_head"].startswith("fresh") and m["train"]["head_steps"] == 2
    assert (folder / "mlm_head.safetensors").is_file() and any("fresh one" in line for line in logs)
    assert m["architecture"]["invertible"] and m["architecture"]["placement"] == "post_ln"


def test_schedule_is_fixed_by_the_seed_and_groups_by_length():
    lengths = [3, 40, 5, 38, 4, 41, 6, 39] * 4
    a, b = schedule(lengths, 4, 10, seed=1), schedule(lengths, 4, 10, seed=1)
    assert a == b and a != schedule(lengths, 4, 10, seed=2) and len(a) == 10
    spreads = [max(lengths[i] for i in batch) - min(lengths[i] for i in batch) for batch in a]
    assert sorted(spreads)[len(spreads) // 2] <= 3  # most batches hold lines of similar length


# -- using modules -----------------------------------------------------------------------------------------------
def _built(kind, arch, modules, tiny_xglm_dir, tiny_xlmr_dir, **kw):
    model_cfg = ModelConfig(name_or_path=str(tiny_xglm_dir if arch == "xglm" else tiny_xlmr_dir), head_dropout=0.0)
    backbone = load_backbone(model_cfg)
    settings = method_settings(METHOD[kind], language_modules=str(modules(kind, arch)), **SMALL[kind], **kw)
    return backbone, build_model(backbone, settings, "sequence", 3, model_cfg)


@pytest.mark.parametrize("kind,arch", [("adapter", "xglm"), ("adapter", "xlm-roberta"), ("prefix", "xglm"),
                                       ("lora", "xglm")])
def test_swapping_a_language_module_changes_only_its_tensors(kind, arch, modules, tiny_xglm_dir, tiny_xlmr_dir):
    backbone, model = _built(kind, arch, modules, tiny_xglm_dir, tiny_xlmr_dir)
    model.eval()
    slot = slot_of(model)
    enc = backbone.tokenizer(["a quick fox jumps", "mbwa mvivu"], return_tensors="pt", padding=True)
    with pytest.raises(XLTuneError, match="no module is loaded"):
        model(enc.input_ids, enc.attention_mask)
    slot.load("en")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out_en = model(enc.input_ids, enc.attention_mask).logits
    slot.load("sw")
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    slot_names = {name for name, p in model.named_parameters() if any(p is q for q in slot.params.values())}
    assert changed == slot_names and changed  # every tensor of the module, nothing else
    assert not torch.allclose(out_en, model(enc.input_ids, enc.attention_mask).logits)
    slot.load("en")
    assert torch.equal(out_en, model(enc.input_ids, enc.attention_mask).logits)


@pytest.mark.parametrize("kind", ["adapter", "prefix", "lora"])
def test_task_training_leaves_backbone_and_language_module_bit_identical(kind, modules, tiny_xglm_dir,
                                                                          tiny_xlmr_dir):
    backbone, model = _built(kind, "xglm", modules, tiny_xglm_dir, tiny_xlmr_dir)
    slot = slot_of(model)
    slot.load("en")
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    trained = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    in_slot = [n for n, p in model.named_parameters() if any(p is q for q in slot.params.values())]
    assert in_slot and all(n in frozen for n in in_slot)  # the language module is frozen: checked below
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.1)
    enc = backbone.tokenizer(["a quick fox jumps", "mbwa mvivu"], return_tensors="pt", padding=True)
    for _ in range(2):
        F.cross_entropy(model(enc.input_ids, enc.attention_mask).logits, torch.tensor([0, 2])).backward()
        opt.step()
        opt.zero_grad()
    now = dict(model.named_parameters())
    assert all(torch.equal(now[n], v) for n, v in frozen.items())
    assert all(not torch.equal(now[n], v) for n, v in trained.items())


def test_mad_x_2_drops_the_last_layers_adapters(modules, tiny_xglm_dir, tiny_xlmr_dir):
    backbone, model = _built("adapter", "xlm-roberta", modules, tiny_xglm_dir, tiny_xlmr_dir, mad_x_2=True)
    layers = transformer_layers(backbone.model, backbone.num_layers)
    assert hasattr(layers[0].output, "adapters") and not hasattr(layers[-1].output, "adapters")
    slot_of(model).load("sw")  # the module's last-layer tensors are left out, the rest fits
    assert all(f".{len(layers) - 1}." not in k for k in slot_of(model).params)


def test_missing_module_falls_back_to_the_source_and_is_reported(modules, tiny_xglm_dir, tmp_path, capsys):
    from xltune.report import build_report

    data = write_xnli_like(tmp_path / "xnli")
    cfg = mad_x_config(tiny_xglm_dir, modules("adapter"), data, tmp_path)
    lines: list[str] = []
    run_experiment(cfg, log=lines.append)
    printed = "\n".join(lines)
    assert "no module for de: en's is used (fallback)" in printed
    table = printed[printed.index("xnli test  seed 1"):]
    assert any(line.startswith("de") and "module: en (no de module: fallback)" in line for line in table.splitlines())
    assert any(line.startswith("sw") and "module: sw" in line for line in table.splitlines())
    with Store(tmp_path / "r.sqlite") as s:
        extra = s.runs()[0]["extra"]
    assert extra["per_language"] == {"en": {"module": "en"}, "de": {"module": "en (no de module: fallback)"},
                                     "sw": {"module": "sw"}}
    assert set(extra["language_modules"]) == {"en", "sw"} and extra["language_modules"]["sw"]["tokens_seen"] > 0
    report = build_report(tmp_path / "r.sqlite", tmp_path / "report", progress=False)["markdown"].read_text()
    assert "Per-language facts" in report and "module: en (no de module: fallback)" in report


def test_errors_name_the_fix(modules, tiny_xglm_dir, tiny_xlmr_dir, tmp_path, capsys):
    with pytest.raises(XLTuneError, match="is a adapter module; this method needs prefix"):
        build_model(load_backbone(ModelConfig(name_or_path=str(tiny_xglm_dir))),
                    method_settings("lang_prefix", language_modules=str(modules("adapter"))), "sequence", 3,
                    ModelConfig(name_or_path=str(tiny_xglm_dir)))
    with pytest.raises(XLTuneError, match="was trained for .*tiny-xlm-roberta"):
        _built("adapter", "xglm", lambda kind, arch: modules(kind, "xlm-roberta"), tiny_xglm_dir, tiny_xlmr_dir)
    with pytest.raises(XLTuneError, match="does not exist; train modules with `xltune lang-module train"):
        method_settings("mad_x", language_modules=str(tmp_path / "nope")) and find_modules(str(tmp_path / "nope"),
                                                                                           "adapter")
    with pytest.raises(XLTuneError, match="prefix_positions is keep, but the language prefixes were trained with "
                                          "shift"):
        _built("prefix", "xglm", modules, tiny_xglm_dir, tiny_xlmr_dir, prefix_positions="keep")
    config = tmp_path / "c.yaml"  # only sw has a module: the source (en) has none
    config.write_text(f"model: {{name_or_path: {tiny_xglm_dir}}}\n"
                      f"method: {{name: mad_x, language_modules: {{sw: {modules('adapter')}/sw}}}}\n"
                      f"task: {{name: xnli, data_dir: {write_xnli_like(tmp_path / 'xnli')}}}\n"
                      f"train: {{split: dev, shots: 2}}\nstore: {tmp_path / 'r.sqlite'}\n"
                      f"output_dir: {tmp_path / 'runs'}\n", encoding="utf-8")
    code = main(["run", str(config)])
    err = capsys.readouterr().err
    assert code == 2 and "no language module for the source language en" in err and "--lang en" in err
    assert "Traceback" not in err and [line for line in err.splitlines() if "error" in line][0].startswith(
        "xltune: error: method mad_x: no language module")
    code = main(["lang-module", "train", "--model", str(tiny_xglm_dir), "--lang", "sw", "--text", "nope.txt",
                 "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("xltune: error: --text nope.txt: no such file") and "Traceback" not in err


def test_cli_trains_and_lists_modules(tiny_xglm_dir, text_files, tmp_path, capsys):
    out = tmp_path / "mods"
    assert main(["lang-module", "train", "--model", str(tiny_xglm_dir), "--kind", "prefix", "--lang", "sw",
                 "--text", str(text_files[1]), "--out", str(out), "--steps", "2", "--batch-size", "2",
                 "--prefix-length", "2", "--dev-lines", "0"]) == 0
    assert (out / "sw" / "manifest.json").is_file()
    capsys.readouterr()
    assert main(["lang-module", "list", str(out)]) == 0
    row = capsys.readouterr().out.splitlines()[1].split()
    assert row[:3] == ["sw", "prefix", "2"] and row[-1] == "b.txt"


def test_text_of_ntrex_and_sib200_for_a_benchmark_code(shared_data):
    from xltune.langmod.text import read_lines, resolve_text

    files = resolve_text(["ntrex128", "sib200"], "sw", shared_data)
    assert [f.name for f in files] == ["newstest2019-ref.swa.txt.gz", "train.tsv.gz", "dev.tsv.gz"]  # never test
    assert files[1].parent.name == "swh_Latn"
    assert len(read_lines(files[0])) == 1997
    sib = read_lines(files[1])
    assert len(sib) == 701 and not sib[0].startswith(("index_id", "0\t")) and "\t" not in sib[0]
    with pytest.raises(XLTuneError, match="no file for language 'xx'"):
        resolve_text(["ntrex128"], "xx", shared_data)


def test_a_stored_language_module_run_predicts_with_each_languages_module(modules, tiny_xglm_dir, tmp_path, capsys):
    """predict / eval of a stored mad_x run swap in the input language's module, as the run's evaluation did: the
    stored predictions come back exactly (sw: its own module; de: the source's, the fallback)."""
    data = write_xnli_like(tmp_path / "xnli")
    cfg = mad_x_config(tiny_xglm_dir, modules("adapter"), data, tmp_path, "train.epochs=2", "train.lr=3e-2")
    (res,) = run_experiment(cfg, log=quiet)
    for lang in ("sw", "de"):
        with Store(tmp_path / "r.sqlite") as s:
            stored = s.predictions(res.run_id, lang, "test")
        out = tmp_path / f"p-{lang}.jsonl"
        assert main(["predict", "--store", str(tmp_path / "r.sqlite"), "--run", res.run_id, "--input",
                     str(data / f"test-{lang}.tsv"), "--lang", lang, "--out", str(out)]) == 0
        rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
        assert [(r["index"], r["gold"], r["label"]) for r in rows] == stored
    capsys.readouterr()
    assert main(["eval", "--store", str(tmp_path / "r.sqlite"), "--run", res.run_id, "--no-store"]) == 0
    printed = capsys.readouterr().out
    for r in res.results:  # the run's own data again: its own scores
        assert f"{100 * r.headline:.2f}%" in printed


def test_settings_that_would_need_another_module_are_refused(modules, tiny_xglm_dir, tmp_path, capsys):
    data = write_xnli_like(tmp_path / "xnli")
    for sets in (["train.setting=translate_train"], ["train.setting=translate_test"],
                 ["train.dev.policy=target_oracle"]):
        cfg = mad_x_config(tiny_xglm_dir, modules("adapter"), data, tmp_path, *sets)
        with pytest.raises(XLTuneError, match="not supported with language modules yet"):
            run_experiment(cfg, log=quiet)
