"""Language-module folders, finding the modules a run names, and the language slot a method fills per language.

A module folder (written by ``xltune lang-module train``) holds ``manifest.json`` (kind, language, architecture,
the model it was trained for, its text with hashes, tokens seen, steps, loss curve) and ``module.safetensors`` (the
module's tensors, named as in the model: ``encoder.layer.0.output.adapters.lang.down.weight``, ...). A folder is
complete once its manifest is there (written last).

A run names its modules with ``method.language_modules``: a folder holding one module folder per language (what
``--out`` of the training command collects), a single module folder, or a ``{lang: folder}`` map.

The *language slot* is the set of parameters inside a built model that hold one language's module. The method's
hooks fill it: ``before_train`` with the source language's module (the task part is trained on top of it),
``for_language`` with each target language's module for that language's evaluation -- or, for a language without
one, the source language's, stored as a fact with that language's results (``{"module": "en (no sw module:
fallback)"}``) and shown in the run's table and the report.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import XLTuneError
from . import KINDS  # noqa: F401  (defined torch-free in the package: the CLI lists them)

MANIFEST = "manifest.json"
WEIGHTS = "module.safetensors"
FORMAT = 1
SLOT = "lang"  # the language module's name inside a model: adapters.lang, invertible.lang, LoRA adapter "lang"
TRAIN_HINT = "xltune lang-module train --model M --kind {kind} --lang {lang} --text FILE... --out DIR"


def is_language_param(name: str) -> bool:
    """Is this (backbone) parameter part of the language slot? (adapters, invertible adapter, LoRA)"""
    return any(f"{part}.{SLOT}." in name for part in (".adapters", ".invertible", ".lora_A", ".lora_B")) or \
        name.startswith((f"adapters.{SLOT}.", f"invertible.{SLOT}."))


@dataclass
class LanguageModule:
    lang: str
    folder: Path
    manifest: dict
    _tensors: dict | None = field(default=None, repr=False)

    @property
    def kind(self) -> str:
        return self.manifest["kind"]

    @property
    def architecture(self) -> dict:
        return self.manifest.get("architecture", {})

    def tensors(self) -> dict[str, torch.Tensor]:
        if self._tensors is None:
            from safetensors.torch import load_file

            path = self.folder / WEIGHTS
            if not path.is_file():
                raise XLTuneError(f"language module {self.folder}: {WEIGHTS} is missing (the folder is incomplete; "
                                  "retrain it)")
            self._tensors = load_file(str(path))
        return self._tensors

    def summary(self) -> dict:
        """What a run stores about the module it used."""
        train = self.manifest.get("train", {})
        return {"folder": str(self.folder), "kind": self.kind, "text_sha256": self.manifest.get("text_sha256", "")[:16],
                "tokens_seen": train.get("tokens_seen"), "steps": train.get("steps"),
                "dev_loss": train.get("dev_loss")}


def read_module(folder: str | Path, context: str) -> LanguageModule:
    folder = Path(folder).expanduser()
    path = folder / MANIFEST
    if not path.is_file():
        what = "does not exist" if not folder.exists() else f"is not a language module (no {MANIFEST})"
        raise XLTuneError(f"{context}: {folder} {what}; train one with `{TRAIN_HINT.format(kind='KIND', lang='L')}`")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise XLTuneError(f"{path}: cannot read the module manifest ({e})") from None
    if manifest.get("format") != FORMAT or manifest.get("kind") not in KINDS or not manifest.get("lang"):
        raise XLTuneError(f"{path}: not a language-module manifest of this xltune (format {FORMAT}, kind one of "
                          f"{', '.join(KINDS)})")
    return LanguageModule(manifest["lang"], folder, manifest)


def find_modules(value: str | dict | None, kind: str, context: str = "method.language_modules"
                 ) -> dict[str, LanguageModule]:
    """``{lang: module}`` for ``method.language_modules`` (a folder of module folders, one module folder, or a
    ``{lang: folder}`` map); every module must be of ``kind`` and share one architecture."""
    if not value:
        return {}
    modules: dict[str, LanguageModule] = {}
    if isinstance(value, dict):
        for lang, folder in value.items():
            modules[lang] = read_module(folder, f"{context}[{lang}]")
    else:
        root = Path(value).expanduser()
        if (root / MANIFEST).is_file():
            m = read_module(root, context)
            modules[m.lang] = m
        elif root.is_dir():
            for sub in sorted(p for p in root.iterdir() if (p / MANIFEST).is_file()):
                m = read_module(sub, context)
                if m.lang in modules:
                    raise XLTuneError(f"{context}: two modules for language {m.lang} ({modules[m.lang].folder}, "
                                      f"{sub}); keep one, or name them with a {{lang: folder}} map")
                modules[m.lang] = m
            if not modules:
                raise XLTuneError(f"{context}: {root} holds no language module (no */{MANIFEST}); train some with "
                                  f"`{TRAIN_HINT.format(kind=kind, lang='L')}`")
        else:
            raise XLTuneError(f"{context}: {root} does not exist; train modules with "
                              f"`{TRAIN_HINT.format(kind=kind, lang='L')}` (--out {root})")
    for lang, m in modules.items():
        if m.kind != kind:
            raise XLTuneError(f"{context}: the module for {lang} ({m.folder}) is a {m.kind} module; this method "
                              f"needs {kind} modules (lang-module train --kind {kind})")
    architecture(modules, context)
    return modules


def architecture(modules: dict[str, LanguageModule], context: str = "method.language_modules") -> dict:
    """The architecture every module shares (one slot holds each of them in turn)."""
    first = next(iter(modules.values()))
    for lang, m in modules.items():
        if m.architecture != first.architecture:
            raise XLTuneError(f"{context}: modules differ in architecture ({first.lang}: {first.architecture}; "
                              f"{lang}: {m.architecture}); retrain them with the same settings")
    return dict(first.architecture)


# -- does a module fit the model? --------------------------------------------------------------------------------
def model_fingerprint(backbone) -> dict:
    """Shape facts of the model and a probe of its embedding values (a module trained for another checkpoint of
    the same shape is refused too). The probe is compared with a tolerance: a backbone loaded in bf16 still fits."""
    config = backbone.config if backbone.config is not None else backbone.model.config
    emb = backbone.model.get_input_embeddings().weight
    out = {"model_type": getattr(config, "model_type", ""), "hidden_size": backbone.hidden_size,
           "num_layers": backbone.num_layers, "vocab_size": int(emb.shape[0])}
    if emb.device.type != "meta":
        rows = sorted({0, emb.shape[0] // 3, 2 * emb.shape[0] // 3, emb.shape[0] - 1})
        out["probe"] = [round(float(v), 6) for v in emb[rows, :4].detach().float().flatten()]
    return out


def check_model(module: LanguageModule, backbone, context: str = "method.language_modules") -> None:
    trained = module.manifest.get("model", {})
    here = model_fingerprint(backbone)
    shape = ("model_type", "hidden_size", "num_layers", "vocab_size")
    if any(trained.get(k) != here[k] for k in shape):
        desc = lambda f: ", ".join(f"{k} {f.get(k)}" for k in shape)  # noqa: E731
        raise XLTuneError(f"{context}: the {module.lang} module ({module.folder}) was trained for "
                          f"{trained.get('name_or_path')} ({desc(trained)}); this run's model {backbone.name} has "
                          f"{desc(here)}")
    a, b = trained.get("probe"), here.get("probe")
    if a and b and not torch.allclose(torch.tensor(a), torch.tensor(b), rtol=1e-2, atol=1e-3):
        raise XLTuneError(f"{context}: the {module.lang} module ({module.folder}) was trained for other weights "
                          f"({trained.get('name_or_path')}) than this run's model {backbone.name} (same shape, "
                          "different embeddings)")


# -- the slot ----------------------------------------------------------------------------------------------------
class LanguageSlot:
    """The parameters of a model that hold one language module at a time, keyed as the module file names them."""

    def __init__(self, params: dict[str, torch.nn.Parameter], modules: dict[str, LanguageModule],
                 method: str, ignore: Callable[[str], bool] = lambda key: False):
        self.params, self.modules, self.method, self.ignore = params, modules, method, ignore
        self.loaded: str | None = None
        self.source: str | None = None

    def load(self, lang: str) -> None:
        if lang == self.loaded:
            return
        module = self.modules[lang]
        state = {k: v for k, v in module.tensors().items() if not self.ignore(k)}
        missing, unexpected = sorted(set(self.params) - set(state)), sorted(set(state) - set(self.params))
        if missing or unexpected:
            raise XLTuneError(f"language module {lang} ({module.folder}) does not fit the model's language slot "
                              f"(missing: {missing[:3]}, unexpected: {unexpected[:3]}); was it trained for this "
                              "model and kind?")
        with torch.no_grad():
            for k, p in self.params.items():
                if tuple(state[k].shape) != tuple(p.shape):
                    raise XLTuneError(f"language module {lang} ({module.folder}): {k} has shape "
                                      f"{tuple(state[k].shape)}, the model expects {tuple(p.shape)}")
                p.copy_(state[k].to(device=p.device, dtype=p.dtype))
        self.loaded = lang

    def require_loaded(self, *_args) -> None:
        if self.loaded is None:
            raise XLTuneError(f"method {self.method}: the model has a language slot but no module is loaded in it "
                              "(the run's before_train hook loads the source language's; a model rebuilt outside a "
                              "run, e.g. a stored run as a distillation teacher, has none)")


def attach_slot(model, params: dict[str, torch.nn.Parameter], modules: dict[str, LanguageModule], method: str,
                ignore: Callable[[str], bool] = lambda key: False):
    """Give ``model`` (a TransferModel) its language slot; a forward with nothing loaded in it is an error."""
    slot = LanguageSlot(params, modules, method, ignore)
    model.language_slot = slot
    model.register_forward_pre_hook(slot.require_loaded)
    return model


def slot_of(model) -> LanguageSlot | None:
    for m in (model, getattr(model, "transfer", None)):  # a verbalizer head wraps the TransferModel
        slot = getattr(m, "language_slot", None)
        if slot is not None:
            return slot
    return None


# -- the method hooks --------------------------------------------------------------------------------------------
def before_train(ctx) -> None:
    """Load the source language's module: the task part trains on top of it (MAD-X)."""
    slot = slot_of(ctx.model)
    if slot is None:
        return
    train = ctx.cfg.train
    if train.setting != "zero_shot" or train.dev.policy == "target_oracle":
        # which module a text needs is the language it is *in*: translated shots (translate_train), target shots
        # (few_shot_target), translated test sets (translate_test) and target dev sets would each need another
        # module than the hooks load today -- refused rather than run on the wrong one
        what = f"train.setting {train.setting}" if train.setting != "zero_shot" else "train.dev.policy target_oracle"
        raise XLTuneError(f"method {slot.method}: {what} is not supported with language modules yet (they are "
                          f"swapped per target language in zero-shot transfer); use train.setting zero_shot and "
                          f"train.dev.policy source, last or an average")
    sources = list(ctx.prep.sources)
    if len(sources) != 1:
        raise XLTuneError(f"method {slot.method}: language modules need one source language (train.languages), "
                          f"got {', '.join(sources)}")
    source = sources[0]
    if source not in slot.modules:
        kind = next(iter(slot.modules.values())).kind
        raise XLTuneError(f"method {slot.method}: no language module for the source language {source} (modules: "
                          f"{', '.join(sorted(slot.modules))}); train one: "
                          f"`{TRAIN_HINT.format(kind=kind, lang=source)}`")
    slot.source = source
    slot.load(source)
    ctx.facts["language_modules"] = {lang: m.summary() for lang, m in sorted(slot.modules.items())}
    missing = [t for t in ctx.prep.targets if t not in slot.modules]
    ctx.log(f"   language modules: {', '.join(sorted(slot.modules))} (task trained on {source}'s)"
            + (f"; no module for {', '.join(missing)}: {source}'s is used (fallback)" if missing else ""))


@contextmanager
def for_language(ctx, lang: str):
    """Swap in ``lang``'s module for its evaluation (the source language's where it has none, said in the fact)."""
    slot = slot_of(ctx.model)
    if slot is None or slot.source is None:
        yield {}
        return
    with language_module(slot, lang) as fact:
        yield fact


@contextmanager
def language_module(slot: LanguageSlot, lang: str):
    """``lang``'s module loaded in ``slot`` (the source language's where it has none, said in the fact it yields),
    the source's again afterwards: a run's evaluation and a stored run's predictions swap alike."""
    if lang in slot.modules:
        slot.load(lang)
        fact = {"module": lang}
    else:
        slot.load(slot.source)
        fact = {"module": f"{slot.source} (no {lang} module: fallback)"}
    try:
        yield fact
    finally:
        slot.load(slot.source)


def write_module(folder: Path, tensors: dict[str, torch.Tensor], manifest: dict,
                 extra: dict[str, dict[str, torch.Tensor]] | None = None) -> None:
    """Write the weights (and any extra safetensors files), then the manifest last: a folder with a manifest is
    complete."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    files = {WEIGHTS: tensors, **(extra or {})}
    for name, state in files.items():
        tmp = folder / f"{name}.tmp"
        save_file({k: v.detach().to("cpu", torch.float32).contiguous() for k, v in state.items()}, str(tmp))
        os.replace(tmp, folder / name)
    tmp = folder / f"{MANIFEST}.tmp"
    tmp.write_text(json.dumps({"format": FORMAT, **manifest}, indent=1, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, folder / MANIFEST)


def module_paths_absolute(value: Any, absolute: Callable[[str], str]) -> Any:
    """``method.language_modules`` with its folders made absolute (the stored config re-runs anywhere)."""
    if isinstance(value, dict):
        return {k: absolute(v) for k, v in value.items()}
    return absolute(value) if value else value
