"""In-context few-shot evaluation (``method.name: in_context``): no training, K demonstrations per class.

The demonstrations are drawn by the same seeded sampler as the training shots of every other method
(:func:`xltune.data.fewshot.sample_shots`, K = ``train.shots`` per class from ``train.split`` of
``train.languages``), so in-context and tuned runs of one seed see the same examples. Each is written with the
template and its gold label word, joined by the template's ``demo_separator``, and put before every test example,
which the verbalizer head scores (:mod:`xltune.models.verbalizer`). ``method.demonstrations``:

* ``source``     - the same source-language demonstrations for every target language;
* ``translated`` - for target language T, the examples at the *same indices* of T's file of ``train.split``
  (line-aligned translations, as XNLI dev/test are); a missing index or a different label is an error.

Every sequence must fit the model's position table (``model.max_length`` when the config does not say); examples
that do not fit are counted in an error, never truncated. The run is stored like any other (method ``in_context``,
shots K, per-language metrics and predictions, the demonstrations' ids in the manifest).
"""

from __future__ import annotations

import time

from .api import Prepared, RunResult, environment
from .data.encode import Encoded
from .data.fewshot import sample_shots
from .data.readers import load_examples
from .data.records import SentenceExample
from .errors import XLTuneError
from .evaluate import format_table, predict_sharded, score
from .store import RunRecord, Store
from .templates import TemplateSet, load_templates
from .train import autocast_dtype

DEMONSTRATIONS = ("source", "translated")


def draw_demonstrations(prep: Prepared, seed: int) -> tuple[list[SentenceExample], dict]:
    """K per class from each source language's pool (seeded; none for K = 0) and the manifest of what was drawn."""
    cfg, spec = prep.cfg, prep.spec
    shots = cfg.train.shots
    manifest = {"seed": seed, "shots": shots, "languages": {}, "demonstrations": cfg.method.demonstrations}
    demos: list[SentenceExample] = []
    if shots == 0:
        return demos, manifest
    for lang in prep.sources:
        chosen, man = sample_shots(prep.pool[lang], spec, shots, seed)
        demos.extend(chosen)
        manifest["languages"][lang] = man
    return demos, manifest


def translated_demonstrations(prep: Prepared, demos: list[SentenceExample], lang: str) -> list[SentenceExample]:
    """The examples at the demonstrations' indices in ``lang``'s file of ``train.split`` (same labels)."""
    cfg = prep.cfg
    if not demos or all(d.lang == lang for d in demos):
        return demos
    rows = {e.index: e for e in load_examples(prep.spec, cfg.task.data_dir, cfg.train.split, lang)}
    out = []
    for d in demos:
        t = rows.get(d.index)
        if t is None:
            raise XLTuneError(f"translated demonstrations: {lang} {cfg.train.split} has no line {d.index} "
                              f"(needed for {d.id}); the files must be line-aligned")
        if t.label != d.label:
            raise XLTuneError(f"translated demonstrations: {t.id} has label {prep.spec.labels[t.label]!r} but "
                              f"{d.id} has {prep.spec.labels[d.label]!r}; the files are not line-aligned")
        out.append(t)
    return out


def demonstration_prefix(demos: list[SentenceExample], templates: TemplateSet) -> str:
    """The demonstrations as text, each with its gold label word, each followed by the separator."""
    sep = templates.demo_separator
    return "".join(templates.demonstration(d) + sep for d in demos)


def run_in_context(prep: Prepared, seed: int, run_id: str, store: Store, force: bool, log) -> RunResult:
    """Evaluate one seed of an in_context config on every target language and store it."""
    import torch
    from accelerate import PartialState
    from accelerate.utils import set_seed

    from .methods.base import build_model
    from .models.backbone import load_backbone
    from .models.verbalizer import encode_verbalized, verbalizer_model

    cfg, spec = prep.cfg, prep.spec
    if spec.kind != "sequence":
        raise XLTuneError(f"method in_context is for sentence tasks; task {spec.name} is a {spec.kind} task")
    if cfg.method.demonstrations not in DEMONSTRATIONS:
        raise XLTuneError(f"method.demonstrations must be one of {DEMONSTRATIONS}, got {cfg.method.demonstrations!r}")
    log(f"== seed {seed}  run {run_id}  in_context K={cfg.train.shots} on {spec.name} "
        f"({','.join(prep.sources)} demonstrations, {cfg.method.demonstrations}; {len(prep.targets)} languages)")
    set_seed(seed)
    templates = load_templates(spec, cfg.task.template)
    demos, manifest = draw_demonstrations(prep, seed)

    # Under --processes / accelerate launch each process scores its share of every language (gathered below).
    state = PartialState(cpu=not torch.cuda.is_available())
    device = state.device
    backbone = load_backbone(cfg.model, device=device, frozen=True)
    tok = backbone.tokenizer
    padding_side = tok.padding_side if cfg.model.padding_side == "auto" else cfg.model.padding_side
    transfer = build_model(backbone, cfg.method, spec.kind, len(spec.labels), cfg.model).to(device)
    model = verbalizer_model(transfer, backbone, templates, padding_side)
    trainable, total = model.count_parameters()
    limit = backbone.max_positions or cfg.model.max_length
    what = f"the {limit} positions of {backbone.name}" if backbone.max_positions else "model.max_length"

    t0 = time.perf_counter()
    results = []
    for lang in prep.targets:
        lang_demos = translated_demonstrations(prep, demos, lang) if cfg.method.demonstrations == "translated" \
            else demos
        text = demonstration_prefix(lang_demos, templates)
        enc: Encoded = encode_verbalized(prep.test[lang], tok, templates, limit, prefix=lambda e: text,
                                         what=f"{lang}: K={cfg.train.shots} demonstrations + input vs {what}")
        preds = predict_sharded(model, enc, state, batch_size=cfg.eval.batch_size, pad_id=backbone.pad_token_id,
                                padding_side=padding_side, token_task=False, device=device,
                                autocast_dtype=autocast_dtype(cfg.train.mixed_precision))
        results.append(score(spec, prep.test[lang], preds, lang, cfg.eval.split))
    eval_seconds = time.perf_counter() - t0
    log(format_table(results, f"   {spec.name} {cfg.eval.split}  seed {seed}  (in_context K={cfg.train.shots})"))

    rec = RunRecord(
        run_id=run_id, seed=seed, task=spec.name, method="in_context", objective=cfg.objective.tag(),
        model=cfg.model.name_or_path, shots=str(cfg.train.shots), source_langs=prep.sources, config=cfg.to_dict(),
        manifest=manifest, env=environment(), metrics=[row for r in results for row in r.rows()],
        predictions={(r.lang, r.split): r.predictions for r in results} if cfg.eval.save_predictions else {},
        trainable_params=trainable, total_params=total, train_seconds=0.0, eval_seconds=eval_seconds,
        extra={"head": "verbalizer", "scoring": templates.scoring, "templates": templates.source,
               "demonstrations": cfg.method.demonstrations, "n_demonstrations": len(demos),
               "decoder": backbone.is_decoder},
    )
    if state.is_main_process:  # one process writes
        store.write_run(rec, replace=force)
    return RunResult(run_id, seed, results, None)

