"""Experiment trackers (``train.report_to``) through accelerate's: TensorBoard, Weights & Biases, MLflow, ...

One tracker run per xltune run (one seed of one variant): the variant's label and id, the seed, the run id and the
configuration as its hyperparameters; the training loss and learning rate every optimizer step, the dev score at
every model-selection evaluation, and the headline metric per target language at the end.

* TensorBoard writes event files to ``LOGGING_DIR/RUN_ID/`` (``train.logging_dir``, default ``output_dir``): nothing
  leaves the machine; ``tensorboard --logdir runs`` shows every run by its id.
* wandb: project ``$WANDB_PROJECT`` (default ``xltune``), one run named ``LABEL seed N``, grouped by variant id (the
  seeds of one variant together, as the report pools them). Offline: ``WANDB_MODE=offline`` keeps it local (``wandb
  sync`` later).
* the others get project ``xltune`` (and the logging folder where they need one).

Tracking never changes a run: ``report_to`` and ``logging_dir`` are not part of the variant (nor of the run key).
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

from .errors import XLTuneError

# accelerate's tracker names -> the package(s) that provide them (the first one is what to install)
TRACKERS: dict[str, tuple[str, ...]] = {
    "tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",), "mlflow": ("mlflow",),
    "comet_ml": ("comet_ml",), "aim": ("aim",), "clearml": ("clearml",), "dvclive": ("dvclive",),
    "swanlab": ("swanlab",), "trackio": ("trackio",),
}
PROJECT = "xltune"


def check_available(names: list[str]) -> None:
    """Each tracker's package is installed, or a clear error (accelerate would drop it silently)."""
    for name in names:
        packages = TRACKERS[name]
        if not any(importlib.util.find_spec(p) is not None for p in packages):
            raise XLTuneError(f"train.report_to: {name} needs the {packages[0]} package (pip install {packages[0]}), "
                              f"which is not installed; install it or drop {name} from train.report_to")


def make_trackers(cfg, run_id: str, seed: int) -> list:
    """accelerate tracker objects for ``cfg.train.report_to`` (not started: ``Accelerator.init_trackers`` does)."""
    from accelerate.tracking import LOGGER_TYPE_TO_CLASS

    from . import variants

    names = list(cfg.train.report_to)
    if not names:
        return []
    check_available(names)
    logdir = str(Path(cfg.train.logging_dir or cfg.output_dir))
    label, variant = variants.label(cfg), variants.variant_id(cfg)
    out = []
    for name in names:
        cls = LOGGER_TYPE_TO_CLASS[name]
        if name == "tensorboard":
            out.append(cls(run_id, logdir))  # LOGGING_DIR/RUN_ID/
        elif name == "wandb":
            out.append(cls(os.environ.get("WANDB_PROJECT", PROJECT), name=f"{label} seed {seed}", group=variant,
                           job_type=cfg.method.name, tags=[cfg.task.name, cfg.method.name], dir=logdir))
        elif name == "mlflow":
            out.append(cls(PROJECT, logdir, run_name=f"{label} seed {seed}"))
        elif getattr(cls, "requires_logging_directory", False):
            out.append(cls(PROJECT, logdir))
        else:
            out.append(cls(PROJECT))
    return out


def hyperparameters(cfg, run_id: str, seed: int) -> dict[str, Any]:
    """What a tracker records about the run: its identity, then the variant's settings as flat scalars."""
    from . import variants

    out: dict[str, Any] = {"variant": variants.label(cfg), "variant_id": variants.variant_id(cfg), "seed": int(seed),
                           "run_id": run_id, "task": cfg.task.name, "method": cfg.method.name,
                           "model": cfg.model.name_or_path, "shots": str(cfg.train.shots)}
    for key, value in _flat(variants.canonical(cfg)).items():
        out.setdefault(key, value)
    return out


def _flat(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        elif v is None:
            continue  # trackers take scalars only (TensorBoard's hparams: no None)
        elif isinstance(v, (bool, int, float, str)):
            out[key] = v
        else:  # lists (languages, objectives): as JSON text
            out[key] = json.dumps(v, sort_keys=True, ensure_ascii=False)
    return out
