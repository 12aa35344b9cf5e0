"""Load a multilingual backbone (decoder like XGLM, encoder like XLM-R) as its *base* model: hidden states only.

Classification never needs the vocabulary projection, so we load ``AutoModel`` (XGLMModel, XLMRobertaModel, ...),
never the LM head. ``meta=True`` builds the model from its config on the meta device (no weights, no download)
for parameter counts; a few famous configs are known by short name so ``xltune params`` needs no network.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..errors import XLTuneError
from .attention import enable_sdpa
from .known import KNOWN_CONFIGS

if TYPE_CHECKING:  # annotations only: config imports the methods, which build on this module
    from ..config import ModelConfig

log = logging.getLogger(__name__)

# model_type values of decoder-only families whose configs do not always say so (no architectures / is_decoder).
DECODER_TYPES = frozenset({
    "xglm", "gpt2", "gpt_neo", "gpt_neox", "gptj", "bloom", "opt", "llama", "mistral", "mixtral", "qwen2", "qwen3",
    "gemma", "gemma2", "gemma3", "gemma3_text", "phi", "phi3", "falcon", "mpt", "olmo", "olmo2", "stablelm", "cohere",
})


@dataclass
class Backbone:
    model: nn.Module  # the base model (AutoModel): returns hidden states, never logits over the vocabulary
    tokenizer: Any  # a PreTrainedTokenizerBase, or None for meta-device backbones
    is_decoder: bool
    hidden_size: int
    num_layers: int | None
    num_heads: int | None
    num_kv_heads: int | None
    head_dim: int | None
    pad_token_id: int | None
    max_positions: int | None
    name: str
    config: Any = None

    def require_layer_layout(self, what: str = "deep prompts") -> tuple[int, int, int]:
        """(num_layers, num_kv_heads, head_dim), or a clear error when the config does not say."""
        if not (self.num_layers and self.num_kv_heads and self.head_dim):
            raise XLTuneError(
                f"{what}: cannot read the layer layout (layers={self.num_layers}, kv heads={self.num_kv_heads}, "
                f"head dim={self.head_dim}) from the config of {self.name}; use another method (finetune, prompt, lora)")
        return self.num_layers, self.num_kv_heads, self.head_dim


# -- config inspection ---------------------------------------------------------------------------------------------
def is_decoder_config(config: Any) -> bool:
    archs = getattr(config, "architectures", None) or []
    if any(a.endswith("ForCausalLM") for a in archs):
        return True
    if getattr(config, "is_decoder", False):
        return True
    return getattr(config, "model_type", "") in DECODER_TYPES


def layer_layout(config: Any) -> tuple[int | None, int | None, int | None, int | None]:
    """(num_layers, num_heads, num_kv_heads, head_dim) from a transformers config; None where it does not say."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    layers = getattr(text, "num_hidden_layers", None)
    heads = getattr(text, "num_attention_heads", None)
    kv = getattr(text, "num_key_value_heads", None) or heads
    head_dim = getattr(text, "head_dim", None)
    hidden = getattr(text, "hidden_size", None)
    if head_dim is None and heads and hidden and hidden % heads == 0:
        head_dim = hidden // heads
    return layers, heads, kv, head_dim


def _resolve_dtype(name: str, device: torch.device, frozen: bool) -> torch.dtype:
    if name != "auto":
        return getattr(torch, name)
    # bf16 only for frozen weights on a GPU that supports it: trained weights stay fp32 for AdamW.
    if device.type == "cuda" and frozen and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def _is_local(name: str) -> bool:
    return Path(name).expanduser().is_dir()


def _meant_local(name: str) -> bool:
    """A path, not a hub id: absolute, or starting with ./ ../ ~ (a config file's own paths are made absolute)."""
    return Path(name).expanduser().is_absolute() or name.startswith((".", "~"))


def _missing_folder(name: str) -> XLTuneError:
    """A mistyped model folder: say so (and what is there instead), not that the hub is unreachable."""
    import difflib

    path = Path(name).expanduser().absolute()
    if path.exists():
        return XLTuneError(f"model.name_or_path: {path} is a file, not a model folder (a folder saved with "
                           f"save_pretrained, or a hub id such as facebook/xglm-564M)")
    parent = path.parent
    while not parent.is_dir() and parent != parent.parent:
        parent = parent.parent
    if parent == path.parent:
        near = difflib.get_close_matches(path.name, [c.name for c in parent.iterdir() if c.is_dir()], n=1)
        hint = f"; did you mean {parent / near[0]}?" if near else ""
    else:
        hint = f"; the nearest folder that exists is {parent}"
    return XLTuneError(f"model.name_or_path: no model folder at {path} (it does not exist{hint}); make it "
                       f"(xltune tiny-model, save_pretrained) or give a hub id such as facebook/xglm-564M")


def _offline() -> bool:
    """HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE, read now: huggingface_hub reads them once at import, which misses a
    variable set later (a notebook, a test); we pass local_files_only instead, which it honours per call."""
    return any(os.environ.get(k, "").lower() in ("1", "true", "yes", "on") for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _hub_error(name: str, err: Exception) -> XLTuneError:
    offline = _offline()
    if _is_local(name):  # a folder that is not a complete model: the hub is beside the point
        hint = ("the folder must hold a transformers model saved with save_pretrained "
                "(config.json with a model_type, the weights, the tokenizer files)")
    elif offline:
        hint = ("the hub is offline (HF_HUB_OFFLINE) and it is not in the cache; pass a local model directory "
                "in model.name_or_path")
    else:
        hint = "check the hub id, your network, or pass a local model directory in model.name_or_path"
    parts = Path(name).parts
    if not _is_local(name) and len(parts) > 1 and Path(parts[0]).is_dir():  # runs/tiny-xgml: a path was meant?
        hint += f" (no folder {Path(name).resolve()} exists either)"
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return XLTuneError(f"model.name_or_path: cannot load {name!r} ({first}); {hint}")


def load_config(name: str) -> Any:
    """A transformers config from a short name (KNOWN_CONFIGS), a local directory or a hub id."""
    if name in KNOWN_CONFIGS:
        return KNOWN_CONFIGS[name]()
    if _meant_local(name) and not _is_local(name):
        raise _missing_folder(name)
    from transformers import AutoConfig

    if not _is_local(name) and not _offline():
        from ..data.readers import _hub_reachable

        # Without this probe huggingface_hub retries for ~25 s before failing when the hub cannot be reached.
        if not _hub_reachable():
            raise _hub_error(name, OSError("the Hugging Face hub is not reachable; HF_HUB_OFFLINE=1 uses the cache"))
    try:
        return AutoConfig.from_pretrained(name, local_files_only=_offline())
    except (OSError, ValueError) as e:
        raise _hub_error(name, e) from None


def _load_model(name: str, config: Any, dtype: torch.dtype, attn: str, auto: Any = None) -> Any:
    """``auto`` (default AutoModel) ``.from_pretrained``; a model class with a head (AutoModelForMaskedLM, ...)
    returns ``(model, loading_info)`` so the caller can tell a head the checkpoint lacks (newly initialised)."""
    from transformers import AutoModel

    auto = auto or AutoModel
    with_info = auto is not AutoModel

    def load(impl: str) -> nn.Module:
        return auto.from_pretrained(name, config=config, dtype=dtype, attn_implementation=impl,
                                    local_files_only=_offline(), output_loading_info=with_info)

    try:
        try:
            return load(attn)
        except ValueError as e:
            # e.g. XGLM has no sdpa path in transformers: eager gives the same numbers, only slower.
            if attn == "eager" or "attention implementation" not in str(e) and "scaled_dot_product" not in str(e):
                raise
            model = load("eager")
            # our own SDPA forward where we have one (models/attention.py), else eager (same numbers, slower)
            if not (attn == "sdpa" and enable_sdpa(model[0] if with_info else model)):
                log.warning("%s does not support attn_implementation=%r; falling back to eager", name, attn)
            return model
    except OSError as e:
        raise _hub_error(name, e) from None


def _from_config_meta(config: Any, attn: str) -> nn.Module:
    from transformers import AutoModel

    with torch.device("meta"):
        try:
            return AutoModel.from_config(config, attn_implementation=attn)
        except ValueError:
            return AutoModel.from_config(config, attn_implementation="eager")


# Vocabulary files of the usual tokenizers; AutoTokenizer adds the loaded class's own vocab_files_names.
_TOKENIZER_FILES = frozenset({"tokenizer.json", "tokenizer.model", "sentencepiece.bpe.model", "spiece.model",
                              "sentencepiece.model", "spm.model", "vocab.json", "vocab.txt", "merges.txt"})


def _require_tokenizer_files(name: str, tok: Any) -> None:
    """A local folder without tokenizer files must fail: transformers then builds an *empty* tokenizer from the
    config's model_type (XGLM: 11 special tokens, every word -> <unk>) and training would run on nothing."""
    if not _is_local(name):
        return
    folder = Path(name).expanduser()
    expected = _TOKENIZER_FILES | set(getattr(tok, "vocab_files_names", {}).values())
    if not any((folder / f).is_file() for f in expected):
        raise XLTuneError(f"model.name_or_path: {folder} has no tokenizer files (looked for "
                          f"{', '.join(sorted(expected))}); save the tokenizer there with "
                          f"tokenizer.save_pretrained({str(folder)!r})")


def _load_tokenizer(name: str, is_decoder: bool) -> Any:
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(name, local_files_only=_offline())
    except (OSError, ValueError) as e:
        raise _hub_error(name, e) from None
    _require_tokenizer_files(name, tok)
    if tok.pad_token is None:
        # Decoders often ship without a pad token; padded positions are masked out, so any id will do.
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
        if tok.pad_token is None:
            raise XLTuneError(f"tokenizer of {name} has no pad, eos or unk token to pad with")
    return tok


def load_backbone(cfg: ModelConfig, device: torch.device | str | None = None, meta: bool = False,
                  frozen: bool = False) -> Backbone:
    """The base model + tokenizer of ``cfg.name_or_path`` (hub id, local directory, or a KNOWN_CONFIGS short name
    with ``meta=True``). ``frozen`` lets dtype=auto pick bf16 on a GPU (weights that do not train)."""
    name = cfg.name_or_path
    if not name:
        raise XLTuneError("model.name_or_path is required (a hub id or a local model directory)")
    device = torch.device(device) if device is not None else torch.device("cpu")
    config = load_config(name)
    is_decoder = is_decoder_config(config) if cfg.kind == "auto" else cfg.kind == "decoder"

    if meta:
        model, tokenizer = _from_config_meta(config, cfg.attn_implementation), None
    else:
        if name in KNOWN_CONFIGS and not _is_local(name):
            raise XLTuneError(f"model.name_or_path: {name!r} is a config short name (parameter counts only); "
                              "pass a hub id (e.g. facebook/xglm-564M) or a local directory to load weights")
        tokenizer = _load_tokenizer(name, is_decoder)  # first: a missing tokenizer fails before gigabytes load
        dtype = _resolve_dtype(cfg.dtype, device, frozen)
        model = _load_model(name, config, dtype, cfg.attn_implementation).to(device)
    return backbone_from_model(model, tokenizer, kind=cfg.kind, name=name)


def load_lm(cfg: ModelConfig, device: torch.device | str | None = None) -> tuple[Backbone, nn.Module, list[str]]:
    """The model with its language-model head (causal for decoders, masked for encoders), float32, for training
    language modules: ``(backbone, lm, fresh)``. ``backbone.model`` is the LM's own base model (the same module
    names as :func:`load_backbone` gives), ``fresh`` the head parameters the checkpoint lacks (newly initialised:
    e.g. multilingual-e5 is a bare ``BertModel`` without its MLM head)."""
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

    name = cfg.name_or_path
    if not name:
        raise XLTuneError("model.name_or_path is required (a hub id or a local model directory)")
    if name in KNOWN_CONFIGS and not _is_local(name):
        raise XLTuneError(f"--model: {name!r} is a config short name (parameter counts only); pass a hub id or a "
                          "local directory")
    device = torch.device(device) if device is not None else torch.device("cpu")
    config = load_config(name)
    is_decoder = is_decoder_config(config) if cfg.kind == "auto" else cfg.kind == "decoder"
    tokenizer = _load_tokenizer(name, is_decoder)
    auto = AutoModelForCausalLM if is_decoder else AutoModelForMaskedLM
    try:
        model, info = _load_model(name, config, torch.float32, cfg.attn_implementation, auto=auto)
    except ValueError as e:  # no such head class for this model type
        raise XLTuneError(f"--model: {name} has no {'causal' if is_decoder else 'masked'} LM class in "
                          f"transformers ({str(e).splitlines()[0]})") from None
    prefix = model.base_model_prefix + "."
    fresh = sorted(k for k in info.get("missing_keys", ()) if not k.startswith(prefix))
    model.to(device)
    return backbone_from_model(model.base_model, tokenizer, kind=cfg.kind, name=name), model, fresh


def backbone_from_model(model: nn.Module, tokenizer: Any = None, kind: str = "auto", name: str = "") -> Backbone:
    """Wrap an in-memory base model (e.g. ``AutoModel.from_config``) as a :class:`Backbone`."""
    is_decoder = is_decoder_config(model.config) if kind == "auto" else kind == "decoder"
    # Our heads pool themselves; the BERT-style pooler would be dead weight (and never get gradients).
    if getattr(model, "pooler", None) is not None:
        model.pooler = None
    layers, heads, kv, head_dim = layer_layout(model.config)
    text = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    pad = tokenizer.pad_token_id if tokenizer is not None else getattr(text, "pad_token_id", None)
    return Backbone(
        model=model, tokenizer=tokenizer, is_decoder=is_decoder, hidden_size=text.hidden_size, num_layers=layers,
        num_heads=heads, num_kv_heads=kv, head_dim=head_dim, pad_token_id=pad,
        max_positions=getattr(text, "max_position_embeddings", None), name=name or type(model).__name__,
        config=model.config)
