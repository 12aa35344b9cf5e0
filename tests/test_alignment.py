"""Argmax word alignment on hand-made vectors, Pharaoh I/O, and IOB2 tag projection."""

from __future__ import annotations

import pytest
import torch

from xltune.alignment import (
    argmax_align,
    embed_words,
    format_pharaoh,
    parse_pharaoh,
    project_tags,
    read_pharaoh,
    word_vectors,
)
from xltune.errors import XLTuneError


# ---------------------------------------------------------------- vectors and argmax


def test_word_vectors_mean_of_subwords():
    tokens = torch.tensor([[9.0, 9.0], [1.0, 0.0], [3.0, 2.0], [0.0, 4.0], [9.0, 9.0]])
    word_ids = [None, 0, 0, 1, None]  # [CLS] w0 w0 w1 [SEP]
    assert torch.equal(word_vectors(tokens, word_ids), torch.tensor([[2.0, 1.0], [0.0, 4.0]]))
    with pytest.raises(ValueError, match=r"words \[2\] have no sub-word"):
        word_vectors(tokens, word_ids, n_words=3)


def test_argmax_align_swapped_order_and_scale():
    # Target = source words in another order, other norms: cosine recovers the permutation.
    src = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    tgt = torch.tensor([[0.0, 0.0, 5.0], [2.0, 0.1, 0.0], [0.0, 0.3, 0.1]])
    assert argmax_align(src, tgt) == [(0, 1), (1, 2), (2, 0)]


def test_argmax_align_keeps_only_mutual_best():
    # Both source words prefer target 0; target 0 prefers source 1 -> only (1, 0). Target 1 prefers source 1 too,
    # but source 1's best is target 0, so (1, 1) is not kept.
    src = torch.tensor([[1.0, 0.2], [1.0, 0.0]])
    tgt = torch.tensor([[1.0, 0.0], [1.0, -0.5]])
    assert argmax_align(src, tgt) == [(1, 0)]
    assert argmax_align(tgt, src) == [(0, 1)]  # direction swap mirrors the links


def test_argmax_align_empty_and_shape_errors():
    assert argmax_align(torch.zeros(0, 4), torch.ones(3, 4)) == []
    with pytest.raises(ValueError):
        argmax_align(torch.ones(2, 3), torch.ones(2, 4))


def test_embed_words_with_tiny_bert_aligns_identical_sentence():
    tokenizers = pytest.importorskip("tokenizers")
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "cat", "sat", "##s", "on", "mat"])}
    tok = tokenizers.Tokenizer(tokenizers.models.WordPiece(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tok.post_processor = tokenizers.processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]")
    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)).eval()
    words = ["the", "cats", "sat", "on", "the", "mat"]
    vecs = embed_words(words, model, fast, layer=8)  # clamped to the last of 2 layers
    assert vecs.shape == (len(words), 32)
    ids = fast(words, is_split_into_words=True)["input_ids"]
    assert len(ids) == len(words) + 3  # "cats" -> cat ##s: the mean is over two sub-words
    # A sentence aligned to itself: every word to itself (the two "the"s differ by position in the hidden states).
    assert argmax_align(vecs, vecs) == [(i, i) for i in range(len(words))]
    assert embed_words([], model, fast).shape == (0, 32)


# ---------------------------------------------------------------- Pharaoh


def test_pharaoh_round_trip_and_possible_links():
    assert parse_pharaoh("0-0 2-1 1-2 1-2") == [(0, 0), (1, 2), (2, 1)]
    assert parse_pharaoh("0?1 1-0") == [(0, 1), (1, 0)]
    assert parse_pharaoh("  ") == []
    assert format_pharaoh([(2, 1), (0, 0)]) == "0-0 2-1"


def test_pharaoh_errors_name_the_place(tmp_path):
    with pytest.raises(XLTuneError, match="'0:1' is not a Pharaoh link"):
        parse_pharaoh("0-0 0:1")
    with pytest.raises(XLTuneError, match="source word 3, but the source has 3"):
        parse_pharaoh("3-0", n_src=3)
    with pytest.raises(XLTuneError, match="target word 2, but the target has 2"):
        parse_pharaoh("0-2", n_tgt=2)
    path = tmp_path / "align.txt"
    path.write_text("0-0 1-1\n\n0-x\n", encoding="utf-8")
    with pytest.raises(XLTuneError, match=r"align.txt:3: '0-x'"):
        read_pharaoh(path)
    path.write_text("0-0 1-1\n\n1-0\n", encoding="utf-8")
    assert read_pharaoh(path) == [[(0, 0), (1, 1)], [], [(1, 0)]]


# ---------------------------------------------------------------- projection


def test_project_tags_reordered_multiword_entity():
    src = ["Angela", "Merkel", "visited", "New", "York", "yesterday"]
    tags = ["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "O"]
    tgt = ["Gestern", "besuchte", "Angela", "Merkel", "New", "York"]
    alignment = parse_pharaoh("0-2 1-3 2-1 3-4 4-5 5-0")
    assert project_tags(src, tags, tgt, alignment) == ["O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def test_project_tags_unaligned_target_is_o_and_fill_gaps():
    src = ["Bank", "of", "America", "said"]
    tags = ["B-ORG", "I-ORG", "I-ORG", "O"]
    tgt = ["Banco", "de", "América", "dijo"]
    alignment = [(0, 0), (2, 2), (3, 3)]  # "de" unaligned
    assert project_tags(src, tags, tgt, alignment) == ["B-ORG", "O", "B-ORG", "O"]
    assert project_tags(src, tags, tgt, alignment, fill_gaps=True) == ["B-ORG", "I-ORG", "I-ORG", "O"]


def test_project_tags_iob2_well_formed_for_split_and_adjacent_entities():
    # One source entity whose translation is split by another word: two B- starts, never a dangling I-.
    assert project_tags(["Paris"], ["B-LOC"], ["Pa", "x", "ris"], [(0, 0), (0, 2)]) == ["B-LOC", "O", "B-LOC"]
    # Two adjacent source entities of one type stay two entities.
    assert project_tags(["Paris", "London"], ["B-LOC", "B-LOC"], ["P", "L"], [(0, 0), (1, 1)]) == ["B-LOC", "B-LOC"]
    # One source word -> two consecutive target words: B- then I-.
    assert project_tags(["Kopenhagen"], ["B-LOC"], ["Copen", "hagen"], [(0, 0), (0, 1)]) == ["B-LOC", "I-LOC"]
    # IOB1-style I- start in the source is accepted as a span start.
    assert project_tags(["a", "b"], ["I-MISC", "O"], ["b", "a"], [(0, 1), (1, 0)]) == ["O", "B-MISC"]


def test_project_tags_majority_type_ties_to_lowest_source_index():
    src = ["A", "B", "C"]
    tags = ["B-PER", "B-ORG", "I-ORG"]
    assert project_tags(src, tags, ["x"], [(0, 0), (1, 0), (2, 0)]) == ["B-ORG"]  # 2 ORG votes vs 1 PER
    assert project_tags(src[:2], tags[:2], ["x"], [(1, 0), (0, 0)]) == ["B-PER"]  # tie -> source 0
    assert project_tags(["o"], ["O"], ["x", "y"], [(0, 0)]) == ["O", "O"]


def test_project_tags_errors():
    with pytest.raises(XLTuneError, match="2 source words but 1 tags"):
        project_tags(["a", "b"], ["O"], ["x"], [])
    with pytest.raises(XLTuneError, match="'X-PER' at word 0 is not IOB2"):
        project_tags(["a"], ["X-PER"], ["x"], [])
    with pytest.raises(XLTuneError, match="link 0-1 is outside 1 source and 1 target"):
        project_tags(["a"], ["O"], ["x"], [(0, 1)])


def test_align_then_project_end_to_end_on_hand_made_vectors():
    src = ["John", "lives", "in", "Berlin"]
    tags = ["B-PER", "O", "O", "B-LOC"]
    tgt = ["Berlin", "ist", "Johns", "Wohnort"]
    s = torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0], [0, 0, 0, 1.0]])
    t = torch.tensor([[0.1, 0, 0, 1.0], [0, 0.2, 0.9, 0], [1.0, 0, 0, 0.2], [0, 1.0, 0.3, 0]])
    alignment = argmax_align(s, t)
    assert alignment == [(0, 2), (1, 3), (2, 1), (3, 0)]
    assert project_tags(src, tags, tgt, alignment) == ["B-LOC", "O", "B-PER", "O"]
