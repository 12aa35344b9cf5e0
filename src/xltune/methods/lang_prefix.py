"""Language prefixes: the modular idea of MAD-X for deep prompts. A language prefix (per-layer key/value vectors,
as deep_prompt's) is trained by language modelling on a language's text (``xltune lang-module train --kind
prefix``) and frozen; a task prefix is trained on the source language after the source language's prefix; at
evaluation each target language's prefix is swapped in (a language without one keeps the source language's, and
its results say so). It fits decoders naturally and trains a tiny share of the parameters.

Without ``language_modules`` it is deep_prompt (the ablation: the same task prefix, no language prefix).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import XLTuneError
from ..langmod.modules import attach_slot, before_train, check_model, find_modules, for_language, module_paths_absolute
from ..settings import setting
from .base import METHODS, MethodSpec, freeze, transfer_model
from .deep_prompt import DeepPromptSettings


@dataclass
class LangPrefixSettings(DeepPromptSettings):
    name: str = "lang_prefix"
    language_modules: str | dict[str, str] | None = setting(
        None, "language prefixes: a folder with one module per language (lang-module train --kind prefix --out "
              "DIR), or {lang: folder}; null: none (the task prefix alone, as deep_prompt)")

    def resolve_paths(self, absolute) -> None:
        self.language_modules = module_paths_absolute(self.language_modules, absolute)


def build(backbone, settings: LangPrefixSettings, task_kind: str, num_labels: int, model_cfg):
    from ..models.prompts import DeepPrompt, StackedPrompt

    layers, kv_heads, head_dim = backbone.require_layer_layout("method lang_prefix")
    freeze(backbone.model)
    modules = find_modules(settings.language_modules, "prefix")
    task = DeepPrompt(layers, kv_heads, head_dim, settings.prefix_length, backbone.hidden_size,
                      projection=settings.prefix_projection, projection_hidden=settings.prefix_hidden_size,
                      dropout=settings.dropout)
    language = None
    if modules:
        arch = next(iter(modules.values())).architecture
        for m in modules.values():
            check_model(m, backbone)
        if arch["prefix_positions"] != settings.prefix_positions:
            raise XLTuneError(f"method.prefix_positions is {settings.prefix_positions}, but the language prefixes "
                              f"were trained with {arch['prefix_positions']}; set method.prefix_positions="
                              f"{arch['prefix_positions']} (or retrain them with --prefix-positions)")
        language = DeepPrompt(layers, kv_heads, head_dim, arch["prefix_length"], backbone.hidden_size)
        freeze(language)
    model = transfer_model(backbone, model_cfg, task_kind, num_labels, deep_prompt=StackedPrompt(task, language),
                           shift_positions=settings.prefix_positions == "shift")
    if modules:
        attach_slot(model, {"embedding.weight": model.deep_prompt.language.embedding.weight}, modules, "lang_prefix")
    return model


METHODS.add("lang_prefix", MethodSpec(
    "lang_prefix", LangPrefixSettings, build, "language prefixes: a frozen per-language key/value prefix swapped "
    "per target language, a task prefix after it and the head train; backbone frozen",
    trains=lambda n: n.startswith(("deep_prompt.task.", "head.")), before_train=before_train,
    for_language=for_language))
