"""IA3 (peft; Liu et al. 2022, "Few-Shot Parameter-Efficient Fine-Tuning is Better and Cheaper than In-Context
Learning"): learned vectors that rescale keys, values and the feed-forward activations; they and the head train."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import XLTuneError
from ..settings import setting
from .base import METHODS, MethodSettings, MethodSpec, PeftExport, default_targets, freeze, transfer_model

# Families peft 0.21's IA3 mappings lack, chosen as peft chooses for their relatives (T5, BERT): keys, values and the
# feed-forward output, whose *input* is rescaled.
EXTRA_TARGETS = {"xglm": ["k_proj", "v_proj", "fc2"], "xlm-roberta": ["key", "value", "output.dense"]}
EXTRA_FEEDFORWARD = {"xglm": ["fc2"], "xlm-roberta": ["output.dense"]}


@dataclass
class IA3Settings(MethodSettings):
    name: str = "ia3"
    target_modules: list[str] = setting([], "modules to rescale (empty: peft's default for the architecture)")
    feedforward_modules: list[str] = setting([], "of those, the feed-forward ones (their input is rescaled)")


def peft_config(backbone, settings: IA3Settings):
    """The peft config this method injects (and exports)."""
    from peft import IA3Config

    targets = default_targets(backbone, settings.target_modules, "ia3",
                              "TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING", EXTRA_TARGETS)
    if settings.target_modules:  # the user's own targets: only the feed-forward modules they name
        feedforward = list(settings.feedforward_modules)
    else:
        feedforward = default_targets(backbone, settings.feedforward_modules, "ia3",
                                      "TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING", EXTRA_FEEDFORWARD)
    return IA3Config(target_modules=targets, feedforward_modules=feedforward)


def build(backbone, settings: IA3Settings, task_kind: str, num_labels: int, model_cfg):
    from peft import inject_adapter_in_model

    freeze(backbone.model)
    cfg = peft_config(backbone, settings)
    try:
        inject_adapter_in_model(cfg, backbone.model)
    except ValueError as e:
        raise XLTuneError(f"method ia3: {e}") from None
    for name, p in backbone.model.named_parameters():
        p.requires_grad_("ia3_l" in name)
    return transfer_model(backbone, model_cfg, task_kind, num_labels)


METHODS.add("ia3", MethodSpec(
    "ia3", IA3Settings, build, "IA3 (peft): learned rescaling of keys, values and feed-forward activations, and the "
    "head; backbone frozen", trains=lambda n: "ia3_l" in n or n.startswith("head."),
    peft=lambda backbone, settings: PeftExport(peft_config(backbone, settings))))
