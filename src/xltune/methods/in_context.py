"""In-context learning: nothing trains. The frozen backbone scores label words (verbalizer head) after K
demonstrations per class; the in-context runner (:mod:`xltune.runs.in_context`) fits it (no training loop)."""

from __future__ import annotations

from dataclasses import dataclass

from ..settings import check_choice, setting
from .base import METHODS, MethodSettings, MethodSpec, freeze, transfer_model

DEMONSTRATIONS = ("source", "translated")


@dataclass
class InContextSettings(MethodSettings):
    name: str = "in_context"
    demonstrations: str = setting("source", "source (the same source-language demonstrations everywhere) | "
                                            "translated (same indices of each target language's file)")

    def __post_init__(self) -> None:
        check_choice("method.demonstrations", self.demonstrations, DEMONSTRATIONS)


def build(backbone, settings: InContextSettings, task_kind: str, num_labels: int, model_cfg):
    freeze(backbone.model)
    model = transfer_model(backbone, model_cfg, task_kind, num_labels)
    freeze(model)  # the (unused) classifier head too: in-context learning trains nothing
    return model


METHODS.add("in_context", MethodSpec(
    "in_context", InContextSettings, build, "in-context learning: K demonstrations per class before each input, "
    "label words scored by the LM head (decoders); nothing trains", runner="in_context", zero_shot=True,
    trains=lambda n: False))
