"""MAD-X (Pfeiffer et al. 2020): a language adapter per language, trained by language modelling on that language's
text (``xltune lang-module train --kind adapter``), frozen; a task adapter trained on the source language on top of
the source language's adapter; at evaluation each target language's adapter swapped in (a language without one
keeps the source language's, and its results say so). Optional invertible adapters come with the language modules;
``mad_x_2`` drops the last layer's adapters (MAD-X 2.0, Pfeiffer et al. 2021). Adapters: models/adapters.py.

Without ``language_modules`` it is a plain task adapter (the ablation: the same task adapter, no language modules).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..langmod.modules import (SLOT, attach_slot, before_train, check_model, find_modules, for_language,
                               is_language_param, module_paths_absolute)
from ..settings import check_positive, setting
from .base import METHODS, MethodSettings, MethodSpec, freeze, transfer_model

TASK = "task"


@dataclass
class MadXSettings(MethodSettings):
    name: str = "mad_x"
    language_modules: str | dict[str, str] | None = setting(
        None, "language adapters: a folder with one module per language (lang-module train --kind adapter --out "
              "DIR), or {lang: folder}; null: none (a plain task adapter)")
    reduction_factor: float = setting(16.0, "task adapter: hidden size / bottleneck width (MAD-X: 16)")
    mad_x_2: bool = setting(False, "MAD-X 2.0: no adapters (language or task) in the last layer")

    def __post_init__(self) -> None:
        check_positive("method.reduction_factor", self.reduction_factor)

    def resolve_paths(self, absolute) -> None:
        self.language_modules = module_paths_absolute(self.language_modules, absolute)


def build(backbone, settings: MadXSettings, task_kind: str, num_labels: int, model_cfg):
    from ..models.adapters import add_adapters, add_invertible, last_layer, layers_path

    freeze(backbone.model)
    modules = find_modules(settings.language_modules, "adapter")
    skip = [last_layer(backbone)] if settings.mad_x_2 else []
    arch = {}
    if modules:
        arch = next(iter(modules.values())).architecture
        for m in modules.values():
            check_model(m, backbone)
    add_adapters(backbone, ({SLOT: arch["reduction_factor"]} if modules else {}) | {TASK: settings.reduction_factor},
                 skip)
    if arch.get("invertible"):
        add_invertible(backbone, SLOT, arch["invertible_reduction_factor"])
    for name, p in backbone.model.named_parameters():
        p.requires_grad_(f".adapters.{TASK}." in name)
    model = transfer_model(backbone, model_cfg, task_kind, num_labels)
    if modules:
        params = {n: p for n, p in backbone.model.named_parameters() if is_language_param(n)}
        dropped = f"{layers_path(backbone)}.{skip[0]}." if skip else None  # MAD-X 2.0: the last layer's adapters
        attach_slot(model, params, modules, "mad_x", ignore=lambda key: dropped is not None and key.startswith(dropped))
    return model


METHODS.add("mad_x", MethodSpec(
    "mad_x", MadXSettings, build, "MAD-X: frozen language adapters swapped per target language, a task adapter on "
    "top and the head train; backbone frozen", trains=lambda n: f".adapters.{TASK}." in n or n.startswith("head."),
    before_train=before_train, for_language=for_language))
