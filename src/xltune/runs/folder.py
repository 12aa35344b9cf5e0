"""A run's folder, ``OUTPUT_DIR/RUN_ID/``: self-describing, so a trained model can be reused from the folder alone.

* ``trainable.safetensors``: the parameters that trained (prompt / adapter / head, or everything for fine-tuning);
* ``config.json``: the resolved experiment config. Local paths are written *relative to this folder* where the path
  and the folder share a folder below the filesystem root (a project moved or copied as a whole still resolves),
  absolute otherwise; hub ids as given;
* ``run.json``: what the run is -- run id, variant and label, seed, the task's label set, kind and metric, the
  tokenizer reference (hub id or folder, class, padding side, revision), the method, per-language metrics
  (fractions), versions, and the absolute paths as they were at run time (the fallback when only the folder moved).

:func:`read_run_folder` reads a folder back into a config whose paths resolve on this machine: relative to the
folder first, then the absolute path written at run time. Checkpoint folders of older versions (``config.json``
with absolute paths, no ``run.json``) read the same way.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from ..errors import XLTuneError

FORMAT = "xltune-run"
VERSION = 1
CHECKPOINT = "trainable.safetensors"
CONFIG = "config.json"
DESCRIPTION = "run.json"


# -- the config's local paths ---------------------------------------------------------------------------------------
def path_slots(config: dict) -> list[tuple[str, dict, str]]:
    """(dotted key, container, key) of every local path in a config mapping (``ExperimentConfig.to_dict()``): the
    paths a config file may hold (:func:`xltune.config.path_slots`, the list ``resolve_paths`` makes absolute -- a
    test keeps the two equal), less a model, translation model or template given by hub id or shipped name (a path
    only once absolute)."""
    from ..config import path_slots as config_path_slots

    return [(name, node, key) for node, key, name, kind in config_path_slots(config)
            if kind not in ("model", "template") or Path(node[key]).is_absolute()]


def relative_to(path: str, folder: Path) -> str:
    """``path`` relative to ``folder`` (``../..`` or ``./``-prefixed) when the two share a folder below the root,
    else ``path`` unchanged."""
    p = Path(path)
    if not p.is_absolute():
        return path
    try:
        common = os.path.commonpath([str(p), str(folder)])
    except ValueError:  # different drives (Windows)
        return path
    if Path(common) == Path(Path(common).anchor):
        return path
    rel = os.path.relpath(p, folder)
    # "./x" rather than "x": a relative folder must never read as a hub id ("org/name")
    return rel if rel.startswith("..") or rel == "." else f".{os.sep}{rel}"


def portable_config(config: dict, folder: Path) -> tuple[dict, dict[str, str]]:
    """A copy of ``config`` with local paths relative to ``folder`` (where possible), and the absolute paths as
    written (dotted key -> path)."""
    out = json.loads(json.dumps(config))
    absolute = {}
    for name, container, key in path_slots(out):
        absolute[name] = container[key]
        container[key] = relative_to(container[key], folder)
    return out, absolute


def resolve_config(config: dict, folder: Path, absolute: dict[str, str] | None = None) -> dict:
    """``config`` (as written in a run folder) with its paths resolved on this machine: a relative path against
    ``folder`` when that exists, else the absolute path written at run time when that exists, else the relative
    one resolved (the error that follows names it)."""
    out = json.loads(json.dumps(config))
    absolute = absolute or {}
    for name, container, key in _slots_any(out):
        value = container[key]
        if Path(value).is_absolute():
            continue
        here = (folder / value).resolve()
        then = absolute.get(name)
        if not here.exists() and then and Path(then).exists():
            container[key] = then
        else:
            container[key] = str(here)
    return out


def _slots_any(config: dict) -> list[tuple[str, dict, str]]:
    """Like :func:`path_slots`, with relative model / template paths too (as a run folder writes them)."""
    slots = path_slots(config)
    seen = {name for name, _, _ in slots}
    for name, c, key in (("model.name_or_path", config.get("model") or {}, "name_or_path"),
                         ("task.template", config.get("task") or {}, "template"),
                         ("train.translate.model", (config.get("train") or {}).get("translate") or {}, "model")):
        v = c.get(key)
        if name not in seen and isinstance(v, str) and v.startswith((".", os.sep)) and not Path(v).is_absolute():
            slots.append((name, c, key))
    return slots


def relocated(path: str, old_anchor: str | Path, new_anchor: str | Path) -> Path:
    """Where ``path`` (absolute, written when ``old_anchor`` was where it was) lies now that the anchor is at
    ``new_anchor``: the same relative position (a store and its runs/ folder moved together)."""
    rel = relative_to(str(path), Path(old_anchor))
    return Path(path) if Path(rel).is_absolute() else (Path(new_anchor) / rel).resolve()


# -- writing ----------------------------------------------------------------------------------------------------------
def write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def describe_run(ctx, results, env: dict) -> dict:
    """The ``run.json`` of a run (``ctx``: its RunContext; ``results``: its LanguageResults; ``env``: versions)."""
    languages = {r.lang: {**r.metrics, "n": r.n} for r in results}
    return describe(ctx.run_id, ctx.seed, ctx.cfg, ctx.spec, ctx.backbone, ctx.model, ctx.padding_side,
                    {"split": ctx.cfg.eval.split, "languages": languages}, env)


def describe(run_id: str, seed: int, cfg, spec, bb, model, padding_side: str, metrics: dict, env: dict) -> dict:
    """A run's description from its parts; ``metrics``: {"split", "languages": {lang: {metric: value, "n": n}}}
    (headline metric first); ``env``: the versions it ran with (:func:`xltune.runs.pipeline.environment`)."""
    from .. import variants
    from ..data.encode import resolve_alignment
    from ..kinds import task_kind
    from ..version import __version__

    tok = bb.tokenizer
    headline = task_kind(spec).headline(spec)
    languages = metrics.get("languages") or {}
    heads = [v[headline] for v in languages.values() if headline in v]
    avg = sum(heads) / len(heads) if heads else None
    model_cfg = getattr(bb.model, "config", None)
    task = {"name": spec.name, "kind": spec.kind, "labels": list(spec.labels), "metric": headline}
    if spec.kind == "token":
        task["label_alignment"] = resolve_alignment(cfg.task.label_alignment, bb.is_decoder)
    if spec.metric == "span_f1":
        task["ner_mode"] = cfg.eval.ner_mode
    desc = {
        "format": FORMAT, "version": VERSION, "xltune": __version__,
        "run_id": run_id, "seed": seed,
        "shot_seed": seed if cfg.train.shot_seed is None else cfg.train.shot_seed,
        "variant": variants.variant_id(cfg), "variant_label": variants.label(cfg),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "task": task,
        "model": {"name_or_path": cfg.model.name_or_path, "kind": "decoder" if bb.is_decoder else "encoder",
                  "model_type": getattr(model_cfg, "model_type", None), "class": type(bb.model).__name__,
                  "pooling": getattr(getattr(model, "transfer", model), "pooling", None), "head": cfg.model.head,
                  "revision": getattr(model_cfg, "_commit_hash", None)},
        "tokenizer": {"name_or_path": cfg.model.name_or_path, "class": type(tok).__name__ if tok is not None else None,
                      "vocab_size": len(tok) if tok is not None else None, "padding_side": padding_side,
                      "max_length": cfg.model.max_length},
        "method": dict(vars(cfg.method)),
        "files": {"checkpoint": CHECKPOINT, "config": CONFIG},
        "metrics": {"split": metrics.get("split", cfg.eval.split), "unit": "fraction", "headline": headline,
                    "average": avg, "languages": languages},
        "env": env,
    }
    return desc


def write_run_folder(folder: Path, model, cfg, description: dict, anchor: Path | None = None) -> None:
    """``trainable.safetensors``, ``config.json`` and ``run.json``, each written atomically (temp file, rename);
    ``run.json`` last, so a folder with a ``run.json`` is complete. ``anchor``: where the folder will be read
    from, when it is written elsewhere first (an export's temporary folder): relative paths are relative to it."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    anchor = (anchor or folder).resolve()
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict_trainable().items()}
    tmp = folder / (CHECKPOINT + ".tmp")
    save_file(state, str(tmp))
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp, 0o666 & ~mask)  # safetensors creates its files owner-only; a run folder is shared like the rest
    os.replace(tmp, folder / CHECKPOINT)
    config, absolute = portable_config(cfg.to_dict(), anchor)
    write_json_atomic(folder / CONFIG, config)
    desc = json.loads(json.dumps(description, default=str))
    for section in ("model", "tokenizer"):  # the tokenizer reference, relative like the config's
        if section in desc and desc[section].get("name_or_path"):
            desc[section]["name_or_path"] = config["model"]["name_or_path"]
    desc["absolute_paths"] = absolute
    desc["store"] = {"path": relative_to(cfg.store, anchor), "run_id": desc.get("run_id")}
    write_json_atomic(folder / DESCRIPTION, desc)


# -- reading ----------------------------------------------------------------------------------------------------------
def read_run_folder(folder: str | Path) -> tuple[dict, dict]:
    """(config with paths resolved on this machine, run.json or {} for an older folder) of a run folder."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise XLTuneError(f"{folder} is not a folder (give a run's folder, OUTPUT_DIR/RUN_ID, or an export of "
                          f"`xltune export`)")
    cfg_path, desc_path = folder / CONFIG, folder / DESCRIPTION
    if not cfg_path.is_file() or not (folder / CHECKPOINT).is_file():
        if (folder / "adapter_config.json").is_file() or (folder / "model.safetensors").is_file():
            raise XLTuneError(f"{folder} is a transformers/peft export, not an xltune run folder; load it with "
                              f"transformers / peft as its README.md shows")
        raise XLTuneError(f"{folder} is not an xltune run folder: it needs {CONFIG} and {CHECKPOINT} (written by "
                          f"`xltune run` under OUTPUT_DIR/RUN_ID, or by `xltune export`)")
    desc = {}
    if desc_path.is_file():
        desc = _read_json(desc_path)
        if desc.get("format") != FORMAT:
            raise XLTuneError(f"{desc_path}: not an xltune run description (format {desc.get('format')!r})")
        if int(desc.get("version", 0)) > VERSION:
            raise XLTuneError(f"{desc_path}: written by a newer xltune (run folder version {desc.get('version')}); "
                              f"upgrade xltune to read it")
    config = _read_json(cfg_path)
    return resolve_config(config, folder.resolve(), desc.get("absolute_paths")), desc


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise XLTuneError(f"{path}: cannot read it as JSON ({e})") from None
    if not isinstance(data, dict):
        raise XLTuneError(f"{path}: expected a JSON object")
    return data


def shown_path(path: str | Path) -> str:
    """``path`` relative to the working directory when it lies below it (what a user types next), else as is."""
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)
