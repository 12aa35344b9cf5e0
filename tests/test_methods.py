"""Methods declare what trains: exactly those parameters get gradients; parameter counts on real configs."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from xltune.config import MethodConfig, ModelConfig
from xltune.errors import XLTuneError
from xltune.methods import METHODS, build_model
from xltune.models.backbone import load_backbone
from xltune.models.tiny import parameter_report

DECLARED = {
    "finetune": lambda n: True,
    "deep_prompt": lambda n: n.startswith(("deep_prompt.", "head.")),
    "prompt": lambda n: n.startswith(("soft_prompt.", "head.")),
    "lora": lambda n: "lora_" in n or n.startswith("head."),
}


def test_registry_has_all_methods():
    assert {"deep_prompt", "finetune", "lora", "prompt"} <= set(METHODS.names())
    with pytest.raises(XLTuneError, match="deep_prompt"):
        METHODS.get("deep_promt")


@pytest.mark.parametrize("method", sorted(DECLARED))
@pytest.mark.parametrize("arch", ["xglm", "xlm-roberta"])
def test_only_declared_parameters_get_gradients(arch, method, tiny_xglm_dir, tiny_xlmr_dir):
    model_cfg = ModelConfig(name_or_path=str(tiny_xglm_dir if arch == "xglm" else tiny_xlmr_dir), head_dropout=0.0)
    backbone = load_backbone(model_cfg)
    torch.manual_seed(0)
    method_cfg = MethodConfig(name=method, prefix_length=3, prefix_projection=(method == "deep_prompt"),
                              prefix_hidden_size=16)
    model = build_model(backbone, method_cfg, "sequence", 3, model_cfg).train()
    if method == "lora":
        # LoRA's B starts at zero, which makes A's first gradient zero; nudge B as one optimizer step would.
        for n, p in model.named_parameters():
            if "lora_B" in n:
                torch.nn.init.normal_(p, std=0.02)
    enc = backbone.tokenizer(["a quick fox jumps", "敏捷的棕色狐狸"], return_tensors="pt", padding=True)
    F.cross_entropy(model(enc.input_ids, enc.attention_mask).logits, torch.tensor([1, 2])).backward()

    declared = DECLARED[method]
    names = [n for n, _ in model.named_parameters()]
    assert any(declared(n) and not n.startswith("head.") for n in names)  # the method adds/trains something
    for n, p in model.named_parameters():
        if declared(n):
            assert p.requires_grad and p.grad is not None and p.grad.abs().sum() > 0, n
        else:
            assert not p.requires_grad and p.grad is None, n
    trainable, total = model.count_parameters()
    assert trainable == sum(p.numel() for n, p in model.named_parameters() if declared(n))
    assert (trainable == total) == (method == "finetune")


def test_deep_prompt_parameter_share_on_xglm_564m():
    report = parameter_report("xglm-564M", MethodConfig(name="deep_prompt", prefix_length=15))
    # 24 layers x (key + value) x 15 prefix vectors x 1024 dims, + a 3-way linear head on 1024 dims
    assert report["trainable"] == 24 * 2 * 15 * 1024 + (1024 * 3 + 3)
    assert 564_000_000 < report["total"] < 566_000_000
    assert round(report["percent"], 2) <= 0.13  # 0.1310 %: the paper's "0.13 %"


def test_lora_and_finetune_parameter_reports():
    lora = parameter_report("xlm-roberta-base", MethodConfig(name="lora", lora_r=8))
    # query and value of 12 layers, each A (8x768) + B (768x8), + head
    assert lora["trainable"] == 12 * 2 * 2 * 8 * 768 + (768 * 3 + 3)
    full = parameter_report("xlm-roberta-base", MethodConfig(name="finetune"))
    assert full["trainable"] == full["total"] and full["percent"] == 100.0


def test_deep_prompt_needs_a_readable_layer_layout(tiny_xglm_dir):
    model_cfg = ModelConfig(name_or_path=str(tiny_xglm_dir))
    backbone = dataclasses.replace(load_backbone(model_cfg), num_layers=None)
    with pytest.raises(XLTuneError, match="layer layout"):
        build_model(backbone, MethodConfig(name="deep_prompt"), "sequence", 3, model_cfg)


def test_lora_target_modules_override(tiny_xglm_dir):
    model_cfg = ModelConfig(name_or_path=str(tiny_xglm_dir))
    backbone = load_backbone(model_cfg)
    model = build_model(backbone, MethodConfig(name="lora", lora_target_modules=["fc1"]), "sequence", 3, model_cfg)
    adapted = {n.split(".lora_")[0] for n, p in model.named_parameters() if p.requires_grad and "lora_" in n}
    assert adapted and all(n.endswith("fc1") for n in adapted)
    with pytest.raises(XLTuneError, match="lora"):
        build_model(load_backbone(model_cfg), MethodConfig(name="lora", lora_target_modules=["nope"]), "sequence",
                    3, model_cfg)


def test_params_command(capsys):
    import argparse

    from xltune.commands import params

    parser = argparse.ArgumentParser()
    params.add_parser(parser.add_subparsers())
    args = parser.parse_args(["params", "--model-config", "xglm-564M", "--method", "deep_prompt",
                              "--set", "method.prefix_length=15"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert f"{24 * 2 * 15 * 1024 + 3075:,}" in out and "0.1310" in out
    with pytest.raises(XLTuneError, match="prefix_length"):
        params.method_config("deep_prompt", ["method.prefix_lenght=15"])
