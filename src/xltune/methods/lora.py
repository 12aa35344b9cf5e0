"""LoRA (peft): low-rank adapters injected into the base model's attention; adapters and the head train."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import XLTuneError
from ..settings import check_positive, check_unit, setting
from .base import METHODS, MethodSettings, MethodSpec, PeftExport, default_targets, freeze, transfer_model

# peft's default mapping lacks some multilingual families (XGLM in peft 0.21); same choice as its default (q, v).
EXTRA_TARGETS = {"xglm": ["q_proj", "v_proj"]}


@dataclass
class LoraSettings(MethodSettings):
    name: str = "lora"
    r: int = setting(8, "rank")
    alpha: int = setting(16, "scaling alpha")
    dropout: float = setting(0.1, "dropout on the adapter input")
    target_modules: list[str] = setting([], "module names to adapt (empty: peft's default for the architecture)")

    def __post_init__(self) -> None:
        check_positive("method.r", self.r)
        check_unit("method.dropout", self.dropout)


def peft_config(backbone, settings: LoraSettings):
    """The peft config this method injects (and exports)."""
    from peft import LoraConfig

    targets = default_targets(backbone, settings.target_modules, "lora",
                              "TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING", EXTRA_TARGETS)
    return LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout, target_modules=targets)


def build(backbone, settings: LoraSettings, task_kind: str, num_labels: int, model_cfg):
    from peft import inject_adapter_in_model

    freeze(backbone.model)
    cfg = peft_config(backbone, settings)
    try:
        # In place on the base model: parameter names stay the model's own, plus lora_A/lora_B.
        inject_adapter_in_model(cfg, backbone.model)
    except ValueError as e:
        raise XLTuneError(f"method lora: {e}") from None
    for name, p in backbone.model.named_parameters():
        p.requires_grad_("lora_" in name)
    return transfer_model(backbone, model_cfg, task_kind, num_labels)


METHODS.add("lora", MethodSpec(
    "lora", LoraSettings, build, "LoRA (peft): low-rank adapters on the attention projections and the head; "
    "backbone frozen", trains=lambda n: "lora_" in n or n.startswith("head."),
    renamed={"lora_r": "r", "lora_alpha": "alpha", "lora_dropout": "dropout", "lora_target_modules": "target_modules"},
    peft=lambda backbone, settings: PeftExport(peft_config(backbone, settings))))
