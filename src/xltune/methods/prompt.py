"""Shallow prompt tuning: soft input vectors and the head train; the backbone is frozen."""

from __future__ import annotations

from ..config import MethodConfig, ModelConfig
from ..models.backbone import Backbone
from ..models.prompts import SoftPrompt
from ..models.transfer import TransferModel
from .base import METHODS, freeze, transfer_model


@METHODS.register("prompt")
def build(backbone: Backbone, method_cfg: MethodConfig, task_kind: str, num_labels: int,
          model_cfg: ModelConfig) -> TransferModel:
    freeze(backbone.model)
    embeddings = backbone.model.get_input_embeddings()
    prompt = SoftPrompt(method_cfg.prefix_length, embeddings, embeddings.num_embeddings,
                        init=method_cfg.prompt_init, dropout=method_cfg.prompt_dropout)
    return transfer_model(backbone, model_cfg, task_kind, num_labels, soft_prompt=prompt)
