"""BERT-style pairs get their segment ids; tagging labels the first sub-word for encoders and the last for
decoders (configurable), and predictions are read where the labels sit."""

from __future__ import annotations

import pytest
import torch

from xltune.config import ModelConfig
from xltune.data.encode import collate, encode_sentences, encode_tokens, labelled_positions, resolve_alignment
from xltune.data.records import SentenceExample, TokenExample
from xltune.evaluate import predict, words_from_subwords
from xltune.methods import build_model, method_settings
from xltune.models.backbone import backbone_from_model


def tiny_bert(tmp_path):
    """A tiny BERT (2 segment embeddings) with a WordPiece tokenizer that produces token_type_ids."""
    tokenizers = pytest.importorskip("tokenizers")
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "cat", "sat", "##s", "on", "mat", "a", "dog", "ran"]
    vocab = {w: i for i, w in enumerate(words)}
    tok = tokenizers.Tokenizer(tokenizers.models.WordPiece(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tok.post_processor = tokenizers.processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", model_input_names=["input_ids", "token_type_ids", "attention_mask"])
    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                 intermediate_size=64, type_vocab_size=2, hidden_dropout_prob=0.0,
                                 attention_probs_dropout_prob=0.0)).eval()
    return backbone_from_model(model, fast, kind="encoder", name="tiny-bert")


def test_bert_pairs_carry_segment_ids_and_the_model_uses_them(tmp_path):
    backbone = tiny_bert(tmp_path)
    pairs = [SentenceExample(f"e{i}", "en", i, (p, h), 0) for i, (p, h) in
             enumerate([("the cat sat", "a dog ran"), ("the cats sat on the mat", "the dog")])]
    enc = encode_sentences(pairs, backbone.tokenizer, 64)
    f = enc.features[0]
    assert f.token_type_ids == [0, 0, 0, 0, 0, 1, 1, 1, 1]  # [CLS] the cat sat [SEP] | a dog ran [SEP]
    model = build_model(backbone, method_settings("finetune"), "sequence", 3,
                        ModelConfig(name_or_path="tiny-bert", head_dropout=0.0)).eval()
    assert model.uses_segments
    kw = dict(batch_size=2, pad_id=0, token_task=False, device=torch.device("cpu"))
    right = collate(enc.features, 0, "right", False)
    with torch.no_grad():
        with_types = model(right["input_ids"], right["attention_mask"], right["token_type_ids"]).logits
        without = model(right["input_ids"], right["attention_mask"]).logits
        left = collate(enc.features, 0, "left", False)
        left_logits = model(left["input_ids"], left["attention_mask"], left["token_type_ids"]).logits
    assert not torch.allclose(with_types, without)  # the segment embeddings are used
    assert torch.allclose(with_types, left_logits, atol=1e-5)  # and padding side does not matter
    assert predict(model, enc, padding_side="right", **kw) == predict(model, enc, padding_side="left", **kw)


def test_xlmr_and_xglm_tokenizers_give_no_segments(tiny_xglm_dir, tiny_xlmr_dir):
    from transformers import AutoTokenizer

    for d in (tiny_xglm_dir, tiny_xlmr_dir):
        tok = AutoTokenizer.from_pretrained(d)
        enc = encode_sentences([SentenceExample("e", "en", 0, ("a b", "c"), 0)], tok, 32)
        assert enc.features[0].token_type_ids is None and "token_type_ids" not in collate(enc.features, 1, "right",
                                                                                             False)


def test_first_and_last_subword_labels_and_reading(tmp_path):
    backbone = tiny_bert(tmp_path)
    ex = TokenExample("t", "en", 0, ("the", "cats", "sat"), (1, 2, 0))  # cats -> cat ##s
    first = encode_tokens([ex], backbone.tokenizer, 32, "first")
    last = encode_tokens([ex], backbone.tokenizer, 32, "last")
    # [CLS] the cat ##s sat [SEP]
    assert first.features[0].label == [-100, 1, 2, -100, 0, -100] and first.read_at == "first"
    assert last.features[0].label == [-100, 1, -100, 2, 0, -100] and last.read_at == "last"
    assert labelled_positions([None, 0, 1, 1, 2, None], "last") == {1, 3, 4}
    # a prediction is read where the label sits: one that is right only at the last piece is right for "last"
    preds = [[9, 1, 7, 2, 0, 9]]
    assert words_from_subwords(last.features, preds, last.n_words, "last") == [[1, 2, 0]]
    assert words_from_subwords(first.features, preds, first.n_words, "first") == [[1, 7, 0]]
    assert resolve_alignment("auto", is_decoder=True) == "last" and resolve_alignment("auto", False) == "first"


def test_decoders_label_the_last_subword_by_default(tiny_xglm_dir, tiny_xlmr_dir, tmp_path):
    from xltune.config import load_config, resolve_paths
    from xltune.runs.context import build_context
    from xltune.runs.prepare import prepare

    folder = tmp_path / "ner"
    folder.mkdir()
    for split in ("dev", "test"):
        for lang in ("en", "de"):
            (folder / f"{split}-{lang}.tsv").write_text("Anna\tB-PER\nlebt\tO\n\nBerlin\tB-LOC\n", encoding="utf-8")
    for model_dir, expect in ((tiny_xglm_dir, "last"), (tiny_xlmr_dir, "first")):
        cfg = resolve_paths(load_config(None, [f"model.name_or_path={model_dir}", "task.name=panx",
                                               f"task.data_dir={folder}", "task.languages=[en, de]",
                                               "train.split=dev", "train.shots=1", f"store={tmp_path / 's.sqlite'}"]))
        prep = prepare(cfg)
        ctx = build_context(prep, 1, "x", lambda *_: None)
        assert ctx.encode_test("de").read_at == expect
