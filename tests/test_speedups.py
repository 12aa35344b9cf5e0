"""Speed-ups that must not change results: the SDPA attention path for XGLM (equal to eager in fp32, with and
without a deep prompt, with padding, gradients too) and token-budget evaluation batches."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from xltune.config import ModelConfig
from xltune.data.encode import Encoded, Feature, eval_batches
from xltune.evaluate import predict
from xltune.methods import build_model
from xltune.models.attention import additive_mask, attention_kind, disable_sdpa, enable_sdpa
from xltune.models.backbone import backbone_from_model, load_backbone

from tiny_data import method_with_prompt  # noqa: E402  (tests/ is on sys.path)


def tiny_xglm(seed: int = 0):
    from transformers import AutoModel, XGLMConfig

    cfg = XGLMConfig(vocab_size=120, d_model=32, num_layers=2, attention_heads=4, ffn_dim=64, dropout=0.0,
                     attention_dropout=0.0, activation_dropout=0.0, max_position_embeddings=64, pad_token_id=1)
    torch.manual_seed(seed)
    return AutoModel.from_config(cfg, attn_implementation="eager").eval()


def padded_batch(side: str) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    lengths = [9, 4, 1, 7]
    ids = torch.full((len(lengths), 9), 1, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for r, n in enumerate(lengths):
        sl = slice(9 - n, 9) if side == "left" else slice(0, n)
        ids[r, sl] = torch.randint(3, 120, (n,), generator=g)
        mask[r, sl] = 1
    return ids, mask


def transfer(method: str, sdpa: bool):
    model = tiny_xglm()
    if sdpa:
        assert enable_sdpa(model) == 2
    backbone = backbone_from_model(model, kind="decoder")
    torch.manual_seed(1)
    cfg = ModelConfig(name_or_path="tiny", head_dropout=0.0)
    return build_model(backbone, method_with_prompt(method, 5), "sequence", 3, cfg)


@pytest.mark.parametrize("side", ["right", "left"])
def test_sdpa_equals_eager_hidden_states_with_padding(side):
    eager = tiny_xglm()
    fast = copy.deepcopy(eager)
    assert enable_sdpa(fast) == 2 and attention_kind(fast) == "sdpa" and attention_kind(eager) == "eager"
    ids, mask = padded_batch(side)
    with torch.no_grad():
        a = eager(input_ids=ids, attention_mask=mask).last_hidden_state
        b = fast(input_ids=ids, attention_mask=mask).last_hidden_state
    assert torch.isfinite(b).all()  # left padding: fully masked pad rows stay finite, as in eager
    real = mask.bool()
    torch.testing.assert_close(b[real], a[real], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)  # pad rows too: the same uniform average


@pytest.mark.parametrize("method", ["deep_prompt", "finetune", "prompt"])
def test_sdpa_equals_eager_logits_and_gradients(method):
    """TransferModel with a deep prompt (PrefixCache + 4D prefix mask), a soft prompt, or nothing: same logits and
    same gradients of every trainable parameter."""
    ids, mask = padded_batch("right")
    labels = torch.tensor([0, 2, 1, 0])
    grads, logits = [], []
    for sdpa in (False, True):
        model = transfer(method, sdpa).train()
        out = model(ids, mask)
        torch.nn.functional.cross_entropy(out.logits, labels).backward()
        logits.append(out.logits.detach())
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    torch.testing.assert_close(logits[1], logits[0], atol=1e-5, rtol=1e-5)
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], atol=1e-5, rtol=1e-4, msg=name)


def test_sdpa_deep_prompt_padding_invariant_and_checkpointing():
    model = transfer("deep_prompt", True).eval()
    ids, mask = padded_batch("right")
    with torch.no_grad():
        batched = model(ids, mask).logits
        for r in range(ids.shape[0]):
            n = int(mask[r].sum())
            alone = model(ids[r : r + 1, :n], mask[r : r + 1, :n]).logits
            torch.testing.assert_close(alone[0], batched[r], atol=1e-5, rtol=1e-5)
    # gradient checkpointing recomputes the layer (and reads the read-only prefix again): same prefix gradient
    grads = []
    for ckpt in (False, True):
        m = transfer("deep_prompt", True).train()
        if ckpt:
            m.backbone.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        m(ids, mask).logits.sum().backward()
        grads.append(m.deep_prompt.embedding.weight.grad.clone())
    torch.testing.assert_close(grads[1], grads[0], atol=1e-6, rtol=1e-5)


def test_disable_sdpa_restores_eager_class():
    model = tiny_xglm()
    enable_sdpa(model)
    assert disable_sdpa(model) == 2
    assert all(type(m).__name__ != "XGLMSdpaAttention" for m in model.modules())


def test_load_backbone_sdpa_swaps_attention_eager_does_not(tiny_xglm_dir):
    fast = load_backbone(ModelConfig(name_or_path=str(tiny_xglm_dir), attn_implementation="sdpa"))
    slow = load_backbone(ModelConfig(name_or_path=str(tiny_xglm_dir), attn_implementation="eager"))
    assert attention_kind(fast.model) == "sdpa" and attention_kind(slow.model) == "eager"
    enc = fast.tokenizer(["The quick brown fox", "Le renard"], return_tensors="pt", padding=True)
    with torch.no_grad():
        a = slow.model(**enc).last_hidden_state
        b = fast.model(**enc).last_hidden_state
    torch.testing.assert_close(b[enc.attention_mask.bool()], a[enc.attention_mask.bool()], atol=1e-5, rtol=1e-5)


def test_additive_mask_stays_finite_in_bf16():
    fp32 = torch.tensor([[[[0.0, torch.finfo(torch.float32).min]]]])
    out = additive_mask(fp32, torch.bfloat16)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all() and out[..., 1] < -1e38
    boolean = additive_mask(torch.tensor([[[[True, False]]]]), torch.float32)
    assert boolean[..., 0] == 0 and boolean[..., 1] == torch.finfo(torch.float32).min


# -- token-budget evaluation batches -------------------------------------------------------------------------------
def test_token_budget_batches_cover_everything_within_budget():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 60, size=301)
    budget = 8 * int(lengths.max())  # predict's default: never more padded tokens than the first fixed batch
    batches = eval_batches(lengths, 8, max_tokens=budget)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))
    for b in batches:
        assert len(b) == 1 or len(b) * lengths[b].max() <= budget
    # fewer batches than fixed count when most inputs are short; fixed count unchanged without a budget
    assert len(batches) < len(eval_batches(lengths, 8))
    assert eval_batches(lengths, 8) == eval_batches(lengths, 8, max_tokens=None)
    # a sequence longer than the budget still gets a batch of its own
    assert eval_batches(np.array([500, 3]), 4, max_tokens=100) == [[0], [1]]


def test_token_budget_predictions_equal_fixed_batches():
    model = transfer("deep_prompt", True).eval()
    rng = np.random.default_rng(1)
    feats = [Feature(rng.integers(3, 120, size=int(n)).tolist(), 0, i) for i, n in enumerate(rng.integers(1, 30, 40))]
    enc = Encoded(feats, len(feats))
    common = dict(pad_id=1, padding_side="right", token_task=False, device=torch.device("cpu"))
    fixed = predict(model, enc, batch_size=4, max_tokens=0, **common)
    budget = predict(model, enc, batch_size=4, **common)
    one = predict(model, enc, batch_size=1, max_tokens=0, **common)
    assert fixed == budget == one and len(fixed) == 40
