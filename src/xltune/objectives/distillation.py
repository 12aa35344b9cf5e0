"""Knowledge distillation: match a teacher's temperature-softened output distribution.

As an objective (``{name: distillation, teacher: RUN_ID, text: {de: FILE}}``), a stored run (the teacher) labels
unlabelled target-language text with its logits once, before training; the student (any method) learns them, on
those examples, beside whatever else the run trains on. Unlabelled text per language is a plain-text file (one
sentence per line, gzip transparent; for tagging, words are split on whitespace) or the unlabelled side of a task
split (``split: dev, languages: [de, sw]``; labels are dropped before anything sees them). A sentence-pair task
needs pairs, which plain text does not give: use a split. Sentence tasks: ``[C]`` logits per example; tagging:
``[W, C]`` per *word* (read at the teacher's first sub-word) put on the student's first sub-word of each word, so
teacher and student may use different tokenizers. `xltune distill` runs a student on this objective alone.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import XLTuneError
from ..settings import check_positive, setting
from .base import OBJECTIVES, Objective, ObjectiveSettings, ObjectiveSpec, Step, check_temperature, zero_with_graph


def distillation(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float = 2.0,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """``T^2 * KL(softmax(t/T) || softmax(s/T))`` averaged over the (unmasked) positions — Hinton et al. 2015,
    "Distilling the Knowledge in a Neural Network" (the T^2 keeps gradient magnitudes comparable across T).

    Per position n: ``KL_n = sum_c p_nc (log p_nc - log q_nc)`` with ``p = softmax(teacher/T)``,
    ``q = softmax(student/T)`` (log-softmax, so logsumexp-stable); ``L = T^2 * mean_{n : mask_n} KL_n``.

    logits: ``[B, C]`` (sequence) or ``[B, L, C]`` (token); mask: ``[B]`` / ``[B, L]`` bool (True = counted), e.g.
    first sub-word of each word for tagging; None counts every position. The batch mean is over counted positions
    (tokens, not sentences). The teacher is a target: it is detached. Computed in float32. No counted position -> 0
    on the graph.
    """
    check_temperature(temperature)
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"distillation: student {tuple(student_logits.shape)} != teacher {tuple(teacher_logits.shape)}")
    if mask is not None and mask.shape != student_logits.shape[:-1]:
        raise ValueError(f"distillation: mask {tuple(mask.shape)} does not match logits {tuple(student_logits.shape)}")
    log_q = F.log_softmax(student_logits.float() / temperature, dim=-1)
    log_p = F.log_softmax(teacher_logits.detach().float() / temperature, dim=-1)
    kl = F.kl_div(log_q, log_p, log_target=True, reduction="none").sum(dim=-1)
    if mask is not None:
        mask = mask.to(device=kl.device, dtype=torch.bool)
        if not bool(mask.any()):
            return zero_with_graph(student_logits)
        kl = kl[mask]
    return kl.mean() * temperature**2


@dataclass
class DistillationSettings(ObjectiveSettings):
    name: str = "distillation"
    teacher: str = setting("", "run id of the teacher (a stored run with its checkpoint)")
    teacher_store: str | None = setting(None, "store holding the teacher (null: the run's own store)")
    temperature: float = setting(2.0, "softmax temperature T (the loss is scaled by T^2)")
    text: dict[str, str] = setting({}, "unlabelled text per language: {lang: plain-text file}")
    split: str | None = setting(None, "or the unlabelled side of this task split, for `languages`")
    languages: list[str] = setting([], "languages whose `split` is read without labels")
    max_examples: int = setting(1000, "unlabelled examples per language (0: all)")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("objective distillation: temperature", self.temperature)
        if not self.teacher:
            raise XLTuneError("objective distillation needs a teacher: the run id of a stored run")
        if self.languages and not self.split:
            raise XLTuneError("objective distillation: languages needs split (which task split's unlabelled side)")
        if not self.text and not self.languages:
            raise XLTuneError("objective distillation needs unlabelled text: text: {lang: FILE} or split + languages")
        both = set(self.text) & set(self.languages)
        if both:
            raise XLTuneError(f"objective distillation: each language once, please ({', '.join(sorted(both))} twice)")

    def sources(self) -> list[tuple[str, str | None, str | None]]:
        """(lang, path, split) per language, files first."""
        return [(lang, path, None) for lang, path in self.text.items()] + \
               [(lang, None, self.split) for lang in self.languages]


class Distillation(Objective):
    uses_shots = False

    def prepare(self, run, plan) -> None:
        s: DistillationSettings = self.settings
        self.token_task = run.spec.kind == "token"
        store = s.teacher_store or run.cfg.store
        teacher = run.load_stored(s.teacher, store)
        if (teacher.spec.kind, tuple(teacher.spec.labels)) != (run.spec.kind, tuple(run.spec.labels)):
            raise XLTuneError(f"student task {run.spec.name} ({run.spec.kind}, labels {list(run.spec.labels)}) does "
                              f"not match the teacher's {teacher.spec.name} ({teacher.spec.kind}, labels "
                              f"{list(teacher.spec.labels)})")
        unlabelled = {}
        for lang, path, split in s.sources():
            if split and split == run.cfg.eval.split:
                run.log(f"note: unlabelled {lang} text is the evaluation split {split!r} (transductive)")
            unlabelled[lang] = unlabelled_examples(run, lang, path, split, s.max_examples)
        examples = [e for lang in unlabelled for e in unlabelled[lang]]
        if not examples:
            raise XLTuneError("no unlabelled text in " + ", ".join(p or f"{sp} split" for _, p, sp in s.sources()))
        t0 = time.perf_counter()
        self.soft = teacher.logits(examples, per_word=self.token_task)
        run.log(f"   teacher {s.teacher}: soft targets for {len(examples)} examples in "
                f"{time.perf_counter() - t0:.1f} s")
        self.examples = plan.add(examples, self.settings.name)
        self.num_labels = len(run.spec.labels)
        self.padding_side = run.padding_side
        self._info = {"teacher_run_id": s.teacher, "temperature": s.temperature,
                      "teacher_method": teacher.cfg.method.name, "teacher_model": teacher.cfg.model.name_or_path,
                      "sources": {lang: {"from": p or f"{sp} split (labels dropped)", "examples": len(unlabelled[lang])}
                                  for lang, p, sp in s.sources()}}
        del teacher

    def on_encoded(self, encoded) -> None:
        """Teacher targets per training feature: ``[C]``, or ``[L, C]`` with the word's logits on the student's
        labelled sub-word of each word (first or last) and NaN elsewhere (masked out); None for other examples."""
        from ..data.encode import labelled_positions

        first = self.examples.start
        self.targets: list[torch.Tensor | None] = []
        for f in encoded.features:
            if f.example not in self.examples:
                self.targets.append(None)
                continue
            t = self.soft[f.example - first]
            if not self.token_task:
                self.targets.append(t)
                continue
            rows = torch.full((len(f.input_ids), self.num_labels), float("nan"))
            for pos in labelled_positions(f.word_ids, encoded.read_at):  # where the student's labels sit
                if f.word_ids[pos] < t.shape[0]:
                    rows[pos] = t[f.word_ids[pos]]
            self.targets.append(rows)

    def loss(self, step: Step) -> torch.Tensor | None:
        out, temp = step.out, self.settings.temperature
        device = out.logits.device
        rows = [r for r, p in enumerate(step.part) if self.targets[p] is not None]
        if not rows:
            return None
        logits = out.logits if len(rows) == len(step.part) else out.logits[rows]
        if not self.token_task:
            target = torch.stack([self.targets[step.part[r]] for r in rows]).to(device)
            return self.weight * distillation(logits, target, temp)
        width, c = logits.shape[1], logits.shape[2]
        t = torch.full((len(rows), width, c), float("nan"))
        for k, r in enumerate(rows):
            target = self.targets[step.part[r]]
            n = target.shape[0]
            sl = slice(width - n, width) if self.padding_side == "left" else slice(0, n)
            t[k, sl] = target
        mask = ~torch.isnan(t[..., 0])
        return self.weight * distillation(logits, torch.nan_to_num(t).to(device), temp, mask.to(device))

    def info(self) -> dict:
        return {"distillation": self._info}


def unlabelled_examples(run, lang: str, path: str | None, split: str | None, max_examples: int) -> list:
    """Up to ``max_examples`` (0: all) unlabelled examples of ``lang`` (labels removed)."""
    from ..data.parallel import read_plain_text
    from ..data.records import SentenceExample, TokenExample

    spec = run.spec
    cap = max_examples or None
    if path:
        if spec.kind == "sequence" and len(spec.text_columns or ()) > 1:
            raise XLTuneError(f"task {spec.name} takes sentence pairs; plain text {path} has single sentences -- "
                              f"use the unlabelled side of a split instead (e.g. the {lang} dev split)")
        lines = [t.strip() for t in read_plain_text(path, max_lines=cap, skip_blank=True)]
        if spec.kind == "token":
            return [TokenExample(f"{lang}/kd/{i}", lang, i, tuple(t.split()), None) for i, t in enumerate(lines)]
        return [SentenceExample(f"{lang}/kd/{i}", lang, i, (t,), None) for i, t in enumerate(lines)]
    exs = run.load_split(split, lang, labelled=False)[:cap]
    if spec.kind == "token":
        return [dataclasses.replace(e, tags=None) for e in exs]
    return [dataclasses.replace(e, label=None) for e in exs]


OBJECTIVES.add("distillation", ObjectiveSpec(
    "distillation", DistillationSettings, Distillation,
    "knowledge distillation from a stored run (teacher) on unlabelled target-language text", tag="kd"))
