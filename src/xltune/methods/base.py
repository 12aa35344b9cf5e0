"""The method registry and what every method shares.

A method is a callable ``build(backbone, method_cfg, task_kind, num_labels, model_cfg) -> TransferModel`` that
adds its parts (prompt, adapter) and declares what trains by setting ``requires_grad``; it registers itself in
:data:`METHODS` in its own module.
"""

from __future__ import annotations

from typing import Protocol

from torch import nn

from ..config import MethodConfig, ModelConfig
from ..models.backbone import Backbone
from ..models.transfer import TransferModel
from ..registry import Registry


class Method(Protocol):
    def __call__(self, backbone: Backbone, method_cfg: MethodConfig, task_kind: str, num_labels: int,
                 model_cfg: ModelConfig) -> TransferModel: ...


METHODS: Registry[Method] = Registry("method")


def freeze(module: nn.Module) -> None:
    for p in module.parameters():
        p.requires_grad_(False)


def enable_checkpointing(backbone: Backbone, model_cfg: ModelConfig) -> None:
    """Gradient checkpointing, non-reentrant so gradients reach tensors the layers read from outside their
    inputs (deep-prompt prefixes, LoRA weights) and frozen inputs need no ``requires_grad`` hack."""
    if not model_cfg.gradient_checkpointing:
        return
    model = backbone.model
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x name
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def transfer_model(backbone: Backbone, model_cfg: ModelConfig, task_kind: str, num_labels: int, **parts) -> TransferModel:
    enable_checkpointing(backbone, model_cfg)
    return TransferModel(backbone, num_labels, task_kind=task_kind, pooling=model_cfg.pooling,
                         head_dropout=model_cfg.head_dropout, **parts)


def build_model(backbone: Backbone, method_cfg: MethodConfig, task_kind: str, num_labels: int,
                model_cfg: ModelConfig) -> TransferModel:
    """Look up ``method_cfg.name`` in :data:`METHODS` and build its model."""
    from . import deep_prompt, finetune, in_context, lora, prompt  # noqa: F401  (registration)

    return METHODS.get(method_cfg.name, "method.name")(backbone, method_cfg, task_kind, num_labels, model_cfg)
