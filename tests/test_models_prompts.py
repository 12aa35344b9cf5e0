"""Deep prompts: equal to peft's prefix tuning, and exact under gradient checkpointing."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

from xltune.config import ModelConfig
from xltune.methods import build_model
from xltune.models.backbone import backbone_from_model, load_backbone
from xltune.models.prompts import DeepPrompt, PrefixCache, prefix_attention_mask
from xltune.models.transfer import TransferModel

from tiny_data import method_with_prompt  # noqa: E402  (tests/ is on sys.path)

P = 3


def tiny_xglm_lm(seed: int = 0):
    from transformers import XGLMConfig, XGLMForCausalLM

    torch.manual_seed(seed)
    cfg = XGLMConfig(vocab_size=120, d_model=32, num_layers=2, attention_heads=4, ffn_dim=64,
                     max_position_embeddings=64, dropout=0.0, attention_dropout=0.0, activation_dropout=0.0)
    return XGLMForCausalLM(cfg).eval()


def test_deep_prompt_matches_peft_prefix_tuning():
    from peft import PrefixTuningConfig, get_peft_model

    lm = tiny_xglm_lm()
    backbone = backbone_from_model(lm.model, name="tiny-xglm")
    torch.manual_seed(1)
    deep = DeepPrompt(*backbone.require_layer_layout(), length=P, hidden_size=32)
    ours = TransferModel(backbone, num_labels=2, head_dropout=0.0, deep_prompt=deep).eval()

    peft_cfg = PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=P, num_layers=2, token_dim=32,
                                  num_attention_heads=4)
    peft_model = get_peft_model(lm, peft_cfg).eval()
    with torch.no_grad():  # same prefix tensors, in peft's layout
        peft_model.prompt_encoder["default"].embedding.weight.copy_(deep.prefix_matrix())
    captured = {}
    lm.model.register_forward_hook(lambda m, a, out: captured.__setitem__("h", out.last_hidden_state))

    ids = torch.randint(3, 120, (3, 7))
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0  # right padding: peft numbers positions from P like we do
    mask[2, 3:] = 0
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peft_model(input_ids=ids, attention_mask=mask)
        theirs = captured["h"]
        mine = ours(ids, mask).hidden
    real = mask.bool()
    assert mine.shape == theirs.shape == (3, 7, 32)
    torch.testing.assert_close(mine[real], theirs[real], atol=1e-5, rtol=1e-5)
    # and the prefix matters: without it the states differ
    with torch.no_grad():
        plain = TransferModel(backbone, num_labels=2).eval()(ids, mask).hidden
    assert (plain[real] - theirs[real]).abs().max() > 1e-3


def test_prefix_cache_is_read_only():
    deep = DeepPrompt(num_layers=2, num_kv_heads=4, head_dim=8, length=P, hidden_size=32)
    cache = deep(batch_size=2)
    assert isinstance(cache, PrefixCache) and cache.get_seq_length() == P and len(cache) == 2
    k = torch.randn(2, 4, 5, 8)
    k1, v1 = cache.update(k, k, 0)
    k2, _ = cache.update(k, k, 0)  # a second call (checkpoint recompute) sees the same prefix, not a grown cache
    assert k1.shape == (2, 4, P + 5, 8) and torch.equal(k1, k2)
    assert cache.get_mask_sizes(5, 0) == (P + 5, 0)
    # layer 1's keys are slot 2 of the P-tuning v2 layout, its values slot 3
    w = deep.prefix_matrix().view(P, 4, 4, 8)
    torch.testing.assert_close(cache.layers[1].keys[0], w[:, 2].permute(1, 0, 2))
    torch.testing.assert_close(cache.layers[1].values[1], w[:, 3].permute(1, 0, 2))


def test_prefix_attention_mask_layout():
    mask = torch.tensor([[0, 1, 1], [1, 1, 0]])
    m = prefix_attention_mask(mask, 2, causal=True, dtype=None)
    assert m.shape == (2, 1, 3, 5)
    assert m[..., :2].all()  # prefix always visible
    assert not m[0, 0, :, 2].any()  # left pad column masked
    assert not m[1, 0, :, 4].any()  # right pad column masked
    assert not m[1, 0, 0, 3]  # causal: token 0 does not see token 1
    additive = prefix_attention_mask(mask, 2, causal=False, dtype=torch.float32)
    assert additive[1, 0, 0, 3] == 0 and additive[1, 0, 0, 4] == torch.finfo(torch.float32).min


@pytest.mark.parametrize("arch", ["xglm", "xlm-roberta"])
def test_gradient_checkpointing_with_deep_prompt_is_exact(arch, tiny_xglm_dir, tiny_xlmr_dir):
    path = tiny_xglm_dir if arch == "xglm" else tiny_xlmr_dir
    results = []
    for checkpointing in (False, True):
        model_cfg = ModelConfig(name_or_path=str(path), gradient_checkpointing=checkpointing, head_dropout=0.0)
        backbone = load_backbone(model_cfg)
        torch.manual_seed(0)
        model = build_model(backbone, method_with_prompt("deep_prompt", P), "sequence", 3, model_cfg)
        model.train()
        calls = []
        first_attn = next(m for n, m in backbone.model.named_modules() if n.endswith("attention") or n.endswith("self_attn"))
        first_attn.register_forward_hook(lambda *a: calls.append(1))
        enc = backbone.tokenizer(["a quick fox", "敏捷的棕色狐狸 jumps"], return_tensors="pt", padding=True)
        loss = F.cross_entropy(model(enc.input_ids, enc.attention_mask).logits, torch.tensor([0, 2]))
        loss.backward()
        assert any(getattr(m, "gradient_checkpointing", False) for m in backbone.model.modules()) == checkpointing
        assert len(calls) == (2 if checkpointing else 1)  # the layer really was recomputed in backward
        results.append((loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}))
    (loss0, g0), (loss1, g1) = results
    torch.testing.assert_close(loss0, loss1)
    assert set(g0) == set(g1) and any(n.startswith("deep_prompt.") for n in g0)
    for n in g0:
        assert g0[n].abs().sum() > 0, n
        torch.testing.assert_close(g0[n], g1[n], atol=1e-6, rtol=1e-5)
