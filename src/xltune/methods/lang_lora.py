"""LoRA language modules (peft, multiple active adapters): a language LoRA per language trained by language
modelling (``xltune lang-module train --kind lora``) and frozen, a task LoRA trained on the source language with the
source language's LoRA active beside it (peft sums the active adapters' updates), and each target language's LoRA
swapped in at evaluation (a language without one keeps the source language's, and its results say so).

Without ``language_modules`` it is lora (the ablation: the same task LoRA, no language modules).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from ..errors import XLTuneError
from ..langmod.modules import (SLOT, attach_slot, before_train, check_model, find_modules, for_language,
                               is_language_param, module_paths_absolute)
from ..settings import setting
from .base import METHODS, MethodSpec, default_targets, freeze, transfer_model
from .lora import EXTRA_TARGETS, LoraSettings

TASK = "task"


@dataclass
class LangLoraSettings(LoraSettings):
    name: str = "lang_lora"
    language_modules: str | dict[str, str] | None = setting(
        None, "language LoRAs: a folder with one module per language (lang-module train --kind lora --out DIR), "
              "or {lang: folder}; null: none (the task LoRA alone, as lora)")

    def resolve_paths(self, absolute) -> None:
        self.language_modules = module_paths_absolute(self.language_modules, absolute)


def build(backbone, settings: LangLoraSettings, task_kind: str, num_labels: int, model_cfg):
    from peft import LoraConfig, inject_adapter_in_model
    from peft.tuners.tuners_utils import BaseTunerLayer

    freeze(backbone.model)
    modules = find_modules(settings.language_modules, "lora")
    targets = default_targets(backbone, settings.target_modules, "lang_lora",
                              "TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING", EXTRA_TARGETS)
    configs = {}
    if modules:
        arch = next(iter(modules.values())).architecture
        for m in modules.values():
            check_model(m, backbone)
        configs[SLOT] = LoraConfig(r=arch["r"], lora_alpha=arch["alpha"], lora_dropout=0.0,
                                   target_modules=arch["target_modules"])
    configs[TASK] = LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                               target_modules=targets)
    try:
        with warnings.catch_warnings():  # peft warns that a second adapter joins the first: that is the point
            warnings.filterwarnings("ignore", message="Already found a `peft_config`")
            for name, cfg in configs.items():
                inject_adapter_in_model(cfg, backbone.model, adapter_name=name)
    except ValueError as e:
        raise XLTuneError(f"method lang_lora: {e}") from None
    for module in backbone.model.modules():
        if isinstance(module, BaseTunerLayer):
            module.set_adapter(list(configs))  # both active: peft adds each active adapter's update
    for name, p in backbone.model.named_parameters():
        p.requires_grad_("lora_" in name and f".{TASK}." in name)
    model = transfer_model(backbone, model_cfg, task_kind, num_labels)
    if modules:
        attach_slot(model, {n: p for n, p in backbone.model.named_parameters() if is_language_param(n)}, modules,
                    "lang_lora")
    return model


METHODS.add("lang_lora", MethodSpec(
    "lang_lora", LangLoraSettings, build, "LoRA language modules (peft, two active adapters): a frozen language "
    "LoRA swapped per target language, a task LoRA and the head train; backbone frozen",
    trains=lambda n: ("lora_" in n and f".{TASK}." in n) or n.startswith("head."), before_train=before_train,
    for_language=for_language))
