"""A seed's run context: everything a runner, the objectives and the evaluation share, built in one place.

Built once per seed, the same way for every runner: the accelerator (one process, or a data-parallel group), the
global seed, the backbone (frozen backbones may load in bf16 on a GPU: the method's spec says whether it is), the
method's model with its head (a classifier, or the verbalizer head that scores label words through the LM head),
the tokenizer's padding side, and the encoders of training and evaluation data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..data.encode import Encoded, resolve_alignment
from ..errors import XLTuneError
from ..evaluate import predict_sharded
from ..methods.base import MethodSpec, build_model, method_spec
from ..train import autocast_dtype, resolve_mixed_precision
from .prepare import Prepared


@dataclass
class RunContext:
    prep: Prepared
    seed: int
    run_id: str
    acc: Any  # accelerate.Accelerator
    log: Any
    method: MethodSpec
    backbone: Any  # models.backbone.Backbone
    model: Any  # TransferModel, or VerbalizerModel around it
    padding_side: str
    templates: Any = None  # TemplateSet with a verbalizer head
    facts: dict = field(default_factory=dict)  # what the runner and hooks want stored with the run

    # -- shorthands ---------------------------------------------------------------------------------------------
    @property
    def cfg(self):
        return self.prep.cfg

    @property
    def spec(self):
        return self.prep.spec

    @property
    def tokenizer(self):
        return self.backbone.tokenizer

    @property
    def pad_id(self) -> int:
        return self.backbone.pad_token_id

    @property
    def device(self):
        return self.acc.device

    @property
    def kind(self):
        """The task's kind (xltune.kinds): how examples are encoded and scored."""
        from ..kinds import task_kind

        return task_kind(self.spec)

    @property
    def token_task(self) -> bool:
        return self.kind.token

    @property
    def is_main(self) -> bool:
        return self.acc.is_main_process

    @property
    def amp(self):
        return autocast_dtype(self.cfg.train.mixed_precision)

    # -- data ----------------------------------------------------------------------------------------------------
    def encode_train(self, examples) -> Encoded:
        """Training (and dev) examples as the model reads them."""
        cfg = self.cfg
        if self.templates is not None:
            from ..models.verbalizer import encode_verbalized

            return encode_verbalized(examples, self.tokenizer, self.templates, cfg.model.max_length)
        return self.kind.encode(examples, self.tokenizer, cfg.model.max_length,
                                resolve_alignment(cfg.task.label_alignment, self.backbone.is_decoder))

    def encode_test(self, lang: str) -> Encoded:
        """A target language's evaluation set, encoded once per experiment (the tokenizer is the same every seed)."""
        if lang not in self.prep.encoded:
            self.prep.encoded[lang] = self.encode_train(self.prep.test[lang])
        return self.prep.encoded[lang]

    def load_split(self, split: str, lang: str, **kw) -> list:
        return self.prep.load_split(split, lang, **kw)

    # -- the model -------------------------------------------------------------------------------------------------
    def predict(self, enc: Encoded, logits: bool = False) -> list:
        """Predicted label ids, or their logits (sharded over the processes, gathered; batch-size invariant)."""
        return predict_sharded(self.model, enc, self.acc, batch_size=self.cfg.eval.batch_size, pad_id=self.pad_id,
                               padding_side=self.padding_side, token_task=self.token_task, device=self.device,
                               autocast_dtype=self.amp, logits=logits)

    # -- experiment trackers (train.report_to) ----------------------------------------------------------------------
    @property
    def tracking(self) -> bool:
        return bool(self.cfg.train.report_to)

    def track(self, values: dict, step: int) -> None:
        """Log to the run's trackers (the main process writes; a no-op without train.report_to)."""
        if self.tracking:
            self.acc.log(values, step=step)

    def end_tracking(self) -> None:
        if self.tracking and self.is_main:
            for tracker in self.acc.trackers:
                tracker.finish()

    def load_stored(self, run_id: str, store: str):
        """A stored run's model, rebuilt on this run's device (e.g. a distillation teacher)."""
        from .stored import load_stored_run

        return load_stored_run(run_id, store, device=self.device)


def build_context(prep: Prepared, seed: int, run_id: str, log, *, verbalizer: bool = False,
                  tracking: bool = True) -> RunContext:
    """The seed's context: accelerator, seed, backbone, model + head (verbalizer when the config asks or the
    runner needs it). ``tracking``: start the run's trackers (train.report_to); a run with several units (one model
    per target) gets one tracker run per unit, named by the run id and logged from step 0 each."""
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    from ..models.backbone import load_backbone
    from ..tracking import PROJECT, hyperparameters, make_trackers

    cfg, spec = prep.cfg, prep.spec
    method = method_spec(cfg.method.name)
    # cpu=True without CUDA: several CPU processes (torchrun / --processes) then join a gloo process group
    trackers = make_trackers(cfg, run_id, seed) if tracking else []
    acc = Accelerator(mixed_precision=resolve_mixed_precision(cfg.train.mixed_precision),
                      cpu=not torch.cuda.is_available(), log_with=trackers or None)
    if trackers:  # started on the main process only; one tracker run per xltune run
        acc.init_trackers(PROJECT, config=hyperparameters(cfg, run_id, seed))
    set_seed(seed)  # the same on every process: identical initialisation of heads and prompts
    backbone = load_backbone(cfg.model, device=acc.device, frozen=method.frozen_backbone)
    tok = backbone.tokenizer
    padding_side = tok.padding_side if cfg.model.padding_side == "auto" else cfg.model.padding_side
    model = build_model(backbone, cfg.method, spec.kind, len(spec.labels), cfg.model).to(acc.device)
    templates = None
    if verbalizer or cfg.model.head == "verbalizer":  # label words scored by the LM head (models.verbalizer)
        from ..models.verbalizer import verbalizer_model
        from ..templates import load_templates

        if spec.kind != "sequence":
            raise XLTuneError(f"the verbalizer head is for sentence tasks; task {spec.name} is a {spec.kind} task")
        templates = load_templates(spec, cfg.task.template)
        model = verbalizer_model(model, backbone, templates, padding_side)
    return RunContext(prep, seed, run_id, acc, log, method, backbone, model, padding_side, templates)
