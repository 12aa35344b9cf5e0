"""In-context learning: nothing trains. The frozen backbone scores label words (verbalizer head) after K
demonstrations per class; :mod:`xltune.icl` runs it (no training loop)."""

from __future__ import annotations

from ..config import MethodConfig, ModelConfig
from ..models.backbone import Backbone
from ..models.transfer import TransferModel
from .base import METHODS, freeze, transfer_model


@METHODS.register("in_context")
def build(backbone: Backbone, method_cfg: MethodConfig, task_kind: str, num_labels: int,
          model_cfg: ModelConfig) -> TransferModel:
    freeze(backbone.model)
    model = transfer_model(backbone, model_cfg, task_kind, num_labels)
    freeze(model)  # the (unused) classifier head too: in-context learning trains nothing
    return model
