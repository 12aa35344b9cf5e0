"""Deep prompt tuning (P-tuning v2): per-layer key/value prefixes (+ optional MLP) and the head train."""

from __future__ import annotations

from ..config import MethodConfig, ModelConfig
from ..models.backbone import Backbone
from ..models.prompts import DeepPrompt
from ..models.transfer import TransferModel
from .base import METHODS, freeze, transfer_model


@METHODS.register("deep_prompt")
def build(backbone: Backbone, method_cfg: MethodConfig, task_kind: str, num_labels: int,
          model_cfg: ModelConfig) -> TransferModel:
    layers, kv_heads, head_dim = backbone.require_layer_layout("method deep_prompt")
    freeze(backbone.model)
    prompt = DeepPrompt(layers, kv_heads, head_dim, method_cfg.prefix_length, backbone.hidden_size,
                        projection=method_cfg.prefix_projection, projection_hidden=method_cfg.prefix_hidden_size,
                        dropout=method_cfg.prompt_dropout)
    return transfer_model(backbone, model_cfg, task_kind, num_labels, deep_prompt=prompt,
                          shift_positions=method_cfg.prefix_positions == "shift")
