"""Tiny, randomly initialised models with a real multilingual tokenizer, for tests and the offline demo.

``make_tiny_model`` trains a SentencePiece-style Unigram tokenizer (Metaspace pre-tokenizer, NFKC) with
``tokenizers`` on the given text, wraps it with the architecture's special tokens and template (XGLM: ``</s> A``;
XLM-R: ``<s> A </s></s> B </s>``), and writes a transformers directory that AutoTokenizer / AutoModel load.
Also :func:`parameter_report` for ``xltune params`` (meta device, no weights).
"""

from __future__ import annotations

import gzip
import os
import shutil
import sys
import tempfile
from pathlib import Path

from ..errors import XLTuneError, unknown_name

ARCHS = ("xglm", "xlm-roberta")
# Same ids as the real checkpoints: <s>=0 <pad>=1 </s>=2 <unk>=3 (XLM-R's <mask> follows).
SPECIALS = {"xglm": ["<s>", "<pad>", "</s>", "<unk>"], "xlm-roberta": ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]}


def read_text_lines(path: Path) -> list[str]:
    """Lines of a text / TSV / .gz file; tabs become spaces (all columns are text enough for a tokenizer)."""
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace") as f:
            return [line.replace("\t", " ").strip() for line in f if line.strip()]
    except OSError as e:
        raise XLTuneError(f"cannot read text file {path}: {e.strerror or e}") from None


def _normalizer():
    from tokenizers import normalizers

    return normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(" {2,}", " ")])


def distinct_characters(lines: list[str]) -> int:
    """Characters the Unigram trainer must give a piece each: the normalized text's, with spaces as "▁"."""
    chars = set(_normalizer().normalize_str("\n".join(lines)))
    chars -= {" ", "\n"}
    return len(chars | {"▁"})


def covering_vocab_size(lines: list[str], arch: str, vocab_size: int) -> int:
    """``vocab_size``, raised where the text has too many characters for it.

    The Unigram trainer gives every character its own piece (no <unk> for text it saw) and refuses a vocabulary
    smaller than the alphabet (XNLI's 15 dev files: 2,740 characters, more than the default 2,000). We keep the
    guarantee and grow such a vocabulary to the alphabet plus half the asked-for size in longer pieces; a size
    that holds the alphabet is kept as asked (the tokenizers of earlier versions stay byte-identical).
    """
    needed = distinct_characters(lines) + len(SPECIALS[arch])
    return vocab_size if vocab_size >= needed else needed + vocab_size // 2


def train_tokenizer(lines: list[str], arch: str, vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    specials = SPECIALS[arch]
    tok = Tokenizer(models.Unigram())
    tok.normalizer = _normalizer()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=specials, unk_token="<unk>",
                                      shrinking_factor=0.75, max_piece_length=8, show_progress=False)
    tok.train_from_iterator(lines, trainer=trainer)
    tok.model = _sorted_unigram(tok, specials)
    ids = {s: tok.token_to_id(s) for s in specials}
    if arch == "xglm":  # XGLMTokenizer prepends </s> (fairseq's document separator)
        tok.post_processor = processors.TemplateProcessing(
            single="</s> $A", pair="</s> $A </s> </s> $B", special_tokens=[("</s>", ids["</s>"])])
    else:
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
            special_tokens=[("<s>", ids["<s>"]), ("</s>", ids["</s>"])])
    return tok


def _sorted_unigram(tok, specials: list[str]):
    """The trained Unigram in a canonical order. The trainer appends characters it must cover with scores that
    step down by a tiny delta in hash-set order, so their ids (and so the model) differ between runs: we give
    that tail alphabetical order over the same scores. Scores also vary in the last digits: keep 6 decimals."""
    import json

    from tokenizers import models

    vocab = [(p, round(s, 6)) for p, s in json.loads(tok.to_str())["model"]["vocab"]]
    head = sorted((ps for ps in vocab if ps[0] in specials), key=lambda ps: specials.index(ps[0]))
    rest = sorted((ps for ps in vocab if ps[0] not in specials), key=lambda ps: (-ps[1], ps[0]))
    tail = len(rest) - 1
    while tail > 0 and rest[tail - 1][1] - rest[tail][1] < 1e-3:
        tail -= 1
    if rest:
        chars = sorted(p for p, _ in rest[tail:])
        rest[tail:] = list(zip(chars, [s for _, s in rest[tail:]]))
    return models.Unigram(head + rest, unk_id=specials.index("<unk>"), byte_fallback=False)


def _model_config(arch: str, vocab: int, hidden: int, layers: int, heads: int):
    if arch == "xglm":
        from transformers import XGLMConfig

        return XGLMConfig(vocab_size=vocab, d_model=hidden, num_layers=layers, attention_heads=heads,
                          ffn_dim=4 * hidden, max_position_embeddings=512, dropout=0.0, attention_dropout=0.0,
                          activation_dropout=0.0, bos_token_id=0, pad_token_id=1, eos_token_id=2,
                          decoder_start_token_id=2, architectures=["XGLMForCausalLM"])
    from transformers import XLMRobertaConfig

    return XLMRobertaConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                            intermediate_size=4 * hidden, max_position_embeddings=514, type_vocab_size=1,
                            layer_norm_eps=1e-5, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                            bos_token_id=0, pad_token_id=1, eos_token_id=2, architectures=["XLMRobertaForMaskedLM"])


def make_tiny_model(arch: str, text_files: list[Path], out_dir: Path, vocab_size: int = 2000, hidden: int = 64,
                    layers: int = 2, heads: int = 4, seed: int = 0, log=None) -> Path:
    """Write a tiny random ``arch`` model + trained tokenizer to ``out_dir``; returns ``out_dir``.

    The folder appears whole or not at all: it is written beside ``out_dir`` and renamed into place.
    ``log`` (default: stderr) hears when the vocabulary had to grow to cover the text's characters.
    """
    import torch
    from transformers import PreTrainedTokenizerFast, XGLMForCausalLM, XLMRobertaForMaskedLM

    if arch not in ARCHS:
        raise unknown_name("tiny-model architecture", arch, ARCHS)
    if hidden % heads:
        raise XLTuneError(f"hidden ({hidden}) must be a multiple of heads ({heads})")
    if vocab_size < 1:
        raise XLTuneError(f"vocab size must be positive, got {vocab_size}")
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or (any(out_dir.iterdir())
                                                      and not (out_dir / "config.json").is_file())):
        raise XLTuneError(f"{out_dir} exists and is not a model folder; choose a new --out (a model folder from "
                          f"an earlier tiny-model is replaced)")
    lines = [line for f in text_files for line in read_text_lines(Path(f))]
    if not lines:
        raise XLTuneError(f"no text in {', '.join(map(str, text_files))}; the tokenizer needs some")
    size = covering_vocab_size(lines, arch, vocab_size)
    if size != vocab_size:
        chars = size - vocab_size // 2 - len(SPECIALS[arch])
        (log or (lambda m: print(m, file=sys.stderr)))(
            f"note: the text has {chars:,} distinct characters; the vocabulary grows from {vocab_size:,} to "
            f"{size:,} so that every character has a piece (a --vocab-size of at least {size - vocab_size // 2:,} "
            f"is kept as given)")

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        tok = train_tokenizer(lines, arch, size)
        fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                       unk_token="<unk>", sep_token="</s>", cls_token="<s>",
                                       **({"mask_token": "<mask>"} if arch == "xlm-roberta" else {}))
        fast.save_pretrained(tmp)
        torch.manual_seed(seed)
        config = _model_config(arch, tok.get_vocab_size(), hidden, layers, heads)
        model_cls = XGLMForCausalLM if arch == "xglm" else XLMRobertaForMaskedLM
        model_cls(config).save_pretrained(tmp)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def parameter_report(model: str, method_cfg, task_kind: str = "sequence", num_labels: int = 3,
                     model_cfg=None) -> dict:
    """{total, trainable, percent} of a method's settings on ``model`` (short name, local dir or hub id), on the
    meta device (no weights)."""
    from ..config import ModelConfig
    from ..methods.base import build_model
    from .backbone import load_backbone

    model_cfg = model_cfg or ModelConfig(name_or_path=model)
    backbone = load_backbone(model_cfg, meta=True)
    transfer = build_model(backbone, method_cfg, task_kind, num_labels, model_cfg)
    trainable, total = transfer.count_parameters()
    return {"model": model, "method": method_cfg.name, "total": total, "trainable": trainable,
            "percent": 100.0 * trainable / total}
