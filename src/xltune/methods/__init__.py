"""Tuning methods; each registers itself in METHODS by name (one module per method)."""

from . import deep_prompt, finetune, in_context, lora, prompt  # noqa: F401  (registration)
from .base import METHODS, build_model

__all__ = ["METHODS", "build_model"]
