"""Bottleneck adapters in the Pfeiffer configuration and invertible (NICE) adapters, for MAD-X-style modular transfer.

Our own small modules, because neither library we build on has them for today's models: peft (0.21) has no
bottleneck or invertible adapters, and AdapterHub's ``adapters`` pins transformers 4.57 (its issue #834) and has no
XGLM (its issue #429). The arithmetic follows AdapterHub's ``SeqBnConfig`` / ``SeqBnInvConfig`` (Pfeiffer et al. 2020,
"MAD-X"; 2021, "AdapterFusion"): one adapter per layer after the feed-forward block, ``up(relu(down(h)))`` with
``bottleneck = hidden // reduction_factor``, BERT-style initialisation (normal 0.02, zero biases).

Where the adapter sits (one adapter per layer; several named adapters per layer run in insertion order, as
AdapterHub's ``Stack``: the language adapter first, the task adapter on top):

* **post-LN encoders** (BERT, XLM-R, e5: the layer's ``output`` holds ``dense``, ``dropout`` and ``LayerNorm``):
  with ``f`` the feed-forward output and ``x`` the sub-layer's input, ``h = LN(f + x)``; each adapter does
  ``h = A(h) + f``; the layer returns ``LN(h + x)`` (Pfeiffer: original LN before and after, residual = ``f``).
  Transformers adds the residual and normalises inside one ``forward``, so that module's ``forward`` is replaced
  on the instance (its parameter names stay the model's own).
* **pre-LN decoders** (XGLM, GPT-style): the layer's output is the residual stream ``h = x + f``; each adapter does
  ``h = h + A(h)`` (a forward hook on the layer). This is Pfeiffer's adapter without a layer norm to reuse, as
  AdapterHub places it in GPT-2.

Invertible adapters (NICE additive coupling, as MAD-X): ``x = [x1, x2]``, ``y1 = x1 + F(x2)``, ``y2 = x2 + G(y1)``;
the inverse subtracts in the other order, so it is exact up to float rounding. ``F`` and ``G`` are bottleneck MLPs
(``half // reduction_factor`` wide). The forward map is applied to the *token* embeddings (a forward hook on the input
embedding module); language-model training applies the inverse before the tied output projection, so the map
relates exactly the two uses of that one matrix. (AdapterHub hooks BERT's whole embedding block, positions
included; positions are not part of the tied matrix, so we leave them out.)
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import XLTuneError


def _init_bert(module: nn.Module) -> None:
    """AdapterHub's default ``init_weights="bert"``: weights N(0, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)


class BottleneckAdapter(nn.Module):
    """``up(relu(down(h)))``; the caller adds the residual."""

    def __init__(self, hidden: int, reduction_factor: float):
        super().__init__()
        if reduction_factor <= 0:
            raise XLTuneError(f"adapter reduction factor must be > 0, got {reduction_factor}")
        width = max(1, int(hidden // reduction_factor))
        self.down = nn.Linear(hidden, width)
        self.up = nn.Linear(width, hidden)
        _init_bert(self)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.up(F.relu(self.down(h.to(self.down.weight.dtype)))).to(h.dtype)


class NiceCoupling(nn.Module):
    """An invertible map of the embedding space (NICE additive coupling, two halves)."""

    def __init__(self, hidden: int, reduction_factor: float = 2):
        super().__init__()
        self.d1 = hidden // 2
        d2 = hidden - self.d1
        self.f = nn.Sequential(nn.Linear(d2, max(1, int(d2 // reduction_factor))), nn.ReLU(),
                               nn.Linear(max(1, int(d2 // reduction_factor)), self.d1))
        self.g = nn.Sequential(nn.Linear(self.d1, max(1, int(self.d1 // reduction_factor))), nn.ReLU(),
                               nn.Linear(max(1, int(self.d1 // reduction_factor)), d2))
        _init_bert(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype, x = x.dtype, x.to(self.f[0].weight.dtype)
        x1, x2 = x[..., : self.d1], x[..., self.d1:]
        y1 = x1 + self.f(x2)
        y2 = x2 + self.g(y1)
        return torch.cat([y1, y2], dim=-1).to(dtype)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        dtype, y = y.dtype, y.to(self.f[0].weight.dtype)
        y1, y2 = y[..., : self.d1], y[..., self.d1:]
        x2 = y2 - self.g(y1)
        x1 = y1 - self.f(x2)
        return torch.cat([x1, x2], dim=-1).to(dtype)


# -- where adapters go -------------------------------------------------------------------------------------------
def _layers(model: nn.Module, num_layers: int | None) -> tuple[str, nn.ModuleList]:
    for name, m in model.named_modules():
        if isinstance(m, nn.ModuleList) and num_layers and len(m) == num_layers:
            return name, m
    raise XLTuneError(f"adapters: cannot find the {num_layers} transformer layers of {type(model).__name__}")


def transformer_layers(model: nn.Module, num_layers: int | None) -> nn.ModuleList:
    """The model's list of transformer layers: the first ModuleList with one entry per layer."""
    return _layers(model, num_layers)[1]


def layers_path(backbone) -> str:
    """The layer list's name in the model (``encoder.layer``, ``layers``): layer i's parameters start with
    ``<path>.<i>.``."""
    return _layers(backbone.model, backbone.num_layers)[0]


def placement(layer: nn.Module, is_decoder: bool) -> str:
    """``post_ln`` (BERT-family output block) | ``pre_ln`` (decoder layer)."""
    out = getattr(layer, "output", None)
    if out is not None and all(hasattr(out, a) for a in ("dense", "dropout", "LayerNorm")):
        return "post_ln"
    if is_decoder:
        return "pre_ln"
    raise XLTuneError(f"adapters: no known adapter placement in {type(layer).__name__} (supported: BERT-family "
                      "encoders with an output block of dense/dropout/LayerNorm, and decoder layers)")


def _post_ln_forward(output: nn.Module, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
    f = output.dropout(output.dense(hidden_states))
    h = output.LayerNorm(f + input_tensor)
    if not len(output.adapters):
        return h
    for adapter in output.adapters.values():
        h = adapter(h) + f
    return output.LayerNorm(h + input_tensor)


def _pre_ln_hook(layer: nn.Module, args, output):
    h = output[0] if isinstance(output, tuple) else output
    for adapter in layer.adapters.values():
        h = h + adapter(h)
    return (h, *output[1:]) if isinstance(output, tuple) else h


def add_adapters(backbone, adapters: dict[str, float], skip_layers: Iterable[int] = ()) -> str:
    """Add one bottleneck adapter per name (``{name: reduction_factor}``, in stacking order) to every layer of
    ``backbone`` but ``skip_layers``; returns the placement used. Parameters are named
    ``<layer>.adapters.<name>.down.weight`` (``<layer>.output.adapters...`` in post-LN encoders)."""
    model = backbone.model
    layers = transformer_layers(model, backbone.num_layers)
    skip = set(skip_layers)
    device = next(model.parameters()).device
    where = placement(layers[0], backbone.is_decoder)
    for i, layer in enumerate(layers):
        if i in skip:
            continue
        site = layer.output if where == "post_ln" else layer
        if not hasattr(site, "adapters"):
            site.adapters = nn.ModuleDict()
            if where == "post_ln":
                site.forward = functools.partial(_post_ln_forward, site)
            else:
                site.register_forward_hook(_pre_ln_hook)
        for name, rf in adapters.items():
            if name in site.adapters:
                raise XLTuneError(f"adapters: layer {i} already has an adapter named {name!r}")
            site.adapters[name] = BottleneckAdapter(backbone.hidden_size, rf).to(device)
    return where


def _invertible_hook(embedding: nn.Module, args, output):
    for coupling in embedding.invertible.values():
        output = coupling(output)
    return output


def add_invertible(backbone, name: str, reduction_factor: float = 2) -> NiceCoupling:
    """An invertible adapter on the token embeddings (``<embeddings>.invertible.<name>``)."""
    emb = backbone.model.get_input_embeddings()
    if not hasattr(emb, "invertible"):
        emb.invertible = nn.ModuleDict()
        emb.register_forward_hook(_invertible_hook)
    coupling = NiceCoupling(emb.weight.shape[1], reduction_factor).to(emb.weight.device)
    emb.invertible[name] = coupling
    return coupling


def invertible_of(backbone) -> nn.ModuleDict | None:
    return getattr(backbone.model.get_input_embeddings(), "invertible", None)


def last_layer(backbone) -> int:
    return len(transformer_layers(backbone.model, backbone.num_layers)) - 1
