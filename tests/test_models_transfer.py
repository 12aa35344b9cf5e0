"""TransferModel: padding-invariant logits (left/right, alone/batched), pooling, positions, trainable checkpoints."""

from __future__ import annotations

import pytest
import torch

from xltune.config import ModelConfig
from xltune.methods import method_settings
from xltune.errors import XLTuneError
from xltune.methods import build_model
from xltune.models.backbone import load_backbone
from xltune.models.heads import pool
from xltune.models.transfer import encoder_position_ids

from tiny_data import method_with_prompt  # noqa: E402  (tests/ is on sys.path)

TEXTS = ["The quick brown fox", "敏捷的棕色狐狸跳过了懒狗。 The lazy dog jumps over", "الثعلب البني"]


def build(path, method: str, task_kind: str = "sequence", seed: int = 0):
    model_cfg = ModelConfig(name_or_path=str(path))
    backbone = load_backbone(model_cfg)
    torch.manual_seed(seed)
    model = build_model(backbone, method_with_prompt(method, 4), task_kind, 3, model_cfg).eval()
    return backbone.tokenizer, model


def logits(tok, model, texts, side):
    tok.padding_side = side
    enc = tok(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model(enc.input_ids, enc.attention_mask)
    return out.logits, enc.attention_mask


@pytest.mark.parametrize("method", ["finetune", "deep_prompt", "prompt", "lora"])
@pytest.mark.parametrize("arch", ["xglm", "xlm-roberta"])
def test_sequence_logits_do_not_depend_on_padding(arch, method, tiny_xglm_dir, tiny_xlmr_dir):
    tok, model = build(tiny_xglm_dir if arch == "xglm" else tiny_xlmr_dir, method)
    right, _ = logits(tok, model, TEXTS, "right")
    left, _ = logits(tok, model, TEXTS, "left")
    torch.testing.assert_close(left, right, atol=1e-5, rtol=1e-5)
    for i, text in enumerate(TEXTS):
        alone, _ = logits(tok, model, [text], "right")
        torch.testing.assert_close(alone[0], right[i], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("method", ["finetune", "deep_prompt", "prompt"])
def test_token_logits_do_not_depend_on_padding(method, tiny_xglm_dir):
    tok, model = build(tiny_xglm_dir, method, task_kind="token")
    right, rmask = logits(tok, model, TEXTS, "right")
    left, lmask = logits(tok, model, TEXTS, "left")
    assert right.shape[:2] == rmask.shape and right.shape[-1] == 3
    torch.testing.assert_close(left[lmask.bool()], right[rmask.bool()], atol=1e-5, rtol=1e-5)


def test_outputs_cover_input_tokens_only(tiny_xglm_dir):
    tok, model = build(tiny_xglm_dir, "prompt")
    enc = tok(TEXTS, return_tensors="pt", padding=True)
    out = model(enc.input_ids, enc.attention_mask)
    b, length = enc.input_ids.shape
    assert out.hidden.shape == (b, length, 32) and out.pooled.shape == (b, 32) and out.logits.shape == (b, 3)


def test_pool_last_first_mean_with_left_and_right_padding():
    hidden = torch.arange(2 * 4 * 1, dtype=torch.float32).view(2, 4, 1)
    right = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    left = torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]])
    assert pool(hidden, right, "last").flatten().tolist() == [2.0, 7.0]
    assert pool(hidden, left, "last").flatten().tolist() == [3.0, 7.0]
    assert pool(hidden, left, "first").flatten().tolist() == [1.0, 4.0]
    assert pool(hidden, right, "mean").flatten().tolist() == [1.0, 5.5]
    with pytest.raises(XLTuneError, match="pooling"):
        pool(hidden, right, "max")


def test_encoder_positions_are_the_models_own(tiny_xlmr_dir):
    backbone = load_backbone(ModelConfig(name_or_path=str(tiny_xlmr_dir)))
    tok = backbone.tokenizer
    tok.padding_side = "right"
    enc = tok(TEXTS, return_tensors="pt", padding=True)
    emb = backbone.model.embeddings
    for shift in (0, 4):
        own = emb.create_position_ids_from_input_ids(enc.input_ids, emb.padding_idx, shift)
        assert torch.equal(encoder_position_ids(backbone.model, enc.attention_mask, shift), own)


def test_trainable_checkpoint_round_trip(tiny_xglm_dir):
    _, model = build(tiny_xglm_dir, "lora", seed=0)
    _, other = build(tiny_xglm_dir, "lora", seed=1)
    state = model.state_dict_trainable()
    assert state and all("lora_" in n or n.startswith("head.") for n in state)
    other.load_trainable(state)
    for n, p in other.named_parameters():
        if p.requires_grad:
            assert torch.equal(p.detach(), state[n])
    with pytest.raises(XLTuneError, match="trainable"):
        other.load_trainable({"head.linear.weight": state["head.linear.weight"]})


@pytest.mark.parametrize("arch", ["xglm", "xlm-roberta"])
@pytest.mark.parametrize("positions", ["shift", "keep"])
def test_prefix_positions_shift_or_keep(arch, positions, tiny_xglm_dir, tiny_xlmr_dir):
    """`method.prefix_positions`: input positions start after the prefix (shift, peft's convention) or at the
    model's own first position (keep); padding invariance holds either way."""
    path = tiny_xglm_dir if arch == "xglm" else tiny_xlmr_dir
    model_cfg = ModelConfig(name_or_path=str(path))
    backbone = load_backbone(model_cfg)
    torch.manual_seed(0)
    method = method_settings("deep_prompt", prefix_length=4, prefix_positions=positions)
    model = build_model(backbone, method, "sequence", 3, model_cfg).eval()
    seen = {}
    hook = model.backbone.register_forward_pre_hook(
        lambda mod, args, kwargs: seen.update(pos=kwargs["position_ids"].clone()), with_kwargs=True)
    tok = backbone.tokenizer
    right, mask = logits(tok, model, TEXTS, "right")
    hook.remove()
    mask = mask.bool()
    first = seen["pos"][:, 0]  # right padding: column 0 is every row's first real token
    own_start = encoder_position_ids(model.backbone, mask.long(), 0)[:, 0] if arch == "xlm-roberta" else 0
    expected = own_start + (4 if positions == "shift" else 0)
    assert torch.equal(first, torch.as_tensor(expected).expand_as(first))
    left, _ = logits(tok, model, TEXTS, "left")
    torch.testing.assert_close(left, right, atol=1e-5, rtol=1e-5)
