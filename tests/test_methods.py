"""Every registered method, one battery: it declares what trains and exactly those parameters get gradients; a
frozen backbone stays bit-identical through an optimizer step; trainable parameters are float32 whatever the
backbone's dtype; its settings round-trip through a config. A new method is picked up from the registry, so it
cannot escape these tests. Plus parameter counts on real model configs (meta device)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from xltune.config import ModelConfig, load_config
from xltune.errors import XLTuneError
from xltune.methods import METHODS, build_model, method_settings
from xltune.models.backbone import load_backbone
from xltune.models.tiny import parameter_report

# Only sizes, to keep the tiny models tiny: every registered method runs the battery with its other defaults.
SMALL = {"deep_prompt": {"prefix_length": 3, "prefix_projection": True, "prefix_hidden_size": 16},
         "prompt": {"length": 3}}


def test_registry_has_the_methods_and_suggests_names():
    assert {"deep_prompt", "finetune", "lora", "prompt", "in_context"} <= set(METHODS.names())
    assert set(SMALL) <= set(METHODS.names())
    with pytest.raises(XLTuneError, match="deep_prompt"):
        METHODS.get("deep_promt")
    for name in METHODS.names():
        spec = METHODS.get(name)
        assert spec.name == name and spec.settings().name == name and spec.description


@pytest.mark.parametrize("method", METHODS.names())
@pytest.mark.parametrize("arch", ["xglm", "xlm-roberta"])
def test_only_declared_parameters_get_gradients(arch, method, tiny_xglm_dir, tiny_xlmr_dir):
    spec = METHODS.get(method)
    model_cfg = ModelConfig(name_or_path=str(tiny_xglm_dir if arch == "xglm" else tiny_xlmr_dir), head_dropout=0.0)
    backbone = load_backbone(model_cfg)
    base_before = {k: v.detach().clone() for k, v in backbone.model.state_dict().items()}
    torch.manual_seed(0)
    model = build_model(backbone, method_settings(method, **SMALL.get(method, {})), "sequence", 3, model_cfg).train()
    for n, p in model.named_parameters():
        if p.requires_grad and n.split(".")[-1].startswith("lora_B") or ".lora_B." in n:
            # LoRA's B starts at zero, which makes A's first gradient zero; nudge B as one optimizer step would.
            torch.nn.init.normal_(p, std=0.02)
    enc = backbone.tokenizer(["a quick fox jumps", "敏捷的棕色狐狸"], return_tensors="pt", padding=True)
    logits = model(enc.input_ids, enc.attention_mask).logits
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:  # nothing trains (in-context learning): declared so, and nothing can
        assert not any(spec.trains(n) for n, _ in model.named_parameters())
        return
    F.cross_entropy(logits, torch.tensor([1, 2])).backward()
    names = [n for n, _ in model.named_parameters()]
    assert any(spec.trains(n) and not n.startswith("head.") for n in names)  # the method adds/trains something
    for n, p in model.named_parameters():
        if spec.trains(n):
            assert p.requires_grad and p.grad is not None and p.grad.abs().sum() > 0, n
            assert p.dtype == torch.float32, n
        else:
            assert not p.requires_grad and p.grad is None, n
    n_trainable, total = model.count_parameters()
    assert n_trainable == sum(p.numel() for n, p in model.named_parameters() if spec.trains(n))
    torch.optim.AdamW(trainable, lr=0.1).step()
    after = backbone.model.state_dict()
    base_changed = [k for k in base_before if k in after and not torch.equal(base_before[k], after[k])]
    if spec.frozen_backbone:
        assert base_changed == []  # the backbone's own tensors are bit-identical
    else:
        assert base_changed


@pytest.mark.parametrize("method", METHODS.names())
def test_method_settings_round_trip_through_a_config(method):
    cfg = load_config(None, ["model.name_or_path=m", f"method.name={method}"]
                      + [f"method.{k}={v}" for k, v in SMALL.get(method, {}).items()])
    assert type(cfg.method) is METHODS.get(method).settings
    again = load_config(None, base=cfg.to_dict())
    assert again.method == cfg.method and again.run_key(1) == cfg.run_key(1)


def test_renamed_and_foreign_method_keys(tmp_path, capsys):
    path = tmp_path / "c.yaml"  # notes are said once per message; this file's name makes them new
    path.write_text("model: {name_or_path: m}\nmethod: {name: lora, lora_r: 4}\n", encoding="utf-8")
    cfg = load_config(path)
    assert cfg.method.r == 4 and "method.lora_r is now method.r" in capsys.readouterr().err
    # a deep-prompt config switched to finetune on the command line: its prefix_length no longer applies
    path.write_text("model: {name_or_path: m}\nmethod: {name: deep_prompt, prefix_length: 8}\n", encoding="utf-8")
    cfg = load_config(path, ["method.name=finetune"])
    assert cfg.method.name == "finetune" and "prefix_length is a setting of deep_prompt" in capsys.readouterr().err
    with pytest.raises(XLTuneError, match="method.r"):
        load_config(None, ["model.name_or_path=m", "method.name=lora", "method.rank=4"])


def test_frozen_backbone_trains_in_float32_when_loaded_in_bf16(tiny_xglm_dir):
    """dtype bfloat16 (what dtype=auto gives a frozen backbone on a GPU): what trains stays float32 for AdamW."""
    model_cfg = ModelConfig(name_or_path=str(tiny_xglm_dir), dtype="bfloat16")
    frozen = [m for m in METHODS.names() if METHODS.get(m).frozen_backbone and METHODS.get(m).runner == "train"]
    assert {"deep_prompt", "lora", "prompt"} <= set(frozen)
    for method in frozen:
        model = build_model(load_backbone(model_cfg, frozen=True), method_settings(method, **SMALL.get(method, {})),
                            "sequence", 3, model_cfg)
        assert all(p.dtype == torch.float32 for p in model.parameters() if p.requires_grad), method
        assert any(p.dtype == torch.bfloat16 for p in model.parameters() if not p.requires_grad), method


def test_deep_prompt_parameter_share_on_xglm_564m():
    report = parameter_report("xglm-564M", method_settings("deep_prompt", prefix_length=15))
    # 24 layers x (key + value) x 15 prefix vectors x 1024 dims, + a 3-way linear head on 1024 dims
    assert report["trainable"] == 24 * 2 * 15 * 1024 + (1024 * 3 + 3)
    assert 564_000_000 < report["total"] < 566_000_000
    assert round(report["percent"], 2) <= 0.13  # 0.1310 %: the paper's "0.13 %"


def test_lora_and_finetune_parameter_reports():
    lora = parameter_report("xlm-roberta-base", method_settings("lora", r=8))
    # query and value of 12 layers, each A (8x768) + B (768x8), + head
    assert lora["trainable"] == 12 * 2 * 2 * 8 * 768 + (768 * 3 + 3)
    full = parameter_report("xlm-roberta-base", method_settings("finetune"))
    assert full["trainable"] == full["total"] and full["percent"] == 100.0


def test_deep_prompt_needs_a_readable_layer_layout(tiny_xglm_dir):
    model_cfg = ModelConfig(name_or_path=str(tiny_xglm_dir))
    backbone = dataclasses.replace(load_backbone(model_cfg), num_layers=None)
    with pytest.raises(XLTuneError, match="layer layout"):
        build_model(backbone, method_settings("deep_prompt"), "sequence", 3, model_cfg)


def test_lora_target_modules_override(tiny_xglm_dir):
    model_cfg = ModelConfig(name_or_path=str(tiny_xglm_dir))
    backbone = load_backbone(model_cfg)
    model = build_model(backbone, method_settings("lora", target_modules=["fc1"]), "sequence", 3, model_cfg)
    adapted = {n.split(".lora_")[0] for n, p in model.named_parameters() if p.requires_grad and "lora_" in n}
    assert adapted and all(n.endswith("fc1") for n in adapted)
    with pytest.raises(XLTuneError, match="lora"):
        build_model(load_backbone(model_cfg), method_settings("lora", target_modules=["nope"]), "sequence", 3,
                    model_cfg)


def test_params_and_methods_commands(capsys):
    from xltune.cli import main

    assert main(["params", "--model-config", "xglm-564M", "--method", "deep_prompt",
                 "--set", "method.prefix_length=15"]) == 0
    out = capsys.readouterr().out
    assert f"{24 * 2 * 15 * 1024 + 3075:,}" in out and "0.1310" in out
    assert main(["params", "--model-config", "xglm-564M", "--set", "method.prefix_lenght=15"]) == 2
    assert "prefix_length" in capsys.readouterr().err
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    for name in METHODS.names():  # one line each, with its description
        assert any(line.startswith(name) and METHODS.get(name).description in line for line in out.splitlines())
