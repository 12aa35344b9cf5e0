"""LoRA (peft): low-rank adapters injected into the base model's attention; adapters and the head train."""

from __future__ import annotations

from ..config import MethodConfig, ModelConfig
from ..errors import XLTuneError
from ..models.backbone import Backbone
from ..models.transfer import TransferModel
from .base import METHODS, freeze, transfer_model

# peft's default mapping lacks some multilingual families (XGLM in peft 0.21); same choice as its default (q, v).
EXTRA_TARGETS = {"xglm": ["q_proj", "v_proj"]}


def target_modules(backbone: Backbone, method_cfg: MethodConfig) -> list[str]:
    if method_cfg.lora_target_modules:
        return list(method_cfg.lora_target_modules)
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as DEFAULTS

    model_type = getattr(backbone.model.config, "model_type", "")
    targets = DEFAULTS.get(model_type) or EXTRA_TARGETS.get(model_type)
    if not targets:
        raise XLTuneError(f"method lora: no default target modules for model type {model_type!r}; "
                          f"set method.lora_target_modules (e.g. [q_proj, v_proj])")
    return list(targets)


@METHODS.register("lora")
def build(backbone: Backbone, method_cfg: MethodConfig, task_kind: str, num_labels: int,
          model_cfg: ModelConfig) -> TransferModel:
    from peft import LoraConfig, inject_adapter_in_model

    freeze(backbone.model)
    cfg = LoraConfig(r=method_cfg.lora_r, lora_alpha=method_cfg.lora_alpha, lora_dropout=method_cfg.lora_dropout,
                     target_modules=target_modules(backbone, method_cfg))
    try:
        # In place on the base model: parameter names stay the model's own, plus lora_A/lora_B.
        inject_adapter_in_model(cfg, backbone.model)
    except ValueError as e:
        raise XLTuneError(f"method lora: {e}") from None
    for name, p in backbone.model.named_parameters():
        p.requires_grad_("lora_" in name)
    return transfer_model(backbone, model_cfg, task_kind, num_labels)
