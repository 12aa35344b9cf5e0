"""A stored run's model, rebuilt from its stored config and checkpoint (a distillation teacher; reuse)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..data.encode import (Encoded, collate, encode_sentences, encode_tokens, eval_batches, labelled_positions,
                           model_inputs, resolve_alignment)
from ..errors import XLTuneError
from ..store import Store


@dataclass
class StoredRun:
    run_id: str
    cfg: Any  # ExperimentConfig
    spec: Any  # TaskSpec
    row: dict  # the store's row: config, manifest, shots, ...
    model: Any
    tokenizer: Any
    pad_id: int
    padding_side: str
    device: Any
    templates: Any = None  # with a verbalizer head
    is_decoder: bool = False

    def encode(self, examples) -> Encoded:
        if self.templates is not None:
            from ..models.verbalizer import encode_verbalized

            return encode_verbalized(examples, self.tokenizer, self.templates, self.cfg.model.max_length)
        if self.spec.kind == "token":
            return encode_tokens(examples, self.tokenizer, self.cfg.model.max_length,
                                 resolve_alignment(self.cfg.task.label_alignment, self.is_decoder))
        return encode_sentences(examples, self.tokenizer, self.cfg.model.max_length)

    @torch.no_grad()
    def logits(self, examples, per_word: bool = False, batch_size: int = 64) -> list[torch.Tensor]:
        """Per example: the logits ``[C]`` (sequence tasks) or ``[W, C]`` per *word*, read at the sub-word that
        carries each word's label (first or last, as the run was trained) with long sentences' windows stitched by
        word index (``per_word``), float32 on the CPU."""
        from ..train import autocast_dtype

        encoded = self.encode(examples)
        token_task = self.spec.kind == "token"
        amp = autocast_dtype(self.cfg.train.mixed_precision)
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
        if not token_task:
            out_t: list = [None] * encoded.n_examples
            for f, t in zip(feats, per_feat):
                out_t[f.example] = t
            return out_t
        if not per_word:
            raise XLTuneError("token-task logits are per word (per_word=True)")
        words: list[dict[int, torch.Tensor]] = [dict() for _ in range(encoded.n_examples)]
        for f, t in zip(feats, per_feat):
            for pos in labelled_positions(f.word_ids, encoded.read_at):
                words[f.example][f.word_ids[pos]] = t[pos]
        return [torch.stack([d[k] for k in sorted(d)]) if d else torch.zeros(0) for d in words]


def checkpoint_path(cfg, run_id: str) -> Path:
    return Path(cfg.output_dir) / run_id / "trainable.safetensors"


def load_stored_run(run_id: str, store_path: str | Path, device: str | torch.device = "cpu") -> StoredRun:
    """Rebuild the stored run ``run_id`` of ``store_path`` (run id or run key) with its trained parameters."""
    from safetensors.torch import load_file

    from ..config import ExperimentConfig
    from ..data.tasks import resolve_task
    from ..errors import quiet_notes
    from ..methods.base import build_model
    from ..models.backbone import load_backbone

    if not Path(store_path).is_file():
        raise XLTuneError(f"results store {store_path} does not exist")
    with Store(store_path) as s:
        stored = s.stored_id(run_id)
        runs = s.runs(run_id=stored) if stored else []
    if not runs:
        raise XLTuneError(f"run {run_id!r} is not in {store_path}")
    row = runs[0]
    with quiet_notes():
        cfg = ExperimentConfig.from_dict(row["config"], f"run {run_id} in {store_path}")
    ckpt = checkpoint_path(cfg, row["run_id"])
    if not ckpt.is_file():
        raise XLTuneError(f"run {run_id} has no checkpoint at {ckpt} (was it run with save_checkpoint: false?)")
    device = torch.device(device)
    spec = resolve_task(cfg.task)
    backbone = load_backbone(cfg.model, device=device, frozen=True)
    model = build_model(backbone, cfg.method, spec.kind, len(spec.labels), cfg.model)
    padding_side = (backbone.tokenizer.padding_side if cfg.model.padding_side == "auto" else cfg.model.padding_side)
    templates = None
    if cfg.model.head == "verbalizer":
        from ..models.verbalizer import verbalizer_model
        from ..templates import load_templates

        templates = load_templates(spec, cfg.task.template)
        model = verbalizer_model(model, backbone, templates, padding_side)
    model.load_trainable(load_file(str(ckpt)))
    model.to(device)
    return StoredRun(row["run_id"], cfg, spec, row, model, backbone.tokenizer, backbone.pad_token_id, padding_side,
                     device, templates, backbone.is_decoder)
