"""Tuning methods: one module each, registered in :data:`METHODS` by a :class:`MethodSpec` (found on first lookup)."""

from .base import METHODS, MethodSettings, MethodSpec, build_method_settings, build_model, method_settings, method_spec

__all__ = ["METHODS", "MethodSettings", "MethodSpec", "build_method_settings", "build_model", "method_settings",
           "method_spec"]
