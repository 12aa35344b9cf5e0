"""``xltune eval``: a stored run scored on another dataset, split or language, without training; stored linked to
its run (:class:`~xltune.store.EvalRecord`), never as one of its seeds.

The evaluation is the run's own evaluation loop (:func:`~xltune.runs.pipeline.evaluate_languages`: the same
encoding, per-language hook and scoring) over a model rebuilt from the checkpoint, so scoring a run on its own test
set reproduces its stored metrics exactly (tested). What may change is the data: ``task.*`` (another data folder,
a task with the same label set) and ``eval.*`` (split, languages, max_examples, ner_mode). When the evaluated split
is the one the run's shots came from (same task and data), the shots -- and on a parallel split their translations
-- are left out, as the run itself did.

An evaluation's id is a hash of the run and what it evaluated (task and eval settings, data folder): asking again
prints the stored result, ``force`` redoes it. A redone run deletes its evaluations (a new model).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from ..errors import XLTuneError
from ..evaluate import LanguageResult, format_table
from ..store import EvalRecord, Store

ALLOWED = ("task.", "eval.")  # an evaluation changes the data, never the model


@dataclass
class StoredEvaluation:
    eval_id: str
    run_id: str
    label: str = ""  # the run's variant label
    results: list[LanguageResult] = field(default_factory=list)
    skipped: bool = False  # already in the store
    stored: bool = False
    variant: str = ""  # the run's variant id


class _OneProcess:
    """The accelerator surface evaluation needs (device, one process), without touching accelerate's state."""

    num_processes, process_index, is_main_process = 1, 0, True

    def __init__(self, device):
        self.device = device


def eval_config(run_config: dict, overrides: Sequence[str], source: str = "xltune eval"):
    """The run's config with the evaluation's ``task.*`` / ``eval.*`` overrides; anything else is refused."""
    from ..config import ExperimentConfig, apply_override, resolve_paths
    from ..errors import quiet_notes

    data = json.loads(json.dumps(run_config))
    for item in overrides:
        key = item.partition("=")[0].strip()
        if not key.startswith(ALLOWED):
            raise XLTuneError(f"--set {key}: an evaluation changes only task.* and eval.* settings (the model is "
                              f"the stored run's); to change anything else, train a new run")
        apply_override(data, item)
    with quiet_notes():
        cfg = ExperimentConfig.from_dict(data, source)
    return resolve_paths(cfg)


def evaluated(cfg) -> dict:
    """What an evaluation evaluates: the task section and the eval settings that change results."""
    d = cfg.to_dict()
    ev = {k: v for k, v in d["eval"].items() if k not in ("batch_size", "save_predictions")}
    return {"task": d["task"], "eval": ev}


def signature(cfg) -> str:
    """Evaluations of one variant's runs with the same signature are seeds of one evaluated setting."""
    return hashlib.sha256(json.dumps(evaluated(cfg), sort_keys=True, default=str).encode()).hexdigest()[:10]


def eval_id(run_id: str, cfg) -> str:
    """Hash of the run and what is evaluated."""
    blob = json.dumps({"run": run_id, **evaluated(cfg)}, sort_keys=True, default=str)
    return "ev-" + hashlib.sha256(blob.encode()).hexdigest()[:13]


def evaluate_stored(store_path: str | Path, run_id: str, overrides: Sequence[str] = (), *, device: str = "cpu",
                    force: bool = False, save: bool = True, log: Callable[[str], None] = print) -> StoredEvaluation:
    """Score the stored run ``run_id`` on the data that ``overrides`` (``task.KEY=V`` / ``eval.KEY=V``) name,
    and store the scores linked to the run (``save``)."""
    from .. import variants
    from ..data.tasks import resolve_task
    from ..errors import quiet_notes
    from ..methods.base import method_spec
    from .context import RunContext
    from .pipeline import environment, evaluate_languages, held_out_items
    from .prepare import prepare_evaluation
    from .runners import RUNNERS
    from .stored import load_stored_run, relocate_config, stored_config, stored_row

    row = stored_row(run_id, store_path)
    run_id = row["run_id"]
    cfg = eval_config(relocate_config(row["config"], Path(store_path)), overrides)
    eid = eval_id(run_id, cfg)
    with Store(store_path) as s:
        if s.has_evaluation(eid) and not force:
            results = stored_eval_results(s, eid)
            log(f"evaluation {eid} of run {run_id} is already in {store_path}; skipped (use --force to redo); stored:")
            log(format_table(results, ""))
            return StoredEvaluation(eid, run_id, row.get("variant_label") or "", results, skipped=True, stored=True,
                                    variant=row.get("variant") or "")
    _, run_cfg = stored_config(run_id, store_path)  # a model to reuse: checked before anything loads
    with quiet_notes():
        spec, run_spec = resolve_task(cfg.task), resolve_task(run_cfg.task)
    if (spec.kind, tuple(spec.labels)) != (run_spec.kind, tuple(run_spec.labels)):
        raise XLTuneError(f"task {spec.name} ({spec.kind}, labels {', '.join(spec.labels)}) does not match what run "
                          f"{run_id} predicts ({run_spec.kind}, labels {', '.join(run_spec.labels)}); set "
                          f"task.labels to the run's labels, in its order, if the data spells them so")
    prep = prepare_evaluation(cfg)  # the data is read (and found wanting) before the model loads
    run = load_stored_run(run_id, store_path, device=device)
    method = method_spec(cfg.method.name)
    runner = RUNNERS.get(method.runner)()
    data = cfg.task.data_dir or "hub"
    log(f"== evaluating run {run_id} ({row.get('variant_label') or variants.label(run.cfg)}, seed {row['seed']}) on "
        f"{spec.name} {cfg.eval.split} from {data}: {len(prep.targets)} language(s); nothing trains")
    ctx = RunContext(prep, int(row["seed"]), run_id, _OneProcess(run.device), log, method, run.backbone, run.model,
                     run.padding_side, run.templates)
    same_data = cfg.task.name == run.cfg.task.name and _same_place(cfg.task.data_dir, run.cfg.task.data_dir)
    held_out = held_out_items(prep, _shots(row["manifest"])) if same_data else {}
    t0 = time.perf_counter()
    results, facts = evaluate_languages(ctx, runner, held_out)
    seconds = time.perf_counter() - t0
    out = StoredEvaluation(eid, run_id, row.get("variant_label") or "", results, variant=row.get("variant") or "")
    if not save:
        return out
    extra = {**facts, "run_variant": row.get("variant"), "run_label": row.get("variant_label"),
             "headline_metric": ctx.kind.headline(spec), "signature": signature(cfg)}
    rec = EvalRecord(eval_id=eid, run_id=run_id, task=spec.name, split=cfg.eval.split, data=data,
                     config=cfg.to_dict(), env=environment(), metrics=[m for r in results for m in r.rows()],
                     predictions={(r.lang, r.split): r.predictions for r in results} if cfg.eval.save_predictions
                     else {}, eval_seconds=seconds, extra=extra)
    with Store(store_path) as s:
        s.write_evaluation(rec, replace=force)
    out.stored = True
    return out


def _shots(manifest: dict) -> list:
    """The run's shots as (lang, index) records from its manifest ids (``lang/split/index``)."""
    out = []
    for man in (manifest.get("languages") or {}).values():
        for ex_id in man.get("ids", []):
            lang, _, rest = str(ex_id).partition("/")
            index = rest.rpartition("/")[2]
            if index.isdigit():
                out.append(SimpleNamespace(lang=lang, index=int(index), id=ex_id))
    return out


def stored_eval_results(store: Store, eid: str) -> list[LanguageResult]:
    """An evaluation's stored per-language metrics (headline first)."""
    rows = store.eval_metrics(eval_id=eid)
    ev = store.evaluations(eval_id=eid)
    headline = (ev[0]["extra"].get("headline_metric") if ev else None) or ""
    per: dict[tuple[str, str], dict] = {}
    for m in rows:
        d = per.setdefault((m["lang"], m["split"]), {"n": m["n"], "metrics": {}})
        d["metrics"][m["metric"]] = m["value"]
    out = []
    for (lang, split), d in per.items():
        order = sorted(d["metrics"], key=lambda k: (k != headline, k))
        out.append(LanguageResult(lang, split, {k: d["metrics"][k] for k in order}, d["n"], []))
    return out


def _same_place(a: str | None, b: str | None) -> bool:
    """The same data folder however it is spelled (symlinks, relative parts); both None: the hub."""
    if a is None or b is None:
        return a == b
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()

