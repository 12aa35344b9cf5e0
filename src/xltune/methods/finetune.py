"""Full fine-tuning: every backbone parameter (embeddings included) and the head train."""

from __future__ import annotations

from ..config import MethodConfig, ModelConfig
from ..models.backbone import Backbone
from ..models.transfer import TransferModel
from .base import METHODS, transfer_model


@METHODS.register("finetune")
def build(backbone: Backbone, method_cfg: MethodConfig, task_kind: str, num_labels: int,
          model_cfg: ModelConfig) -> TransferModel:
    for p in backbone.model.parameters():
        p.requires_grad_(True)
    return transfer_model(backbone, model_cfg, task_kind, num_labels)
