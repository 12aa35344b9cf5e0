"""What a method is: a :class:`MethodSpec` (peft's shape: a method brings its config and registers in one line).

A method module defines its settings dataclass (a :class:`MethodSettings` subclass: ``method: {name: lora, r: 8}``
in a config), a ``build`` function that adds its parts to a backbone and declares what trains (``requires_grad``),
and registers ``METHODS.add(MethodSpec(...))``. Everything that varies by method is a field of its spec, never a
name test elsewhere: whether the backbone is frozen (bf16 on a GPU, bit-identical after training), which runner
fits it (``train`` or ``in_context``), whether 0 shots are allowed, which parameters train (the test battery checks
this for every registered method), renamed keys of older configs, and optional hooks:

* ``before_train(ctx)``: after the model is built, before it is fitted (e.g. load language modules);
* ``for_language(ctx, lang)``: a context manager around one target language's evaluation (e.g. swap in that
  language's module); it yields a dict of facts stored with that language's results (e.g. a fallback used).

For ``xltune export``, ``peft(backbone, settings)`` says how the method's trained parts become a peft adapter: a
:class:`PeftExport` (the peft config and where the method's own parameters go), or a sentence saying why there is
no exact peft equivalent (the export then writes xltune's own folder). A method whose backbone trains whole
(``frozen_backbone=False``) exports as a transformers model.

The package's modules are found and imported on the first lookup (:func:`xltune.registry.import_submodules`):
dropping a module into ``xltune/methods/`` is the whole registration.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..errors import XLTuneError, note, unknown_name
from ..registry import Registry, import_submodules
from ..settings import build, setting

if TYPE_CHECKING:  # annotations only
    from ..models.backbone import Backbone
    from ..models.transfer import TransferModel

DEFAULT_METHOD = "deep_prompt"


@dataclass
class MethodSettings:
    """The base of every method's settings: the name the method is registered under."""

    name: str = setting(DEFAULT_METHOD, "the tuning method (see `xltune methods`); its own keys follow")

    def resolve_paths(self, absolute: Callable[[str], str]) -> None:
        """Make the files and folders this method reads absolute (``absolute(path) -> str``), so the stored
        config re-runs from anywhere; a method with such settings overrides this."""


@dataclass(frozen=True)
class PeftExport:
    """A method's trained parts as a peft adapter: its ``config`` (a peft config; the exporter sets the task type and
    ``modules_to_save`` for the head) and ``rename``: prefixes of the method's own parameter names (outside the
    backbone) -> the peft model's. Parameters inside the backbone keep their names under the task model's base
    model. ``virtual_tokens``: positions peft puts before the input (prompt tuning), whose outputs come first."""

    config: Any
    rename: Mapping[str, str] = field(default_factory=dict)
    virtual_tokens: int = 0


@dataclass(frozen=True)
class MethodSpec:
    name: str
    settings: type[MethodSettings]
    build: Callable[..., TransferModel]  # (backbone, settings, task_kind, num_labels, model_cfg) -> TransferModel
    description: str  # one line, for `xltune methods`
    frozen_backbone: bool = True  # no backbone weight trains: bf16 allowed on a GPU, bit-identical after training
    runner: str = "train"  # how it is fitted: train (the training loop) | in_context (nothing trains)
    zero_shot: bool = False  # train.shots: 0 is meaningful (in-context with no demonstrations)
    trains: Callable[[str], bool] = lambda name: True  # parameter name -> does it train (checked by the tests)
    renamed: Mapping[str, str] = field(default_factory=dict)  # key in older configs -> this method's key
    before_train: Callable[[Any], None] | None = None
    for_language: Callable[[Any, str], AbstractContextManager[dict]] | None = None
    peft: Callable[[Any, Any], PeftExport | str] | None = None  # (backbone, settings) -> adapter, or why none


METHODS: Registry[MethodSpec] = Registry("method", loader=import_submodules(__package__, skip=("base",)))


def method_spec(name: str, context: str = "method.name") -> MethodSpec:
    return METHODS.get(name, context)


def build_method_settings(data: Any, source: str = "config", key: str = "method") -> MethodSettings:
    """A method's settings from a config mapping: its own class, keys renamed since older versions mapped (with a
    note), keys of *other* methods dropped with a note (``--set method.name=finetune`` on a deep-prompt config
    leaves ``prefix_length`` behind), anything else an error listing the method's keys."""
    if isinstance(data, MethodSettings):
        return data
    if data is None:
        data = {}
    if isinstance(data, str):
        data = {"name": data}
    if not isinstance(data, dict):
        raise XLTuneError(f"{source}: {key} must be a mapping like {{name: lora, r: 8}}, got {data!r}")
    name = data.get("name", DEFAULT_METHOD)
    if not isinstance(name, str):
        raise XLTuneError(f"{source}: {key}.name must be a string, got {name!r}")
    spec = method_spec(name, f"{source} ({key}.name)")
    own = {f.name for f in dataclasses.fields(spec.settings)}
    kept: dict = {}
    for k, v in data.items():
        if k in own:
            kept[k] = v
        elif k in spec.renamed:
            note(f"{source}: {key}.{k} is now {key}.{spec.renamed[k]} (the old name still works)")
            kept[spec.renamed[k]] = v
        else:
            owners = [m for m in METHODS.names() if m != name and _has_key(METHODS.get(m), k)]
            if not owners:
                raise unknown_name(f"key of method {name}", f"{key}.{k}", [f"{key}.{o}" for o in sorted(own)],
                                   source)
            note(f"{source}: {key}.{k} is a setting of {', '.join(owners)}, not of {name}; ignored")
    return build(spec.settings, kept, source, f"{key}.")


def _has_key(spec: MethodSpec, key: str) -> bool:
    return key in spec.renamed or any(f.name == key for f in dataclasses.fields(spec.settings))


def method_settings(name: str, **values) -> MethodSettings:
    """``method_settings("lora", r=4)``: the settings of method ``name`` with some fields set (for code and tests)."""
    return build_method_settings({"name": name, **values}, "method_settings()")


# -- what builders share ---------------------------------------------------------------------------------------
def freeze(module: nn.Module) -> None:
    for p in module.parameters():
        p.requires_grad_(False)


def enable_checkpointing(backbone: Backbone, model_cfg) -> None:
    """Gradient checkpointing, non-reentrant so gradients reach tensors the layers read from outside their
    inputs (deep-prompt prefixes, LoRA weights) and frozen inputs need no ``requires_grad`` hack."""
    if not model_cfg.gradient_checkpointing:
        return
    model = backbone.model
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x name
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def default_targets(backbone: Backbone, explicit: list[str], method: str, mapping_name: str,
                    extra: dict[str, list[str]]) -> list[str]:
    """Modules a peft method adapts: ``explicit``, else peft's default for the model type (the mapping
    ``mapping_name`` of ``peft.utils.constants``), else ``extra``'s (families peft does not list yet)."""
    if explicit:
        return list(explicit)
    import peft.utils.constants as constants

    model_type = getattr(backbone.model.config, "model_type", "")
    targets = getattr(constants, mapping_name).get(model_type) or extra.get(model_type)
    if not targets:
        raise XLTuneError(f"method {method}: no default target modules for model type {model_type!r}; "
                          f"set method.target_modules (e.g. [q_proj, v_proj])")
    return list(targets)


def transfer_model(backbone: Backbone, model_cfg, task_kind: str, num_labels: int, **parts) -> TransferModel:
    from ..models.transfer import TransferModel

    enable_checkpointing(backbone, model_cfg)
    return TransferModel(backbone, num_labels, task_kind=task_kind, pooling=model_cfg.pooling,
                         head_dropout=model_cfg.head_dropout, **parts)


def build_model(backbone: Backbone, settings: MethodSettings, task_kind: str, num_labels: int,
                model_cfg) -> TransferModel:
    """Build the model of ``settings.name`` on ``backbone``. Parameters that train are kept in float32 whatever
    the backbone's dtype (a frozen backbone may load in bf16 on a GPU; AdamW on bf16 weights loses updates)."""
    model = method_spec(settings.name).build(backbone, settings, task_kind, num_labels, model_cfg)
    for p in model.parameters():
        if p.requires_grad and p.is_floating_point() and p.dtype != torch.float32:
            p.data = p.data.float()
    return model
