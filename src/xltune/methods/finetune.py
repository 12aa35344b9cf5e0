"""Full fine-tuning: every backbone parameter (embeddings included) and the head train."""

from __future__ import annotations

from dataclasses import dataclass

from .base import METHODS, MethodSettings, MethodSpec, transfer_model


@dataclass
class FinetuneSettings(MethodSettings):
    name: str = "finetune"


def build(backbone, settings: FinetuneSettings, task_kind: str, num_labels: int, model_cfg):
    for p in backbone.model.parameters():
        p.requires_grad_(True)
    return transfer_model(backbone, model_cfg, task_kind, num_labels)


METHODS.add("finetune", MethodSpec("finetune", FinetuneSettings, build, "full fine-tuning: every backbone "
                                   "parameter and the head train", frozen_backbone=False))
