"""Shallow prompt tuning: soft input vectors and the head train; the backbone is frozen."""

from __future__ import annotations

from dataclasses import dataclass

from ..settings import check_choice, check_positive, check_unit, setting
from .base import METHODS, MethodSettings, MethodSpec, PeftExport, freeze, transfer_model


@dataclass
class PromptSettings(MethodSettings):
    name: str = "prompt"
    length: int = setting(16, "number of soft tokens put before the input")
    init: str = setting("random", "random | vocab (initialise soft tokens from random vocabulary embeddings)")
    dropout: float = setting(0.0, "dropout on the soft tokens")

    def __post_init__(self) -> None:
        check_positive("method.length", self.length)
        check_choice("method.init", self.init, ("random", "vocab"))
        check_unit("method.dropout", self.dropout)


def build(backbone, settings: PromptSettings, task_kind: str, num_labels: int, model_cfg):
    from ..models.prompts import SoftPrompt

    freeze(backbone.model)
    embeddings = backbone.model.get_input_embeddings()
    prompt = SoftPrompt(settings.length, embeddings, embeddings.num_embeddings, init=settings.init,
                        dropout=settings.dropout)
    return transfer_model(backbone, model_cfg, task_kind, num_labels, soft_prompt=prompt)


def peft_export(backbone, settings: PromptSettings) -> PeftExport:
    """peft's prompt tuning: the same vectors before the input embeddings (positions, mask and segment 0 alike)."""
    from peft import PromptTuningConfig

    return PeftExport(PromptTuningConfig(num_virtual_tokens=settings.length),
                      rename={"soft_prompt.weight": "prompt_encoder.default.embedding.weight"},
                      virtual_tokens=settings.length)


METHODS.add("prompt", MethodSpec(
    "prompt", PromptSettings, build, "shallow prompt tuning: soft input tokens and the head; backbone frozen",
    trains=lambda n: n.startswith(("soft_prompt.", "head.")),
    renamed={"prefix_length": "length", "prompt_init": "init", "prompt_dropout": "dropout"}, peft=peft_export))
