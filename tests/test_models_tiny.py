"""Tiny models load with AutoTokenizer/AutoModel; their tokenizer handles many scripts; backbone loading errors."""

from __future__ import annotations

import time
import unicodedata

import pytest
import torch

from xltune.config import ModelConfig
from xltune.errors import XLTuneError
from xltune.models.backbone import load_backbone
from xltune.models.tiny import make_tiny_model

SAMPLES = ["الثعلب البني السريع", "तेज़ भूरी लोमड़ी", "敏捷的棕色狐狸", "สุนัขจิ้งจอกสีน้ำตาล", "Быстрая лиса"]


@pytest.mark.parametrize("arch", ["xglm", "xlm-roberta"])
def test_tiny_model_round_trip(arch, tiny_xglm_dir, tiny_xlmr_dir):
    from transformers import AutoModel, AutoTokenizer

    path = tiny_xglm_dir if arch == "xglm" else tiny_xlmr_dir
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path)
    assert type(model).__name__ == ("XGLMModel" if arch == "xglm" else "XLMRobertaModel")
    assert (tok.bos_token_id, tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2, 3)
    assert model.config.vocab_size == len(tok)
    for text in SAMPLES:
        ids = tok(text).input_ids
        assert tok.unk_token_id not in ids, text
        assert tok.decode(ids, skip_special_tokens=True) == unicodedata.normalize("NFKC", text)
    ids = tok(SAMPLES[0], SAMPLES[2]).input_ids
    toks = tok.convert_ids_to_tokens(ids)
    if arch == "xglm":  # XGLMTokenizer's template: </s> A </s> </s> B
        assert toks[0] == "</s>" and toks.count("</s>") == 3 and toks[-1] != "</s>"
    else:  # <s> A </s> </s> B </s>
        assert toks[0] == "<s>" and toks[-1] == "</s>" and toks.count("</s>") == 3
    with torch.no_grad():
        out = model(**tok(SAMPLES, return_tensors="pt", padding=True))
    assert out.last_hidden_state.shape[-1] == 32


def test_tiny_model_is_deterministic(tmp_path):
    text = tmp_path / "t.txt.gz"
    import gzip

    with gzip.open(text, "wt", encoding="utf-8") as f:
        f.write("hello world\tbonjour le monde\n敏捷的棕色狐狸\n")
    a = make_tiny_model("xglm", [text], tmp_path / "a", vocab_size=60, hidden=16, layers=1, heads=2, seed=3)
    b = make_tiny_model("xglm", [text], tmp_path / "b", vocab_size=60, hidden=16, layers=1, heads=2, seed=3)
    assert (a / "tokenizer.json").read_text() == (b / "tokenizer.json").read_text()
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    with pytest.raises(XLTuneError, match="architecture"):
        make_tiny_model("gpt9", [text], tmp_path / "c")


def test_load_backbone_kinds(tiny_xglm_dir, tiny_xlmr_dir):
    dec = load_backbone(ModelConfig(name_or_path=str(tiny_xglm_dir)))
    enc = load_backbone(ModelConfig(name_or_path=str(tiny_xlmr_dir)))
    assert dec.is_decoder and not enc.is_decoder
    assert (dec.num_layers, dec.num_heads, dec.num_kv_heads, dec.head_dim, dec.hidden_size) == (2, 4, 4, 8, 32)
    assert not hasattr(dec.model, "lm_head") and getattr(enc.model, "pooler", None) is None
    assert dec.model.config._attn_implementation == "eager"  # XGLM has no sdpa path: fell back
    assert enc.model.config._attn_implementation == "sdpa"
    assert next(dec.model.parameters()).dtype == torch.float32  # dtype auto on CPU


def test_offline_hub_id_fails_fast_with_a_fix(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(XLTuneError, match="local model directory"):
        load_backbone(ModelConfig(name_or_path="facebook/xglm-564M"))
    assert time.monotonic() - start < 5


def test_short_config_names_are_for_parameter_counts_only():
    meta = load_backbone(ModelConfig(name_or_path="xglm-564M"), meta=True)
    assert meta.is_decoder and meta.num_layers == 24 and meta.tokenizer is None
    assert next(meta.model.parameters()).device.type == "meta"
    with pytest.raises(XLTuneError, match="short name"):
        load_backbone(ModelConfig(name_or_path="xglm-564M"))


def test_tiny_model_covers_every_character_of_multi_script_text(tmp_path, capsys):
    """The README's step 1 crashed: XNLI's 15 dev files hold 2,740 characters, more than --vocab-size 2000.
    The vocabulary now grows to hold every character the text has, and says so; nothing maps to <unk>."""
    from transformers import AutoTokenizer

    from xltune.cli import main

    cjk = "".join(chr(0x4E00 + i) for i in range(300))  # 300 distinct Han characters + Latin
    text = tmp_path / "t.txt"
    text.write_text("the quick brown fox\n" + "\n".join(cjk[i : i + 30] for i in range(0, 300, 30)) + "\n",
                    encoding="utf-8")
    assert main(["tiny-model", "--arch", "xglm", "--text", str(text), "--out", str(tmp_path / "m"),
                 "--vocab-size", "100", "--hidden", "16", "--layers", "1", "--heads", "2"]) == 0
    assert "vocabulary grows from 100" in capsys.readouterr().err
    tok = AutoTokenizer.from_pretrained(tmp_path / "m")
    ids = tok(cjk + " fox")["input_ids"]
    assert tok.unk_token_id not in ids
    assert tok.decode(ids, skip_special_tokens=True) == cjk + " fox"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary folder left


def test_tiny_model_never_leaves_a_half_written_folder(tmp_path, capsys, monkeypatch):
    import xltune.models.tiny as tiny
    from xltune.cli import main

    text = tmp_path / "t.txt"
    text.write_text("hello world\n", encoding="utf-8")
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    # a folder of the user's that is not a model is never replaced
    assert main(["tiny-model", "--arch", "xglm", "--text", str(text), "--out", str(taken)]) == 2
    assert "not a model folder" in capsys.readouterr().err and [p.name for p in taken.iterdir()] == ["notes.txt"]
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    assert main(["tiny-model", "--arch", "xglm", "--text", str(empty), "--out", str(tmp_path / "new")]) == 2
    assert "no text in" in capsys.readouterr().err

    def fail(*_a, **_k):  # a failure after the tokenizer was written, before the weights
        raise tiny.XLTuneError("disk full")

    monkeypatch.setattr(tiny, "_model_config", fail)
    assert main(["tiny-model", "--arch", "xglm", "--text", str(text), "--out", str(tmp_path / "new")]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.txt", "t.txt", "taken"]  # nothing half-written
