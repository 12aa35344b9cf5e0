"""A stored run's model, rebuilt from its config and checkpoint: a distillation teacher, ``xltune predict`` /
``eval`` / ``export``, and :func:`xltune.load_run`.

Two ways in: :func:`load_stored_run` (a run id in a results store) and :func:`load_run` (a run folder,
``OUTPUT_DIR/RUN_ID``, or a folder written by ``xltune export``; see :mod:`.folder`). Paths are found where they are
now: a store and its run folders moved together (a project copied to another machine) resolve relative to the
store, a run folder relative to itself; the absolute paths written at run time come next; an error names every
place looked in.

The rebuilt model predicts exactly as the run's own evaluation did (same encoding, same positions and heads; the
tests compare them): :meth:`StoredRun.predict` / :meth:`StoredRun.predict_proba` take raw texts,
:meth:`StoredRun.scores` encoded examples.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..data.encode import (Encoded, collate, encode_sentences, encode_tokens, eval_batches, labelled_positions,
                           model_inputs, resolve_alignment)
from ..data.records import SentenceExample, TokenExample
from ..errors import XLTuneError
from ..store import Store
from .folder import CHECKPOINT, path_slots, read_run_folder, relocated


@dataclass
class StoredRun:
    run_id: str
    cfg: Any  # ExperimentConfig
    spec: Any  # TaskSpec
    row: dict  # the store's row (config, manifest, seed, ...), or what the run folder's run.json says
    model: Any
    tokenizer: Any
    pad_id: int
    padding_side: str
    device: Any
    templates: Any = None  # with a verbalizer head
    is_decoder: bool = False
    backbone: Any = None  # models.backbone.Backbone
    folder: Path | None = None  # the run folder the checkpoint was read from
    description: dict = field(default_factory=dict)  # its run.json ({} for folders of older versions)

    @property
    def labels(self) -> list[str]:
        return list(self.spec.labels)

    @property
    def token_task(self) -> bool:
        return self.spec.kind == "token"

    def encode(self, examples) -> Encoded:
        if self.templates is not None:
            from ..models.verbalizer import encode_verbalized

            return encode_verbalized(examples, self.tokenizer, self.templates, self.cfg.model.max_length)
        if self.spec.kind == "token":
            return encode_tokens(examples, self.tokenizer, self.cfg.model.max_length,
                                 resolve_alignment(self.cfg.task.label_alignment, self.is_decoder))
        return encode_sentences(examples, self.tokenizer, self.cfg.model.max_length)

    @contextmanager
    def _language_module(self, examples):
        """Language-module methods (mad_x, lang_prefix, lang_lora): the examples' language's module swapped in, as
        the run's evaluation did (the source language's where that language has none); other methods: nothing."""
        from ..langmod.modules import language_module, slot_of

        slot = slot_of(self.model)
        langs = {getattr(e, "lang", "") for e in examples}
        if slot is None or not langs - {""} or langs <= {slot.source}:
            yield
            return
        if len(langs) > 1:
            raise XLTuneError(f"run {self.run_id} swaps a language module per language: score one language at a "
                              f"time (got {', '.join(sorted(langs))})")
        with language_module(slot, langs.pop()):
            yield

    @torch.no_grad()
    def _feature_logits(self, encoded: Encoded, batch_size: int, autocast: bool = True) -> list[torch.Tensor]:
        """Per feature: ``[C]`` (sequence tasks) or ``[L, C]`` over its real (unpadded) positions, float32 on the
        CPU, computed as the run's evaluation computes them (same batching, padding side and autocast; ``autocast``
        False: in the weights' own precision)."""
        from ..train import autocast_dtype

        token_task = self.spec.kind == "token"
        amp = autocast_dtype(self.cfg.train.mixed_precision) if autocast else None
        self.model.eval()
        feats = encoded.features
        per_feat: list = [None] * len(feats)
        ctx = torch.autocast(self.device.type, dtype=amp) if amp else torch.autocast("cpu", enabled=False)
        with ctx:
            for idx in eval_batches(encoded.lengths(), batch_size):
                batch = collate([feats[i] for i in idx], self.pad_id, self.padding_side, token_task)
                out = self.model(**model_inputs(batch, self.device))
                logits = out.logits.float().cpu()
                for r, i in enumerate(idx):
                    per_feat[i] = logits[r][batch["attention_mask"][r].bool()] if token_task else logits[r]
        return per_feat

    def logits(self, examples, per_word: bool = False, batch_size: int = 64) -> list[torch.Tensor]:
        """Per example: the logits ``[C]`` (sequence tasks) or ``[W, C]`` per *word*, read at the sub-word that
        carries each word's label (first or last, as the run was trained) with long sentences' windows stitched by
        word index (``per_word``), float32 on the CPU. (Distillation's teacher targets; words without a sub-word
        are left out -- :meth:`scores` keeps them as NaN rows.)"""
        encoded = self.encode(examples)
        with self._language_module(examples):
            per_feat = self._feature_logits(encoded, batch_size)
        if self.spec.kind != "token":
            return self._per_example(encoded, per_feat)
        if not per_word:
            raise XLTuneError("token-task logits are per word (per_word=True)")
        words: list[dict[int, torch.Tensor]] = [dict() for _ in range(encoded.n_examples)]
        for f, t in zip(encoded.features, per_feat):
            for pos in labelled_positions(f.word_ids, encoded.read_at):
                words[f.example][f.word_ids[pos]] = t[pos]
        return [torch.stack([d[k] for k in sorted(d)]) if d else torch.zeros(0) for d in words]

    def scores(self, examples, batch_size: int = 64) -> list[torch.Tensor]:
        """Per example: ``[C]`` logits (sequence tasks), or ``[W, C]`` with one row per word of the example, read
        where the run's evaluation reads it; a word the tokenizer gave no sub-word has a row of NaN."""
        encoded = self.encode(examples)
        with self._language_module(examples):
            per_feat = self._feature_logits(encoded, batch_size)
        if self.spec.kind != "token":
            return self._per_example(encoded, per_feat)
        c = len(self.spec.labels)
        out = [torch.full((n, c), float("nan")) for n in encoded.n_words]
        for f, t in zip(encoded.features, per_feat):
            for pos in labelled_positions(f.word_ids, encoded.read_at):
                out[f.example][f.word_ids[pos]] = t[pos]
        return out

    @staticmethod
    def _per_example(encoded: Encoded, per_feat: list) -> list[torch.Tensor]:
        out: list = [None] * encoded.n_examples
        for f, t in zip(encoded.features, per_feat):
            out[f.example] = t
        return out

    # -- raw text in, labels out (xltune.load_run(DIR).predict(texts)) -------------------------------------------
    def examples(self, items: Sequence, lang: str = "") -> list:
        """Records for raw inputs: sentence tasks take a string (one text field) or a sequence of strings (one per
        text field: premise, hypothesis); token tasks a list of words or a string (split on whitespace)."""
        out = []
        fields = list(self.spec.text_columns) if self.spec.kind == "sequence" else []
        for i, item in enumerate(items):
            if self.spec.kind == "token":
                words = tuple(item.split()) if isinstance(item, str) else tuple(str(w) for w in item)
                if not words:
                    raise XLTuneError(f"input {i}: no words")
                out.append(TokenExample(f"{lang or 'input'}/input/{i}", lang, i, words, None))
                continue
            texts = (item,) if isinstance(item, str) else tuple(item)
            if len(texts) != len(fields) or not all(isinstance(t, str) for t in texts):
                raise XLTuneError(f"input {i}: task {self.spec.name} takes {len(fields)} text field(s) "
                                  f"({', '.join(fields)}) per example, got {_show(item)}")
            out.append(SentenceExample(f"{lang or 'input'}/input/{i}", lang, i, texts, None))
        return out

    def predict_proba(self, items: Sequence, lang: str = "", batch_size: int = 64) -> list:
        """Per input: {label: probability} (sequence tasks), or per word a {label: probability} (None for a word
        without a sub-word) (token tasks). ``lang`` picks a per-language template (verbalizer head)."""
        return [p for _, p in self._label_and_proba(self.examples(items, lang), batch_size)]

    def predict(self, items: Sequence, lang: str = "", batch_size: int = 64) -> list:
        """Per input: the predicted label (sequence tasks) or the list of per-word tags (token tasks; None for a
        word without a sub-word, which the evaluation scores as 'O')."""
        return [label for label, _ in self._label_and_proba(self.examples(items, lang), batch_size)]

    def _label_and_proba(self, examples, batch_size: int) -> list[tuple]:
        labels = self.labels
        out = []
        for s in self.scores(examples, batch_size):
            if s.dim() == 1:
                p = torch.softmax(s, -1)
                out.append((labels[int(s.argmax())], dict(zip(labels, p.tolist()))))
                continue
            tags, probs = [], []
            for row in s:
                if torch.isnan(row).any():
                    tags.append(None)
                    probs.append(None)
                else:
                    tags.append(labels[int(row.argmax())])
                    probs.append(dict(zip(labels, torch.softmax(row, -1).tolist())))
            out.append((tags, probs))
        return out


def _show(item: Any) -> str:
    text = json.dumps(item, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def checkpoint_path(cfg, run_id: str) -> Path:
    return Path(cfg.output_dir) / run_id / CHECKPOINT


def stored_config(run_id: str, store_path: str | Path) -> tuple[dict, Any]:
    """(the store's row, the run's config with its paths found where they are now) of a run that has a model to
    reuse -- checked before anything heavy loads."""
    from ..config import ExperimentConfig
    from ..errors import quiet_notes

    row = stored_row(run_id, store_path)
    config = relocate_config(row["config"], Path(store_path))
    with quiet_notes():
        cfg = ExperimentConfig.from_dict(config, f"run {run_id} in {store_path}")
    if _runner(cfg) == "in_context":
        raise XLTuneError(f"run {row['run_id']} is an in-context run: nothing was trained, so there is no model to "
                          f"reuse (run it again on other data with `xltune run ... --set task.data_dir=DIR`)")
    extra = row.get("extra") or {}
    if extra.get("run_average"):
        seeds = extra["run_average"].get("seeds")
        raise XLTuneError(f"run {row['run_id']} is the average of seeds {seeds}' logits (train.dev.policy "
                          f"run_average): it has no model of its own; reuse one of its seeds' runs "
                          f"({', '.join(map(str, extra['run_average'].get('runs', {}).values()))})")
    setting = extra.get("setting") or {}
    units = setting.get("units") or {}
    if len(units) > 1:
        out = Path(cfg.output_dir) / row["run_id"]
        raise XLTuneError(f"run {row['run_id']} ({setting.get('name')}) has one model per target language (units "
                          f"{', '.join(units)}): reuse one of them by its folder, e.g. `xltune predict --run-dir "
                          f"{out / next(iter(units))}` (--store/--run names a run with one model)")
    if setting.get("name") == "translate_test":
        raise XLTuneError(f"run {row['run_id']} is a translate-test run: its model reads the source language, and "
                          f"its scores came from translated test sets, which predict / eval / export do not make; "
                          f"translate the inputs first (`xltune translate`) and use a zero-shot run of the same model")
    folder = Path(cfg.output_dir) / row["run_id"]
    if not (folder / CHECKPOINT).is_file():
        written = Path(row["config"]["output_dir"]) / row["run_id"]
        tried = sorted({str(folder), str(written)})
        raise XLTuneError(f"run {row['run_id']} has no checkpoint ({CHECKPOINT} not in {' or '.join(tried)}); was "
                          f"it run with save_checkpoint: false, or were its run folders moved away from the store?")
    return row, cfg


def load_stored_run(run_id: str, store_path: str | Path, device: str | torch.device = "cpu",
                    float32: bool = False) -> StoredRun:
    """Rebuild the stored run ``run_id`` of ``store_path`` (run id, run key or a unique prefix) with its trained
    parameters, in the precision the run used (a frozen backbone may be bf16 on a GPU; ``float32``: all float32)."""
    row, cfg = stored_config(run_id, store_path)
    folder = Path(cfg.output_dir) / row["run_id"]
    desc = {}
    if (folder / "run.json").is_file():
        config_here, desc = read_run_folder(folder)
        cfg = _prefer_existing(cfg, config_here)
    return _build(row["run_id"], cfg, folder, row, desc, device, float32)


def stored_row(run_id: str, store_path: str | Path) -> dict:
    """The store's row of ``run_id`` (a run id, a run key or a unique prefix of either)."""
    store_path = Path(store_path)
    if not store_path.is_file():
        raise XLTuneError(f"results store {store_path} does not exist (check --store)")
    with Store(store_path) as s:
        stored = s.stored_id(run_id)
        if stored is None and len(run_id) >= 4:
            hits = s.conn.execute("SELECT run_id FROM runs WHERE run_id LIKE ? OR run_key LIKE ?",
                                  (run_id + "%", run_id + "%")).fetchall()
            if len(hits) > 1:
                raise XLTuneError(f"run {run_id!r} is ambiguous in {store_path}: "
                                  f"{', '.join(h[0] for h in hits[:5])}; give more characters")
            stored = hits[0][0] if hits else None
        runs = s.runs(run_id=stored) if stored else []
    if not runs:
        raise XLTuneError(f"run {run_id!r} is not in {store_path} (`xltune runs --store {store_path}` lists them)")
    return runs[0]


def folder_config(folder: str | Path) -> tuple[dict, dict, Any]:
    """(config mapping, run.json, ExperimentConfig) of a run folder, its paths resolved on this machine."""
    from ..config import ExperimentConfig
    from ..errors import quiet_notes

    folder = Path(folder).expanduser()
    config, desc = read_run_folder(folder)
    with quiet_notes():
        cfg = ExperimentConfig.from_dict(config, str(folder / "config.json"))
    return config, desc, cfg


def load_run(folder: str | Path, device: str | torch.device = "cpu", float32: bool = False) -> StoredRun:
    """The model of a run folder (``OUTPUT_DIR/RUN_ID``) or of a folder written by ``xltune export``:
    ``xltune.load_run(DIR).predict(["a text", ...])``."""
    folder = Path(folder).expanduser()
    config, desc, cfg = folder_config(folder)
    run_id = desc.get("run_id") or folder.name
    row = {"run_id": run_id, "seed": desc.get("seed"), "config": config, "variant": desc.get("variant"),
           "variant_label": desc.get("variant_label")}
    return _build(run_id, cfg, folder, row, desc, device, float32)


def _build(run_id: str, cfg, folder: Path, row: dict, desc: dict, device, float32: bool = False) -> StoredRun:
    import copy

    from safetensors.torch import load_file

    from ..data.tasks import resolve_task
    from ..methods.base import build_model, method_spec
    from ..models.backbone import load_backbone

    device = torch.device(device)
    spec = resolve_task(cfg.task)
    want = (desc.get("task") or {}).get("labels")
    if want is not None and list(want) != list(spec.labels):
        raise XLTuneError(f"{folder}/run.json: the run's labels {want} differ from task {spec.name}'s "
                          f"{list(spec.labels)} as read now (was the task's declaration changed?)")
    model_cfg = copy.deepcopy(cfg.model)
    if float32:
        model_cfg.dtype = "float32"
    # as the run was built: a backbone that trained (finetune) stays float32, a frozen one may be bf16 on a GPU
    backbone = load_backbone(model_cfg, device=device, frozen=method_spec(cfg.method.name).frozen_backbone)
    model = build_model(backbone, cfg.method, spec.kind, len(spec.labels), cfg.model)
    padding_side = (backbone.tokenizer.padding_side if cfg.model.padding_side == "auto" else cfg.model.padding_side)
    templates = None
    if cfg.model.head == "verbalizer":
        from ..models.verbalizer import verbalizer_model
        from ..templates import load_templates

        templates = load_templates(spec, cfg.task.template)
        model = verbalizer_model(model, backbone, templates, padding_side)
    try:
        state = load_file(str(folder / CHECKPOINT))
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error types for a damaged file
        raise XLTuneError(f"{folder / CHECKPOINT}: cannot read the checkpoint ({e})") from None
    model.load_trainable(state)
    from ..langmod.modules import slot_of

    slot = slot_of(model)
    if slot is not None:  # a language-module method: the source language's module, swapped per input language
        source = (cfg.train.languages or [None])[0]
        if source not in slot.modules:
            raise XLTuneError(f"run {run_id}: its source language's module ({source}) is not in "
                              f"{cfg.method.language_modules} any more (the run's language modules must stay where "
                              f"they were)")
        slot.source = source
        slot.load(source)
    model.to(device)
    model.eval()
    return StoredRun(run_id, cfg, spec, row, model, backbone.tokenizer, backbone.pad_token_id, padding_side,
                     device, templates, backbone.is_decoder, backbone, folder, desc)


def _runner(cfg) -> str:
    from ..methods.base import method_spec

    return method_spec(cfg.method.name).runner


def relocate_config(config: dict, store_path: Path) -> dict:
    """The stored config with each local path that no longer exists looked for where it would be now that the
    store is at ``store_path`` (the store and its folders moved together); paths that exist stay."""
    config = json.loads(json.dumps(config))
    old_store = config.get("store")
    if not old_store or not Path(old_store).is_absolute():
        return config
    old_anchor, new_anchor = Path(old_store).parent, store_path.resolve().parent
    for _, container, key in path_slots(config):
        value = container[key]
        if key in ("store",) or Path(value).exists():
            continue
        moved = relocated(value, old_anchor, new_anchor)
        if moved.exists() or key == "output_dir":
            container[key] = str(moved)
    config["store"] = str(store_path.resolve())
    return config


def _prefer_existing(cfg, config_here: dict):
    """``cfg`` with the model path (and other local paths) that do not exist replaced by the run folder's, where
    those do."""
    data = cfg.to_dict()
    here = {name: (c, k) for name, c, k in path_slots(config_here)}
    for name, container, key in path_slots(data):
        if not Path(container[key]).exists() and name in here:
            c, k = here[name]
            if Path(c[k]).exists():
                container[key] = c[k]
    if not Path(data["model"]["name_or_path"]).expanduser().exists() and \
            Path(config_here["model"]["name_or_path"]).expanduser().exists():
        data["model"]["name_or_path"] = config_here["model"]["name_or_path"]
    from ..config import ExperimentConfig
    from ..errors import quiet_notes

    with quiet_notes():
        return ExperimentConfig.from_dict(data, "stored run")
