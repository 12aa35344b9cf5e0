"""Verbalizer head: label scores equal the causal LM's own log-probabilities (full forward, log-softmax over the
vocabulary), single- and multi-token label words, slot and whole-sentence scoring, tied and untied LM heads;
batch-size and padding-side invariance; templates as data with clear errors."""

from __future__ import annotations

import re
import shutil

import pytest
import torch

from xltune.config import ModelConfig
from xltune.data.encode import collate, eval_batches
from xltune.data.records import SentenceExample
from xltune.data.tasks import TASKS
from xltune.errors import XLTuneError
from xltune.methods.base import build_model
from xltune.models.backbone import load_backbone
from xltune.models.verbalizer import encode_verbalized, load_untied_lm_head, verbalizer_model
from xltune.templates import load_templates, parse_templates

from tiny_data import method_with_prompt  # noqa: E402  (tests/ is on sys.path)

XNLI = TASKS.get("xnli")
PREMISES = [
    ("The quick brown fox jumps over the lazy dog.", "A fast animal leaps."),
    ("Der schnelle braune Fuchs springt über den faulen Hund.", "Ein schnelles Tier springt."),
    ("Mbweha mwepesi anaruka.", "Mnyama mwepesi anaruka juu ya mbwa aliyelala."),
    ("Le renard brun rapide saute par-dessus le chien paresseux.", "Un animal."),
    ("The dog.", "A fast animal leaps over a sleeping dog and the lazy fox."),
]


def examples(n: int = len(PREMISES)) -> list[SentenceExample]:
    return [SentenceExample(f"en/test/{i}", "en", i, PREMISES[i % len(PREMISES)], i % 3) for i in range(n)]


def load(model_dir, head_side: str = "right", method: str = "in_context"):
    mcfg = ModelConfig(name_or_path=str(model_dir), padding_side=head_side)
    backbone = load_backbone(mcfg)
    transfer = build_model(backbone, method_with_prompt(method, 3), "sequence", 3, mcfg)
    return backbone, transfer


def word_of_length(tok, n_tokens: int, avoid: set[str] = frozenset()) -> str:
    """A word that the tiny tokenizer cuts into exactly ``n_tokens`` pieces after a space (found, not assumed)."""
    candidates = sorted({w for pair in PREMISES for text in pair for w in re.findall(r"\w+", text)})
    for w in candidates:
        if w not in avoid and len(tok(" " + w, add_special_tokens=False)["input_ids"]) == n_tokens:
            return w
    raise AssertionError(f"no {n_tokens}-token word in the tiny vocabulary")


def reference_scores(lm, tok, context: str, continuations, mean: bool) -> torch.Tensor:
    """Hand computation: the causal LM on each full text, log-softmax over the vocabulary, the continuation's
    tokens read off (the harness's split: continuation = whole text's tokens after the context's)."""
    ctx = tok(context, add_special_tokens=False)["input_ids"]
    out = []
    for cont in continuations:
        full = tok(context + cont, add_special_tokens=False)["input_ids"]
        assert full[: len(ctx)] == ctx  # the split is clean for these texts
        with torch.no_grad():
            logp = torch.log_softmax(lm(input_ids=torch.tensor([full])).logits[0].double(), dim=-1)
        vals = [logp[t - 1, full[t]] for t in range(max(len(ctx), 1), len(full))]  # token 0 has no prediction
        out.append(sum(vals) / len(vals) if mean else sum(vals))
    return torch.tensor(out)


def scores_of(model, enc, batch_size: int, padding_side: str, pad_id: int) -> torch.Tensor:
    model.padding_side = padding_side  # the sequences the head builds are padded on this side too
    out = torch.empty(enc.n_examples, 3)
    with torch.no_grad():
        for idx in eval_batches(enc.lengths(), batch_size):
            batch = collate([enc.features[i] for i in idx], pad_id, padding_side, False)
            out[idx] = model(batch["input_ids"], batch["attention_mask"]).logits.float()
    return out


@pytest.fixture(scope="module")
def untied_dir(tiny_xglm_dir, tmp_path_factory):
    """The tiny XGLM with an LM head of its own (tie_word_embeddings false)."""
    from transformers import AutoConfig, XGLMForCausalLM

    out = tmp_path_factory.mktemp("untied")
    shutil.copytree(tiny_xglm_dir, out, dirs_exist_ok=True)
    config = AutoConfig.from_pretrained(tiny_xglm_dir)
    config.tie_word_embeddings = False
    torch.manual_seed(1)
    XGLMForCausalLM(config).save_pretrained(out)
    return out


@pytest.mark.parametrize("tied", [True, False])
def test_slot_scores_equal_full_forward_log_probs(tiny_xglm_dir, untied_dir, tied):
    from transformers import XGLMForCausalLM

    model_dir = tiny_xglm_dir if tied else untied_dir
    lm = XGLMForCausalLM.from_pretrained(model_dir).eval()
    assert (lm.lm_head.weight is lm.get_input_embeddings().weight) == tied
    backbone, transfer = load(model_dir)
    tok = backbone.tokenizer
    one = word_of_length(tok, 1)
    two = word_of_length(tok, 2, {one})
    three = word_of_length(tok, 3, {one, two})
    templates = parse_templates({"scoring": "slot", "template": "{premise} Question: {hypothesis}? Answer: {slot}",
                                 "labels": {"entailment": one, "neutral": two, "contradiction": three}}, XNLI)
    model = verbalizer_model(transfer, backbone, templates).eval()
    if not tied:
        assert torch.equal(load_untied_lm_head(str(model_dir)), lm.lm_head.weight.detach())
    ex = examples(1)[0]
    enc = encode_verbalized([ex], tok, templates, 512)
    got = scores_of(model, enc, 1, "right", backbone.pad_token_id)[0]
    f = templates.fill(ex)
    assert f.context.endswith("Answer:") and f.continuations == (f" {one}", f" {two}", f" {three}")
    want = reference_scores(lm, tok, f.context, f.continuations, mean=True)
    torch.testing.assert_close(got.double(), want, rtol=0, atol=1e-5)


def test_whole_sentence_scores_are_the_harness_loglikelihood(tiny_xglm_dir):
    """XNLI (harness template): sum of the continuation's log-probs; differences between labels equal those of
    the full-sentence log-likelihoods (the context's share is the same for every label)."""
    from transformers import XGLMForCausalLM

    lm = XGLMForCausalLM.from_pretrained(tiny_xglm_dir).eval()
    backbone, transfer = load(tiny_xglm_dir)
    tok = backbone.tokenizer
    templates = load_templates(XNLI)
    assert templates.scoring == "whole"
    model = verbalizer_model(transfer, backbone, templates).eval()
    for ex in (examples(2)[1], SentenceExample("de/test/7", "de", 7, PREMISES[1], 2)):
        got = scores_of(model, encode_verbalized([ex], tok, templates, 512), 1, "left", backbone.pad_token_id)[0]
        f = templates.fill(ex)
        assert f.continuations[0].endswith(", " + ex.texts[1])
        want = reference_scores(lm, tok, f.context, f.continuations, mean=False)
        torch.testing.assert_close(got.double(), want, rtol=0, atol=1e-5)
        full = reference_scores(lm, tok, "", [f.context + c for c in f.continuations], mean=False)
        torch.testing.assert_close((got - got[0]).double(), full - full[0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("method", ["in_context", "deep_prompt"])
def test_scores_do_not_depend_on_batch_size_or_padding_side(tiny_xglm_dir, method):
    backbone, transfer = load(tiny_xglm_dir, method=method)
    if method == "deep_prompt":  # a non-zero prefix, so the prompt really takes part
        torch.nn.init.normal_(transfer.deep_prompt.prefix if hasattr(transfer.deep_prompt, "prefix")
                              else next(transfer.deep_prompt.parameters()), std=0.5)
    templates = load_templates(XNLI)
    model = verbalizer_model(transfer, backbone, templates).eval()
    enc = encode_verbalized(examples(11), backbone.tokenizer, templates, 512)
    runs = [scores_of(model, enc, bs, side, backbone.pad_token_id) for bs in (1, 32) for side in ("left", "right")]
    for other in runs[1:]:
        torch.testing.assert_close(other, runs[0], rtol=0, atol=1e-5)
        assert torch.equal(other.argmax(-1), runs[0].argmax(-1))
    assert len(set(runs[0].argmax(-1).tolist())) >= 1 and torch.isfinite(runs[0]).all()


def test_finetune_trains_the_tied_lm_head_others_leave_it_frozen(tiny_xglm_dir):
    templates = load_templates(XNLI)
    for method, lm_trains in (("finetune", True), ("deep_prompt", False), ("lora", False)):
        backbone, transfer = load(tiny_xglm_dir, method=method)
        model = verbalizer_model(transfer, backbone, templates)
        assert model.lm_weight().requires_grad == lm_trains
        assert not any(p.requires_grad for p in transfer.head.parameters())
        enc = encode_verbalized(examples(3), backbone.tokenizer, templates, 512)
        batch = collate(enc.features, backbone.pad_token_id, "right", False)
        loss = torch.nn.functional.cross_entropy(model(batch["input_ids"], batch["attention_mask"]).logits,
                                                 batch["labels"])
        loss.backward()
        assert all(p.grad is not None for p in model.trainable_parameters())
        trainable, total = model.count_parameters()
        assert 0 < trainable <= total


def test_too_long_inputs_are_counted_in_an_error(tiny_xglm_dir):
    backbone, _ = load(tiny_xglm_dir)
    with pytest.raises(XLTuneError, match=r"5 of 5 examples .* need more than 8 tokens"):
        encode_verbalized(examples(5), backbone.tokenizer, load_templates(XNLI), 8)


@pytest.mark.parametrize("data, message", [
    ({"template": "{premise} {slot} {nope}", "labels": {"entailment": "a", "neutral": "b", "contradiction": "c"}},
     "neither text fields"),
    ({"template": "{premise} {slot}", "labels": {"entailment": "a", "neutral": "b"}}, "no label word for"),
    ({"template": "{premise} {slot}", "labels": {"entailment": "a", "neutral": "a", "contradiction": "c"}},
     "share a label word"),
    ({"template": "{premise}", "labels": {"entailment": "a"}}, "exactly one {slot}"),
    ({"scoring": "slot", "template": "{slot} {premise}", "labels": {"entailment": "a", "neutral": "b",
                                                                    "contradiction": "c"}}, "end with {slot}"),
    ({"template": "{premise} {slot}", "labels": {"entailment": "a", "neutral": "b", "contradiction": "c",
                                                  "maybe": "d"}}, "unknown label"),
])
def test_bad_templates_are_clear_errors(data, message):
    with pytest.raises(XLTuneError, match=message.replace("{", r"\{").replace("}", r"\}")):
        parse_templates(data, XNLI, "t.yaml")


def test_shipped_xnli_templates_cover_every_language_with_harness_words():
    t = load_templates(XNLI)
    assert set(t.per_lang) == set(XNLI.languages)
    de = t.fill(SentenceExample("de/test/0", "de", 0, ("Prämisse", "Hypothese"), 0))
    assert de.context == "Prämisse, richtig?" and de.continuations == (" Ja, Hypothese", " Auch, Hypothese",
                                                                       " Nein, Hypothese")
    with pytest.raises(XLTuneError, match="no shipped template"):
        load_templates(TASKS.get("pawsx"))


def test_template_file_yaml_error_names_the_line(tmp_path):
    bad = tmp_path / "t.yaml"
    bad.write_text("template: '{premise}\nlabels: [a, b, c]\n", encoding="utf-8")
    with pytest.raises(XLTuneError, match=r"t.yaml:3: not valid YAML \(.*started at line 1"):
        load_templates(XNLI, str(bad))
